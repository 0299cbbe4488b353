//! The request body's read deadline: a client that has not sent its whole body within the
//! time allowed (counted from when its request head arrived) gets `408 Request Timeout`.
//!
//! The listener wraps every request body in a [`DeadlineBody`]; whoever reads the body and
//! fails asks [`timed_out`] whether the deadline was the cause.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The body was not read whole before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received in time")]
pub(crate) struct BodyReadTimeout;

/// A body that fails with [`BodyReadTimeout`] once its deadline passes.
#[derive(Debug)]
pub(crate) struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read whole within `limit` from now.
    pub(crate) fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + limit)),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` (a body rejection, or any error wrapping a body error) is, or was caused
/// by, a [`BodyReadTimeout`].
pub(crate) fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequest as _;
    use axum::http::Request;
    use futures_util::StreamExt as _;

    /// A body whose first piece arrives at once and whose second never does.
    fn stalled() -> axum::body::Body {
        let pieces = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("{\"a\""))])
            .chain(futures_util::stream::pending());
        axum::body::Body::from_stream(pieces)
    }

    async fn read(
        body: axum::body::Body,
    ) -> Result<Bytes, axum::extract::rejection::BytesRejection> {
        let req = Request::new(body);
        Bytes::from_request(req, &()).await
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_with_the_timeout_after_the_deadline() {
        let started = Instant::now();
        let limit = Duration::from_millis(300);
        let body = axum::body::Body::new(DeadlineBody::new(stalled(), limit));
        let err = read(body).await.expect_err("timed out");
        assert!(timed_out(&err), "{err}");
        assert!(started.elapsed() >= limit);
    }

    #[tokio::test]
    async fn a_complete_body_reads_and_other_failures_are_not_timeouts() {
        let body = axum::body::Body::new(DeadlineBody::new(
            axum::body::Body::from("{}"),
            Duration::from_secs(3),
        ));
        assert_eq!(read(body).await.expect("read"), "{}");
        let failing = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other("reset"))]);
        let body = axum::body::Body::new(DeadlineBody::new(
            axum::body::Body::from_stream(failing),
            Duration::from_secs(3),
        ));
        let err = read(body).await.expect_err("failed");
        assert!(!timed_out(&err), "{err}");
    }
}
