//! A Llama decoder over GGUF quantized weights, batched across sequences.
//!
//! The same network as `candle_transformers::models::quantized_llama` (a test checks
//! the logits agree bit for bit), with one difference that makes concurrency pay: each
//! sequence owns its [`KvCache`], and [`Llama::forward`] runs several sequences at different
//! positions in one pass. The matrix products (all the weights) run once for the whole
//! batch; attention reads each sequence's own cache: with candle's operations for a prompt,
//! and with `veil_kernels::decode_attention` (the same bits, fused, cache read in place,
//! spread over the thread pool) for one new token per sequence.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::Content;
use candle_core::{D, DType, Device, Tensor};
use veil_kernels::AttentionShape;

use crate::error::{Error, Result};

mod forward;
mod hf_config;
mod kv;
mod matrix;
mod norm;
mod prompt;
mod safetensors;

pub use hf_config::HfConfig;
pub use kv::KvCache;
use kv::KvPool;
use matrix::Matrix;
use norm::Norm;

/// Shape of the network, from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_kv_head: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Longest sequence (prompt plus completion) the model was trained for.
    pub context_length: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// RMS-norm epsilon.
    pub rms_eps: f64,
    /// RoPE frequency base.
    pub rope_base: f32,
}

impl LlamaConfig {
    fn attention_shape(&self) -> AttentionShape {
        AttentionShape {
            n_head: self.n_head,
            n_kv_head: self.n_kv_head,
            head_dim: self.head_dim,
        }
    }
}

#[derive(Debug)]
struct Layer {
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
    attn_norm: Norm,
    ffn_norm: Norm,
}

/// The network's weights; shared, read-only, by every sequence.
#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Norm,
    output: Matrix,
    rope: RopeTables,
    device: Device,
    kv_pool: Arc<KvPool>,
}

/// cos/sin of every position's rotary angles, `[context_length, head_dim / 2]` (computed as
/// candle computes them for `rope_i`).
#[derive(Debug)]
struct RopeTables {
    cos_rows: Vec<f32>,
    sin_rows: Vec<f32>,
}

impl RopeTables {
    /// cos and sin rows of position `p`.
    fn row(&self, p: usize, half: usize) -> (&[f32], &[f32]) {
        (
            &self.cos_rows[p * half..][..half],
            &self.sin_rows[p * half..][..half],
        )
    }
}

fn md_usize(ct: &Content, key: &str) -> Result<usize> {
    let v = ct
        .metadata
        .get(key)
        .ok_or_else(|| Error::Model(format!("GGUF metadata has no `{key}`")))?;
    let n = v
        .to_u32()
        .or_else(|_| v.to_u64().map(|x| u32::try_from(x).unwrap_or(u32::MAX)))
        .map_err(|e| Error::Model(format!("`{key}`: {e}")))?;
    Ok(n as usize)
}

fn load<R: std::io::Read + std::io::Seek>(
    ct: &Content,
    reader: &mut R,
    name: &str,
    device: &Device,
) -> Result<QTensor> {
    ct.tensor(reader, name, device)
        .map_err(|e| Error::Model(format!("tensor `{name}`: {e}")))
}

/// How matrix weights are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WeightFormat {
    /// As stored in the file: logits bit-identical to candle's `quantized_llama`.
    #[default]
    Stored,
    /// Q4_1 matrices re-encoded as Q8_0 at load (an opt-in kept for comparison: Veil's own
    /// Q4_1 kernels serve the stored format). The re-encoding error is about 1/17 of Q4_1's
    /// own quantization step, so completions may differ slightly from the stored format's.
    Q8_0,
}

fn md_f32(ct: &Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Llama {
    /// Loads a `general.architecture = llama` GGUF.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &Content,
        reader: &mut R,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .map_or("", String::as_str);
        if arch != "llama" {
            return Err(Error::Model(format!("architecture `{arch}` is not llama")));
        }
        if md_usize(ct, "llama.expert_count").unwrap_or(0) > 1 {
            return Err(Error::Model(
                "mixture-of-experts llama is not supported".to_owned(),
            ));
        }
        let n_head = md_usize(ct, "llama.attention.head_count")?;
        let hidden = md_usize(ct, "llama.embedding_length")?;
        let head_dim = hidden / n_head.max(1);
        let rope_dim = md_usize(ct, "llama.rope.dimension_count").unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 {
            return Err(Error::Model("partial or odd rotary dimension".to_owned()));
        }
        let mut tensor = |name: &str| load(ct, reader, name, device);
        let embed_q = tensor("token_embd.weight")?;
        let vocab_size = embed_q.shape().dims().first().copied().unwrap_or(0);
        let cfg = LlamaConfig {
            n_layer: md_usize(ct, "llama.block_count")?,
            n_head,
            n_kv_head: md_usize(ct, "llama.attention.head_count_kv").unwrap_or(n_head),
            hidden,
            head_dim,
            context_length: md_usize(ct, "llama.context_length")?,
            vocab_size,
            rms_eps: f64::from(
                md_f32(ct, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            ),
            rope_base: md_f32(ct, "llama.rope.freq_base").unwrap_or(10_000.),
        };
        if cfg.n_kv_head == 0 || !cfg.n_head.is_multiple_of(cfg.n_kv_head) {
            return Err(Error::Model("head counts do not group".to_owned()));
        }
        let embed = embed_q.dequantize(device)?;
        let output = match tensor("output.weight") {
            Ok(t) => Matrix::load(t, format, device)?,
            Err(_) => Matrix::load(embed_q, format, device)?, // tied embeddings
        };
        let norm = Norm::new(
            &tensor("output_norm.weight")?.dequantize(device)?,
            cfg.rms_eps,
        )?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut q = |n: &str| -> Result<Matrix> {
                Matrix::load(tensor(&format!("blk.{i}.{n}.weight"))?, format, device)
            };
            let (wq, wk, wv, wo) = (q("attn_q")?, q("attn_k")?, q("attn_v")?, q("attn_output")?);
            let (gate, up, down) = (q("ffn_gate")?, q("ffn_up")?, q("ffn_down")?);
            let attn_norm = tensor(&format!("blk.{i}.attn_norm.weight"))?;
            let ffn_norm = tensor(&format!("blk.{i}.ffn_norm.weight"))?;
            layers.push(Layer {
                wq,
                wk,
                wv,
                wo,
                gate,
                up,
                down,
                attn_norm: Norm::new(&attn_norm.dequantize(device)?, cfg.rms_eps)?,
                ffn_norm: Norm::new(&ffn_norm.dequantize(device)?, cfg.rms_eps)?,
            });
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

    /// The network's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An empty cache for a new sequence (a finished sequence's buffers, wiped, where the
    /// engine keeps some).
    pub fn new_cache(&self) -> KvCache {
        self.kv_pool.cache()
    }

    fn attention_shape(&self) -> AttentionShape {
        self.cfg.attention_shape()
    }

    /// Runs `tokens[i]` as the continuation of sequence `i` (whose past is `caches[i]`),
    /// for every `i` at once, and returns the logits after each sequence's last token,
    /// `[batch, vocab]` in f32. The lengths may differ: one token for a sequence being
    /// decoded, a whole prompt for one being admitted, in the same pass. A sequence's logits
    /// never depend on the rest of the batch.
    pub fn forward(&self, tokens: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        if tokens.is_empty() || caches.len() != tokens.len() || tokens.iter().any(|t| t.is_empty())
        {
            return Err(Error::Inference(
                "forward needs one cache per sequence and at least one token each".to_owned(),
            ));
        }
        if caches
            .iter()
            .zip(tokens)
            .any(|(c, t)| c.len + t.len() > self.cfg.context_length)
        {
            return Err(Error::Inference(
                "sequence exceeds the context length".to_owned(),
            ));
        }
        let ids: Vec<u32> = tokens.iter().flat_map(|t| t.iter().copied()).collect();
        if ids.iter().any(|&id| id as usize >= self.cfg.vocab_size) {
            return Err(Error::Inference(
                "token id outside the vocabulary".to_owned(),
            ));
        }
        let lens: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
        self.forward_rows(&ids, &lens, caches)
    }
}

fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<RopeTables> {
    let inv: Vec<f32> = (0..cfg.head_dim)
        .step_by(2)
        .map(|i| 1f32 / cfg.rope_base.powf(i as f32 / cfg.head_dim as f32))
        .collect();
    let n = inv.len();
    let inv = Tensor::from_vec(inv, (1, n), device)?;
    let pos = Tensor::arange(0u32, cfg.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((cfg.context_length, 1))?;
    let angles = pos.matmul(&inv)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    Ok(RopeTables {
        cos_rows: cos.flatten_all()?.to_vec1::<f32>()?,
        sin_rows: sin.flatten_all()?.to_vec1::<f32>()?,
    })
}

/// Index of the largest logit (greedy decoding).
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}

/// [`argmax`] of every row of `[batch, vocab]` logits: on the CPU by Veil's kernel (the
/// same picks as candle's, ties to the first; the rows spread over the pool), elsewhere by
/// candle's.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let (_, width) = logits.dims2()?;
    {
        let (storage, layout) = logits.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
            && let Ok(all) = cpu.as_slice::<f32>()
        {
            return Ok(veil_kernels::argmax_rows(&all[start..end], width));
        }
    }
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}
