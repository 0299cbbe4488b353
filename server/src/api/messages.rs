//! A chat request's messages as the engine's [`ChatMessage`]s: roles mapped, text parts
//! joined, and what cannot be served (non-text parts, tool calls in the history) refused by
//! name rather than dropped.

use veil_engine::chat::ChatMessage;

use super::error::ApiError;
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
                "user" => "user",
                "assistant" => "assistant",
                _ => {
                    return Err(ApiError::invalid_param(
                        "messages",
                        "role must be system, developer, user or assistant",
                    ));
                }
            };
            let calls = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .is_some_and(|v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)))
            };
            if calls(&m.tool_calls) || calls(&m.function_call) {
                return Err(ApiError {
                    code: Some("unsupported_parameter"),
                    ..ApiError::invalid_param(
                        "messages",
                        "tool calls in the history are not implemented",
                    )
                });
            }
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
            Ok(ChatMessage {
                role: role.to_owned(),
                content,
            })
        })
        .collect()
}
