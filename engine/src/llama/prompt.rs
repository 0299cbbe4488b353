//! A prompt's attention (several new tokens of a sequence at once) with candle's own
//! operations, as candle's `quantized_llama` runs them, the scaling, mask and softmax fused
//! into one pass (`veil_kernels::causal_softmax`): the same logits, bit for bit (the
//! matrix products quantize their inputs to 8 bits, which turns any change in the float
//! summation order, e.g. grouping query heads instead of repeating keys, into visibly
//! different logits).

use candle_core::Tensor;
use candle_transformers::utils::repeat_kv;

use super::{KvCache, Llama};
use crate::error::{Error, Result};

impl Llama {
    /// One layer's attention of a sequence's `l` new tokens (`q`: their queries, after
    /// RoPE) over its cache, which already ends with their keys and values; as rows.
    pub(super) fn attention_prompt(
        &self,
        li: usize,
        q: &[f32],
        l: usize,
        cache: &KvCache,
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let n_rep = c.n_head / c.n_kv_head;
        let scale = (c.head_dim as f64).sqrt();
        let q = Tensor::from_slice(q, (1, l, c.n_head, c.head_dim), &self.device)?
            .transpose(1, 2)?
            .contiguous()?;
        // Contiguous, as candle's concatenation of past and new keys gives them.
        let Some((k, v)) = cache.layers[li].tensors(&self.device)? else {
            return Err(Error::Inference("an empty cache after a push".to_owned()));
        };
        let k = repeat_kv(k, n_rep)?;
        let v = repeat_kv(v, n_rep)?.contiguous()?;
        // candle's `(q · kᵀ) / sqrt(head_dim)`, the causal mask (`cache.len`: the positions
        // before these tokens, counted up after the pass) and its softmax, in one pass
        // over the scores: the same operations, the same bits.
        let att = q.matmul(&k.t()?)?;
        let width = cache.len + l;
        let mut scores = att.flatten_all()?.to_vec1::<f32>()?;
        veil_kernels::causal_softmax(&mut scores, width, l, cache.len, (1.0 / scale) as f32);
        let att = Tensor::from_vec(scores, (1, c.n_head, l, width), &self.device)?;
        let o = att.matmul(&v)?.transpose(1, 2)?.flatten_all()?;
        Ok(o.to_vec1::<f32>()?)
    }
}
