//! `veil proxy`: a plain OpenAI-compatible endpoint for unmodified clients that forwards
//! every request through the verified, encrypted path and nothing in the clear.
//!
//! The upstream is attested before the first request is forwarded (and again whenever
//! attestation failed before, or the gateway rotated its key). Verification and integrity
//! failures become OpenAI-shaped error JSON; a stream that is tampered with or truncated
//! mid-way ends with an OpenAI-shaped error event and never with `data: [DONE]`.
//!
//! Of the decrypted inner response's headers, only `content-type`, `retry-after` and the
//! `x-ratelimit-*` budget reach the proxy's client (so that OpenAI clients back off as they
//! would against OpenAI); nothing else of the inner head is passed on.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::Mutex;

use veil_client::{Client, Error, Policy, Request};

/// Largest request body the proxy accepts.
const MAX_BODY: usize = 4 << 20;
/// How much of an oversized body is read and discarded, and for how long, before the 413
/// is sent: closing on a client that is still sending makes the kernel answer with a reset,
/// and the client would see a broken connection instead of the 413.
const DRAIN_MAX: usize = 64 << 20;
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The proxy's upstream: where it is, what it must prove, and the attested client once
/// it has proved it.
#[derive(Debug)]
pub struct Upstream {
    url: String,
    policy: Policy,
    client: Mutex<Option<Client>>,
}

impl Upstream {
    /// An upstream at `url` that must satisfy `policy`; nothing is fetched yet.
    pub fn new(url: impl Into<String>, policy: Policy) -> Self {
        Self {
            url: url.into(),
            policy,
            client: Mutex::new(None),
        }
    }

    /// An upstream already attested by `client`.
    pub fn with_client(url: impl Into<String>, policy: Policy, client: Client) -> Self {
        Self {
            url: url.into(),
            policy,
            client: Mutex::new(Some(client)),
        }
    }

    /// The attested client, attesting first if no attestation has succeeded yet.
    pub async fn client(&self) -> Result<Client, Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = Client::connect(&self.url, self.policy.clone()).await?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// The proxy's routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`,
/// `POST /v1/completions`, `POST /v1/responses`, all sealed to the attested upstream.
pub fn router(upstream: Arc<Upstream>) -> Router {
    Router::new()
        .fallback(forward)
        // `read_body` enforces MAX_BODY itself, answering 413 without a reset.
        .layer(DefaultBodyLimit::disable())
        .with_state(upstream)
}

/// The OpenAI error JSON for an SDK error; the message names the failed check.
pub fn error_json(e: &Error) -> serde_json::Value {
    let kind = if e.is_integrity_failure() {
        "veil_verification_error"
    } else {
        "veil_upstream_error"
    };
    let message = match e {
        Error::Verification(v) => format!(
            "veil: the server's attestation failed check `{}`: {v}; nothing was sent",
            v.check()
        ),
        e => format!("veil: {} (check `{}`)", e, e.check()),
    };
    json!({"error": {"message": message, "type": kind, "code": e.check()}})
}

fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::Api { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, axum::Json(error_json(e))).into_response()
}

/// The inner response headers passed on to the proxy's client: `content-type` (unless
/// `with_content_type` is false), `retry-after` and `x-ratelimit-*`.
fn passed_on(inner: &[(String, String)], with_content_type: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in inner {
        let name = name.to_ascii_lowercase();
        let wanted = (with_content_type && name == "content-type")
            || name == "retry-after"
            || name.starts_with("x-ratelimit-");
        if !wanted {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.append(n, v);
        }
    }
    if with_content_type && !out.contains_key(header::CONTENT_TYPE) {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    out
}

fn plain_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
    (status, axum::Json(body)).into_response()
}

async fn forward(
    State(upstream): State<Arc<Upstream>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let allowed = matches!(
        (&method, uri.path()),
        (&Method::GET, "/v1/models")
            | (&Method::POST, "/v1/chat/completions")
            | (&Method::POST, "/v1/completions")
            | (&Method::POST, "/v1/responses")
    ) || (method == Method::GET
        && uri
            .path()
            .strip_prefix("/v1/models/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/')));
    if !allowed {
        return plain_error(StatusCode::NOT_FOUND, "veil proxy: no such endpoint");
    }
    let stream = method == Method::POST
        && serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
            .unwrap_or(false);
    let mut req = if method == Method::GET {
        Request::get(path)
    } else {
        Request::post_json(path, body.to_vec())
    };
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        req = req.with_authorization(auth);
    }
    let client = match upstream.client().await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    if stream {
        forward_stream(&client, &req).await
    } else {
        match client.send(&req).await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
                (status, passed_on(&r.headers, true), r.body).into_response()
            }
            Err(e) => error_response(&e),
        }
    }
}

/// The request body, at most [`MAX_BODY`] bytes; a larger one is drained (bounded) and
/// answered with 413 in OpenAI's error shape.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            plain_error(
                StatusCode::BAD_REQUEST,
                "veil proxy: the request body could not be read",
            )
        })?;
        if buf.len() + chunk.len() > MAX_BODY {
            let mut drained = buf.len() + chunk.len();
            let _ = tokio::time::timeout(DRAIN_FOR, async {
                while let Some(Ok(c)) = stream.next().await {
                    drained += c.len();
                    if drained > DRAIN_MAX {
                        break;
                    }
                }
            })
            .await;
            let body = json!({"error": {
                "message": format!("veil proxy: the request body is larger than {MAX_BODY} bytes"),
                "type": "invalid_request_error",
                "code": "request_too_large",
            }});
            return Err((StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

async fn forward_stream(client: &Client, req: &Request) -> Response {
    let resp = match client.send_streaming(req).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if !resp.is_success() {
        let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let headers = passed_on(&resp.headers, true);
        return match resp.collect().await {
            Ok(body) => (status, headers, body).into_response(),
            Err(e) => error_response(&e),
        };
    }
    let headers = passed_on(&resp.headers, false);
    // After an error event the stream ends: never `[DONE]` after a failure.
    let events = resp.events().scan(false, |failed, e| {
        let line = match e {
            _ if *failed => None,
            Ok(data) => Some(format!("data: {data}\n\n")),
            Err(e) => {
                *failed = true;
                Some(format!("data: {}\n\n", error_json(&e)))
            }
        };
        std::future::ready(line.map(Ok::<_, std::convert::Infallible>))
    });
    (
        headers,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}
