//! The forward pass on plain rows of activations, for decode steps (one new token of a
//! sequence) and prompts (several) alike, mixed in one pass: the same operations as
//! candle's `quantized_llama`, in the same order (its logits agree bit for bit;
//! `tests/engine.rs`), without a tensor, an allocation or a dispatch per element-wise step.
//! Every row is computed on its own (the products, the norms and the element-wise steps are
//! per row; attention per sequence), so a sequence's result never depends on the rest of
//! the batch. The products go to Veil's kernels over candle's thread pool, and so do decode
//! attention and the gated product; a prompt's attention runs candle's operations
//! (`prompt.rs`).

use candle_core::Tensor;
use veil_kernels::{decode_attention, rope_interleaved, silu_mul};

use super::{KvCache, Layer, Llama, Matrix};
use crate::error::Result;

impl Llama {
    /// [`Llama::forward`] for sequence `i` continued by `lens[i]` tokens (`ids`, sequence
    /// after sequence): `[batch, vocab]` logits after each sequence's last token.
    pub(super) fn forward_rows(
        &self,
        ids: &[u32],
        lens: &[usize],
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (hidden, dev) = (self.cfg.hidden, &self.device);
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
            let attn = self.attention(layer, li, &h, lens, caches)?;
            add(&mut x, &layer.wo.rows(&attn, qw, dev)?);
            layer.ffn_norm.rows(&x, &mut h);
            let [mut gate, up] = Matrix::rows_many([&layer.gate, &layer.up], &h, hidden, dev)?;
            silu_mul(&mut gate, &up);
            let width = gate.len() / ids.len();
            add(&mut x, &layer.down.rows(&gate, width, dev)?);
        }
        for (c, &l) in caches.iter_mut().zip(lens) {
            c.len += l;
        }
        // Each sequence's last row.
        let mut last = Vec::with_capacity(lens.len() * hidden);
        let mut end = 0;
        for &l in lens {
            end += l;
            last.extend_from_slice(&x[(end - 1) * hidden..end * hidden]);
        }
        let mut normed = vec![0f32; last.len()];
        self.norm.rows(&last, &mut normed);
        let logits = self.output.rows(&normed, hidden, dev)?;
        Ok(Tensor::from_vec(
            logits,
            (lens.len(), self.cfg.vocab_size),
            dev,
        )?)
    }

    /// One layer's attention for every sequence, as rows (`h`: the normalized rows): the
    /// query/key/value products for all rows at once, then, per sequence, Veil's fused
    /// decode attention for a single new token, candle's operations for several.
    fn attention(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        lens: &[usize],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let shape = self.attention_shape();
        let qw = shape.q_width();
        let q = self.project_qkv(layer, li, h, lens, caches)?;
        let mut out = vec![0f32; q.len()];
        let starts = row_starts(lens);
        // The single-token sequences together, through the kernel.
        let decoding: Vec<usize> = (0..lens.len()).filter(|&i| lens[i] == 1).collect();
        if !decoding.is_empty() {
            let mut qs = Vec::with_capacity(decoding.len() * qw);
            for &i in &decoding {
                qs.extend_from_slice(&q[starts[i] * qw..][..qw]);
            }
            let views: Vec<_> = decoding
                .iter()
                .map(|&i| caches[i].layers[li].view())
                .collect();
            let mut o = vec![0f32; qs.len()];
            decode_attention(shape, &qs, &views, &mut o);
            for (n, &i) in decoding.iter().enumerate() {
                out[starts[i] * qw..][..qw].copy_from_slice(&o[n * qw..][..qw]);
            }
        }
        for (i, &l) in lens.iter().enumerate().filter(|&(_, &l)| l > 1) {
            let rows = starts[i] * qw..(starts[i] + l) * qw;
            let o = self.attention_prompt(li, &q[rows.clone()], l, &*caches[i])?;
            out[rows].copy_from_slice(&o);
        }
        Ok(out)
    }

    /// The query/key/value rows of `h`, with RoPE applied at each token's position; the
    /// keys and values are appended to each sequence's cache, the queries returned.
    fn project_qkv(
        &self,
        layer: &Layer,
        li: usize,
        h: &[f32],
        lens: &[usize],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<f32>> {
        let shape = self.attention_shape();
        let (qw, kvw, hd) = (shape.q_width(), shape.kv_width(), shape.head_dim);
        let mats = [&layer.wq, &layer.wk, &layer.wv];
        let [mut q, mut k, v] = Matrix::rows_many(mats, h, self.cfg.hidden, &self.device)?;
        let starts = row_starts(lens);
        for ((cache, &l), &start) in caches.iter_mut().zip(lens).zip(&starts) {
            for t in 0..l {
                let (cos, sin) = self.rope.row(cache.len + t, hd / 2);
                let row = start + t;
                rope_interleaved(&mut q[row * qw..][..qw], hd, cos, sin);
                rope_interleaved(&mut k[row * kvw..][..kvw], hd, cos, sin);
            }
            let new = start * kvw..(start + l) * kvw;
            cache.layers[li].push(&k[new.clone()], &v[new]);
        }
        Ok(q)
    }
}

/// The first row of each sequence.
fn row_starts(lens: &[usize]) -> Vec<usize> {
    lens.iter()
        .scan(0, |at, &l| {
            let start = *at;
            *at += l;
            Some(start)
        })
        .collect()
}

/// The residual connection: `x += y`, element by element (candle's `y + x`: the same sum).
fn add(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}
