//! Accepting connections: HTTP/1.1 with limits on slow clients, request heads and open
//! connections, and graceful shutdown.
//!
//! - A client must send its whole request head within `header_read_timeout`, or the
//!   connection is closed without an answer (slowloris). The same timer bounds how long an
//!   idle keep-alive connection waits for its next request.
//! - A request head over `max_header_bytes` (request line included) or with more than
//!   `max_headers` fields gets hyper's bare `431 Request Header Fields Too Large`, and the
//!   connection is closed.
//! - A request body must arrive whole within `body_read_timeout` of its head (`deadline.rs`):
//!   `408` in OpenAI's error shape.
//! - At most `max_connections` connections are served at once; further ones wait in the
//!   kernel's accept queue. HTTP/1.1 serves one request at a time per connection.
//! - On shutdown the listener closes (new connections are refused), idle connections close,
//!   and requests in flight (streams included) may finish within `shutdown_grace`. Then
//!   [`Drain`] ends the remaining answers (a stream ends with an error event), and after
//!   at most [`FLUSH_AFTER_DRAIN`] more, whatever is left is dropped.
//! - A connection closes with a lingering close (`listen/linger.rs`): a client still sending a body
//!   the server refused early (413) reads the answer instead of a reset.

mod linger;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::api::Drain;
use crate::deadline::DeadlineBody;

/// How long ended streams get to reach their clients after the grace period.
pub const FLUSH_AFTER_DRAIN: Duration = Duration::from_secs(5);

/// The TCP peer's address, in each request's extensions: the per-address attestation
/// budget keys on it. Never logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

/// Connection limits and timeouts of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenConfig {
    /// Time for a client to send a whole request head (also the keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Time for a client to send a whole request body, from its head on (408 after).
    pub body_read_timeout: Duration,
    /// Largest request head in bytes, request line included (431 above).
    pub max_header_bytes: usize,
    /// Most header fields in one request (431 above).
    pub max_headers: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How a [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ended with `connections` still open; their answers were ended.
    GraceExpired {
        /// Connections open when the grace period ended.
        connections: usize,
    },
}

/// Serves `app` on `listener` until `shutdown` resolves, then shuts down gracefully
/// (see the module documentation). Only a failure of the listener itself is an error.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    config: ListenConfig,
    shutdown: F,
    drain: Drain,
) -> io::Result<Stopped>
where
    F: Future<Output = ()> + Send,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .max_headers(config.max_headers);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let body_timeout = config.body_read_timeout;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // SSE chunks are small: send each at once.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let peer = Peer(peer.ip());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
            req.extensions_mut().insert(peer);
            app.clone().oneshot(req)
        });
        let io = TokioIo::new(linger::LingeringClose::new(stream));
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // hyper's messages name the failure (timeout, head too large), never content.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        connections = open,
        grace_secs = config.shutdown_grace.as_secs_f64(),
        "shutting down: no longer accepting connections"
    );
    let closed = graceful.shutdown();
    tokio::pin!(closed);
    if tokio::time::timeout(config.shutdown_grace, &mut closed)
        .await
        .is_ok()
    {
        tracing::info!("every connection finished");
        return Ok(Stopped::Drained);
    }
    let left = slots_in_use(&slots, config.max_connections);
    tracing::warn!(
        connections = left,
        "grace period over: ending the answers still generating"
    );
    drain.start();
    if tokio::time::timeout(FLUSH_AFTER_DRAIN, &mut closed)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain are dropped");
    }
    Ok(Stopped::GraceExpired { connections: left })
}

fn slots_in_use(slots: &Semaphore, max: usize) -> usize {
    max.max(1).saturating_sub(slots.available_permits())
}

/// Per-connection accept errors are the client's; others (out of file descriptors) get a
/// pause so the loop does not spin.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::debug!(error = %e, "accept failed");
    } else {
        tracing::warn!(error = %e, "accept failed; pausing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
