//! A chat request's messages as the engine's [`ChatMessage`]s: roles mapped, text parts
//! joined, tool calls and tool results written in the generic tool format
//! (`super::tools`), and what cannot be served (non-text parts, legacy function calls)
//! refused by name rather than dropped.

use veil_engine::chat::ChatMessage;

use super::error::ApiError;
use super::tools::{calls_as_text, tool_result_as_text};
use super::types::{Content, RequestMessage};

pub(super) fn chat_messages(
    messages: Vec<RequestMessage>,
    max_messages: usize,
) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "messages must not be empty",
        ));
    }
    if messages.len() > max_messages {
        return Err(ApiError::too_many_messages(max_messages));
    }
    messages
        .into_iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                // A tool's result goes back to the model as a user turn (`super::tools`).
                "user" | "tool" => "user",
                "assistant" => "assistant",
                _ => {
                    return Err(ApiError::invalid_param(
                        "messages",
                        "role must be system, developer, user, assistant or tool",
                    ));
                }
            };
            let present = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .is_some_and(|v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
            };
            if present(&m.function_call) {
                return Err(ApiError {
                    code: Some("unsupported_parameter"),
                    ..ApiError::invalid_param(
                        "messages",
                        "legacy function_call messages are not served; use tool_calls",
                    )
                });
            }
            let calls = match &m.tool_calls {
                Some(c) if present(&m.tool_calls) => {
                    if role != "assistant" {
                        return Err(ApiError::invalid_param(
                            "messages",
                            "only assistant messages carry tool_calls",
                        ));
                    }
                    Some(calls_as_text(c).ok_or_else(|| {
                        ApiError::invalid_param(
                            "messages",
                            "tool_calls entries need a function name and JSON arguments",
                        )
                    })?)
                }
                _ => None,
            };
            let tool = m.role == "tool";
            let call_id = m.tool_call_id;
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            _ => {
                                return Err(ApiError::invalid_param(
                                    "messages",
                                    "only text content parts are served",
                                ));
                            }
                        }
                    }
                    text
                }
            };
            let content = match (calls, tool) {
                (Some(calls), _) if content.is_empty() => calls,
                (Some(calls), _) => format!("{content}\n{calls}"),
                (None, true) => tool_result_as_text(call_id.as_deref(), &content),
                (None, false) => content,
            };
            Ok(ChatMessage {
                role: role.to_owned(),
                content,
            })
        })
        .collect()
}
