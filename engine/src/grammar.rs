//! Constrained decoding: an output format (any JSON object, or JSON valid against a JSON
//! Schema) compiled into a grammar that masks each step's logits, so that every token a
//! sequence samples keeps its text a prefix of a valid answer and the answer ends only where
//! the grammar does.
//!
//! The grammar engine is `llguidance` (the one llama.cpp, vLLM and SGLang use): its JSON
//! Schema compiler covers the draft 2020-12 keywords OpenAI's strict mode allows and names
//! what it does not support, and its Earley parser over a token trie computes a mask for a
//! 49k vocabulary in tens of microseconds. `outlines-core` was the alternative: it builds
//! an index of the whole vocabulary per schema up front (seconds for a new schema), which
//! would put a schema's compilation on the request path.
//!
//! Control tokens are never allowed inside the answer (the trie marks them special); the
//! end-of-generation tokens are allowed exactly where the grammar accepts.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// The shape an answer must take.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON valid against this JSON Schema (OpenAI's `json_schema`).
    JsonSchema(serde_json::Value),
}

impl OutputFormat {
    /// The grammar: the schema with Veil's layout. JSON is written as OpenAI writes it
    /// (`{"a": 1, "b": [2, 3]}`), with no other whitespace: a grammar that allowed any
    /// whitespace between tokens would let a small model pad its answer with newlines until
    /// `max_tokens` runs out instead of closing it. A layout the request set itself
    /// (`x-guidance`) is replaced.
    fn grammar(&self) -> TopLevelGrammar {
        let mut schema = match self {
            Self::JsonObject => serde_json::json!({"type": "object"}),
            Self::JsonSchema(s) => s.clone(),
        };
        if let Some(o) = schema.as_object_mut() {
            o.insert(
                "x-guidance".to_owned(),
                serde_json::json!({
                    "whitespace_flexible": false,
                    "item_separator": ", ",
                    "key_separator": ": ",
                }),
            );
        }
        TopLevelGrammar::from_json_schema(schema)
    }
}

/// Compiles output formats for one vocabulary (built once per model: the token trie).
pub struct Grammars {
    factory: ParserFactory,
    /// Tokens the trie knows (the tokenizer's vocabulary; the model's rows may be wider).
    vocab: u32,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars").finish_non_exhaustive()
    }
}

impl Grammars {
    /// The token trie of `tokenizer`'s vocabulary: each token's raw bytes, control tokens
    /// marked special, its end-of-generation tokens as the trie's end.
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let ends = tokenizer.end_of_generation();
        let Some(&first_end) = ends.first() else {
            return Err(Error::Grammar(
                "the vocabulary has no end-of-generation token".to_owned(),
            ));
        };
        let words: Vec<Vec<u8>> = (0..tokenizer.vocab_size() as u32)
            .map(|id| {
                let bytes = tokenizer.token_bytes(id);
                if tokenizer.is_control(id) || bytes.is_empty() {
                    // Special to the trie: never part of an answer's text.
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(format!("<{id}>").as_bytes());
                    w
                } else {
                    bytes.to_vec()
                }
            })
            .collect();
        let vocab = words.len() as u32;
        let info = TokRxInfo::new(vocab, first_end);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(ends);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| Error::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Self { factory, vocab })
    }

    /// A fresh constraint for one sequence, or [`Error::Grammar`] naming what in the schema
    /// cannot be compiled (an unsupported keyword, an unsatisfiable schema).
    pub fn compile(&self, format: &OutputFormat) -> Result<Constraint> {
        let parser = self
            .factory
            .create_parser(format.grammar())
            .map_err(|e| Error::Grammar(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::Grammar(e));
        }
        Ok(Constraint {
            matcher,
            vocab: self.vocab,
        })
    }
}

/// One sequence's place in its grammar.
pub struct Constraint {
    matcher: Matcher,
    /// Token ids at and past this are outside the vocabulary: never allowed.
    vocab: u32,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").finish_non_exhaustive()
    }
}

impl Clone for Constraint {
    /// An independent copy (the `n` choices of one request each walk their own).
    fn clone(&self) -> Self {
        Self {
            matcher: self.matcher.deep_clone(),
            vocab: self.vocab,
        }
    }
}

impl Constraint {
    /// Sets every logit the grammar forbids at this point to `-inf` (ids past the
    /// vocabulary too); an error when it forbids everything.
    pub(crate) fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| Error::Grammar(e.to_string()))?;
        if allowed.is_zero() {
            return Err(Error::Grammar("the grammar allows no token".to_owned()));
        }
        let known = allowed.len().min(logits.len());
        allowed.iter_unset_entries(|i| {
            if let Some(l) = logits.get_mut(i) {
                *l = f32::NEG_INFINITY;
            }
        });
        for l in &mut logits[known..] {
            *l = f32::NEG_INFINITY;
        }
        Ok(())
    }

    /// Whether the grammar allows `token` next (the mask would leave it), found without
    /// computing the mask.
    pub(crate) fn allows(&mut self, token: u32) -> Result<bool> {
        // A row wider than the vocabulary (padded embeddings) has ids the grammar never
        // allows; asked about one, llguidance would stop the parser with an error.
        if token >= self.vocab {
            return Ok(false);
        }
        let valid = self
            .matcher
            .validate_tokens(&[token])
            .map_err(|e| Error::Grammar(e.to_string()))?;
        Ok(valid == 1)
    }

    /// Moves past a sampled token (one the mask allowed).
    pub(crate) fn advance(&mut self, token: u32) -> Result<()> {
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::Grammar(e.to_string()))
    }
}
