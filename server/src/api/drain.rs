//! The end of the shutdown grace period: answers still generating are ended.
//!
//! When started, a stream sends one OpenAI-shaped error event (`server_shutting_down`) and
//! ends without `data: [DONE]`, as after any failure; a whole answer still generating gets
//! 503 with `Retry-After`. Their generations are cancelled.

use std::sync::Arc;

use tokio::sync::watch;

/// Shared by the router state and the listener; cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain(Arc<watch::Sender<bool>>);

impl Default for Drain {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Drain {
    /// Ends every answer still generating, now and from now on.
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`start`](Self::start) was called.
    pub fn is_started(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`start`](Self::start) was called (at once if it was).
    pub(crate) async fn started(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = rx.wait_for(|started| *started).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_started_and_not_before() {
        let drain = Drain::default();
        let waiting = tokio::spawn({
            let d = drain.clone();
            async move { d.started().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert!(!drain.is_started());
        drain.start();
        waiting.await.expect("woke");
        assert!(drain.is_started());
        drain.started().await;
    }
}
