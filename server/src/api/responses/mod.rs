//! `POST /v1/responses`: OpenAI's Responses API, stateless. `input` (a string or message
//! items with text), `instructions`, `max_output_tokens`, `temperature`, `top_p` and
//! `stream` are served, through the same plan, engine path, output filter and key limits as
//! chat; `text.format` (`json_object`, `json_schema`) constrains the answer as chat's
//! `response_format` does, and function `tools` are served in chat's generic tool format
//! (`function_call` output items; `function_call` and `function_call_output` input items).
//! Veil stores nothing: `store: true`, `previous_response_id` and `conversation` are
//! refused, as are the parameters that would change the answer and are not implemented
//! (`reasoning`, `include`, ...), each by name.

mod body;
mod events;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use veil_engine::chat::ChatMessage;

use super::answer::{collect_charged, unix_now};
use super::auth::{Caller, put_budget};
use super::error::ApiError;
use super::handlers::{chat_prompt, check_model, parse, respond, size_bucket};
use super::plan::{Started, plan, start};
use super::tools::{ToolSpec, Tools, calls_as_text, tool_result_as_text};
use super::types::GenerationFields;
use super::{AppState, Shared};
use body::Meta;

/// `POST /v1/responses`.
#[derive(Debug, Clone, Deserialize)]
struct ResponsesRequest {
    /// A user message, or message items.
    input: Input,
    /// A system message put before the input.
    #[serde(default)]
    instructions: Option<String>,
    /// Tokens to generate at most.
    #[serde(default)]
    max_output_tokens: Option<u64>,
    /// `{"format": ...}`: text, or a structured output format (`super::format`).
    #[serde(default)]
    text: Option<Value>,
    /// Function tools: `{"type": "function", "name", "description", "parameters"}`.
    #[serde(default)]
    tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required` or `{"type": "function", "name"}`.
    #[serde(default)]
    tool_choice: Option<Value>,
    /// The parameters shared with chat (`model`, `stream`, `temperature`, `top_p`, and the
    /// fields refused by name).
    #[serde(flatten)]
    fields: GenerationFields,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// Whether a parameter's value is the one that changes nothing.
type Neutral = fn(&Value) -> bool;

/// Parameters of this endpoint refused unless neutral, with their messages.
const REFUSED: &[(&str, Neutral, &str)] = &[
    (
        "previous_response_id",
        Value::is_null,
        "Veil stores no response: previous_response_id cannot be served; send the whole conversation as input",
    ),
    (
        "conversation",
        Value::is_null,
        "Veil stores no conversation; send the whole conversation as input",
    ),
    (
        "background",
        |v| v.is_null() || *v == false,
        "background responses would be stored; Veil stores none",
    ),
    (
        "include",
        |v| v.is_null() || v.as_array().is_some_and(Vec::is_empty),
        "include is not implemented",
    ),
    (
        "prompt",
        Value::is_null,
        "stored prompt templates are not served",
    ),
    ("reasoning", Value::is_null, "reasoning is not implemented"),
    (
        "truncation",
        |v| v.is_null() || v == "disabled",
        "only truncation: disabled is served",
    ),
    (
        "context_management",
        Value::is_null,
        "context management is not implemented",
    ),
    (
        "moderation",
        Value::is_null,
        "moderation is not implemented",
    ),
    (
        "max_tokens",
        Value::is_null,
        "the Responses API names it max_output_tokens",
    ),
];

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = format!(
        "resp_{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let caller = caller.map(|Extension(c)| c);
    let res = create_inner(&state.0, caller.as_ref(), body, &id).await;
    respond(&id, res)
}

async fn create_inner(
    state: &Shared,
    caller: Option<&Caller>,
    body: Result<Bytes, BytesRejection>,
    id: &str,
) -> Result<Response, ApiError> {
    let (req, body_bytes) = parse::<ResponsesRequest>(body)?;
    check_model(state, &req.fields)?;
    refuse(&req)?;
    let asked_format = req.text.as_ref().and_then(|t| t.get("format"));
    let tools = tools(&req)?;
    let format =
        super::format::or_tools(super::format::text_format(asked_format)?, tools.as_ref())?;
    let mut messages = messages(&req, state.config.max_messages)?;
    if let Some(t) = &tools {
        t.describe_in(&mut messages);
    }
    let prompt = chat_prompt(state, &messages, "input")?;
    let plan = plan(
        state,
        &req.fields,
        prompt.len(),
        (req.max_output_tokens, "max_output_tokens"),
        None,
        None,
        format.as_ref(),
    )?;
    let Started {
        choices,
        ticket,
        budget,
    } = start(state, caller, id, &plan, prompt, size_bucket(body_bytes))?;
    let meta = Meta {
        id: id.to_owned(),
        message_id: format!(
            "msg_{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        ),
        created_at: unix_now(),
        model: state.model_id.clone(),
        instructions: req.instructions.clone(),
        max_output_tokens: req.max_output_tokens,
        temperature: plan.params.temperature,
        top_p: plan.params.top_p,
        format: match (&format, asked_format) {
            (Some(_), Some(f)) if tools.is_none() => f.clone(),
            _ => serde_json::json!({"type": "text"}),
        },
        tools: serde_json::json!(req.tools.clone().unwrap_or_default()),
        tool_choice: req
            .tool_choice
            .clone()
            .filter(|c| !c.is_null())
            .unwrap_or_else(|| serde_json::json!("auto")),
        with_tools: tools.is_some(),
    };
    let mut response = if plan.stream {
        events::sse(choices, meta, ticket).into_response()
    } else {
        let collected = collect_charged(choices, ticket).await?;
        let answer = collected
            .answers
            .into_iter()
            .next()
            .ok_or_else(ApiError::internal)?;
        let output = body::Output::of(&meta, answer.text, answer.reason);
        axum::Json(body::finished(
            &meta,
            &output,
            answer.reason,
            collected.usage,
        ))
        .into_response()
    };
    if let Some(b) = &budget {
        put_budget(response.headers_mut(), b);
    }
    Ok(response)
}

/// Refuses what this endpoint cannot serve: its own stateful or unimplemented parameters,
/// chat's parameters that have no meaning here (`response_format`: here it is
/// `text.format`), and more than one choice. The shared refusals (`tools`, `store`, ...) follow in `plan`.
fn refuse(req: &ResponsesRequest) -> Result<(), ApiError> {
    let unsupported = |param: &'static str, message: &str| ApiError {
        code: Some("unsupported_parameter"),
        ..ApiError::invalid_param(param, message)
    };
    for (name, neutral, message) in REFUSED {
        if req.fields.other.get(*name).is_some_and(|v| !neutral(v)) {
            return Err(unsupported(name, message));
        }
    }
    if req
        .text
        .as_ref()
        .and_then(|t| t.get("verbosity"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(unsupported(
            "text.verbosity",
            "verbosity is not implemented",
        ));
    }
    let f = &req.fields;
    if f.response_format.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(unsupported(
            "response_format",
            "the Responses API names it text.format",
        ));
    }
    if f.logprobs
        .as_ref()
        .is_some_and(|v| !(v.is_null() || *v == false))
    {
        return Err(unsupported(
            "logprobs",
            "log probabilities are not implemented on this endpoint",
        ));
    }
    if f.top_logprobs
        .as_ref()
        .is_some_and(|v| !(v.is_null() || v.as_u64() == Some(0)))
    {
        return Err(unsupported(
            "top_logprobs",
            "log probabilities are not implemented on this endpoint",
        ));
    }
    if f.n.is_some_and(|n| n != 1) {
        return Err(unsupported(
            "n",
            "the Responses API has one output; use chat completions for n choices",
        ));
    }
    if f.max_tokens.is_some() || f.max_completion_tokens.is_some() {
        return Err(unsupported(
            "max_tokens",
            "the Responses API names it max_output_tokens",
        ));
    }
    Ok(())
}

/// `tools` and `tool_choice` in the Responses API's flat shape, read as chat's
/// (`super::tools`).
fn tools(req: &ResponsesRequest) -> Result<Option<Tools>, ApiError> {
    let specs = req
        .tools
        .as_ref()
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    if t.get("type").and_then(Value::as_str) != Some("function") {
                        return Err(ApiError {
                            code: Some("unsupported_parameter"),
                            ..ApiError::invalid_param("tools", "only function tools are served")
                        });
                    }
                    let chat = json!({"type": "function", "function": {
                        "name": t.get("name"),
                        "description": t.get("description"),
                        "parameters": t.get("parameters")}});
                    serde_json::from_value::<ToolSpec>(chat).map_err(|_| {
                        ApiError::invalid_param("tools", "a function tool needs a string name")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let choice = match &req.tool_choice {
        Some(Value::Object(o)) => Some(json!({"type": o.get("type"),
            "function": {"name": o.get("name")}})),
        other => other.clone(),
    };
    Tools::from_request(specs, choice.as_ref())
}

/// The conversation: `instructions` as a system message, then the input.
fn messages(req: &ResponsesRequest, max_messages: usize) -> Result<Vec<ChatMessage>, ApiError> {
    let mut out = Vec::new();
    if let Some(i) = &req.instructions {
        out.push(ChatMessage {
            role: "system".to_owned(),
            content: i.clone(),
        });
    }
    match &req.input {
        Input::Text(t) => out.push(ChatMessage {
            role: "user".to_owned(),
            content: t.clone(),
        }),
        Input::Items(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid_param("input", "input must not be empty"));
            }
            if items.len() > max_messages {
                return Err(ApiError::too_many_messages(max_messages));
            }
            for item in items {
                out.push(message(item)?);
            }
        }
    }
    Ok(out)
}

/// One input item: a message (`type` absent or `message`) with text content.
fn message(item: &Value) -> Result<ChatMessage, ApiError> {
    let unsupported = |message: &str| ApiError {
        code: Some("unsupported_parameter"),
        ..ApiError::invalid_param("input", message)
    };
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    let text = |k: &str| item.get(k).and_then(Value::as_str);
    match kind {
        "message" => {}
        "function_call" => {
            let call =
                json!([{"function": {"name": text("name"), "arguments": text("arguments")}}]);
            let content = calls_as_text(&call).ok_or_else(|| {
                ApiError::invalid_param(
                    "input",
                    "a function_call item needs a name and JSON arguments",
                )
            })?;
            return Ok(ChatMessage {
                role: "assistant".to_owned(),
                content,
            });
        }
        "function_call_output" => {
            let output = text("output").ok_or_else(|| {
                ApiError::invalid_param(
                    "input",
                    "a function_call_output item needs a string output",
                )
            })?;
            return Ok(ChatMessage {
                role: "user".to_owned(),
                content: tool_result_as_text(text("call_id"), output),
            });
        }
        _ => {
            return Err(unsupported(
                "only message, function_call and function_call_output items are served (reasoning and item references are not implemented)",
            ));
        }
    }
    let role = match item.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        _ => {
            return Err(ApiError::invalid_param(
                "input",
                "role must be system, developer, user or assistant",
            ));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("input_text" | "output_text" | "text"), Some(Value::String(t))) => {
                        text.push_str(t);
                    }
                    _ => return Err(unsupported("only text content parts are served")),
                }
            }
            text
        }
        _ => {
            return Err(ApiError::invalid_param(
                "input",
                "a message's content must be a string or a list of text parts",
            ));
        }
    };
    Ok(ChatMessage {
        role: role.to_owned(),
        content,
    })
}
