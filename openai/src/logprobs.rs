//! Log probabilities: chat's `choices[].logprobs` and completions'.
//!
//! A log probability of `-inf` (a token with probability zero in `f32`) is written as JSON
//! `null`, as `serde_json` writes every non-finite float; read back, `null` is `-inf`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

fn logprob<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NEG_INFINITY))
}

fn logprobs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let v = Vec::<Option<f32>>::deserialize(d)?;
    Ok(v.into_iter()
        .map(|l| l.unwrap_or(f32::NEG_INFINITY))
        .collect())
}

fn logprob_maps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BTreeMap<String, f32>>, D::Error> {
    let v = Vec::<BTreeMap<String, Option<f32>>>::deserialize(d)?;
    Ok(v.into_iter()
        .map(|m| {
            m.into_iter()
                .map(|(t, l)| (t, l.unwrap_or(f32::NEG_INFINITY)))
                .collect()
        })
        .collect())
}

/// One alternative of a chat token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopLogprob {
    /// The token's text (lossy where it is not whole UTF-8).
    pub token: String,
    /// Its log probability.
    #[serde(deserialize_with = "logprob")]
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
    #[serde(deserialize_with = "logprob")]
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
    #[serde(deserialize_with = "logprobs")]
    pub token_logprobs: Vec<f32>,
    /// Per token: the alternatives asked for, and the token itself.
    #[serde(deserialize_with = "logprob_maps")]
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    /// Each token's offset in the completion text, in characters.
    pub text_offset: Vec<usize>,
}
