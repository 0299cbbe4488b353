//! Log probabilities: chat's `choices[].logprobs` and completions'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One alternative of a chat token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopLogprob {
    /// The token's text (lossy where it is not whole UTF-8).
    pub token: String,
    /// Its log probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// One token of chat `logprobs.content`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatTokenLogprob {
    /// The token's text (lossy where it is not whole UTF-8).
    pub token: String,
    /// Its log probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The most likely alternatives, most likely first.
    pub top_logprobs: Vec<TopLogprob>,
}

/// Chat `choices[].logprobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
}

/// Completions `choices[].logprobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextLogprobs {
    /// The tokens' texts.
    pub tokens: Vec<String>,
    /// Their log probabilities.
    pub token_logprobs: Vec<f32>,
    /// Per token: the alternatives asked for, and the token itself.
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    /// Each token's offset in the completion text, in characters.
    pub text_offset: Vec<usize>,
}
