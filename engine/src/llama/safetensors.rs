//! The network from Hugging Face safetensors (`LlamaForCausalLM` tensor names).
//!
//! Weights in f32, f16 or bf16 are kept as dense f32 matrices (`--weights stored`) or
//! re-encoded to Q8_0 (`--weights q8_0`). Every tensor's shape is checked against
//! `config.json`, and a tensor the engine would not use is refused: weights that describe a
//! different network than the one that runs must not load quietly.

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};

use super::{HfConfig, KvPool, Layer, Llama, Matrix, Norm, WeightFormat, rope_tables};
use crate::error::{Error, Result};

/// The tensors of the file, taken one by one.
struct Tensors(HashMap<String, Tensor>);

impl Tensors {
    /// Removes `name`, checks its shape, and converts it to f32.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .0
            .remove(name)
            .ok_or_else(|| Error::Model(format!("safetensors: no tensor `{name}`")))?;
        if t.dims() != shape {
            return Err(Error::Model(format!(
                "safetensors: `{name}` is {:?}, config.json implies {shape:?}",
                t.dims()
            )));
        }
        Ok(t.to_dtype(DType::F32)?)
    }
}

fn dense(w: Tensor, format: WeightFormat) -> Result<Matrix> {
    let inner = w.dims().last().copied().unwrap_or(0);
    Ok(match format {
        WeightFormat::Q8_0 if inner.is_multiple_of(32) => Matrix::Candle(QMatMul::from_qtensor(
            QTensor::quantize(&w, GgmlDType::Q8_0)?,
        )?),
        _ => Matrix::Dense(candle_nn::Linear::new(w, None)),
    })
}

fn rms_norm(w: Tensor, eps: f64) -> Result<Norm> {
    Norm::new(&w, eps)
}

/// Hugging Face orders each head's query/key rows for rotate-half RoPE (dimension `j` pairs
/// with `j + d/2`); this engine applies interleaved RoPE (`2j` pairs with `2j + 1`, GGUF's
/// order). Row `2j + t` of a head becomes row `t·d/2 + j`. Queries and keys of a head are
/// reordered alike, so every attention score is unchanged.
fn interleave_heads(w: Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    Ok(w.reshape((heads, 2, head_dim / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

impl Llama {
    /// Builds the network from `config.json` and the tensors of a safetensors file.
    pub fn from_safetensors(
        config: &HfConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        let cfg = config.llama_config()?;
        let mut t = Tensors(tensors);
        let (h, d, ffn) = (cfg.hidden, cfg.head_dim, config.intermediate_size);
        let (q_rows, kv_rows) = (cfg.n_head * d, cfg.n_kv_head * d);
        let embed = t.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let output = match t.take("lm_head.weight", &[cfg.vocab_size, h]) {
            Ok(w) if !config.tie_word_embeddings => dense(w, format)?,
            Err(e) if !config.tie_word_embeddings => return Err(e),
            // Tied: the embedding is the output projection (a stored copy is ignored).
            _ => dense(embed.clone(), format)?,
        };
        let norm = rms_norm(t.take("model.norm.weight", &[h])?, cfg.rms_eps)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut take = |name: &str, shape: &[usize]| {
                t.take(&format!("model.layers.{i}.{name}.weight"), shape)
            };
            let wq = interleave_heads(take("self_attn.q_proj", &[q_rows, h])?, cfg.n_head, d)?;
            let wk = interleave_heads(take("self_attn.k_proj", &[kv_rows, h])?, cfg.n_kv_head, d)?;
            layers.push(Layer {
                wq: dense(wq, format)?,
                wk: dense(wk, format)?,
                wv: dense(take("self_attn.v_proj", &[kv_rows, h])?, format)?,
                wo: dense(take("self_attn.o_proj", &[h, q_rows])?, format)?,
                gate: dense(take("mlp.gate_proj", &[ffn, h])?, format)?,
                up: dense(take("mlp.up_proj", &[ffn, h])?, format)?,
                down: dense(take("mlp.down_proj", &[h, ffn])?, format)?,
                attn_norm: rms_norm(take("input_layernorm", &[h])?, cfg.rms_eps)?,
                ffn_norm: rms_norm(take("post_attention_layernorm", &[h])?, cfg.rms_eps)?,
            });
        }
        // Older checkpoints store RoPE's inverse frequencies; they are recomputed here.
        t.0.retain(|name, _| !name.ends_with(".rotary_emb.inv_freq"));
        if let Some(extra) = t.0.keys().min() {
            return Err(Error::Model(format!(
                "safetensors: tensor `{extra}` is not part of a Llama network ({} unused)",
                t.0.len()
            )));
        }
        let rope = rope_tables(&cfg, device)?;
        let kv_pool = KvPool::new(cfg.n_layer, cfg.attention_shape());
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            output,
            rope,
            device: device.clone(),
            kv_pool,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HfConfig {
        HfConfig::from_json(
            br#"{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                "max_position_embeddings": 32, "vocab_size": 10, "rms_norm_eps": 1e-5,
                "tie_word_embeddings": true}"#,
        )
        .expect("config")
    }

    fn tensors() -> HashMap<String, Tensor> {
        let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("zeros");
        let mut m = HashMap::new();
        m.insert("model.embed_tokens.weight".to_owned(), z(&[10, 8]));
        m.insert("model.norm.weight".to_owned(), z(&[8]));
        for (name, shape) in [
            ("self_attn.q_proj", &[8, 8][..]),
            ("self_attn.k_proj", &[4, 8]),
            ("self_attn.v_proj", &[4, 8]),
            ("self_attn.o_proj", &[8, 8]),
            ("mlp.gate_proj", &[16, 8]),
            ("mlp.up_proj", &[16, 8]),
            ("mlp.down_proj", &[8, 16]),
            ("input_layernorm", &[8]),
            ("post_attention_layernorm", &[8]),
        ] {
            m.insert(format!("model.layers.0.{name}.weight"), z(shape));
        }
        m
    }

    fn load(t: HashMap<String, Tensor>) -> Result<Llama> {
        Llama::from_safetensors(&config(), t, &Device::Cpu, WeightFormat::Stored)
    }

    fn model_error(r: Result<Llama>) -> String {
        match r {
            Err(Error::Model(m)) => m,
            other => panic!("expected a model error, got {other:?}"),
        }
    }

    #[test]
    fn complete_tensors_load_and_run() {
        let llama = load(tensors()).expect("loads");
        let mut cache = llama.new_cache();
        let logits = llama
            .forward(&[&[1, 2, 3]], &mut [&mut cache])
            .expect("runs");
        assert_eq!(logits.dims(), [1, 10]);
    }

    #[test]
    fn missing_tensor_is_named() {
        let mut t = tensors();
        t.remove("model.layers.0.mlp.up_proj.weight");
        assert_eq!(
            model_error(load(t)),
            "safetensors: no tensor `model.layers.0.mlp.up_proj.weight`"
        );
    }

    #[test]
    fn wrong_shape_is_named() {
        let mut t = tensors();
        let wrong = Tensor::zeros((4, 8), DType::F32, &Device::Cpu).expect("zeros");
        t.insert("model.layers.0.self_attn.q_proj.weight".to_owned(), wrong);
        assert_eq!(
            model_error(load(t)),
            "safetensors: `model.layers.0.self_attn.q_proj.weight` is [4, 8], config.json implies [8, 8]"
        );
    }

    #[test]
    fn unused_tensor_is_refused() {
        let mut t = tensors();
        let extra = Tensor::zeros(8, DType::F32, &Device::Cpu).expect("zeros");
        t.insert("model.layers.0.self_attn.q_proj.bias".to_owned(), extra);
        assert!(
            model_error(load(t)).contains("`model.layers.0.self_attn.q_proj.bias` is not part"),
        );
    }

    #[test]
    fn head_rows_move_to_interleaved_order() {
        // One head of width 4 over one column: rows [a0, a1, b0, b1] (rotate-half pairs
        // a_j with b_j) become [a0, b0, a1, b1].
        let w = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).expect("tensor");
        let got = interleave_heads(w, 1, 4).expect("reorder");
        assert_eq!(
            got.flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("vec"),
            [0., 2., 1., 3.]
        );
    }
}
