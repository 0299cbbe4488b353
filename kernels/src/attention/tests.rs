//! Decode attention against candle's operations, bit for bit; the AVX2 scores against the
//! portable statement of their order; the views it refuses.

use super::*;
use crate::test_rng::lcg;
use candle_core::{Device, Tensor};

fn random(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n).map(|_| 2.0 * lcg(seed)).collect()
}

/// The same attention with candle's operations, as candle's `quantized_llama` runs them
/// (repeated key/value heads, matmul, scale, softmax, matmul).
fn candle_reference(
    shape: AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> candle_core::Result<Vec<f32>> {
    let AttentionShape {
        n_head,
        n_kv_head,
        head_dim: hd,
    } = shape;
    let len = k.len() / shape.kv_width();
    let dev = &Device::Cpu;
    let q = Tensor::from_slice(q, (1, n_head, 1, hd), dev)?;
    // Head-major and contiguous, as candle's concatenated cache is.
    let kv = |x: &[f32]| -> candle_core::Result<Tensor> {
        let t = Tensor::from_slice(x, (1, n_kv_head, len, hd), dev)?;
        let n_rep = n_head / n_kv_head;
        t.unsqueeze(2)?
            .expand((1, n_kv_head, n_rep, len, hd))?
            .reshape((1, n_head, len, hd))
    };
    let (k, v) = (kv(k)?, kv(v)?.contiguous()?);
    let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    att.matmul(&v)?.flatten_all()?.to_vec1::<f32>()
}

#[test]
fn equals_candle_bit_for_bit_and_ignores_the_rest_of_the_batch() -> candle_core::Result<()> {
    let shape = AttentionShape {
        n_head: 9,
        n_kv_head: 3,
        head_dim: 64,
    };
    let mut seed = 7;
    // Every gemm path: one and two positions (gevv), up to 256 (horizontal kernel), more
    // (row-major gemv); and candle's softmax sum with and without whole 32-chunks.
    let lens = [1usize, 2, 3, 5, 31, 32, 40, 255, 256, 257, 300, 1000];
    let caches: Vec<(Vec<f32>, Vec<f32>)> = lens
        .iter()
        .map(|&l| {
            (
                random(l * shape.kv_width(), &mut seed),
                random(l * shape.kv_width(), &mut seed),
            )
        })
        .collect();
    // The same caches in buffers with room for more positions, the room filled with
    // NaN: a read past a head's `len` positions would show in the output.
    let roomy: Vec<(Vec<f32>, Vec<f32>, usize)> = caches
        .iter()
        .zip(lens)
        .enumerate()
        .map(|(i, ((k, v), l))| {
            let cap = l + i % 3;
            (
                with_room(k, shape, l, cap),
                with_room(v, shape, l, cap),
                cap,
            )
        })
        .collect();
    let q = random(lens.len() * shape.q_width(), &mut seed);
    let views: Vec<KvView<'_>> = roomy
        .iter()
        .zip(lens)
        .map(|((k, v, cap), l)| KvView::new(k, v, l, *cap))
        .collect();
    let mut out = vec![0f32; q.len()];
    decode_attention(shape, &q, &views, &mut out);
    for (i, (k, v)) in caches.iter().enumerate() {
        let qi = &q[i * shape.q_width()..][..shape.q_width()];
        let want = candle_reference(shape, qi, k, v)?;
        let got = &out[i * shape.q_width()..][..shape.q_width()];
        assert_eq!(got, want, "{} positions", lens[i]);
        // Alone, the same sequence gives the same bits.
        let mut alone = vec![0f32; shape.q_width()];
        decode_attention(shape, qi, &views[i..=i], &mut alone);
        assert_eq!(alone, got, "sequence {i} depends on its batch");
    }
    Ok(())
}

/// Head-major `x` (`len` positions per head) in a buffer of `cap` positions per head,
/// the rest NaN.
fn with_room(x: &[f32], shape: AttentionShape, len: usize, cap: usize) -> Vec<f32> {
    let hd = shape.head_dim;
    let mut out = vec![f32::NAN; shape.n_kv_head * cap * hd];
    for (g, head) in x.chunks_exact(len * hd).enumerate() {
        out[g * cap * hd..][..len * hd].copy_from_slice(head);
    }
    out
}

/// The AVX2 scores equal the portable ones (the statement of gemm's order) at widths
/// with and without whole 64-float chunks, on both of gemm's paths and with partial
/// blocks of keys; a changed reduction order would show in the low bits.
#[test]
fn simd_scores_equal_the_portable_ones() {
    #[cfg(target_arch = "x86_64")]
    let Simd::Avx2(cpu) = Simd::for_width(64) else {
        return; // no AVX2 here: the portable path is the only one
    };
    #[cfg(not(target_arch = "x86_64"))]
    return;
    let mut seed = 11;
    for hd in [8usize, 64, 72, 128, 136] {
        for len in [1usize, 5, 8, 13, 300] {
            let q = random(hd, &mut seed);
            let keys = random(len * hd, &mut seed);
            for horizontal in [true, false] {
                let mut want = vec![0f32; len];
                score_row(&q, &keys, horizontal, 0.125, &mut want);
                let mut got = vec![f32::NAN; len];
                #[cfg(target_arch = "x86_64")]
                x86::score_row(
                    cpu,
                    &q,
                    &keys,
                    horizontal,
                    0.125,
                    &mut got,
                    Some(&keys),
                    &keys,
                );
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "hd {hd}, {len} keys, horizontal {horizontal}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "a cache holds whole heads")]
fn refuses_a_view_longer_than_its_buffers() {
    let shape = AttentionShape {
        n_head: 2,
        n_kv_head: 1,
        head_dim: 4,
    };
    let (k, v) = (vec![0f32; 8], vec![0f32; 8]);
    decode_attention(
        shape,
        &[0.0; 8],
        &[KvView::new(&k, &v, 3, 2)],
        &mut [0.0; 8],
    );
}

#[test]
fn rope_equals_candle_rope_i_bit_for_bit() -> candle_core::Result<()> {
    let (heads, hd) = (9, 64);
    let mut seed = 3;
    let x = random(heads * hd, &mut seed);
    let cos = random(hd / 2, &mut seed);
    let sin = random(hd / 2, &mut seed);
    let dev = &Device::Cpu;
    let want = candle_nn::rotary_emb::rope_i(
        &Tensor::from_slice(&x, (1, heads, 1, hd), dev)?,
        &Tensor::from_slice(&cos, (1, hd / 2), dev)?,
        &Tensor::from_slice(&sin, (1, hd / 2), dev)?,
    )?
    .flatten_all()?
    .to_vec1::<f32>()?;
    let mut got = x.clone();
    rope_interleaved(&mut got, hd, &cos, &sin);
    assert_eq!(got, want);
    Ok(())
}

#[test]
#[should_panic(expected = "heads do not group")]
fn refuses_heads_that_do_not_group() {
    let shape = AttentionShape {
        n_head: 9,
        n_kv_head: 2,
        head_dim: 4,
    };
    decode_attention(shape, &[], &[], &mut []);
}
