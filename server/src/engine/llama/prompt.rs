//! A prompt's attention (several new tokens of a sequence at once) with candle's own
//! operations, as candle's `quantized_llama` runs them: the same logits, bit for bit (the
//! matrix products quantize their inputs to 8 bits, which turns any change in the float
//! summation order, e.g. grouping query heads instead of repeating keys, into visibly
//! different logits).

use candle_core::{Device, Tensor};
use candle_transformers::utils::repeat_kv;

use super::{KvCache, Layer, Llama};
use crate::error::{Error, Result};

impl Llama {
    /// One layer's attention over `l` new tokens of each sequence (`h`: their normalized
    /// rows, sequence-major), as rows.
    pub(super) fn attention_prompt(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        l: usize,
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let shape = self.attention_shape();
        let q = self.project_qkv(layer, li, h, l, caches)?;
        let n_rep = c.n_head / c.n_kv_head;
        let scale = (c.head_dim as f64).sqrt();
        let mut out = Vec::with_capacity(q.len());
        for (i, cache) in caches.iter().enumerate() {
            let qi = Tensor::from_slice(
                &q[i * l * shape.q_width()..][..l * shape.q_width()],
                (1, l, c.n_head, c.head_dim),
                &self.device,
            )?
            .transpose(1, 2)?
            .contiguous()?;
            // The cache, which now ends with these tokens' keys and values (contiguous, as
            // candle's concatenation of past and new gives them).
            let Some((k, v)) = cache.layers[li].tensors(shape, &self.device)? else {
                return Err(Error::Inference("an empty cache after a push".to_owned()));
            };
            let k = repeat_kv(k.contiguous()?, n_rep)?;
            let v = repeat_kv(v.contiguous()?, n_rep)?.contiguous()?;
            let att = (qi.matmul(&k.t()?)? / scale)?;
            let att = att.broadcast_add(&causal_mask(l, cache.len, &self.device)?)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.flatten_all()?;
            out.extend(o.to_vec1::<f32>()?);
        }
        Ok(out)
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
