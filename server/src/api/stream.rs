//! Server-Sent Events: engine events in, OpenAI chunks out (`data: {chunk}` … `data: [DONE]`).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use veil_engine::{FinishReason, Usage};

use super::error::ApiError;
use super::generation::{Generation, Step};
use super::types::{ChatChunk, ChunkChoice, Delta, TextChoice, TextCompletion, UsageBody};
use crate::keys::Ticket;

/// Which endpoint's chunk format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `chat.completion.chunk`.
    Chat,
    /// `text_completion`.
    Completion,
}

/// Writes the chunks of one stream.
#[derive(Debug, Clone)]
pub(crate) struct ChunkWriter {
    pub(crate) endpoint: Endpoint,
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

impl ChunkWriter {
    fn chat(&self, delta: Delta, finish: Option<FinishReason>, usage: Option<Usage>) -> String {
        let choices = if usage.is_some() {
            Vec::new()
        } else {
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish.map(FinishReason::as_str),
            }]
        };
        to_json(&ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(UsageBody::from),
        })
    }

    fn completion(
        &self,
        text: String,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
    ) -> String {
        let choices = if usage.is_some() {
            Vec::new()
        } else {
            vec![TextChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: finish.map(FinishReason::as_str),
            }]
        };
        to_json(&TextCompletion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(UsageBody::from),
        })
    }

    /// The opening chunk (chat announces the role), if any.
    fn start(&self) -> Option<String> {
        match self.endpoint {
            Endpoint::Chat => Some(self.chat(
                Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                },
                None,
                None,
            )),
            Endpoint::Completion => None,
        }
    }

    fn text(&self, text: String) -> String {
        match self.endpoint {
            Endpoint::Chat => self.chat(
                Delta {
                    role: None,
                    content: Some(text),
                },
                None,
                None,
            ),
            Endpoint::Completion => self.completion(text, None, None),
        }
    }

    fn finish(&self, reason: FinishReason) -> String {
        match self.endpoint {
            Endpoint::Chat => self.chat(Delta::default(), Some(reason), None),
            Endpoint::Completion => self.completion(String::new(), Some(reason), None),
        }
    }

    fn usage(&self, usage: Usage) -> String {
        match self.endpoint {
            Endpoint::Chat => self.chat(Delta::default(), None, Some(usage)),
            Endpoint::Completion => self.completion(String::new(), None, Some(usage)),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| ApiError::internal().json())
}

struct State {
    generation: Generation,
    writer: ChunkWriter,
    include_usage: bool,
    pending: VecDeque<String>,
    ticket: Option<Ticket>,
}

/// The SSE response for a queued generation. Dropping it (the client went away) drops the
/// generation, which cancels it, and `ticket`, which charges the tokens generated so far.
/// A finished stream (an output filter match included) charges its counts; a failed one
/// charges nothing; one ended by the shutdown drain charges what was generated.
pub(crate) fn sse(
    generation: Generation,
    writer: ChunkWriter,
    include_usage: bool,
    ticket: Option<Ticket>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let pending = writer.start().into_iter().collect();
    let state = State {
        generation,
        writer,
        include_usage,
        pending,
        ticket,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((Ok(Event::default().data(data)), st));
            }
            match st.generation.next().await? {
                Step::Text(t) => {
                    if !t.is_empty() {
                        st.pending.push_back(st.writer.text(t));
                    }
                    if let Some(t) = st.ticket.as_mut() {
                        t.sent_text();
                    }
                }
                Step::Done(rest, reason, usage) => {
                    if let Some(t) = st.ticket.take() {
                        t.finish(usage.prompt_tokens, usage.completion_tokens);
                    }
                    if !rest.is_empty() {
                        st.pending.push_back(st.writer.text(rest));
                    }
                    st.pending.push_back(st.writer.finish(reason));
                    if st.include_usage {
                        st.pending.push_back(st.writer.usage(usage));
                    }
                    st.pending.push_back("[DONE]".to_owned());
                }
                Step::Failed => {
                    if let Some(t) = st.ticket.take() {
                        t.release();
                    }
                    // No [DONE]: the client sees the stream end with an error object.
                    st.pending.push_back(ApiError::internal().json());
                }
                Step::Drained => {
                    // Charged what was generated (the ticket's drop); no [DONE] either.
                    drop(st.ticket.take());
                    st.pending.push_back(ApiError::shutting_down().json());
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
