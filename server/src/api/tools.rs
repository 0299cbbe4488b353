//! Tool calling on chat completions, in a generic format that works with any chat template
//! (as llama.cpp's server does for templates without tool support): the tools are described
//! in the system message, and the answer is constrained by a grammar to one JSON object,
//! either `{"tool_call": {"name": ..., "arguments": {...}}}` with arguments valid against
//! that function's `parameters` schema, or `{"response": "..."}` (the latter only when
//! `tool_choice` is `auto`). The server reads the object back into OpenAI's shape: a
//! `tool_calls` entry with `finish_reason: "tool_calls"`, or plain content.
//!
//! History: an assistant message's `tool_calls` are written back in the same JSON form, and a
//! `tool` message becomes a user turn holding `{"tool_response": {...}}`, so the model sees
//! the conversation in the format it is asked to answer in.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use veil_engine::chat::ChatMessage;
use veil_engine::{FinishReason, OutputFormat};

use super::error::ApiError;
use super::types::{FunctionCall, ToolCall};

/// Tools at most in one request.
const MAX_TOOLS: usize = 64;

/// `tools` entry: `{"type": "function", "function": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ToolSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    function: Option<FunctionSpec>,
}

#[derive(Debug, Clone, Deserialize)]
struct FunctionSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

/// The tools a chat request offers and how the answer may use them.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    functions: Vec<FunctionSpec>,
    /// The answer must call a tool (`required`, or a named function: then `functions` holds
    /// only that one for the grammar, and `offered` all of them for the prompt).
    required: bool,
    /// Every function offered, for the system message.
    offered: Vec<FunctionSpec>,
}

/// What one answer turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// A call of `name` with `arguments` (JSON text).
    Call { name: String, arguments: String },
    /// Plain content.
    Text(String),
}

impl Tools {
    /// Reads `tools` and `tool_choice`; `None` when no tool may be called (no tools, or
    /// `tool_choice: "none"`: then the answer is plain text, as OpenAI's is).
    pub(crate) fn from_request(
        tools: Option<Vec<ToolSpec>>,
        choice: Option<&Value>,
    ) -> Result<Option<Self>, ApiError> {
        let invalid = |message: &str| ApiError::invalid_param("tools", message);
        let tools = tools.unwrap_or_default();
        if tools.len() > MAX_TOOLS {
            return Err(invalid("at most 64 tools are served"));
        }
        let mut functions: Vec<FunctionSpec> = Vec::with_capacity(tools.len());
        for t in tools {
            let Some(f) = t.function.filter(|_| t.kind == "function") else {
                return Err(ApiError {
                    code: Some("unsupported_parameter"),
                    ..invalid("only tools of type function are served")
                });
            };
            let name_ok = (1..=64).contains(&f.name.len())
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                return Err(invalid(
                    "a function name is 1 to 64 letters, digits, '_' or '-'",
                ));
            }
            if functions.iter().any(|g| g.name == f.name) {
                return Err(invalid("two tools have the same name"));
            }
            if f.parameters.as_ref().is_some_and(|p| !p.is_object()) {
                return Err(invalid(
                    "a function's parameters must be a JSON Schema object",
                ));
            }
            functions.push(f);
        }
        let choice_err = |m: &str| ApiError::invalid_param("tool_choice", m);
        let (required, only) = match choice {
            None | Some(Value::Null) => (false, None),
            Some(Value::String(s)) => match s.as_str() {
                "none" => return Ok(None),
                "auto" => (false, None),
                "required" => (true, None),
                _ => {
                    return Err(choice_err(
                        "tool_choice is none, auto, required or a function",
                    ));
                }
            },
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) if v.get("type").and_then(Value::as_str) == Some("function") => {
                    (true, Some(name.to_owned()))
                }
                _ => {
                    return Err(choice_err(
                        "tool_choice is none, auto, required or a function",
                    ));
                }
            },
        };
        if functions.is_empty() {
            return match (required, choice) {
                (false, _) => Ok(None),
                (true, _) => Err(choice_err(
                    "tool_choice asks for a tool but no tools are given",
                )),
            };
        }
        let offered = functions.clone();
        if let Some(name) = only {
            functions.retain(|f| f.name == name);
            if functions.is_empty() {
                return Err(choice_err(
                    "tool_choice names a function that is not in tools",
                ));
            }
        }
        Ok(Some(Self {
            functions,
            required,
            offered,
        }))
    }

    /// The output format every answer follows: a call of one of the functions with valid
    /// arguments, or (unless a call is required) a plain response. Each function's `$defs`
    /// move to the top, where its `#/$defs/...` references look for them.
    pub(crate) fn format(&self) -> Result<OutputFormat, ApiError> {
        let mut defs = Map::new();
        let mut calls = Vec::with_capacity(self.functions.len());
        for f in &self.functions {
            let mut params = f
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            if let Some(Value::Object(d)) = params.as_object_mut().and_then(|p| p.remove("$defs")) {
                for (k, v) in d {
                    if defs.insert(k, v).is_some() {
                        return Err(ApiError::invalid_param(
                            "tools",
                            "two tools define the same $defs name",
                        ));
                    }
                }
            }
            calls.push(json!({
                "type": "object",
                "properties": {"name": {"const": f.name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": false
            }));
        }
        let call = json!({
            "type": "object",
            "properties": {"tool_call": {"anyOf": calls}},
            "required": ["tool_call"],
            "additionalProperties": false
        });
        let mut schema = if self.required {
            call
        } else {
            json!({"anyOf": [call, {
                "type": "object",
                "properties": {"response": {"type": "string"}},
                "required": ["response"],
                "additionalProperties": false
            }]})
        };
        if !defs.is_empty()
            && let Some(o) = schema.as_object_mut()
        {
            o.insert("$defs".to_owned(), Value::Object(defs));
        }
        Ok(OutputFormat::JsonSchema(schema))
    }

    /// The system message's text describing the tools and the answer's form.
    fn instructions(&self) -> String {
        let list: Vec<Value> = self
            .offered
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "description": f.description.as_deref().unwrap_or(""),
                    "parameters": f.parameters.clone().unwrap_or_else(|| json!({})),
                })
            })
            .collect();
        let tools = serde_json::to_string_pretty(&list).unwrap_or_default();
        let how = if self.required {
            "Answer with a JSON object that calls one tool: {\"tool_call\": {\"name\": \"<tool name>\", \"arguments\": {<arguments>}}}."
        } else {
            "Answer with a JSON object: either {\"tool_call\": {\"name\": \"<tool name>\", \"arguments\": {<arguments>}}} to call a tool, or {\"response\": \"<your answer>\"} to answer directly."
        };
        format!("You can call these tools:\n{tools}\n{how}")
    }

    /// The conversation with the tools described in its system message (the first message's,
    /// or a new one before it).
    pub(crate) fn describe_in(&self, messages: &mut Vec<ChatMessage>) {
        let text = self.instructions();
        match messages.first_mut() {
            Some(m) if m.role == "system" => {
                m.content.push_str("\n\n");
                m.content.push_str(&text);
            }
            _ => messages.insert(
                0,
                ChatMessage {
                    role: "system".to_owned(),
                    content: text,
                },
            ),
        }
    }

    /// Reads an answer back: a call, a response, or (cut short, or not the expected form)
    /// the text as it is.
    pub(crate) fn read(text: &str) -> Reply {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Reply::Text(text.to_owned());
        };
        if let Some(call) = v.get("tool_call")
            && let (Some(name), Some(args)) = (
                call.get("name").and_then(Value::as_str),
                call.get("arguments"),
            )
        {
            return Reply::Call {
                name: name.to_owned(),
                arguments: args.to_string(),
            };
        }
        match v.get("response").and_then(Value::as_str) {
            Some(r) => Reply::Text(r.to_owned()),
            None => Reply::Text(text.to_owned()),
        }
    }
}

/// A chat answer generated in the tool format, in OpenAI's shape: its content, or the tool
/// call it makes (content null, `finish_reason: "tool_calls"`). An answer cut short is
/// returned as the text generated, with its own finish reason.
pub(crate) fn answer(
    text: String,
    reason: FinishReason,
) -> (Option<String>, Option<ToolCall>, &'static str) {
    match Tools::read(&text) {
        Reply::Call { name, arguments } => (
            None,
            Some(ToolCall {
                index: None,
                id: call_id(),
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments },
            }),
            "tool_calls",
        ),
        Reply::Text(t) => (Some(t), None, reason.as_str()),
    }
}

/// An assistant message's `tool_calls` written as the answers that made them (one JSON
/// object per call, one per line); `None` when they are not OpenAI's shape.
pub(crate) fn calls_as_text(calls: &Value) -> Option<String> {
    let lines: Option<Vec<String>> = calls
        .as_array()?
        .iter()
        .map(|c| {
            let f = c.get("function")?;
            let name = f.get("name")?.as_str()?;
            let args = match f.get("arguments")? {
                Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
                other => other.clone(),
            };
            Some(json!({"tool_call": {"name": name, "arguments": args}}).to_string())
        })
        .collect();
    lines.map(|l| l.join("\n"))
}

/// A `tool` message's content as the user turn that hands it to the model.
pub(crate) fn tool_result_as_text(call_id: Option<&str>, content: &str) -> String {
    json!({"tool_response": {"tool_call_id": call_id.unwrap_or(""), "content": content}})
        .to_string()
}

/// A fresh tool call id.
fn call_id() -> String {
    format!("call_{:024x}", rand::random::<u128>() >> 32)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Reply, ToolSpec, Tools, calls_as_text};

    fn spec(v: Value) -> Vec<ToolSpec> {
        serde_json::from_value(v).expect("tools")
    }

    fn weather() -> Vec<ToolSpec> {
        spec(
            json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}}}]),
        )
    }

    #[test]
    fn tool_choice_decides_whether_a_call_is_required() {
        assert!(Tools::from_request(None, None).expect("ok").is_none());
        let none = Tools::from_request(Some(weather()), Some(&json!("none")));
        assert!(none.expect("ok").is_none());
        let auto = Tools::from_request(Some(weather()), None)
            .expect("ok")
            .expect("tools");
        assert!(!auto.required);
        let named = json!({"type": "function", "function": {"name": "get_weather"}});
        let t = Tools::from_request(Some(weather()), Some(&named))
            .expect("ok")
            .expect("tools");
        assert!(t.required);
        let e = Tools::from_request(
            Some(weather()),
            Some(&json!({"type": "function", "function": {"name": "other"}})),
        )
        .expect_err("unknown function");
        assert_eq!(e.param, Some("tool_choice"));
        let e = Tools::from_request(None, Some(&json!("required"))).expect_err("no tools");
        assert_eq!(e.param, Some("tool_choice"));
        let e = Tools::from_request(Some(spec(json!([{"type": "web_search"}]))), None)
            .expect_err("not a function");
        assert_eq!(e.param, Some("tools"));
        let e = Tools::from_request(
            Some(spec(
                json!([{"type": "function", "function": {"name": "a b"}}]),
            )),
            None,
        )
        .expect_err("bad name");
        assert_eq!(e.param, Some("tools"));
    }

    #[test]
    fn answers_read_back_into_calls_or_text() {
        let call = r#"{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}"#;
        assert_eq!(
            Tools::read(call),
            Reply::Call {
                name: "get_weather".to_owned(),
                arguments: r#"{"city":"Paris"}"#.to_owned()
            }
        );
        assert_eq!(
            Tools::read(r#"{"response": "Hello"}"#),
            Reply::Text("Hello".to_owned())
        );
        // Cut by max_tokens: the text as generated.
        assert_eq!(
            Tools::read(r#"{"tool_call": {"na"#),
            Reply::Text(r#"{"tool_call": {"na"#.to_owned())
        );
        let history = json!([{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]);
        assert_eq!(
            calls_as_text(&history).expect("text"),
            r#"{"tool_call":{"name":"get_weather","arguments":{"city":"Paris"}}}"#
        );
        assert!(
            calls_as_text(&json!([{"function": {"name": "f", "arguments": "not json"}}])).is_none()
        );
    }
}
