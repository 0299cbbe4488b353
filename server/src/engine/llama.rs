//! A Llama decoder over GGUF quantized weights, batched across sequences.
//!
//! The same network as `candle_transformers::models::quantized_llama` (a test checks
//! the logits agree bit for bit), with one difference that makes concurrency pay: each
//! sequence owns its [`KvCache`], and [`Llama::forward`] runs several sequences at different
//! positions in one pass. The matrix products (all the weights) run once for the whole
//! batch; attention reads each sequence's own cache: with candle's operations for a prompt,
//! and with `veil_kernels::decode_attention` (the same bits, fused, cache read in place,
//! spread over the thread pool) for one new token per sequence.

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::Content;
use candle_core::{D, DType, Device, Tensor};
use candle_transformers::utils::repeat_kv;
use veil_kernels::AttentionShape;

use crate::error::{Error, Result};

mod decode;
mod kv;
mod matrix;
mod norm;
mod safetensors;

pub use kv::KvCache;
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
}

/// cos/sin of every position's rotary angles, `[context_length, head_dim / 2]`: as tensors
/// for prefill (candle's `rope_i`) and as rows for decode.
#[derive(Debug)]
struct RopeTables {
    cos: Tensor,
    sin: Tensor,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[non_exhaustive]
pub enum WeightFormat {
    /// As stored in the file: logits bit-identical to candle's `quantized_llama`.
    #[default]
    Stored,
    /// Q4_1 matrices re-encoded as Q8_0 at load. candle has no SIMD kernel for Q4_1 and
    /// an AVX2 one for Q8_0, so this is several times faster on x86 CPUs; the re-encoding
    /// error is about 1/17 of Q4_1's own quantization step, so completions may differ
    /// slightly from the stored format's.
    #[value(name = "q8_0")]
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
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            output,
            rope,
            device: device.clone(),
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

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layer)
    }

    fn attention_shape(&self) -> AttentionShape {
        AttentionShape {
            n_head: self.cfg.n_head,
            n_kv_head: self.cfg.n_kv_head,
            head_dim: self.cfg.head_dim,
        }
    }

    /// Runs `tokens[i]` as the continuation of sequence `i` (whose past is `caches[i]`),
    /// for every `i` at once, and returns the logits after each sequence's last token,
    /// `[batch, vocab]` in f32. Every `tokens[i]` must have the same length (one token per
    /// sequence when decoding; one sequence with its whole prompt when prefilling).
    pub fn forward(&self, tokens: &[&[u32]], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let b = tokens.len();
        let l = tokens.first().map_or(0, |t| t.len());
        if b == 0 || l == 0 || caches.len() != b || tokens.iter().any(|t| t.len() != l) {
            return Err(Error::Inference(
                "forward needs one cache per sequence and equal, non-zero lengths".to_owned(),
            ));
        }
        if caches.iter().any(|c| c.len + l > self.cfg.context_length) {
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
        if l == 1 {
            return self.forward_decode(&ids, caches);
        }
        let ids = Tensor::from_vec(ids, b * l, &self.device)?;
        let mut x = self
            .embed
            .index_select(&ids, 0)?
            .reshape((b, l, self.cfg.hidden))?;

        let positions: Vec<usize> = caches.iter().map(|c| c.len).collect();
        let (cos, sin) = self.rope_for(&positions, l)?;
        let masks = positions
            .iter()
            .map(|&p| causal_mask(l, p, &self.device))
            .collect::<Result<Vec<_>>>()?;
        for (li, layer) in self.layers.iter().enumerate() {
            let h = layer.attn_norm.forward(&x)?;
            let attn = self.attention(layer, li, &h, &cos, &sin, &masks, caches)?;
            x = (layer.wo.forward(&attn)? + x)?;
            let h = layer.ffn_norm.forward(&x)?;
            let [gate, up] = Matrix::forward_many([&layer.gate, &layer.up], &h)?;
            let mlp = (candle_nn::ops::silu(&gate)? * up)?;
            x = (layer.down.forward(&mlp)? + x)?;
        }
        for c in caches.iter_mut() {
            c.len += l;
        }
        let last = x.narrow(1, l - 1, 1)?.squeeze(1)?;
        let last = self.norm.forward(&last)?;
        Ok(self.output.forward(&last)?.to_dtype(DType::F32)?)
    }

    /// One layer's attention over several new tokens (a prompt), with candle's operations:
    /// the same logits as candle's `quantized_llama`, bit for bit.
    #[expect(
        clippy::too_many_arguments,
        reason = "one layer's inputs, called from one place"
    )]
    fn attention(
        &self,
        layer: &Layer,
        li: usize,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        masks: &[Option<Tensor>],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, l, _) = h.dims3()?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((b, l, n, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let [q, k, v] = Matrix::forward_many([&layer.wq, &layer.wk, &layer.wv], h)?;
        let (q, k, v) = (
            heads(q, c.n_head)?,
            heads(k, c.n_kv_head)?,
            heads(v, c.n_kv_head)?,
        );
        let q = candle_nn::rotary_emb::rope_i(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope_i(&k, cos, sin)?;
        let n_rep = c.n_head / c.n_kv_head;
        let scale = (c.head_dim as f64).sqrt();
        let mut outs = Vec::with_capacity(b);
        for (i, cache) in caches.iter_mut().enumerate() {
            let ki = k.narrow(0, i, 1)?;
            let vi = v.narrow(0, i, 1)?;
            let past = cache.layers[li].tensors(self.attention_shape(), &self.device)?;
            cache.layers[li].push_tensors(&ki, &vi)?;
            let (ki, vi) = match past {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &ki], 2)?, Tensor::cat(&[&pv, &vi], 2)?),
                None => (ki, vi),
            };
            // The same operations as candle's quantized_llama, so the logits are bit-identical
            // (the matmuls quantize their inputs to 8 bits, which turns any change in float
            // summation order, e.g. grouping query heads instead of repeating keys, into
            // visibly different logits).
            let ki = repeat_kv(ki, n_rep)?;
            let vi = repeat_kv(vi, n_rep)?.contiguous()?;
            let att = (q.narrow(0, i, 1)?.matmul(&ki.t()?)? / scale)?;
            let att = match &masks[i] {
                Some(m) => att.broadcast_add(m)?,
                None => att,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            outs.push(
                att.matmul(&vi)?
                    .transpose(1, 2)?
                    .reshape((1, l, c.hidden))?,
            );
        }
        Ok(Tensor::cat(&outs, 0)?)
    }

    /// cos/sin rows for positions `p..p+l` of each sequence: `[l, d/2]` for one sequence,
    /// `[b, l, d/2]` for several.
    fn rope_for(&self, positions: &[usize], l: usize) -> Result<(Tensor, Tensor)> {
        if let [p] = positions {
            return Ok((
                self.rope.cos.narrow(0, *p, l)?,
                self.rope.sin.narrow(0, *p, l)?,
            ));
        }
        let idx: Vec<u32> = positions
            .iter()
            .flat_map(|&p| (p..p + l).map(|x| x as u32))
            .collect();
        let idx = Tensor::from_vec(idx, positions.len() * l, &self.device)?;
        let half = self.cfg.head_dim / 2;
        let shape = (positions.len(), l, half);
        Ok((
            self.rope.cos.index_select(&idx, 0)?.reshape(shape)?,
            self.rope.sin.index_select(&idx, 0)?.reshape(shape)?,
        ))
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
        cos,
        sin,
    })
}

/// Additive mask `[l, p + l]` hiding future positions; `None` for a single query.
fn causal_mask(l: usize, p: usize, device: &Device) -> Result<Option<Tensor>> {
    if l == 1 {
        return Ok(None);
    }
    let t = p + l;
    let data: Vec<f32> = (0..l)
        .flat_map(|i| (0..t).map(move |j| if j > p + i { f32::NEG_INFINITY } else { 0. }))
        .collect();
    Ok(Some(Tensor::from_vec(data, (l, t), device)?))
}

/// Index of the largest logit (greedy decoding).
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}
