//! One queued generation as the handlers read it: the engine's events, screened by the
//! output filter, and cut short when the shutdown grace period is over.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedReceiver;
use veil_engine::{FinishReason, GenEvent, TokenLogprobs, Usage};

use super::drain::Drain;
use super::filter::{OutputFilter, Screen, Screened};

/// What a generation yields next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// One piece of the engine's text (at least one token), as far as it may be sent now:
    /// possibly empty while the filter holds text back; with the log probabilities of the
    /// tokens generated since the last step, when they were asked for (never together with
    /// an output filter: see `super::logprobs`).
    Text(String, Vec<TokenLogprobs>),
    /// The end: the text held back until now, which may be sent, then why and the counts,
    /// and the log probabilities not yet given. After an output filter match the reason is
    /// `content_filter` and the completion count is the pieces generated (each at least one
    /// token).
    Done(String, FinishReason, Usage, Vec<TokenLogprobs>),
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
    /// Log probabilities received and not yet given out.
    logprobs: Vec<TokenLogprobs>,
    ended: bool,
    /// When it was queued (for the time to the first text).
    started: Instant,
    /// When its last text came (for the time between tokens).
    last_text: Instant,
    /// Whether its end was counted in the metrics.
    counted: bool,
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
            logprobs: Vec::new(),
            ended: false,
            started: Instant::now(),
            last_text: Instant::now(),
            counted: false,
        }
        .counting()
    }

    fn counting(self) -> Self {
        crate::metrics::global().generation_started();
        self
    }

    /// Counts the end once: its reason and tokens.
    fn count_end(&mut self, reason: &'static str, completion_tokens: usize) {
        if !self.counted {
            self.counted = true;
            crate::metrics::global().generation_ended(
                reason,
                self.prompt_tokens,
                completion_tokens,
            );
        }
    }

    /// The next step, or `None` after the end.
    pub(crate) async fn next(&mut self) -> Option<Step> {
        if self.ended {
            return None;
        }
        let event = loop {
            let event = tokio::select! {
                biased;
                () = self.drain.started() => {
                    self.end();
                    self.count_end("drained", self.pieces);
                    return Some(Step::Drained);
                }
                event = self.events.recv() => event,
            };
            match event {
                Some(GenEvent::Logprobs(lp)) => self.logprobs.push(lp),
                other => break other,
            }
        };
        Some(match event {
            Some(GenEvent::Text(t)) => {
                self.pieces += 1;
                let now = Instant::now();
                if self.pieces == 1 {
                    crate::metrics::global().first_token(now - self.started);
                } else {
                    crate::metrics::global().between_tokens(now - self.last_text);
                }
                self.last_text = now;
                match self.screen.push(&t) {
                    Screened::Pass(t) => Step::Text(t, std::mem::take(&mut self.logprobs)),
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
                        self.count_end(FinishReason::ContentFilter.as_str(), self.pieces);
                        Step::Done(before, FinishReason::ContentFilter, usage, Vec::new())
                    }
                }
            }
            Some(GenEvent::Done(reason, usage)) => {
                self.ended = true;
                self.count_end(reason.as_str(), usage.completion_tokens);
                let logprobs = std::mem::take(&mut self.logprobs);
                Step::Done(self.screen.finish(), reason, usage, logprobs)
            }
            Some(GenEvent::Failed(_) | GenEvent::Logprobs(_)) | None => {
                self.end();
                self.count_end("failed", self.pieces);
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

impl Drop for Generation {
    /// A generation dropped before its end (the client went away) still leaves the count.
    fn drop(&mut self) {
        self.count_end("cancelled", self.pieces);
    }
}
