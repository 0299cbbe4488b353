//! Lingering close: after the last answer, stop sending, then read and discard what the
//! client is still sending for a bounded time before closing.
//!
//! A server that answers early (413 for a body over the limit, 401 before reading a body)
//! and closes at once leaves unread bytes in its receive buffer; the kernel then resets the
//! connection, and a client still writing its body sees a broken pipe or a reset instead of
//! the answer, which it may never read. Sending FIN first and draining the rest lets the
//! client finish writing and read the answer. Bounded by [`LINGER_TIME`] and
//! [`LINGER_MAX_BYTES`], so a client cannot hold a connection slot open with it.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Longest time a closing connection keeps reading.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes a closing connection reads and discards.
pub(crate) const LINGER_MAX_BYTES: usize = 64 << 20;

/// A TCP stream whose shutdown lingers (see the module documentation).
#[derive(Debug)]
pub(crate) struct LingeringClose {
    stream: TcpStream,
    /// Set once FIN is sent: the deadline and the bytes that may still be discarded.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl LingeringClose {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            linger: None,
        }
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            // FIN after everything written: the answer is complete on the wire.
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), LINGER_MAX_BYTES));
        }
        let Some((deadline, left)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8 << 10];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                // The client closed (or reset): nothing left to wait for.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 || n >= *left {
                        return Poll::Ready(Ok(()));
                    }
                    *left -= n;
                }
            }
        }
    }
}
