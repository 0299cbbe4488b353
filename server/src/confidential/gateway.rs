//! The HTTP side of the confidential transport.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use veil_protocol::bhttp::Message;
use veil_protocol::{
    ChunkedResponseSealer, IndeterminateResponseEncoder, MEDIA_TYPE_CHUNKED_REQUEST,
    MEDIA_TYPE_CHUNKED_RESPONSE, MEDIA_TYPE_KEYS, MEDIA_TYPE_PROBLEM, MEDIA_TYPE_REQUEST,
    MEDIA_TYPE_RESPONSE, PROBLEM_TYPE_KEY, os_rng,
};

use super::{AttestationError, Confidential};
use crate::api::Sealed;
use crate::listen::Peer;

/// Largest encapsulated request body (the inner body limit plus framing).
const MAX_ENCAPSULATED: usize = (1 << 20) + (64 << 10);

#[derive(Debug, Clone)]
struct GatewayState {
    conf: Arc<Confidential>,
    app: Router,
}

/// The confidential routes in front of `app` (the OpenAI router).
pub fn routes(conf: Arc<Confidential>, app: Router) -> Router {
    let state = GatewayState {
        conf,
        app: app.clone(),
    };
    Router::new()
        .route("/.well-known/ohttp-gateway", get(keys).post(relay))
        .route("/v1/attestation", get(attestation))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(MAX_ENCAPSULATED))
        .with_state(state)
        .merge(app)
}

fn problem(status: StatusCode, kind: Option<&str>, title: &str) -> Response {
    let body = serde_json::json!({ "type": kind.unwrap_or("about:blank"), "title": title, "status": status.as_u16() });
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE_PROBLEM)],
        body.to_string(),
    )
        .into_response()
}

async fn keys(State(s): State<GatewayState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, MEDIA_TYPE_KEYS),
            (header::CACHE_CONTROL, "no-store"),
        ],
        s.conf.ohttp_keys(),
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct NonceQuery {
    nonce: String,
}

async fn attestation(
    State(s): State<GatewayState>,
    peer: Option<Extension<Peer>>,
    Query(q): Query<NonceQuery>,
) -> Response {
    let started = std::time::Instant::now();
    let result = s.conf.attest_from(&q.nonce, peer.map(|p| p.0.0)).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(AttestationError::BadNonce) => "bad_nonce",
        Err(AttestationError::Busy) => "busy",
        Err(AttestationError::AddressBudget { .. }) => "address_budget",
        Err(_) => "unavailable",
    };
    crate::metrics::global().attested(outcome, started.elapsed());
    match result {
        Ok(a) => {
            let json = serde_json::to_string(&a).unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                json,
            )
                .into_response()
        }
        Err(AttestationError::BadNonce) => problem(
            StatusCode::BAD_REQUEST,
            None,
            "nonce must be 64 hex characters",
        ),
        Err(AttestationError::Busy) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "attestation busy, retry",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(AttestationError::AddressBudget { retry_after }) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "attestation budget of this address spent, retry later",
            );
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "evidence unavailable");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "evidence unavailable",
            )
        }
    }
}

fn rejected(e: &veil_protocol::Error) -> Response {
    tracing::info!(reason = %e, "encapsulated request rejected");
    use veil_protocol::Error as E;
    crate::metrics::global().gateway_refused(match e {
        E::UnknownKeyId(_) => "unknown_key",
        E::Replay { .. } => "replay",
        E::ReplayCacheFull { .. } => "replay_full",
        E::StaleDate { .. } => "stale_date",
        E::MissingDate | E::InvalidDate => "date",
        _ => "malformed",
    });
    match e {
        veil_protocol::Error::UnknownKeyId(_) => problem(
            StatusCode::BAD_REQUEST,
            Some(PROBLEM_TYPE_KEY),
            "unknown key id",
        ),
        other => problem(
            StatusCode::BAD_REQUEST,
            None,
            &format!("encapsulated request rejected: {other}"),
        ),
    }
}

/// The inner request, as the router sees a plain one, marked [`Sealed`].
fn inner_request(m: &Message) -> Option<Request<Body>> {
    let c = m.control();
    let method = Method::from_bytes(c.method()?).ok()?;
    let path = std::str::from_utf8(c.path()?).ok()?;
    let mut b = Request::builder().method(method).uri(path);
    for f in m.header().iter() {
        let name = HeaderName::from_bytes(f.name()).ok()?;
        let value = HeaderValue::from_bytes(f.value()).ok()?;
        b = b.header(name, value);
    }
    let mut req = b.body(Body::from(m.content().to_vec())).ok()?;
    req.extensions_mut().insert(Sealed);
    Some(req)
}

async fn relay(
    State(s): State<GatewayState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if crate::deadline::timed_out(&r) => {
            return problem(
                StatusCode::REQUEST_TIMEOUT,
                None,
                "the request body was not received in time",
            );
        }
        Err(r) => return problem(r.status(), None, "the request body could not be read"),
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match media {
        MEDIA_TYPE_REQUEST => relay_whole(s, body).await,
        MEDIA_TYPE_CHUNKED_REQUEST => relay_chunked(s, body).await,
        _ => problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "expected message/ohttp-req or message/ohttp-chunked-req",
        ),
    }
}

/// Runs the inner request through the OpenAI router, as a [`Sealed`] request.
async fn run_inner(app: &Router, message: &Message) -> Result<Response, Response> {
    let Some(req) = inner_request(message) else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            None,
            "inner request is not a valid HTTP request",
        ));
    };
    let Ok(resp) = app.clone().oneshot(req).await;
    Ok(resp)
}

async fn relay_whole(s: GatewayState, body: Bytes) -> Response {
    let opened = match s.conf.lock_gateway().open_request(&body, SystemTime::now()) {
        Ok(o) => o,
        Err(e) => return rejected(&e),
    };
    let (parts, body) = match run_inner(&s.app, &opened.message).await {
        Ok(r) => r.into_parts(),
        Err(r) => return r,
    };
    let Ok(collected) = body.collect().await else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "inner response failed",
        );
    };
    let Ok(status) = veil_protocol::bhttp::StatusCode::try_from(parts.status.as_u16()) else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, None, "inner status");
    };
    let mut msg = Message::response(status);
    for (name, value) in &parts.headers {
        msg.put_header(name.as_str().as_bytes(), value.as_bytes());
    }
    msg.write_content(collected.to_bytes());
    match opened.seal_response(&msg, &mut os_rng()) {
        Ok(sealed) => ([(header::CONTENT_TYPE, MEDIA_TYPE_RESPONSE)], sealed).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "sealing the response failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, None, "sealing failed")
        }
    }
}

/// Seals one piece of the indeterminate-length inner response as a chunk.
fn seal(
    sealer: &mut ChunkedResponseSealer,
    piece: Result<Vec<u8>, veil_protocol::Error>,
) -> Option<Bytes> {
    piece
        .and_then(|p| sealer.seal_chunk(&p))
        .ok()
        .map(Bytes::from)
}

async fn relay_chunked(s: GatewayState, body: Bytes) -> Response {
    let opened = {
        let g = s.conf.lock_gateway();
        let padding = g.padding().clone();
        match g.open_chunked_request(&body, SystemTime::now(), &mut os_rng()) {
            Ok(o) => (o, padding),
            Err(e) => return rejected(&e),
        }
    };
    let (opened, padding) = opened;
    let (parts, body) = match run_inner(&s.app, &opened.message).await {
        Ok(r) => r.into_parts(),
        Err(r) => return r,
    };
    let sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));

    let mut sealer = opened.response;
    let mut encoder = IndeterminateResponseEncoder::new();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let field_refs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let Some(head) = seal(
        &mut sealer,
        encoder.head_padded(parts.status.as_u16(), &field_refs, &padding),
    ) else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, None, "sealing failed");
    };
    let prefix = futures_util::stream::iter([Bytes::from(opened.response_nonce), head]);
    let cadence = if sse {
        s.conf.stream_cadence()
    } else {
        Duration::ZERO
    };
    let rest = sealed_body(
        Pieces::new(body.into_data_stream(), cadence),
        sealer,
        encoder,
        padding,
        sse,
    );
    let stream = prefix
        .chain(rest)
        .map(Ok::<Bytes, std::convert::Infallible>);
    (
        [(header::CONTENT_TYPE, MEDIA_TYPE_CHUNKED_RESPONSE)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The inner body as the pieces that become sealed chunks: each frame as it comes, or with a
/// cadence, everything that came during one tick (empty when nothing did).
struct Pieces<S> {
    frames: S,
    ticker: Option<tokio::time::Interval>,
    ended: bool,
}

impl<S> Pieces<S>
where
    S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    fn new(frames: S, cadence: Duration) -> Self {
        let ticker = (!cadence.is_zero()).then(|| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + cadence, cadence);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Self {
            frames,
            ticker,
            ended: false,
        }
    }

    /// The next piece; `Ok(None)` when the body ended cleanly, `Err` when it failed.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, ()> {
        if self.ended {
            return Ok(None);
        }
        let Some(ticker) = self.ticker.as_mut() else {
            return match self.frames.next().await {
                Some(Ok(frame)) => Ok(Some(frame.to_vec())),
                Some(Err(_)) => Err(()),
                None => Ok(None),
            };
        };
        let mut piece = Vec::new();
        loop {
            tokio::select! {
                frame = self.frames.next() => match frame {
                    Some(Ok(frame)) => piece.extend_from_slice(&frame),
                    Some(Err(_)) => return Err(()),
                    None => {
                        // What came since the last tick goes now, with the end.
                        self.ended = true;
                        return Ok((!piece.is_empty()).then_some(piece));
                    }
                },
                _ = ticker.tick() => return Ok(Some(piece)),
            }
        }
    }
}

/// The sealed content chunks and the final chunk. The final chunk is sealed only after the
/// inner body ended cleanly, so a server-side failure reads as truncation on the client.
/// SSE pieces are padded one by one (a comment line; an empty tick becomes a padded comment);
/// other bodies get zero padding at the end so the whole content reaches a size bucket.
fn sealed_body<S>(
    pieces: Pieces<S>,
    sealer: ChunkedResponseSealer,
    encoder: IndeterminateResponseEncoder,
    padding: veil_protocol::Padding,
    sse: bool,
) -> impl futures_util::Stream<Item = Bytes>
where
    S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    let state = (pieces, sealer, encoder, 0usize, false);
    futures_util::stream::unfold(
        state,
        move |(mut pieces, mut sealer, mut encoder, mut len, done)| {
            let padding = padding.clone();
            async move {
                if done {
                    return None;
                }
                match pieces.next().await {
                    Ok(Some(mut piece)) => {
                        if sse {
                            padding.pad_sse(&mut piece);
                        }
                        len += piece.len();
                        let chunk = seal(&mut sealer, encoder.content(&piece))?;
                        Some((chunk, (pieces, sealer, encoder, len, false)))
                    }
                    Err(()) => None,
                    Ok(None) => {
                        let pad = if sse {
                            0
                        } else {
                            padding.padded_len(len) - len
                        };
                        let last = encoder
                            .finish(&[], pad)
                            .and_then(|p| sealer.seal_final(&p))
                            .ok()?;
                        Some((Bytes::from(last), (pieces, sealer, encoder, len, true)))
                    }
                }
            }
        },
    )
}
