//! An in-process Veil server for the SDK's tests: attestation from the simulated
//! attester, an OHTTP gateway (`veil_protocol::Gateway`) answering the inner OpenAI
//! requests with canned JSON/SSE, a tamper layer on the wire bytes, and counters that
//! prove what arrived.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use veil_attest::attester::{Attester as _, Simulated};
use veil_attest::{Attestation, ManifestClaims, Policy, Reference, ReportData};
use veil_protocol::bhttp::{Message, StatusCode as BStatus};
use veil_protocol::message::header as bheader;
use veil_protocol::{
    DateWindow, Gateway, GatewayKey, IndeterminateResponseEncoder, Kem, KeyConfig, SymmetricSuite,
    os_rng,
};

/// The simulated measurement the test server reports.
pub const MEASUREMENT: [u8; 48] = [4; 48];
/// A marker in every completion, to search the wire for.
pub const COMPLETION_MARKER: &str = "COMPLETION-SECRET-c0ffee";
/// The completion text the test server answers with.
pub const ANSWER: [&str; 3] = ["Hello", " from ", COMPLETION_MARKER];

/// Header fields of every inner answer besides `content-type`: what `veil proxy` passes on
/// (`retry-after`, `x-ratelimit-*`) and what it must not (`x-internal-note`).
pub const INNER_HEADERS: [(&str, &str); 4] = [
    ("retry-after", "7"),
    ("x-ratelimit-remaining-tokens", "42"),
    ("x-ratelimit-reset-tokens", "6m0s"),
    ("x-internal-note", "not-for-clients"),
];

/// What the tamper layer does to the next exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tamper {
    #[default]
    None,
    /// Attestation bound to another nonce than the client's.
    WrongNonce,
    /// Attestation serves another server's key configuration (evidence unchanged).
    SwapKey,
    /// A byte of the encapsulated request flipped before the gateway sees it.
    FlipRequestByte,
    /// A byte of the (chunked or not) encapsulated response flipped.
    FlipResponseByte,
    /// The final chunk of a chunked response dropped.
    DropFinalChunk,
    /// Two chunks of a chunked response swapped.
    ReorderChunks,
    /// Before the next gateway request, rotate to a new key and retire the attested one.
    RotateKey,
    /// The next gateway request is opened and answered (it runs), then the answer is
    /// replaced by RFC 9458's "unknown key" problem: a relay that forwards, then lies.
    RunThenClaimUnknownKey,
    /// The next gateway request is refused with a 400 whose text says "unknown key id" but
    /// that carries no RFC 9458 problem type.
    UnknownKeyTextOnly,
}

pub struct Shared {
    gateway: Mutex<Gateway>,
    /// The KEMs of each epoch's keys, in order (the real server's: X-Wing, X25519).
    kems: Vec<Kem>,
    next_key_id: AtomicUsize,
    other_key: GatewayKey,
    attester: Simulated,
    manifest: ManifestClaims,
    pub tamper: Mutex<Tamper>,
    pub attestations: AtomicUsize,
    /// How many of the next attestation requests are refused as busy (429 with
    /// `retry_after`, or 503 without it when that is `None`).
    pub busy: AtomicUsize,
    pub retry_after: Mutex<Option<u32>>,
    pub gateway_posts: AtomicUsize,
    pub last_post: Mutex<Option<(String, Vec<u8>)>>,
    pub authorizations: Mutex<Vec<String>>,
    /// Every inner request body that parsed as JSON, in order.
    pub requests: Mutex<Vec<serde_json::Value>>,
}

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with_manifest(manifest()).await
    }

    /// A server whose attestation carries `manifest` (its model id is not bound).
    pub async fn start_with_manifest(manifest: ManifestClaims) -> Self {
        Self::start_with(manifest, Kem::ALL.to_vec()).await
    }

    /// A server as before X-Wing: one X25519 key per epoch.
    pub async fn start_x25519_only() -> Self {
        Self::start_with(manifest(), vec![Kem::X25519HkdfSha256]).await
    }

    async fn start_with(manifest: ManifestClaims, kems: Vec<Kem>) -> Self {
        let mut gateway = Gateway::new(DateWindow::default());
        gateway.rotate_all(epoch_keys(&kems, 1));
        let shared = Arc::new(Shared {
            gateway: Mutex::new(gateway),
            next_key_id: AtomicUsize::new(1 + kems.len()),
            kems,
            other_key: GatewayKey::generate(1, &SymmetricSuite::ALL, &mut os_rng()),
            attester: Simulated::new([3; 32], MEASUREMENT),
            manifest,
            tamper: Mutex::new(Tamper::None),
            attestations: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            retry_after: Mutex::new(None),
            gateway_posts: AtomicUsize::new(0),
            last_post: Mutex::new(None),
            authorizations: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/attestation", get(attestation))
            .route("/.well-known/ohttp-gateway", get(keys).post(gateway_post))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            url: format!("http://{addr}"),
            addr,
            shared,
        }
    }

    pub fn set(&self, t: Tamper) {
        *self.shared.tamper.lock().expect("lock") = t;
    }

    pub fn posts(&self) -> usize {
        self.shared.gateway_posts.load(Ordering::SeqCst)
    }

    pub fn attestations(&self) -> usize {
        self.shared.attestations.load(Ordering::SeqCst)
    }
}

/// One key per KEM, ids from `first_id` on.
fn epoch_keys(kems: &[Kem], first_id: usize) -> Vec<GatewayKey> {
    kems.iter()
        .zip(first_id..)
        .map(|(&kem, id)| {
            let id = u8::try_from(id).expect("key id");
            GatewayKey::generate_with(kem, id, &SymmetricSuite::ALL, &mut os_rng())
        })
        .collect()
}

/// The KEM identifier and key id of the last encapsulated request the gateway received,
/// read from its header on the wire (`key_id(1) ‖ kem_id(2) ‖ …`).
pub fn last_request_kem(s: &Shared) -> Option<(u8, u16)> {
    let last = s.last_post.lock().expect("lock");
    let body = &last.as_ref()?.1;
    Some((
        *body.first()?,
        u16::from_be_bytes([*body.get(1)?, *body.get(2)?]),
    ))
}

pub fn manifest() -> ManifestClaims {
    let json = serde_json::json!({
        "binary_sha256": hex::encode([1u8; 32]),
        "model_digest": hex::encode([2u8; 32]),
        "model_id": "test-model",
    });
    serde_json::from_value(json).expect("manifest")
}

/// The policy the test server satisfies.
pub fn policy() -> Policy {
    Policy::default()
        .allow_simulated(true)
        .with_reference(Reference::simulated(MEASUREMENT))
}

async fn attestation(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    s.attestations.fetch_add(1, Ordering::SeqCst);
    if s.busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return match *s.retry_after.lock().expect("lock") {
            Some(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                "attestation busy, retry",
            )
                .into_response(),
            None => (StatusCode::SERVICE_UNAVAILABLE, "evidence unavailable").into_response(),
        };
    }
    let Ok(Ok(mut nonce)) =
        hex::decode(q.unwrap_or_default().trim_start_matches("nonce=")).map(<[u8; 32]>::try_from)
    else {
        return (StatusCode::BAD_REQUEST, "nonce must be 64 hex characters").into_response();
    };
    let tamper = *s.tamper.lock().expect("lock");
    if tamper == Tamper::WrongNonce {
        nonce[0] ^= 1;
    }
    let key_config = KeyConfig::encode_list(&s.gateway.lock().expect("lock").current_configs());
    let rd = ReportData::new(&key_config, &nonce, &s.manifest.server_manifest().digest())
        .expect("report data");
    let evidence = s.attester.attest(&rd.0).expect("evidence");
    let served = if tamper == Tamper::SwapKey {
        KeyConfig::encode_list(&[s.other_key.config().clone()])
    } else {
        key_config
    };
    axum::Json(Attestation::new(evidence, served, s.manifest.clone())).into_response()
}

async fn keys(State(s): State<Arc<Shared>>) -> Response {
    let body = s.gateway.lock().expect("lock").ohttp_keys();
    (
        [(header::CONTENT_TYPE, veil_protocol::MEDIA_TYPE_KEYS)],
        body,
    )
        .into_response()
}

/// The canned inner answer: status, content type, body pieces (SSE events when streamed).
fn answer(s: &Shared, msg: &Message) -> (u16, &'static str, Vec<Vec<u8>>) {
    if let Some(a) = bheader(msg, "authorization") {
        s.authorizations
            .lock()
            .expect("lock")
            .push(String::from_utf8_lossy(a).into_owned());
    }
    let path = msg.control().path().unwrap_or_default();
    let json = |v: serde_json::Value| vec![v.to_string().into_bytes()];
    if path == b"/v1/models" {
        return (
            200,
            "application/json",
            json(serde_json::json!({"object": "list", "data": [
                {"id": "test-model", "object": "model", "owned_by": "veil", "created": 0}]})),
        );
    }
    let req: serde_json::Value = serde_json::from_slice(msg.content()).unwrap_or_default();
    s.requests.lock().expect("lock").push(req.clone());
    if req["model"] != "test-model" {
        return (
            404,
            "application/json",
            json(serde_json::json!({"error": {"message": "model not found",
                "type": "invalid_request_error"}})),
        );
    }
    let chat = path == b"/v1/chat/completions";
    let text = ANSWER.concat();
    if req["stream"] == true {
        let mut events: Vec<Vec<u8>> = ANSWER
            .iter()
            .map(|piece| {
                let ev = if chat {
                    serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "model": "test-model",
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
                } else {
                    serde_json::json!({"id": "c1", "object": "text_completion", "model": "test-model",
                        "choices": [{"index": 0, "text": piece, "finish_reason": null}]})
                };
                format!("data: {ev}\n\n").into_bytes()
            })
            .collect();
        events.push(b"data: [DONE]\n\n".to_vec());
        return (200, "text/event-stream", events);
    }
    let body = if chat {
        serde_json::json!({"id": "c1", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}})
    } else {
        serde_json::json!({"id": "c1", "object": "text_completion", "model": "test-model",
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})
    };
    (200, "application/json", json(body))
}

fn refuse(e: &veil_protocol::Error) -> Response {
    match e {
        veil_protocol::Error::UnknownKeyId(_) => unknown_key(),
        _ => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// RFC 9458's answer for a key id the gateway does not hold.
fn unknown_key() -> Response {
    let body = serde_json::json!({
        "type": veil_protocol::PROBLEM_TYPE_KEY, "title": "unknown key id", "status": 400,
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, veil_protocol::MEDIA_TYPE_PROBLEM)],
        body.to_string(),
    )
        .into_response()
}

async fn gateway_post(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.gateway_posts.fetch_add(1, Ordering::SeqCst);
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    *s.last_post.lock().expect("lock") = Some((ct.clone(), body.to_vec()));
    let mut body = body.to_vec();
    let tamper = *s.tamper.lock().expect("lock");
    if tamper == Tamper::RotateKey {
        let id = s.next_key_id.fetch_add(s.kems.len(), Ordering::SeqCst);
        let mut g = s.gateway.lock().expect("lock");
        let old = g.current_configs();
        g.rotate_all(epoch_keys(&s.kems, id));
        for c in old {
            g.retire(c.key_id());
        }
        *s.tamper.lock().expect("lock") = Tamper::None;
    }
    if tamper == Tamper::UnknownKeyTextOnly {
        *s.tamper.lock().expect("lock") = Tamper::None;
        return (StatusCode::BAD_REQUEST, "unknown key id").into_response();
    }
    if tamper == Tamper::RunThenClaimUnknownKey {
        *s.tamper.lock().expect("lock") = Tamper::None;
    }
    if tamper == Tamper::FlipRequestByte
        && let Some(b) = body.last_mut()
    {
        *b ^= 1;
    }
    let now = SystemTime::now();
    if ct == veil_protocol::MEDIA_TYPE_REQUEST {
        let opened = match s.gateway.lock().expect("lock").open_request(&body, now) {
            Ok(o) => o,
            Err(e) => return refuse(&e),
        };
        let (status, ctype, pieces) = answer(&s, &opened.message);
        if tamper == Tamper::RunThenClaimUnknownKey {
            return unknown_key();
        }
        let mut msg = Message::response(BStatus::try_from(status).expect("status"));
        msg.put_header("content-type", ctype);
        for (n, v) in INNER_HEADERS {
            msg.put_header(n, v);
        }
        msg.write_content(pieces.concat());
        let mut sealed = opened.seal_response(&msg, &mut os_rng()).expect("seal");
        if tamper == Tamper::FlipResponseByte {
            let n = sealed.len();
            sealed[n - 3] ^= 1;
        }
        return (
            [(header::CONTENT_TYPE, veil_protocol::MEDIA_TYPE_RESPONSE)],
            sealed,
        )
            .into_response();
    }
    if ct != veil_protocol::MEDIA_TYPE_CHUNKED_REQUEST {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type").into_response();
    }
    let (mut opened, padding) = {
        let g = s.gateway.lock().expect("lock");
        match g.open_chunked_request(&body, now, &mut os_rng()) {
            Ok(o) => (o, g.padding().clone()),
            Err(e) => return refuse(&e),
        }
    };
    let (status, ctype, pieces) = answer(&s, &opened.message);
    if tamper == Tamper::RunThenClaimUnknownKey {
        return unknown_key();
    }
    let mut enc = IndeterminateResponseEncoder::new();
    let mut wire = vec![opened.response_nonce.clone()];
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b"content-type", ctype.as_bytes())];
    fields.extend(
        INNER_HEADERS
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    let head = enc.head(status, &fields).expect("head");
    wire.push(opened.response.seal_chunk(&head).expect("seal"));
    for mut p in pieces {
        if ctype == "text/event-stream" {
            padding.pad_sse(&mut p);
        }
        let c = enc.content(&p).expect("content");
        wire.push(opened.response.seal_chunk(&c).expect("seal"));
    }
    let end = enc.finish(&[], 0).expect("finish");
    wire.push(opened.response.seal_final(&end).expect("seal"));
    match tamper {
        Tamper::DropFinalChunk => {
            wire.pop();
        }
        Tamper::ReorderChunks => wire.swap(2, 3),
        Tamper::FlipResponseByte => {
            let c = &mut wire[2];
            let n = c.len();
            c[n - 1] ^= 1;
        }
        _ => {}
    }
    let stream = futures_util::stream::iter(wire.into_iter().map(Ok::<_, Infallible>));
    (
        [(
            header::CONTENT_TYPE,
            veil_protocol::MEDIA_TYPE_CHUNKED_RESPONSE,
        )],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A TCP relay that records every byte in both directions.
pub async fn recording_relay(upstream: SocketAddr) -> (String, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let log = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let log2 = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let up = tokio::net::TcpStream::connect(upstream)
                .await
                .expect("connect");
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            for (mut r, mut w, log) in [
                (
                    Box::new(dr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(uw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    Arc::clone(&log2),
                ),
                (Box::new(ur) as _, Box::new(dw) as _, Arc::clone(&log2)),
            ] {
                tokio::spawn(async move {
                    let mut buf = vec![0; 16384];
                    while let Ok(n) = r.read(&mut buf).await {
                        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        log.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                    let _ = w.shutdown().await;
                });
            }
        }
    });
    (url, log)
}
