//! The forward pass on plain rows of activations, for a decode step (one new token per
//! sequence) and for a prompt alike: the same operations as candle's `quantized_llama`, in
//! the same order (its logits agree bit for bit; `tests/engine.rs`), without a tensor, an
//! allocation or a dispatch per element-wise step. The products go to Veil's kernels over
//! candle's thread pool, and so do decode attention and the gated product; a prompt's
//! attention runs candle's own operations (`prompt.rs`).

use candle_core::Tensor;
use veil_kernels::{decode_attention, rope_interleaved, silu_mul};

use super::{KvCache, Layer, Llama, Matrix};
use crate::error::Result;

impl Llama {
    /// [`Llama::forward`] for `b` sequences of `l` new tokens each (`ids`, sequence-major):
    /// `[b, vocab]` logits after each sequence's last token.
    pub(super) fn forward_rows(
        &self,
        ids: &[u32],
        l: usize,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (b, hidden, dev) = (caches.len(), self.cfg.hidden, &self.device);
        let qw = self.attention_shape().q_width();
        let idt = Tensor::from_slice(ids, ids.len(), dev)?;
        let mut x = self
            .embed
            .index_select(&idt, 0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut h = vec![0f32; x.len()];
        for (li, layer) in self.layers.iter().enumerate() {
            layer.attn_norm.rows(&x, &mut h);
            let attn = if l == 1 {
                self.attention_decode(layer, li, &h, caches)?
            } else {
                self.attention_prompt(layer, li, &h, l, caches)?
            };
            add(&mut x, &layer.wo.rows(&attn, qw, dev)?);
            layer.ffn_norm.rows(&x, &mut h);
            let [mut gate, up] = Matrix::rows_many([&layer.gate, &layer.up], &h, hidden, dev)?;
            silu_mul(&mut gate, &up);
            let width = gate.len() / (b * l);
            add(&mut x, &layer.down.rows(&gate, width, dev)?);
        }
        for c in caches.iter_mut() {
            c.len += l;
        }
        // Each sequence's last position.
        let last: Vec<f32> = x
            .chunks_exact(l * hidden)
            .flat_map(|seq| &seq[(l - 1) * hidden..])
            .copied()
            .collect();
        let mut normed = vec![0f32; last.len()];
        self.norm.rows(&last, &mut normed);
        let logits = self.output.rows(&normed, hidden, dev)?;
        Ok(Tensor::from_vec(logits, (b, self.cfg.vocab_size), dev)?)
    }

    /// The query/key/value rows of `h` (`l` tokens per sequence), with RoPE applied at each
    /// token's position, and the keys and values appended to each sequence's cache.
    pub(super) fn project_qkv(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        l: usize,
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let shape = self.attention_shape();
        let (qw, kvw, hd) = (shape.q_width(), shape.kv_width(), shape.head_dim);
        let mats = [&layer.wq, &layer.wk, &layer.wv];
        let [mut q, mut k, v] = Matrix::rows_many(mats, h, self.cfg.hidden, &self.device)?;
        for (i, cache) in caches.iter_mut().enumerate() {
            for t in 0..l {
                let (cos, sin) = self.rope.row(cache.len + t, hd / 2);
                let row = i * l + t;
                rope_interleaved(&mut q[row * qw..][..qw], hd, cos, sin);
                rope_interleaved(&mut k[row * kvw..][..kvw], hd, cos, sin);
            }
            let new = i * l * kvw..(i + 1) * l * kvw;
            cache.layers[li].push(&k[new.clone()], &v[new]);
        }
        Ok(q)
    }

    /// One layer's attention for one new token per sequence: Veil's fused decode attention
    /// (`veil_kernels`), whose result for a sequence does not depend on the rest of the
    /// batch. `h`: the normalized rows.
    fn attention_decode(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let shape = self.attention_shape();
        let q = self.project_qkv(layer, li, h, 1, caches)?;
        let views: Vec<_> = caches.iter().map(|c| c.layers[li].view()).collect();
        let mut out = vec![0f32; caches.len() * shape.q_width()];
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
