//! Server-Sent Events: engine events in, OpenAI chunks out (`data: {chunk}` … `data: [DONE]`).
//! With `n` choices each chunk carries one choice, by its index, in the order they come.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use veil_engine::tokenizer::Tokenizer;
use veil_engine::{TokenLogprobs, Usage};

use super::choices::Choices;
use super::error::ApiError;
use super::generation::Step;
use super::logprobs::{chat_shape, text_shape};
use super::tools;
use super::types::{
    ChatCompletionChunk, ChunkChoice, Completion, CompletionChoice, Delta, ToolCall, usage as body,
};
use crate::keys::Ticket;

/// Which endpoint's chunk format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `chat.completion.chunk`.
    Chat,
    /// `text_completion`.
    Completion,
}

/// Writes the chunks of one stream (and the whole answer's envelope).
#[derive(Debug, Clone)]
pub(crate) struct ChunkWriter {
    pub(crate) endpoint: Endpoint,
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
    /// Names the tokens of log probabilities.
    pub(crate) tokenizer: Arc<Tokenizer>,
    /// Whether log probabilities were asked for.
    pub(crate) logprobs: bool,
    /// Chat with tools: each choice's answer is held back to its end, then sent as its
    /// content or as one tool call delta (`super::tools`).
    pub(crate) tools: bool,
}

/// One chunk's content for one choice.
struct Piece<'a> {
    index: u32,
    text: Option<String>,
    logprobs: &'a [TokenLogprobs],
    finish: Option<&'static str>,
    call: Option<ToolCall>,
}

impl ChunkWriter {
    fn chat(&self, piece: Option<Piece<'_>>, role: bool, usage: Option<Usage>) -> String {
        let choices = piece
            .map(|p| ChunkChoice {
                index: p.index,
                delta: Delta {
                    role: role.then(|| "assistant".to_owned()),
                    content: p.text,
                    tool_calls: p.call.map(|c| vec![c]),
                },
                logprobs: (self.logprobs && !p.logprobs.is_empty())
                    .then(|| chat_shape(&self.tokenizer, p.logprobs)),
                finish_reason: p.finish.map(str::to_owned),
            })
            .into_iter()
            .collect();
        to_json(&ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(body),
            ..Default::default()
        })
    }

    fn completion(
        &self,
        piece: Option<Piece<'_>>,
        offset: &mut usize,
        usage: Option<Usage>,
    ) -> String {
        let choices = piece
            .map(|p| CompletionChoice {
                index: p.index,
                text: p.text.unwrap_or_default(),
                logprobs: (self.logprobs && !p.logprobs.is_empty())
                    .then(|| text_shape(&self.tokenizer, p.logprobs, offset)),
                finish_reason: p.finish.map(str::to_owned),
            })
            .into_iter()
            .collect();
        to_json(&Completion {
            id: self.id.clone(),
            object: "text_completion".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(body),
            ..Default::default()
        })
    }

    /// The opening chunk of choice `index` (chat announces the role), if any.
    fn start(&self, index: u32) -> Option<String> {
        let piece = Piece {
            index,
            text: Some(String::new()),
            logprobs: &[],
            finish: None,
            call: None,
        };
        match self.endpoint {
            Endpoint::Chat => Some(self.chat(Some(piece), true, None)),
            Endpoint::Completion => None,
        }
    }

    /// A chunk of new text and log probabilities, or a choice's last chunk (`finish`).
    fn piece(&self, piece: Piece<'_>, offset: &mut usize) -> String {
        match self.endpoint {
            Endpoint::Chat => self.chat(Some(piece), false, None),
            Endpoint::Completion => self.completion(Some(piece), offset, None),
        }
    }

    fn usage(&self, usage: Usage) -> String {
        match self.endpoint {
            Endpoint::Chat => self.chat(None, false, Some(usage)),
            Endpoint::Completion => self.completion(None, &mut 0, Some(usage)),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| ApiError::internal().json())
}

struct State {
    choices: Choices,
    writer: ChunkWriter,
    include_usage: bool,
    pending: VecDeque<String>,
    ticket: Option<Ticket>,
    /// Per choice: characters sent so far (completions' `text_offset`).
    offsets: Vec<usize>,
    /// Per choice, with tools: the answer so far, held back to its end.
    held: Vec<String>,
    /// Choices still running.
    running: usize,
    /// The request's counts so far (the prompt once, the completions summed).
    usage: Usage,
}

impl State {
    /// Queues the chunks of one step; false when the stream must end after them.
    fn step(&mut self, index: u32, step: Step) {
        let i = index as usize;
        match step {
            Step::Text(t, _) if self.writer.tools => {
                self.held[i].push_str(&t);
                if let Some(t) = self.ticket.as_mut() {
                    t.sent_text();
                }
            }
            Step::Text(t, lps) => {
                if !t.is_empty() || !lps.is_empty() {
                    let piece = Piece {
                        index,
                        text: Some(t),
                        logprobs: &lps,
                        finish: None,
                        call: None,
                    };
                    let chunk = self.writer.piece(piece, &mut self.offsets[i]);
                    self.pending.push_back(chunk);
                }
                if let Some(t) = self.ticket.as_mut() {
                    t.sent_text();
                }
            }
            Step::Done(rest, reason, usage, lps) => {
                self.usage.prompt_tokens = usage.prompt_tokens;
                self.usage.completion_tokens += usage.completion_tokens;
                let piece = |text, logprobs, finish, call| Piece {
                    index,
                    text,
                    logprobs,
                    finish,
                    call,
                };
                let finish = if self.writer.tools {
                    let mut text = std::mem::take(&mut self.held[i]);
                    text.push_str(&rest);
                    let (content, call, finish) = tools::answer(text, reason);
                    let chunk = self.writer.piece(
                        piece(
                            content,
                            &[],
                            None,
                            call.map(|c| ToolCall {
                                index: Some(0),
                                ..c
                            }),
                        ),
                        &mut self.offsets[i],
                    );
                    self.pending.push_back(chunk);
                    finish
                } else {
                    if !rest.is_empty() || !lps.is_empty() {
                        let chunk = self
                            .writer
                            .piece(piece(Some(rest), &lps, None, None), &mut self.offsets[i]);
                        self.pending.push_back(chunk);
                    }
                    reason.as_str()
                };
                let last = self
                    .writer
                    .piece(piece(None, &[], Some(finish), None), &mut self.offsets[i]);
                self.pending.push_back(last);
                self.running -= 1;
                if self.running == 0 {
                    if let Some(t) = self.ticket.take() {
                        t.finish(self.usage.prompt_tokens, self.usage.completion_tokens);
                    }
                    if self.include_usage {
                        self.pending.push_back(self.writer.usage(self.usage));
                    }
                    self.pending.push_back("[DONE]".to_owned());
                }
            }
            Step::Failed => {
                if let Some(t) = self.ticket.take() {
                    t.release();
                }
                // No [DONE]: the client sees the stream end with an error object.
                self.pending.push_back(ApiError::internal().json());
                self.running = 0;
            }
            Step::Drained => {
                // Charged what was generated (the ticket's drop); no [DONE] either.
                drop(self.ticket.take());
                self.pending.push_back(ApiError::shutting_down().json());
                self.running = 0;
            }
        }
    }
}

/// The SSE response for a queued request's choices. Dropping it (the client went away)
/// drops the generations, which cancels them, and `ticket`, which charges the tokens
/// generated so far. A finished stream (an output filter match included) charges its counts;
/// a failed one charges nothing; one ended by the shutdown drain charges what was generated.
pub(crate) fn sse(
    choices: Choices,
    writer: ChunkWriter,
    include_usage: bool,
    ticket: Option<Ticket>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let n = choices.n();
    let pending = (0..n as u32).filter_map(|i| writer.start(i)).collect();
    let state = State {
        choices,
        writer,
        include_usage,
        pending,
        ticket,
        offsets: vec![0; n],
        held: vec![String::new(); n],
        running: n,
        usage: Usage::default(),
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((Ok(Event::default().data(data)), st));
            }
            if st.running == 0 {
                return None;
            }
            let (index, step) = st.choices.next().await?;
            st.step(index, step);
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
