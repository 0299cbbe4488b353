//! A prompt's attention (several new tokens of a sequence at once) with candle's own
//! operations, as candle's `quantized_llama` runs them: the same logits, bit for bit (the
//! matrix products quantize their inputs to 8 bits, which turns any change in the float
//! summation order, e.g. grouping query heads instead of repeating keys, into visibly
//! different logits).

use candle_core::{Device, Tensor};
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
        let att = (q.matmul(&k.t()?)? / scale)?;
        // `cache.len`: the positions before these tokens (counted up after the pass).
        let att = att.broadcast_add(&causal_mask(l, cache.len, &self.device)?)?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let o = att.matmul(&v)?.transpose(1, 2)?.flatten_all()?;
        Ok(o.to_vec1::<f32>()?)
    }
}

/// Additive mask `[l, p + l]` hiding, from each of `l` new tokens after `p` cached ones,
/// the tokens after it.
fn causal_mask(l: usize, p: usize, device: &Device) -> Result<Tensor> {
    let t = p + l;
    let data: Vec<f32> = (0..l)
        .flat_map(|i| (0..t).map(move |j| if j > p + i { f32::NEG_INFINITY } else { 0. }))
        .collect();
    Ok(Tensor::from_vec(data, (l, t), device)?)
}
