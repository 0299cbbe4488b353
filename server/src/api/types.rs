//! OpenAI request and response bodies (the subset Veil serves).

use serde::{Deserialize, Serialize};

use super::logprobs::{ChatLogprobs, TextLogprobs};

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

/// `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UsageBody {
    /// Prompt tokens.
    pub(crate) prompt_tokens: usize,
    /// Completion tokens.
    pub(crate) completion_tokens: usize,
    /// Their sum.
    pub(crate) total_tokens: usize,
}

impl From<veil_engine::Usage> for UsageBody {
    fn from(u: veil_engine::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

/// An assistant message in a response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResponseMessage {
    /// Always `assistant`.
    pub(crate) role: &'static str,
    /// The completion (null when the answer is a tool call).
    pub(crate) content: Option<String>,
    /// The tool the answer calls, if it calls one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<Vec<ToolCall>>,
}

/// One tool call of an answer (whole, or the one delta that carries it when streamed).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ToolCall {
    /// Streamed only: its position among the message's calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<u32>,
    /// `call_…`.
    pub(crate) id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// The function and its arguments.
    pub(crate) function: FunctionCall,
}

/// The function a tool call names, with its arguments as JSON text.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FunctionCall {
    /// The function's name.
    pub(crate) name: String,
    /// The arguments, a JSON object as text.
    pub(crate) arguments: String,
}

/// One choice of a chat completion.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChoice {
    /// 0 to n - 1.
    pub(crate) index: u32,
    /// The message.
    pub(crate) message: ResponseMessage,
    /// Null unless asked for.
    pub(crate) logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `content_filter`.
    pub(crate) finish_reason: &'static str,
}

/// A chat completion.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatCompletion {
    /// `chatcmpl-…`.
    pub(crate) id: String,
    /// `chat.completion`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Model id.
    pub(crate) model: String,
    /// The choices, in index order.
    pub(crate) choices: Vec<ChatChoice>,
    /// Token counts.
    pub(crate) usage: UsageBody,
}

/// `delta` of a streamed chat chunk.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Delta {
    /// `assistant` in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    /// More text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
    /// The tool call, whole, in one delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_calls: Option<Vec<ToolCall>>,
}

/// One choice of a streamed chat chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChunkChoice {
    /// Which choice (0 to n - 1).
    pub(crate) index: u32,
    /// What is new.
    pub(crate) delta: Delta,
    /// The new tokens' log probabilities, when asked for.
    pub(crate) logprobs: Option<ChatLogprobs>,
    /// Set in the last content chunk.
    pub(crate) finish_reason: Option<&'static str>,
}

/// A streamed chat chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChunk {
    /// Same id in every chunk of a stream.
    pub(crate) id: String,
    /// `chat.completion.chunk`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Model id.
    pub(crate) model: String,
    /// Empty in the usage chunk.
    pub(crate) choices: Vec<ChunkChoice>,
    /// Only in the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<UsageBody>,
}

/// One choice of a (legacy) completion, whole or streamed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TextChoice {
    /// 0 to n - 1.
    pub(crate) index: u32,
    /// The text (or the new text, when streaming).
    pub(crate) text: String,
    /// Null unless asked for (when streaming: the new tokens').
    pub(crate) logprobs: Option<TextLogprobs>,
    /// `stop`/`length`/`content_filter` at the end; null while streaming.
    pub(crate) finish_reason: Option<&'static str>,
}

/// A (legacy) completion, whole or one streamed chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TextCompletion {
    /// `cmpl-…`.
    pub(crate) id: String,
    /// `text_completion`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Model id.
    pub(crate) model: String,
    /// The choices (when streaming: one; none in the usage chunk).
    pub(crate) choices: Vec<TextChoice>,
    /// Token counts (whole response, or the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<UsageBody>,
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelEntry {
    /// Model id.
    pub(crate) id: String,
    /// `model`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// `veil`.
    pub(crate) owned_by: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelList {
    /// `list`.
    pub(crate) object: &'static str,
    /// The models.
    pub(crate) data: Vec<ModelEntry>,
}
