//! The element-wise steps of a decoder layer on plain rows, as candle computes them: its
//! RMS norm (`candle_nn::ops::rms_norm`) and SiLU-gated product (`silu(gate) * up`), with the
//! same operations in the same order, so the same bits (the tests compare with candle).
//!
//! Done on the engine's own rows they need no tensor, no allocation and no dispatch per
//! step, and the gated product, whose `exp` per element is the costly part at several
//! sequences, is spread over candle's thread pool.

/// Each `alpha.len()`-wide row of `x` normalized by its root mean square and scaled by
/// `alpha`, into the same row of `out`: candle's `rms_norm` (the sum of squares in order,
/// `sqrt(sum / n + eps)`, then `x / rms * alpha`).
pub fn rms_norm(x: &[f32], alpha: &[f32], eps: f32, out: &mut [f32]) {
    let n = alpha.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n) && out.len() == x.len(),
        "whole rows of alpha's width"
    );
    for (xs, outs) in x.chunks(NORM_ROWS * n).zip(out.chunks_mut(NORM_ROWS * n)) {
        let sums = sums_of_squares(xs, n);
        for ((src, dst), sum2) in xs.chunks_exact(n).zip(outs.chunks_exact_mut(n)).zip(sums) {
            let m = (sum2 / n as f32 + eps).sqrt();
            for ((d, &s), &a) in dst.iter_mut().zip(src).zip(alpha) {
                *d = s / m * a;
            }
        }
    }
}

/// Rows whose sums of squares are taken together.
const NORM_ROWS: usize = 8;

/// The sum of squares of each `n`-wide row of `xs` (at most [`NORM_ROWS`] rows), each in
/// element order as candle adds them. A row's sum is a chain of dependent additions; a
/// batch's rows go together, their chains interleaved, so that they overlap rather than
/// run one after the other (the sums are the same).
fn sums_of_squares(xs: &[f32], n: usize) -> [f32; NORM_ROWS] {
    let mut sums = [0f32; NORM_ROWS];
    if xs.len() == NORM_ROWS * n {
        let rows: [&[f32]; NORM_ROWS] = std::array::from_fn(|r| &xs[r * n..(r + 1) * n]);
        for d in 0..n {
            for (sum, row) in sums.iter_mut().zip(&rows) {
                let v = row[d];
                *sum += v * v;
            }
        }
    } else {
        for (sum, row) in sums.iter_mut().zip(xs.chunks_exact(n)) {
            *sum = row.iter().fold(0.0, |s, &v| s + v * v);
        }
    }
    sums
}

/// Elements of [`silu_mul`] per work item on the pool (one item stays on the calling
/// thread).
const PIECE: usize = 2048;

/// `gate[i] = silu(gate[i]) * up[i]`, with candle's `silu` (`v / (1 + exp(-v))`).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gate and up of one width");
    let one = |g: &mut [f32], u: &[f32]| {
        let (mut gs, mut us) = (g.chunks_exact_mut(8), u.chunks_exact(8));
        for (g, u) in (&mut gs).zip(&mut us) {
            let (Ok(g), Ok(u)) = (<&mut [f32; 8]>::try_from(g), <&[f32; 8]>::try_from(u)) else {
                unreachable!("chunks of eight")
            };
            // The C library's exp, eight lanes at a time (`crate::exp`).
            let mut e = g.map(|v| -v);
            crate::exp::exp8(&mut e);
            for i in 0..8 {
                g[i] = g[i] / (1.0 + e[i]) * u[i];
            }
        }
        for (g, &u) in gs.into_remainder().iter_mut().zip(us.remainder()) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    };
    let pieces = gate.len().div_ceil(PIECE);
    if pieces <= 1 {
        one(gate, up);
        return;
    }
    crate::disjoint::spread_chunks(gate, PIECE, |range, g| {
        for (c, g) in range.zip(g.chunks_mut(PIECE)) {
            let at = c * PIECE;
            one(g, &up[at..at + g.len()]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;
    use candle_core::{Device, Tensor};

    fn random(n: usize, scale: f32, seed: &mut u64) -> Vec<f32> {
        (0..n).map(|_| scale * lcg(seed)).collect()
    }

    #[test]
    fn rms_norm_equals_candle_bit_for_bit() -> candle_core::Result<()> {
        // Eight rows together, then three alone.
        for rows in [8, 11, 1] {
            rms_norm_rows_equal_candle(rows)?;
        }
        Ok(())
    }

    fn rms_norm_rows_equal_candle(rows: usize) -> candle_core::Result<()> {
        let (n, eps) = (576, 1e-5);
        let mut seed = 11 + rows as u64;
        let x = random(rows * n, 4.0, &mut seed);
        let alpha = random(n, 1.0, &mut seed);
        let dev = &Device::Cpu;
        let want = candle_nn::ops::rms_norm(
            &Tensor::from_slice(&x, (rows, 1, n), dev)?,
            &Tensor::from_slice(&alpha, n, dev)?,
            eps,
        )?
        .flatten_all()?
        .to_vec1::<f32>()?;
        let mut got = vec![0f32; x.len()];
        rms_norm(&x, &alpha, eps, &mut got);
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn silu_mul_equals_candle_bit_for_bit_serial_and_spread() -> candle_core::Result<()> {
        let mut seed = 12;
        let dev = &Device::Cpu;
        // Under and over the size spread over the pool.
        for n in [1536, 8 * 1536 + 5] {
            let gate = random(n, 12.0, &mut seed);
            let up = random(n, 3.0, &mut seed);
            let want = (candle_nn::ops::silu(&Tensor::from_slice(&gate, n, dev)?)?
                * Tensor::from_slice(&up, n, dev)?)?
            .to_vec1::<f32>()?;
            let mut got = gate.clone();
            silu_mul(&mut got, &up);
            assert_eq!(got, want, "{n} elements");
        }
        Ok(())
    }
}
