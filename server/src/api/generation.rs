//! One queued generation as the handlers read it: the engine's events, screened by the
//! output filter, and cut short when the shutdown grace period is over.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use veil_engine::{FinishReason, GenEvent, Usage};

use super::drain::Drain;
use super::filter::{OutputFilter, Screen, Screened};

/// What a generation yields next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// One piece of the engine's text (at least one token), as far as it may be sent now:
    /// possibly empty while the filter holds text back.
    Text(String),
    /// The end: the text held back until now, which may be sent, then why and the counts.
    /// After an output filter match the reason is `content_filter` and the completion count
    /// is the pieces generated (each at least one token).
    Done(String, FinishReason, Usage),
    /// The engine failed.
    Failed,
    /// The server is shutting down and its grace period is over.
    Drained,
}

/// A generation's events on their way to the client. Ending it early (a filter match, the
/// drain, a failure) or dropping it cancels the generation.
#[derive(Debug)]
pub(crate) struct Generation {
    id: String,
    events: UnboundedReceiver<GenEvent>,
    screen: Screen,
    drain: Drain,
    prompt_tokens: usize,
    pieces: usize,
    ended: bool,
}

impl Generation {
    pub(crate) fn new(
        id: &str,
        events: UnboundedReceiver<GenEvent>,
        filter: Option<Arc<dyn OutputFilter>>,
        drain: Drain,
        prompt_tokens: usize,
    ) -> Self {
        Self {
            id: id.to_owned(),
            events,
            screen: Screen::new(filter),
            drain,
            prompt_tokens,
            pieces: 0,
            ended: false,
        }
    }

    /// The next step, or `None` after the end.
    pub(crate) async fn next(&mut self) -> Option<Step> {
        if self.ended {
            return None;
        }
        let event = tokio::select! {
            biased;
            () = self.drain.started() => {
                self.end();
                return Some(Step::Drained);
            }
            event = self.events.recv() => event,
        };
        Some(match event {
            Some(GenEvent::Text(t)) => {
                self.pieces += 1;
                match self.screen.push(&t) {
                    Screened::Pass(t) => Step::Text(t),
                    Screened::Blocked(before) => {
                        self.end();
                        tracing::info!(
                            request_id = %self.id,
                            "completion ended by the output filter"
                        );
                        let usage = Usage {
                            prompt_tokens: self.prompt_tokens,
                            completion_tokens: self.pieces,
                        };
                        Step::Done(before, FinishReason::ContentFilter, usage)
                    }
                }
            }
            Some(GenEvent::Done(reason, usage)) => {
                self.ended = true;
                Step::Done(self.screen.finish(), reason, usage)
            }
            Some(GenEvent::Failed(_)) | None => {
                self.end();
                Step::Failed
            }
        })
    }

    /// Ends early: the engine sees the receiver closed and drops the sequence.
    fn end(&mut self) {
        self.ended = true;
        self.events.close();
    }
}
