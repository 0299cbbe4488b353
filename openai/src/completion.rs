//! `POST /v1/completions`: a (legacy) completion, whole or one streamed chunk.

use serde::{Deserialize, Serialize};

use crate::{Extra, TextLogprobs, Usage};

/// One choice, whole or streamed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompletionChoice {
    /// 0 to n - 1.
    pub index: u32,
    /// The text (when streaming: the new text).
    pub text: String,
    /// Null unless asked for (when streaming: the new tokens').
    pub logprobs: Option<TextLogprobs>,
    /// `stop`, `length` or `content_filter` at the end; null while streaming.
    pub finish_reason: Option<String>,
}

/// A completion (`text_completion`), whole or one streamed chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Completion {
    /// `cmpl-…`.
    pub id: String,
    /// `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// The choices (when streaming: one; none in the usage chunk).
    pub choices: Vec<CompletionChoice>,
    /// Token counts (the whole response, or the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Completion {
    /// The first choice's text, if any.
    pub fn text(&self) -> Option<&str> {
        self.choices.first().map(|c| c.text.as_str())
    }
}
