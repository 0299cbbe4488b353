//! A Hugging Face Llama directory's `config.json` (beside `tokenizer.json`,
//! `tokenizer_config.json` and one `.safetensors` weights file).
//!
//! Only data is read: the JSON is parsed into the few fields the engine needs, and
//! anything the engine would run differently from what the file describes (RoPE scaling,
//! biases, another activation, an explicit head width) is refused rather than ignored.
//! There is no `trust_remote_code`: a directory that needs Python code to load is refused.

use serde::Deserialize;

use super::LlamaConfig;
use crate::error::{Error, Result};

/// The fields of `config.json` the engine reads (others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// Must be `llama`.
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Key/value heads; `num_attention_heads` when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; must be `hidden_size / num_attention_heads` when present.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// RMS-norm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base; 10 000 when absent.
    #[serde(default)]
    pub rope_theta: Option<f32>,
    /// Must be absent or null (no scaled RoPE).
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Whether the output projection is the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Must be `silu` when present.
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Must be false when present.
    #[serde(default)]
    pub attention_bias: bool,
    /// Must be false when present.
    #[serde(default)]
    pub mlp_bias: bool,
}

impl HfConfig {
    /// Parses `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Model(format!("config.json: {e}")))
    }

    /// The engine's shape for this model; refuses what the engine would run differently.
    pub fn llama_config(&self) -> Result<LlamaConfig> {
        let refuse = |m: String| Err(Error::Model(format!("config.json: {m}")));
        if self.model_type != "llama" {
            return refuse(format!("model_type `{}` is not llama", self.model_type));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return refuse("rope_scaling is not supported".to_owned());
        }
        if let Some(act) = self.hidden_act.as_deref().filter(|a| *a != "silu") {
            return refuse(format!("hidden_act `{act}` is not silu"));
        }
        if self.attention_bias || self.mlp_bias {
            return refuse("biases are not supported".to_owned());
        }
        let n_head = self.num_attention_heads;
        if n_head == 0 || !self.hidden_size.is_multiple_of(n_head) {
            return refuse("hidden_size is not a multiple of num_attention_heads".to_owned());
        }
        let head_dim = self.hidden_size / n_head;
        if self.head_dim.is_some_and(|d| d != head_dim) || !head_dim.is_multiple_of(2) {
            return refuse(format!(
                "head_dim must be hidden_size / heads ({head_dim}) and even"
            ));
        }
        let n_kv_head = self.num_key_value_heads.unwrap_or(n_head);
        if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) {
            return refuse("head counts do not group".to_owned());
        }
        if self.num_hidden_layers == 0 || self.vocab_size == 0 || self.max_position_embeddings == 0
        {
            return refuse("layers, vocabulary and context must be non-zero".to_owned());
        }
        Ok(LlamaConfig {
            n_layer: self.num_hidden_layers,
            n_head,
            n_kv_head,
            hidden: self.hidden_size,
            head_dim,
            context_length: self.max_position_embeddings,
            vocab_size: self.vocab_size,
            rms_eps: self.rms_norm_eps,
            rope_base: self.rope_theta.unwrap_or(10_000.),
        })
    }
}
