//! Request parameters that would change the answer but that Veil does not implement (yet):
//! each is refused with a 400 that names it, never silently ignored. A client that asks for
//! tool calls or log probabilities and gets plain text back has been misled; a 400 tells it
//! (and its developer) at once. (`response_format` is served: `super::format`.)
//!
//! A parameter given with its neutral value (the value that changes nothing, such as
//! `logprobs: false` or `response_format: {"type": "text"}`) is accepted, because SDKs
//! send such defaults. Fields that change nothing about the answer (`user`, `metadata`,
//! `service_tier`, `parallel_tool_calls`, ...) are ignored, as OpenAI-compatible servers do.
//!
//! Chat and completions read `logprobs` and `top_logprobs` themselves (`super::logprobs`), so
//! they never reach this list there; on other endpoints the list refuses them.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Whether a parameter's value is the one that changes nothing.
type Neutral = fn(&Value) -> bool;

/// Every refused parameter: its name, when its value is harmless, and what to tell the client.
const REFUSED: &[(&str, Neutral, &str)] = &[
    ("tools", is_empty_list, "tool calling is not implemented"),
    (
        "tool_choice",
        |v| v.is_null() || v == "none" || v == "auto",
        "tool calling is not implemented",
    ),
    (
        "functions",
        is_empty_list,
        "function calling is not implemented",
    ),
    (
        "function_call",
        |v| v.is_null() || v == "none" || v == "auto",
        "function calling is not implemented",
    ),
    (
        "logprobs",
        |v| v.is_null() || v == false,
        "log probabilities are not implemented on this endpoint",
    ),
    (
        "top_logprobs",
        is_zero,
        "log probabilities are not implemented on this endpoint",
    ),
    (
        "repetition_penalty",
        |v| v.is_null() || v.as_f64() == Some(1.0),
        "repetition_penalty is not implemented; only 1 is served",
    ),
    ("top_k", |v| v.is_null(), "top_k is not implemented"),
    ("min_p", is_zero, "min_p is not implemented"),
    (
        "best_of",
        |v| v.is_null() || v.as_u64() == Some(1),
        "only best_of = 1 is served",
    ),
    (
        "echo",
        |v| v.is_null() || v == false,
        "echo is not implemented",
    ),
    (
        "suffix",
        |v| v.is_null() || v == "",
        "suffix (insertion) is not implemented",
    ),
    ("audio", |v| v.is_null(), "audio output is not served"),
    (
        "modalities",
        |v| v.is_null() || *v == serde_json::json!(["text"]),
        "only the text modality is served",
    ),
    (
        "prediction",
        |v| v.is_null(),
        "predicted outputs are not implemented",
    ),
    (
        "web_search_options",
        |v| v.is_null(),
        "web search is not served: the model sees only the request",
    ),
    (
        "reasoning_effort",
        |v| v.is_null(),
        "reasoning_effort is not implemented",
    ),
    ("verbosity", |v| v.is_null(), "verbosity is not implemented"),
    (
        "store",
        |v| v.is_null() || v == false,
        "Veil stores no request or answer; store must be false",
    ),
];

fn is_empty_list(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

fn is_zero(v: &Value) -> bool {
    v.is_null() || v.as_f64() == Some(0.0)
}

/// Refuses the first parameter in `fields` (the request's fields Veil does not read itself)
/// that would change the answer. The error names the parameter, never its value.
pub(crate) fn refuse(fields: &Map<String, Value>) -> Result<(), ApiError> {
    for (name, neutral, message) in REFUSED {
        if let Some(v) = fields.get(*name)
            && !neutral(v)
        {
            return Err(ApiError {
                code: Some("unsupported_parameter"),
                ..ApiError::invalid_param(name, *message)
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(v: Value) -> Result<(), Option<&'static str>> {
        let Value::Object(map) = v else {
            panic!("an object")
        };
        refuse(&map).map_err(|e| {
            assert_eq!(e.code, Some("unsupported_parameter"));
            e.param
        })
    }

    #[test]
    fn neutral_values_pass_and_others_are_named() {
        for ok in [
            json!({}),
            json!({"response_format": {"type": "text"}, "tools": [], "tool_choice": "none",
                   "logprobs": false, "top_logprobs": 0, "store": false,
                   "modalities": ["text"], "user": "u-1", "metadata": {"a": "b"},
                   "parallel_tool_calls": true, "service_tier": "auto"}),
        ] {
            assert_eq!(check(ok.clone()), Ok(()), "{ok}");
        }
        for (body, param) in [
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (json!({"tool_choice": "required"}), "tool_choice"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"logprobs": 3}), "logprobs"),
            (json!({"top_logprobs": 5}), "top_logprobs"),
            (json!({"min_p": 0.1}), "min_p"),
            (json!({"repetition_penalty": 1.2}), "repetition_penalty"),
            (json!({"top_k": 40}), "top_k"),
            (json!({"best_of": 3}), "best_of"),
            (json!({"echo": true}), "echo"),
            (json!({"audio": {"voice": "x"}}), "audio"),
            (json!({"modalities": ["text", "audio"]}), "modalities"),
            (json!({"store": true}), "store"),
            (json!({"prediction": {"type": "content"}}), "prediction"),
        ] {
            assert_eq!(check(body.clone()), Err(Some(param)), "{body}");
        }
    }
}
