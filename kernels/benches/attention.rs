//! `decode_attention` against candle's operations for the same decode step (repeated
//! key/value heads, two matrix products, scale, softmax), on SmolLM2-135M's attention shape
//! (9 query heads, 3 key/value heads, 64 wide) for 8 sequences, at several cache lengths, in
//! one run. Prints time per layer-step and the kernel's speed over candle's.
//!
//! Run with: `CANDLE_NUM_THREADS=1 cargo bench -p veil-kernels --bench attention`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use veil_kernels::{AttentionShape, KvView, decode_attention};

/// Layers of SmolLM2-135M: each has its own caches.
const LAYERS: usize = 30;

fn main() -> candle_core::Result<()> {
    veil_kernels::settle_thread_count();
    let shape = AttentionShape {
        n_head: 9,
        n_kv_head: 3,
        head_dim: 64,
    };
    let (hd, b) = (shape.head_dim, 8usize);
    let n_rep = shape.n_head / shape.n_kv_head;
    let dev = Device::Cpu;
    let mut seed = 5u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    for len in [16usize, 128, 256, 512] {
        let caches: Vec<(Vec<f32>, Vec<f32>)> = (0..b)
            .map(|_| {
                let mut kv = || (0..len * shape.kv_width()).map(|_| next()).collect();
                (kv(), kv())
            })
            .collect();
        let q: Vec<f32> = (0..b * shape.q_width()).map(|_| next()).collect();
        // candle, as quantized_llama runs it: per sequence, heads repeated, then the products.
        let per_seq: Vec<(Tensor, Tensor, Tensor)> = caches
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                // Head-major and contiguous, as candle's concatenated cache is.
                let kv = |x: &[f32]| Tensor::from_slice(x, (1, shape.n_kv_head, len, hd), &dev);
                let qi = &q[i * shape.q_width()..][..shape.q_width()];
                Ok((
                    Tensor::from_slice(qi, (1, shape.n_head, 1, hd), &dev)?,
                    kv(k)?,
                    kv(v)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        let iters = 200;
        let started = Instant::now();
        for _ in 0..iters {
            for (qi, k, v) in &per_seq {
                let k = candle_transformers_like_repeat(k, n_rep)?;
                let v = candle_transformers_like_repeat(v, n_rep)?.contiguous()?;
                let att = (qi.matmul(&k.t()?)? / (hd as f64).sqrt())?;
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                std::hint::black_box(att.matmul(&v)?);
            }
        }
        let base = started.elapsed().as_secs_f64() / f64::from(iters);
        let views: Vec<KvView<'_>> = caches
            .iter()
            .map(|(k, v)| KvView::new(k, v, len, len))
            .collect();
        let mut out = vec![0f32; q.len()];
        let started = Instant::now();
        for _ in 0..iters {
            decode_attention(shape, std::hint::black_box(&q), &views, &mut out);
        }
        let t = started.elapsed().as_secs_f64() / f64::from(iters);
        // As in a model: a step reads every layer's caches once, more than the last-level
        // cache holds, so they come from memory.
        let layers: Vec<Vec<(Vec<f32>, Vec<f32>)>> = (0..LAYERS).map(|_| caches.clone()).collect();
        let views: Vec<Vec<KvView<'_>>> = layers
            .iter()
            .map(|l| l.iter().map(|(k, v)| KvView::new(k, v, len, len)).collect())
            .collect();
        let steps = 20;
        let started = Instant::now();
        for _ in 0..steps {
            for v in &views {
                decode_attention(shape, std::hint::black_box(&q), v, &mut out);
            }
        }
        let cold = started.elapsed().as_secs_f64() / f64::from(steps * LAYERS as u32);
        let bytes = (2 * b * len * shape.kv_width() * 4) as f64;
        println!(
            "{b} sequences x {len} positions: candle {:.1} µs, kernel {:.1} µs ({:.2}x); \
             from memory ({LAYERS} layers) {:.1} µs per layer, {:.1} GB/s of cache",
            base * 1e6,
            t * 1e6,
            base / t,
            cold * 1e6,
            bytes / cold / 1e9
        );
    }
    Ok(())
}

/// `[1, kv_heads, len, hd]` → `[1, kv_heads * n_rep, len, hd]`, each head repeated in place
/// (what `candle_transformers::utils::repeat_kv` gives).
fn candle_transformers_like_repeat(x: &Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    Tensor::cat(&vec![x; n_rep], 2)?.reshape((b, h * n_rep, l, d))
}
