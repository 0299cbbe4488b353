//! Greedy decoding's pick, the index of each row's largest logit, as candle's `argmax`
//! chooses it, for all the rows of a batch at once.
//!
//! candle's CPU `argmax` walks a row keeping the first element that nothing after it
//! exceeds (`val < s` replaces): ties go to the first, and a NaN is never picked unless it
//! is the first element (nothing compares greater than it, so it stays). Done per row of a
//! batch on the engine thread (49 152 logits each), with a tensor per row, it is serial
//! work that grows with the batch while the pool waits. Here each row is two vectorizable
//! passes (the largest value ignoring NaN; then its first position), and the rows are
//! spread over candle's pool.

/// The index candle's `argmax` gives for `row` (0 for an empty row).
pub fn argmax(row: &[f32]) -> u32 {
    const L: usize = 16;
    match row.first() {
        None => return 0,
        Some(first) if first.is_nan() => return 0,
        Some(_) => {}
    }
    // `f32::max` ignores NaN, as candle's comparison does past the first element.
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = row.chunks_exact(L);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    // The first element equal to it (+0 and -0 compare equal, as in candle's `<`).
    const SCAN: usize = 256;
    for (i, c) in row.chunks(SCAN).enumerate() {
        if c.iter().fold(false, |hit, &v| hit | (v == max)) {
            let at = c.iter().position(|&v| v == max).unwrap_or(0);
            return u32::try_from(i * SCAN + at).unwrap_or(u32::MAX);
        }
    }
    0
}

/// [`argmax`] of each `width`-wide row of `x`, the rows spread over candle's pool.
pub fn argmax_rows(x: &[f32], width: usize) -> Vec<u32> {
    assert!(
        width > 0 && x.len().is_multiple_of(width),
        "whole rows of the given width"
    );
    let rows = x.len() / width;
    let mut out = vec![0u32; rows];
    crate::disjoint::spread_chunks(&mut out, 1, |range, picks| {
        for (r, pick) in range.zip(picks) {
            *pick = argmax(&x[r * width..(r + 1) * width]);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;
    use candle_core::{D, Device, Tensor};

    fn candle_argmax(rows: &[f32], width: usize) -> candle_core::Result<Vec<u32>> {
        Tensor::from_slice(rows, (rows.len() / width, width), &Device::Cpu)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()
    }

    #[test]
    fn picks_what_candle_picks() -> candle_core::Result<()> {
        let mut seed = 21;
        let width = 49_152;
        let mut rows: Vec<f32> = (0..8 * width).map(|_| lcg(&mut seed) * 20.0).collect();
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        // Row 1: the largest value twice (the first wins).
        rows[width + 777] = 99.0;
        rows[width + 40_000] = 99.0;
        // Row 2: NaN first (candle keeps it).
        rows[2 * width] = nan;
        // Row 3: NaN elsewhere, before the largest (ignored).
        rows[3 * width + 5] = nan;
        rows[3 * width + 9] = 50.0;
        // Row 4: all zeros of both signs, -0 first (the first zero wins).
        rows[4 * width..5 * width].fill(0.0);
        rows[4 * width + 3] = -0.0;
        rows[4 * width] = -0.0;
        // Row 5: -inf everywhere but NaN after the first element.
        rows[5 * width..6 * width].fill(f32::NEG_INFINITY);
        rows[5 * width + 1] = nan;
        // Row 6: +inf twice, in the scan's second chunk and later.
        rows[6 * width + 300] = inf;
        rows[6 * width + 30_000] = inf;
        // Row 7: the largest in the tail past the last 16-wide chunk (width is a multiple
        // of 16, so also a short row below).
        rows[8 * width - 1] = 1e9;
        let want = candle_argmax(&rows, width)?;
        assert_eq!(argmax_rows(&rows, width), want);
        assert_eq!(want[1..5], [777, 0, 9, 0]);
        // Widths that leave a remainder after the 16-wide chunks.
        for w in [1usize, 7, 17, 33] {
            let mut short: Vec<f32> = (0..5 * w).map(|_| lcg(&mut seed)).collect();
            short[5 * w - 1] = 10.0;
            assert_eq!(
                argmax_rows(&short, w),
                candle_argmax(&short, w)?,
                "width {w}"
            );
        }
        Ok(())
    }
}
