//! The streamed Responses API: `response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`, then one
//! `response.output_text.delta` per piece of text, then `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done` and `response.completed` (or
//! `response.incomplete` when `max_output_tokens` or the output filter ended it, as OpenAI
//! does). With tools the answer is held to its end (`crate::api::tools`): then either the
//! message's events with its whole text in one delta, or a `function_call` item's:
//! `response.output_item.added`, `response.function_call_arguments.delta` and `.done`,
//! `response.output_item.done`. Each event names its type in `event:` and in the data's
//! `type`, with a `sequence_number`. A failure ends the stream with an `error` event.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use veil_engine::FinishReason;

use super::body::{Meta, Output, finished, function_call, in_progress, message, text_part};
use crate::api::choices::Choices;
use crate::api::error::ApiError;
use crate::api::generation::Step;
use crate::keys::Ticket;

struct State {
    choices: Choices,
    meta: Meta,
    ticket: Option<Ticket>,
    pending: VecDeque<Event>,
    sequence: u64,
    text: String,
    ended: bool,
}

impl State {
    /// Queues an event of `kind` with `fields` (an object), numbered.
    fn push(&mut self, kind: &'static str, mut fields: Value) {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let data = serde_json::to_string(&fields).unwrap_or_else(|_| ApiError::internal().json());
        self.pending
            .push_back(Event::default().event(kind).data(data));
    }

    fn part(&self) -> Value {
        json!({"item_id": self.meta.message_id, "output_index": 0, "content_index": 0})
    }

    fn start(&mut self) {
        let r = in_progress(&self.meta);
        self.push("response.created", json!({"response": r}));
        self.push("response.in_progress", json!({"response": r}));
        if !self.meta.with_tools {
            self.message_start();
        }
    }

    fn message_start(&mut self) {
        let item = message(&self.meta, None);
        self.push(
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let mut part = self.part();
        part["part"] = text_part("");
        self.push("response.content_part.added", part);
    }

    fn delta(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.text.push_str(&text);
        let mut delta = self.part();
        delta["delta"] = json!(text);
        delta["logprobs"] = json!([]);
        self.push("response.output_text.delta", delta);
    }

    /// The message's closing events for the text streamed so far; returns it as the output.
    fn message_done(&mut self, reason: FinishReason) -> Output {
        let text = std::mem::take(&mut self.text);
        let mut done = self.part();
        done["text"] = json!(text);
        done["logprobs"] = json!([]);
        self.push("response.output_text.done", done);
        let mut part = self.part();
        part["part"] = text_part(&text);
        self.push("response.content_part.done", part);
        let item = message(&self.meta, Some((&text, reason)));
        self.push(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );
        Output::Message(text)
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Text(t, _) if self.meta.with_tools => {
                self.text.push_str(&t);
                if let Some(t) = self.ticket.as_mut() {
                    t.sent_text();
                }
            }
            Step::Text(t, _) => {
                self.delta(t);
                if let Some(t) = self.ticket.as_mut() {
                    t.sent_text();
                }
            }
            Step::Done(rest, reason, usage, _) => {
                if let Some(t) = self.ticket.take() {
                    t.finish(usage.prompt_tokens, usage.completion_tokens);
                }
                let output = if self.meta.with_tools {
                    let mut text = std::mem::take(&mut self.text);
                    text.push_str(&rest);
                    let output = Output::of(&self.meta, text, reason);
                    match &output {
                        Output::Message(t) => {
                            self.message_start();
                            self.delta(t.clone());
                            self.message_done(reason);
                        }
                        Output::Call(c) => {
                            let ids = json!({"item_id": c.id, "output_index": 0});
                            self.push(
                                "response.output_item.added",
                                json!({"output_index": 0, "item": function_call(c, "in_progress")}),
                            );
                            let mut delta = ids.clone();
                            delta["delta"] = json!(c.arguments);
                            self.push("response.function_call_arguments.delta", delta);
                            let mut done = ids;
                            done["arguments"] = json!(c.arguments);
                            self.push("response.function_call_arguments.done", done);
                            self.push(
                                "response.output_item.done",
                                json!({"output_index": 0, "item": function_call(c, "completed")}),
                            );
                        }
                    }
                    output
                } else {
                    self.delta(rest);
                    self.message_done(reason)
                };
                let kind = match (&output, reason) {
                    (Output::Call(_), _) | (_, FinishReason::Stop) => "response.completed",
                    _ => "response.incomplete",
                };
                let r = finished(&self.meta, &output, reason, usage);
                self.push(kind, json!({"response": r}));
                self.ended = true;
            }
            Step::Failed => {
                if let Some(t) = self.ticket.take() {
                    t.release();
                }
                self.error(&ApiError::internal());
            }
            Step::Drained => {
                // Charged what was generated (the ticket's drop).
                drop(self.ticket.take());
                self.error(&ApiError::shutting_down());
            }
        }
    }

    fn error(&mut self, e: &ApiError) {
        self.push(
            "error",
            json!({"code": e.code.unwrap_or("server_error"), "message": e.message, "param": null}),
        );
        self.ended = true;
    }
}

/// The SSE response of a queued response. Charging and cancelling as for chat streams
/// (`crate::api::stream::sse`).
pub(super) fn sse(
    choices: Choices,
    meta: Meta,
    ticket: Option<Ticket>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut state = State {
        choices,
        meta,
        ticket,
        pending: VecDeque::new(),
        sequence: 0,
        text: String::new(),
        ended: false,
    };
    state.start();
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.ended {
                return None;
            }
            match st.choices.next().await {
                Some((_, step)) => st.step(step),
                None => {
                    st.error(&ApiError::internal());
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
