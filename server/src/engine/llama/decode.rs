//! One decode step (one new token per sequence) on plain rows: the same operations as the
//! tensor path, in the same order (the logits agree bit for bit; `tests/engine.rs`), without
//! a tensor, an allocation or a dispatch per element-wise step. The products go to Veil's
//! kernels over candle's thread pool, and so do attention and the gated product.

use candle_core::Tensor;
use veil_kernels::{decode_attention, rope_interleaved, silu_mul};

use super::{KvCache, Layer, Llama, Matrix};
use crate::error::Result;

impl Llama {
    /// [`Llama::forward`] for one token per sequence: `[batch, vocab]` logits.
    pub(super) fn forward_decode(
        &self,
        tokens: &[u32],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (b, hidden, dev) = (tokens.len(), self.cfg.hidden, &self.device);
        let ids = Tensor::from_slice(tokens, b, dev)?;
        let mut x = self
            .embed
            .index_select(&ids, 0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut h = vec![0f32; x.len()];
        for (li, layer) in self.layers.iter().enumerate() {
            layer.attn_norm.rows(&x, &mut h);
            let attn = self.attention_decode(layer, li, &h, caches)?;
            add(
                &mut x,
                &layer
                    .wo
                    .rows(&attn, self.attention_shape().q_width(), dev)?,
            );
            layer.ffn_norm.rows(&x, &mut h);
            let [mut gate, up] = Matrix::rows_many([&layer.gate, &layer.up], &h, hidden, dev)?;
            silu_mul(&mut gate, &up);
            let width = gate.len() / b;
            add(&mut x, &layer.down.rows(&gate, width, dev)?);
        }
        for c in caches.iter_mut() {
            c.len += 1;
        }
        self.norm.rows(&x, &mut h);
        let logits = self.output.rows(&h, hidden, dev)?;
        Ok(Tensor::from_vec(logits, (b, self.cfg.vocab_size), dev)?)
    }

    /// One layer's attention for one new token per sequence: RoPE and the cache append done
    /// here on plain rows, then Veil's fused decode attention (`veil_kernels`), whose result
    /// for a sequence does not depend on the rest of the batch. `h`: the normalized rows.
    fn attention_decode(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let shape = self.attention_shape();
        let (qw, kvw, hd) = (shape.q_width(), shape.kv_width(), shape.head_dim);
        let mats = [&layer.wq, &layer.wk, &layer.wv];
        let [mut q, mut k, v] = Matrix::rows_many(mats, h, self.cfg.hidden, &self.device)?;
        for (i, cache) in caches.iter_mut().enumerate() {
            let (cos, sin) = self.rope.row(cache.len, hd / 2);
            rope_interleaved(&mut q[i * qw..][..qw], hd, cos, sin);
            let ki = &mut k[i * kvw..][..kvw];
            rope_interleaved(ki, hd, cos, sin);
            cache.layers[li].push(ki, &v[i * kvw..][..kvw]);
        }
        let views: Vec<_> = caches.iter().map(|c| c.layers[li].view()).collect();
        let mut out = vec![0f32; caches.len() * qw];
        decode_attention(shape, &q, &views, &mut out);
        Ok(out)
    }
}

/// The residual connection: `x += y`, element by element (candle's `y + x`: the same sum).
fn add(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}
