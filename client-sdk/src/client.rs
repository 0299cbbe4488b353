//! [`Client`]: attests once, then seals every request to the attested key and opens every
//! response, re-attesting when the gateway no longer knows the key (rotation).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use veil_attest::Policy;
use veil_protocol::{
    MEDIA_TYPE_CHUNKED_REQUEST, MEDIA_TYPE_CHUNKED_RESPONSE, MEDIA_TYPE_PROBLEM,
    MEDIA_TYPE_REQUEST, MEDIA_TYPE_RESPONSE, PROBLEM_TYPE_KEY, build_request,
    message::decode_message, os_rng,
};

use crate::attestation::Attested;
use crate::http::{Endpoint, read_capped};
use crate::stream::ResponseStream;
use crate::{Error, error::short};

/// Cap on a whole non-streamed encapsulated response.
const MAX_RESPONSE: usize = 32 << 20;
/// Cap on a gateway's plain-text refusal.
const MAX_REFUSAL: usize = 4096;

/// One inner request: the whole OpenAI HTTP request that is sealed.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// HTTP method (`GET`, `POST`).
    pub method: String,
    /// Path and query (`/v1/chat/completions`).
    pub path: String,
    /// `Authorization` value; `None` uses the client's API key, if any.
    pub authorization: Option<String>,
    /// JSON body (empty for `GET`).
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the body (prompt) nor the authorization (API key) is shown.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            authorization: None,
            body: Vec::new(),
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            method: "POST".into(),
            path: path.into(),
            authorization: None,
            body,
        }
    }

    /// Sets the `Authorization` value for this request only.
    pub fn with_authorization(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }
}

/// The decrypted inner response of a non-streamed request.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// Inner HTTP status.
    pub status: u16,
    /// Inner `content-type`, if any.
    pub content_type: Option<String>,
    /// Every inner header field (names lowercase as sent, values lossily UTF-8).
    pub headers: Vec<(String, String)>,
    /// Inner body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A client bound to one attested server. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    policy: Policy,
    api_key: Option<Arc<str>>,
    session: Arc<Mutex<Arc<Attested>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.endpoint.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

enum Sent {
    Ok(reqwest::Response),
    UnknownKey,
}

impl Client {
    /// Fetches the server's attestation with a fresh nonce, verifies it against `policy`
    /// at the system clock's time, and returns a client that encrypts to the attested key
    /// only. Nothing else is sent to the server before this succeeds.
    ///
    /// The policy is checked first ([`Policy::check_pinned`]): one that pins no launch
    /// measurement for a hardware platform it allows is refused before any traffic.
    pub async fn connect(url: &str, policy: Policy) -> Result<Self, Error> {
        Self::connect_from(url, policy, None).await
    }

    /// As [`Client::connect`], with every connection made from the local address `local`
    /// when given (a host with several addresses choosing which one the server sees).
    pub async fn connect_from(
        url: &str,
        policy: Policy,
        local: Option<std::net::IpAddr>,
    ) -> Result<Self, Error> {
        policy.check_pinned()?;
        let endpoint = Endpoint::new_from(url, local)?;
        let attested = endpoint.attest(&policy).await?;
        Ok(Self {
            endpoint,
            policy,
            api_key: None,
            session: Arc::new(Mutex::new(Arc::new(attested))),
        })
    }

    /// Sends `Authorization: Bearer {key}` (inside the encryption) with every request.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Arc::from(key.into()));
        self
    }

    /// What the current attestation established, and the key requests are sealed to.
    pub fn attested(&self) -> Arc<Attested> {
        match self.session.lock() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-attests unless another task already replaced `stale`.
    /// After an "unknown key" answer to a request sealed under `stale`: attests again (unless
    /// another request already did) and allows a re-send only if the key really changed.
    /// Otherwise the answer was a lie (a relay can forward a request and then claim the key
    /// is unknown), and re-sending would run the request twice.
    async fn reattest(&self, stale: &Arc<Attested>) -> Result<(), Error> {
        if Arc::ptr_eq(&self.attested(), stale) {
            let fresh = Arc::new(self.endpoint.attest(&self.policy).await?);
            match self.session.lock() {
                Ok(mut s) => *s = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
        if self.attested().key_config == stale.key_config {
            return Err(Error::KeyNotRotated);
        }
        Ok(())
    }

    fn inner_message(&self, req: &Request) -> veil_protocol::bhttp::Message {
        let auth = req
            .authorization
            .clone()
            .or_else(|| self.api_key.as_ref().map(|k| format!("Bearer {k}")));
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_bytes()));
        }
        if !req.body.is_empty() {
            headers.push(("content-type", b"application/json"));
        }
        build_request(
            &req.method,
            &self.endpoint.authority,
            &req.path,
            &headers,
            &req.body,
            SystemTime::now(),
        )
    }

    async fn post(&self, media_type: &'static str, body: Vec<u8>) -> Result<Sent, Error> {
        let resp = self
            .endpoint
            .http
            .post(format!("{}/.well-known/ohttp-gateway", self.endpoint.base))
            .header("content-type", media_type)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Sent::Ok(resp));
        }
        let problem = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(MEDIA_TYPE_PROBLEM));
        let text = read_capped(resp, MAX_REFUSAL).await.unwrap_or_default();
        // A rotation is recognised by RFC 9458's problem type only, never by message text
        // (which anyone on the path can write).
        if status == reqwest::StatusCode::BAD_REQUEST
            && problem
            && serde_json::from_slice::<serde_json::Value>(&text)
                .is_ok_and(|v| v["type"] == PROBLEM_TYPE_KEY)
        {
            return Ok(Sent::UnknownKey);
        }
        let message = short(&String::from_utf8_lossy(&text));
        Err(Error::GatewayRefused {
            status: status.as_u16(),
            message,
        })
    }

    fn check_media_type(resp: &reqwest::Response, expected: &'static str) -> Result<(), Error> {
        let got = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if got.split(';').next().map(str::trim) != Some(expected) {
            return Err(Error::UnexpectedMediaType {
                expected,
                got: short(got),
            });
        }
        Ok(())
    }

    /// Sends `req` as `message/ohttp-req` and opens the `message/ohttp-res` answer.
    pub async fn send(&self, req: &Request) -> Result<Response, Error> {
        let message = self.inner_message(req);
        for attempt in 0..2 {
            let session = self.attested();
            let client =
                veil_protocol::Client::new(session.key_config.clone()).map_err(Error::KeyConfig)?;
            let (body, opener) = client.seal(&message, &mut os_rng()).map_err(Error::Seal)?;
            match self.post(MEDIA_TYPE_REQUEST, body).await? {
                Sent::UnknownKey if attempt == 0 => self.reattest(&session).await?,
                Sent::UnknownKey => break,
                Sent::Ok(resp) => {
                    Self::check_media_type(&resp, MEDIA_TYPE_RESPONSE)?;
                    let sealed = read_capped(resp, MAX_RESPONSE).await?;
                    let plain = opener.open(&sealed).map_err(Error::ResponseIntegrity)?;
                    let msg = decode_message(&plain).map_err(Error::InnerResponse)?;
                    let status =
                        msg.control()
                            .status()
                            .map(|s| s.code())
                            .ok_or(Error::InnerResponse(veil_protocol::Error::BinaryHttp(
                                "not a response",
                            )))?;
                    let content_type = veil_protocol::message::header(&msg, "content-type")
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    let headers = msg
                        .header()
                        .iter()
                        .map(|f| {
                            (
                                String::from_utf8_lossy(f.name()).into_owned(),
                                String::from_utf8_lossy(f.value()).into_owned(),
                            )
                        })
                        .collect();
                    return Ok(Response {
                        status,
                        content_type,
                        headers,
                        body: msg.content().to_vec(),
                    });
                }
            }
        }
        Err(Error::GatewayRefused {
            status: 400,
            message: "unknown key id even after re-attesting".into(),
        })
    }

    /// Sends `req` as `message/ohttp-chunked-req`; the answer's head is read before this
    /// returns, its body is streamed (and authenticated chunk by chunk).
    pub async fn send_streaming(&self, req: &Request) -> Result<ResponseStream, Error> {
        let message = self.inner_message(req);
        for attempt in 0..2 {
            let session = self.attested();
            let client =
                veil_protocol::Client::new(session.key_config.clone()).map_err(Error::KeyConfig)?;
            let (body, opener) = client
                .seal_chunked(&message, &mut os_rng())
                .map_err(Error::Seal)?;
            match self.post(MEDIA_TYPE_CHUNKED_REQUEST, body).await? {
                Sent::UnknownKey if attempt == 0 => self.reattest(&session).await?,
                Sent::UnknownKey => break,
                Sent::Ok(resp) => {
                    Self::check_media_type(&resp, MEDIA_TYPE_CHUNKED_RESPONSE)?;
                    return ResponseStream::start(resp, opener).await;
                }
            }
        }
        Err(Error::GatewayRefused {
            status: 400,
            message: "unknown key id even after re-attesting".into(),
        })
    }
}
