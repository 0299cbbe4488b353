//! A sequence's key/value cache: per layer, one buffer of keys and one of values, head-major
//! (each key/value head's positions contiguous, as candle's concatenated cache is, so the
//! attention kernel streams each head's rows from memory at full bandwidth), appended in
//! place (no tensor concatenation per step), with a bounded reserve.
//!
//! A finished sequence's buffers are wiped and handed to the next one ([`KvPool`]): writing
//! new positions into freshly allocated memory costs a page fault every few positions
//! (about 40 per decode step at eight sequences, 3-5 % of the step), memory already mapped
//! costs none. No key or value is left in memory given back to the allocator: buffers are
//! zeroed when a sequence ends and when they are outgrown.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{Device, Tensor};
use veil_kernels::{AttentionShape, KvView};

use crate::error::Result;

/// One layer's keys and values: head `g`'s `len` positions are `head_dim`-float rows from
/// `g * capacity * head_dim` in `k` (and in `v`); the rest of each head's room is reserve.
#[derive(Debug, Clone)]
pub(super) struct LayerKv {
    shape: AttentionShape,
    k: Vec<f32>,
    v: Vec<f32>,
    len: usize,
    capacity: usize,
}

impl LayerKv {
    fn new(shape: AttentionShape) -> Self {
        Self {
            shape,
            k: Vec::new(),
            v: Vec::new(),
            len: 0,
            capacity: 0,
        }
    }

    /// Appends whole positions: `k` and `v` are position-major rows of keys and values
    /// (`n_kv_head * head_dim` floats each, heads in order).
    pub(super) fn push(&mut self, k: &[f32], v: &[f32]) {
        let (kvw, hd) = (self.shape.kv_width(), self.shape.head_dim);
        debug_assert!(k.len() == v.len() && k.len().is_multiple_of(kvw));
        let more = k.len() / kvw;
        self.reserve(more);
        let cap = self.capacity;
        for (buf, rows) in [(&mut self.k, k), (&mut self.v, v)] {
            for (t, row) in rows.chunks_exact(kvw).enumerate() {
                for (g, head) in row.chunks_exact(hd).enumerate() {
                    buf[(g * cap + self.len + t) * hd..][..hd].copy_from_slice(head);
                }
            }
        }
        self.len += more;
    }

    /// Makes room for `more` positions: doubling while small, then [`MAX_SLACK`] floats at a
    /// time, so a long sequence's buffers are never more than that larger than what they hold.
    fn reserve(&mut self, more: usize) {
        let need = self.len + more;
        if need <= self.capacity {
            return;
        }
        let slack = (MAX_SLACK / self.shape.kv_width()).max(1);
        let capacity = need.max((self.len * 2).min(self.len + slack));
        let hd = self.shape.head_dim;
        for buf in [&mut self.k, &mut self.v] {
            let mut grown = vec![0f32; self.shape.n_kv_head * capacity * hd];
            for g in 0..self.shape.n_kv_head {
                grown[g * capacity * hd..][..self.len * hd]
                    .copy_from_slice(&buf[g * self.capacity * hd..][..self.len * hd]);
            }
            // The old buffer goes back to the allocator: not with the keys in it.
            zero_held(buf, self.shape, self.len, self.capacity);
            std::hint::black_box(&*buf);
            *buf = grown;
        }
        self.capacity = capacity;
    }

    /// The cache as contiguous `[1, n_kv_head, len, head_dim]` tensors (for a prefill that
    /// continues a sequence), or `None` while empty.
    pub(super) fn tensors(&self, device: &Device) -> Result<Option<(Tensor, Tensor)>> {
        if self.len == 0 {
            return Ok(None);
        }
        let (n_kv, hd) = (self.shape.n_kv_head, self.shape.head_dim);
        let t = |x: &[f32]| -> Result<Tensor> {
            let mut rows = Vec::with_capacity(n_kv * self.len * hd);
            for g in 0..n_kv {
                rows.extend_from_slice(&x[g * self.capacity * hd..][..self.len * hd]);
            }
            Ok(Tensor::from_vec(rows, (1, n_kv, self.len, hd), device)?)
        };
        Ok(Some((t(&self.k)?, t(&self.v)?)))
    }

    /// The cache as the attention kernel reads it.
    pub(super) fn view(&self) -> KvView<'_> {
        KvView::new(&self.k, &self.v, self.len, self.capacity)
    }

    /// Zeroes every position held (no key or value outlives its sequence) and empties the
    /// cache, keeping its buffers.
    fn wipe(&mut self) {
        for buf in [&mut self.k, &mut self.v] {
            zero_held(buf, self.shape, self.len, self.capacity);
        }
        self.len = 0;
    }

    /// Bytes of its buffers.
    fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * size_of::<f32>()
    }
}

/// Zeroes the `len` positions each head holds in `buf` (laid out for `capacity`).
fn zero_held(buf: &mut [f32], shape: AttentionShape, len: usize, capacity: usize) {
    let hd = shape.head_dim;
    for g in 0..shape.n_kv_head {
        buf[g * capacity * hd..][..len * hd].fill(0.0);
    }
}

/// Buffers of finished sequences, wiped, for the next ones to write into.
#[derive(Debug)]
pub(super) struct KvPool {
    shape: AttentionShape,
    n_layer: usize,
    free: Mutex<Vec<Vec<LayerKv>>>,
}

/// Bytes of wiped buffers a pool keeps at most: enough for eight sequences of about 700
/// positions of SmolLM2-135M (46 KiB per position); a longer sequence's buffers are freed.
const MAX_KEPT: usize = 256 << 20;

impl KvPool {
    pub(super) fn new(n_layer: usize, shape: AttentionShape) -> Arc<Self> {
        Arc::new(Self {
            shape,
            n_layer,
            free: Mutex::new(Vec::new()),
        })
    }

    /// An empty cache: a finished sequence's buffers if any are kept, else new ones.
    pub(super) fn cache(self: &Arc<Self>) -> KvCache {
        let kept = self.lock().pop();
        KvCache {
            layers: kept.unwrap_or_else(|| vec![LayerKv::new(self.shape); self.n_layer]),
            len: 0,
            pool: Some(Arc::clone(self)),
        }
    }

    /// Wipes `layers` and keeps them if the pool has room.
    fn put(&self, mut layers: Vec<LayerKv>) {
        layers.iter_mut().for_each(LayerKv::wipe);
        let bytes: usize = layers.iter().map(LayerKv::bytes).sum();
        let mut free = self.lock();
        let kept: usize = free.iter().flatten().map(LayerKv::bytes).sum();
        if kept + bytes <= MAX_KEPT {
            free.push(layers);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<LayerKv>>> {
        // The list is valid after any panic (a push or a pop), so a poisoned lock is used.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Floats a buffer may hold in reserve: 256 KiB (341 positions of SmolLM2's 192 floats).
const MAX_SLACK: usize = 1 << 16;

/// One sequence's attention keys and values, per layer, and its length. Dropped, its
/// buffers are wiped and go back to the pool it came from.
#[derive(Debug)]
pub struct KvCache {
    pub(super) layers: Vec<LayerKv>,
    pub(super) len: usize,
    pool: Option<Arc<KvPool>>,
}

impl Drop for KvCache {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.put(std::mem::take(&mut self.layers));
        }
    }
}

impl KvCache {
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

    const SHAPE: AttentionShape = AttentionShape {
        n_head: 9,
        n_kv_head: 3,
        head_dim: 64,
    };

    /// Position `p`'s row: its floats say which position, head and lane they are.
    fn row(p: usize) -> Vec<f32> {
        (0..SHAPE.kv_width())
            .map(|i| (p * 1000 + i) as f32)
            .collect()
    }

    #[test]
    fn a_finished_sequences_buffers_are_wiped_and_reused() {
        let pool = KvPool::new(2, SHAPE);
        let mut first = pool.cache();
        for p in 0..40 {
            first.layers[1].push(&row(p), &row(p));
        }
        let (k_at, cap) = (first.layers[1].k.as_ptr(), first.layers[1].capacity);
        drop(first);
        let second = pool.cache();
        let layer = &second.layers[1];
        // The same memory, empty, every float of the first sequence zeroed.
        assert_eq!(
            (layer.k.as_ptr(), layer.capacity, layer.len),
            (k_at, cap, 0)
        );
        assert!(layer.k.iter().chain(&layer.v).all(|&x| x == 0.0));
        assert_eq!(second.len(), 0);
    }

    #[test]
    fn keeps_no_more_than_its_bound() {
        let pool = KvPool::new(1, SHAPE);
        let mut big = pool.cache();
        // More positions than MAX_KEPT bytes hold.
        let positions = MAX_KEPT / (2 * SHAPE.kv_width() * 4) + 1;
        let rows: Vec<f32> = (0..positions).flat_map(|_| row(0)).collect();
        big.layers[0].push(&rows, &rows);
        drop(big);
        assert!(pool.lock().is_empty(), "an oversized cache is freed");
        drop(pool.cache());
        assert_eq!(pool.lock().len(), 1, "a small one is kept");
    }

    #[test]
    fn keeps_a_bounded_reserve_and_each_heads_positions_in_order() -> Result<()> {
        let mut kv = LayerKv::new(SHAPE);
        // A prompt of 5, then one position at a time.
        let prompt: Vec<f32> = (0..5).flat_map(row).collect();
        kv.push(&prompt, &prompt);
        for p in 5..3000 {
            kv.push(&row(p), &row(p));
        }
        assert_eq!(kv.len, 3000);
        assert!(
            (kv.capacity - kv.len) * SHAPE.kv_width() <= MAX_SLACK,
            "{}",
            kv.capacity
        );
        let hd = SHAPE.head_dim;
        let (k, _) = kv.tensors(&Device::Cpu)?.expect("not empty");
        let k = k.flatten_all()?.to_vec1::<f32>()?;
        for g in 0..SHAPE.n_kv_head {
            for p in [0, 4, 5, 1234, 2999] {
                assert_eq!(
                    &k[(g * 3000 + p) * hd..][..hd],
                    &row(p)[g * hd..][..hd],
                    "head {g}, position {p}"
                );
                // The kernel's view holds the same rows where it says.
                let view = &kv.v[(g * kv.capacity + p) * hd..][..hd];
                assert_eq!(view, &row(p)[g * hd..][..hd]);
            }
        }
        Ok(())
    }
}
