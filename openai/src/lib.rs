//! OpenAI's response bodies as Veil serves them, in one place: `veil-server` serializes
//! these types and the SDK (`veil-client`, and through it `veil proxy` and `veil chat`)
//! deserializes them, so the two cannot drift apart.
//!
//! Serialized, each type writes exactly OpenAI's shape (`null` where OpenAI writes `null`,
//! absent where it leaves a field out). Read, every field has a default and the fields a
//! type does not know are kept in its `extra`, so a newer server does not break an older
//! client.
//!
//! Requests stay with each side: the SDK builds typed requests (`veil_client::ChatRequest`),
//! while the server reads a request leniently field by field, so that a parameter it does
//! not implement is refused by name instead of failing the whole body's parse.
//!
//! A well-kept crate's types were considered (`async-openai`'s): they would bring an HTTP
//! client into the server, and their response types do not carry Veil's extensions.

mod chat;
mod completion;
mod logprobs;
mod models;

pub use chat::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Delta,
    FunctionCall, ToolCall,
};
pub use completion::{Completion, CompletionChoice};
pub use logprobs::{ChatLogprobs, ChatTokenLogprob, TextLogprobs, TopLogprob};
pub use models::{Model, ModelList};

use serde::{Deserialize, Serialize};

/// Token counts of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl Usage {
    /// The counts, with their sum.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// Fields a type does not know, kept as read (empty when serialized by Veil).
pub type Extra = serde_json::Map<String, serde_json::Value>;
