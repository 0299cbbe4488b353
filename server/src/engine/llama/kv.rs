//! A sequence's key/value cache: per layer, one growing buffer of keys and one of values,
//! position after position, appended in place (no tensor concatenation per step), with a
//! bounded reserve.

use candle_core::{Device, Tensor};
use veil_kernels::{AttentionShape, KvView};

use crate::error::Result;

/// One layer's keys and values, each `len * n_kv_head * head_dim` floats, position-major.
#[derive(Debug, Clone, Default)]
pub(super) struct LayerKv {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl LayerKv {
    /// Appends whole positions: `k` and `v` are position-major rows of keys and values.
    pub(super) fn push(&mut self, k: &[f32], v: &[f32]) {
        debug_assert_eq!(k.len(), v.len());
        grow(&mut self.k, k.len());
        grow(&mut self.v, v.len());
        self.k.extend_from_slice(k);
        self.v.extend_from_slice(v);
    }

    /// The cache as `[1, n_kv_head, len, head_dim]` tensors (for a prefill that continues a
    /// sequence), or `None` while empty.
    pub(super) fn tensors(
        &self,
        shape: AttentionShape,
        device: &Device,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if self.k.is_empty() {
            return Ok(None);
        }
        let len = self.k.len() / shape.kv_width();
        let t = |x: &[f32]| -> Result<Tensor> {
            Ok(
                Tensor::from_slice(x, (1, len, shape.n_kv_head, shape.head_dim), device)?
                    .transpose(1, 2)?,
            )
        };
        Ok(Some((t(&self.k)?, t(&self.v)?)))
    }

    /// The cache as the attention kernel reads it.
    pub(super) fn view(&self) -> KvView<'_> {
        KvView {
            k: &self.k,
            v: &self.v,
        }
    }
}

/// Floats a buffer may hold in reserve: 256 KiB (341 positions of SmolLM2's 192 floats).
const MAX_SLACK: usize = 1 << 16;

/// Makes room for `more` floats: doubling while small, then [`MAX_SLACK`] at a time, so a
/// long sequence's cache is never more than 256 KiB per buffer larger than what it holds.
fn grow(buf: &mut Vec<f32>, more: usize) {
    let need = buf.len() + more;
    if need > buf.capacity() {
        let target = need.max((buf.len() * 2).min(buf.len() + MAX_SLACK));
        buf.reserve_exact(target - buf.len());
    }
}

/// One sequence's attention keys and values, per layer, and its length.
#[derive(Debug)]
pub struct KvCache {
    pub(super) layers: Vec<LayerKv>,
    pub(super) len: usize,
}

impl KvCache {
    pub(super) fn new(n_layer: usize) -> Self {
        Self {
            layers: vec![LayerKv::default(); n_layer],
            len: 0,
        }
    }

    /// Tokens already in the cache (the position of the next one).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been run yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_reserve_and_its_contents() {
        let mut kv = LayerKv::default();
        let row: Vec<f32> = (0..192).map(|x| x as f32).collect();
        for _ in 0..3000 {
            kv.push(&row, &row);
        }
        assert_eq!(kv.k.len(), 3000 * 192);
        assert!(
            kv.k.capacity() <= kv.k.len() + MAX_SLACK,
            "{}",
            kv.k.capacity()
        );
        assert_eq!(&kv.v[2999 * 192..], row.as_slice());
    }
}
