//! What a request to the engine is and what comes back: the types the handle
//! ([`crate::Engine`]) and the worker share.

use crate::grammar::Constraint;
use crate::sampling::SamplingParams;

/// One generation request, already tokenized and validated.
#[derive(Debug)]
pub struct GenRequest {
    /// Request id, for logs.
    pub id: String,
    /// Prompt token ids (non-empty).
    pub prompt: Vec<u32>,
    /// How to pick tokens and when to stop.
    pub params: SamplingParams,
    /// The grammar the answer must follow ([`crate::Engine::constraint`]), if any: each
    /// step's pick is one it allows (the logits masked by it, as far as the pick needs).
    pub constraint: Option<Constraint>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens`, or the context length.
    Length,
    /// The API's output filter withheld the rest of the completion (never set by the engine).
    ContentFilter,
}

impl FinishReason {
    /// The OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (an end-of-generation token is not counted).
    pub completion_tokens: usize,
}

/// The log probability of one generated token and of its most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    /// The token generated.
    pub token: u32,
    /// Its log probability (at most 0).
    pub logprob: f32,
    /// The most likely tokens and their log probabilities, most likely first (as many as
    /// [`crate::SamplingParams::logprobs`] asks for).
    pub top: Vec<(u32, f32)>,
}

/// What the worker sends back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// One generated token's log probabilities (only when
    /// [`crate::SamplingParams::logprobs`] asks for them), sent before that token's text.
    /// Every token counted in [`Usage::completion_tokens`] has one, including those of a
    /// stop string (whose text is not sent); an end-of-generation token has none.
    Logprobs(TokenLogprobs),
    /// More text (never splits a UTF-8 character; never empty).
    Text(String),
    /// The end: why, and the counts.
    Done(FinishReason, Usage),
    /// Generation failed (the message names no content).
    Failed(String),
}
