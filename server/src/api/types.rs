//! OpenAI request and response bodies (the subset Veil serves).

use serde::Deserialize;

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    /// One stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl Stop {
    /// The strings.
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamOptions {
    /// Send a last chunk with `usage`.
    #[serde(default)]
    pub(crate) include_usage: bool,
}

/// Generation parameters shared by both endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GenerationFields {
    /// Model id.
    pub(crate) model: String,
    /// Stream as Server-Sent Events.
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    /// Tokens to generate at most.
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    /// Newer name of `max_tokens` (chat).
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub(crate) temperature: Option<f64>,
    /// Nucleus sampling mass, (0, 1].
    #[serde(default)]
    pub(crate) top_p: Option<f64>,
    /// Seed for sampling.
    #[serde(default)]
    pub(crate) seed: Option<i64>,
    /// Stop strings (at most 4).
    #[serde(default)]
    pub(crate) stop: Option<Stop>,
    /// Choices to generate for the prompt (1 to 8).
    #[serde(default)]
    pub(crate) n: Option<u64>,
    /// Penalty on tokens already generated, once each (-2 to 2).
    #[serde(default)]
    pub(crate) presence_penalty: Option<f64>,
    /// Penalty on tokens already generated, per occurrence (-2 to 2).
    #[serde(default)]
    pub(crate) frequency_penalty: Option<f64>,
    /// Token id (as a string) to bias added to its logit (-100 to 100).
    #[serde(default)]
    pub(crate) logit_bias: Option<std::collections::BTreeMap<String, f64>>,
    /// Chat: report log probabilities (a boolean); completions: how many alternatives to
    /// report (0 to 5). Checked per endpoint in `super::logprobs`.
    #[serde(default)]
    pub(crate) logprobs: Option<serde_json::Value>,
    /// Chat: alternatives to report per token (0 to 20).
    #[serde(default)]
    pub(crate) top_logprobs: Option<serde_json::Value>,
    /// Structured output: `text`, `json_object` or `json_schema` (`super::format`).
    #[serde(default)]
    pub(crate) response_format: Option<serde_json::Value>,
    /// Extension (as in vLLM): keep generating past end-of-generation tokens, up to
    /// `max_tokens`. Used by benchmarks to generate an exact number of tokens.
    #[serde(default)]
    pub(crate) ignore_eos: bool,
    /// Every other field: refused by name when it would change the answer
    /// (`super::unsupported`), otherwise ignored.
    #[serde(flatten)]
    pub(crate) other: serde_json::Map<String, serde_json::Value>,
}

/// Message content: a string, or an array of parts of which the `text` ones are used.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ContentPart {
    /// Part type; only `text` is served.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub(crate) text: Option<String>,
}

/// A chat message in a request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RequestMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub(crate) role: String,
    /// The content (may be null for assistant messages).
    #[serde(default)]
    pub(crate) content: Option<Content>,
    /// An assistant's tool calls (`super::tools` writes them back into the prompt).
    #[serde(default)]
    pub(crate) tool_calls: Option<serde_json::Value>,
    /// A `tool` message: the call it answers.
    #[serde(default)]
    pub(crate) tool_call_id: Option<String>,
    /// The legacy form of `tool_calls`: refused (a history silently stripped of it would
    /// change the answer).
    #[serde(default)]
    pub(crate) function_call: Option<serde_json::Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatCompletionRequest {
    /// The conversation.
    pub(crate) messages: Vec<RequestMessage>,
    /// Functions the model may call (`super::tools`).
    #[serde(default)]
    pub(crate) tools: Option<Vec<super::tools::ToolSpec>>,
    /// `none`, `auto`, `required` or a named function.
    #[serde(default)]
    pub(crate) tool_choice: Option<serde_json::Value>,
    /// Parameters.
    #[serde(flatten)]
    pub(crate) fields: GenerationFields,
}

/// `prompt` of `/v1/completions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Prompt {
    /// One string.
    Text(String),
    /// A batch of strings (only one is served).
    Texts(Vec<String>),
    /// Token ids.
    Tokens(Vec<u32>),
    /// A batch of token-id lists (only one is served).
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CompletionRequest {
    /// The prompt.
    pub(crate) prompt: Prompt,
    /// Parameters.
    #[serde(flatten)]
    pub(crate) fields: GenerationFields,
}

pub(crate) use veil_openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Completion,
    CompletionChoice, Delta, FunctionCall, Model, ModelList, ToolCall, Usage,
};

/// The `usage` of `u`.
pub(crate) fn usage(u: veil_engine::Usage) -> Usage {
    Usage::new(u.prompt_tokens as u64, u.completion_tokens as u64)
}
