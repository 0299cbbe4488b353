//! The Responses API's objects: the response (in progress or finished), its one output item
//! (a message with its output text part, or a function call), and `usage`.

use serde_json::{Value, json};
use veil_engine::{FinishReason, Usage};

/// What every form of one response repeats.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) id: String,
    pub(super) message_id: String,
    pub(super) created_at: u64,
    pub(super) model: String,
    pub(super) instructions: Option<String>,
    pub(super) max_output_tokens: Option<u64>,
    pub(super) temperature: f64,
    pub(super) top_p: f64,
    /// `text.format` as served (`{"type": "text"}` when none was asked).
    pub(super) format: Value,
    /// `tools` and `tool_choice` as asked (`[]` and `"auto"` when none).
    pub(super) tools: Value,
    pub(super) tool_choice: Value,
    /// Whether the answer is in the tool format (`crate::api::tools`).
    pub(super) with_tools: bool,
}

/// The one output item of a finished response.
#[derive(Debug, Clone)]
pub(super) enum Output {
    /// An assistant message with this text.
    Message(String),
    /// A call of a function.
    Call(FunctionCallItem),
}

/// A `function_call` output item.
#[derive(Debug, Clone)]
pub(super) struct FunctionCallItem {
    pub(super) id: String,
    pub(super) call_id: String,
    pub(super) name: String,
    pub(super) arguments: String,
}

impl Output {
    /// The answer as generated: plain text, or read back from the tool format.
    pub(super) fn of(meta: &Meta, text: String, reason: FinishReason) -> Self {
        if !meta.with_tools {
            return Self::Message(text);
        }
        match crate::api::tools::answer(text, reason) {
            (_, Some(call), _) => Self::Call(FunctionCallItem {
                id: format!(
                    "fc_{:016x}{:016x}",
                    rand::random::<u64>(),
                    rand::random::<u64>()
                ),
                call_id: call.id,
                name: call.function.name,
                arguments: call.function.arguments,
            }),
            (content, None, _) => Self::Message(content.unwrap_or_default()),
        }
    }

    /// The item, finished.
    pub(super) fn item(&self, meta: &Meta, reason: FinishReason) -> Value {
        match self {
            Self::Message(text) => message(meta, Some((text, reason))),
            Self::Call(c) => function_call(c, "completed"),
        }
    }
}

/// A `function_call` item (`status` `in_progress` while its arguments stream).
pub(super) fn function_call(c: &FunctionCallItem, status: &str) -> Value {
    let arguments = if status == "completed" {
        c.arguments.as_str()
    } else {
        ""
    };
    json!({
        "id": c.id,
        "type": "function_call",
        "status": status,
        "call_id": c.call_id,
        "name": c.name,
        "arguments": arguments,
    })
}

/// `status` and `incomplete_details` for a finish reason.
fn status(reason: FinishReason) -> (&'static str, Value) {
    match reason {
        FinishReason::Stop => ("completed", Value::Null),
        FinishReason::Length => ("incomplete", json!({"reason": "max_output_tokens"})),
        FinishReason::ContentFilter => ("incomplete", json!({"reason": "content_filter"})),
    }
}

/// The output text part.
pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The message item: in progress (no content yet) or finished with `text`.
pub(super) fn message(meta: &Meta, finished: Option<(&str, FinishReason)>) -> Value {
    let (status, content) = match finished {
        None => ("in_progress", json!([])),
        Some((text, reason)) => (
            if reason == FinishReason::Stop {
                "completed"
            } else {
                "incomplete"
            },
            json!([text_part(text)]),
        ),
    };
    json!({
        "id": meta.message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

fn usage(u: Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

fn response(meta: &Meta, status: &str, incomplete: Value, output: Value, usage: Value) -> Value {
    json!({
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": meta.instructions,
        "max_output_tokens": meta.max_output_tokens,
        "model": meta.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": null,
        "store": false,
        "temperature": meta.temperature,
        "text": {"format": meta.format},
        "tool_choice": meta.tool_choice,
        "tools": meta.tools,
        "top_p": meta.top_p,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    })
}

/// The response while it is generated (no output yet).
pub(super) fn in_progress(meta: &Meta) -> Value {
    response(meta, "in_progress", Value::Null, json!([]), Value::Null)
}

/// The finished response: `completed` after a stop or a function call, else `incomplete`
/// with the reason (`max_output_tokens` or `content_filter`).
pub(super) fn finished(meta: &Meta, output: &Output, reason: FinishReason, u: Usage) -> Value {
    let (status, incomplete) = match output {
        Output::Call(_) => ("completed", Value::Null),
        Output::Message(_) => status(reason),
    };
    let items = json!([output.item(meta, reason)]);
    response(meta, status, incomplete, items, usage(u))
}
