//! The scaled, causally masked softmax of a prompt's attention scores, as candle's
//! `quantized_llama` computes it (`(q · kᵀ) / sqrt(head_dim)`, plus a mask of 0 and -inf,
//! then `softmax_last_dim`), in one pass per row over candle's thread pool.
//!
//! candle runs those as three tensor operations, each writing a new tensor as large as the
//! scores (heads × new tokens × positions: 9 × 256 × 2 048 floats for a chunk late in a long
//! prompt), and its softmax calls the C library's `expf` one element at a time. Here each
//! row is scaled, masked and normalized in place, with the same operations in the same
//! order, and the exponentials are eight lanes at a time ([`crate::exp`], the same bits).

use crate::attention::softmax;

/// `scores`: rows of `width` positions, `rows_per_head` rows (new tokens) per head, heads
/// after each other; row `i` of a head is the token at position `past + i`, which sees
/// positions `0..=past + i`. Each row becomes candle's
/// `softmax_last_dim(scores * scale + 0 + mask)`, the mask 0 up to the token's own position
/// and -inf after it.
pub fn causal_softmax(
    scores: &mut [f32],
    width: usize,
    rows_per_head: usize,
    past: usize,
    scale: f32,
) {
    assert!(
        width > 0 && rows_per_head > 0 && scores.len().is_multiple_of(width * rows_per_head),
        "whole heads of whole rows"
    );
    assert!(
        past + rows_per_head <= width,
        "every new token among the positions"
    );
    crate::disjoint::spread_chunks(scores, width, |range, rows| {
        for (r, row) in range.zip(rows.chunks_exact_mut(width)) {
            let sees = past + r % rows_per_head + 1;
            for (j, x) in row.iter_mut().enumerate() {
                // candle's affine (`* scale + 0`), then its broadcast add of the mask.
                let mask = if j < sees { 0.0 } else { f32::NEG_INFINITY };
                *x = (*x * scale + 0.0) + mask;
            }
            softmax(row);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;
    use candle_core::{Device, Tensor};

    /// candle's operations, as `quantized_llama` applies them to a prompt's scores.
    fn candle_reference(
        scores: &[f32],
        heads: usize,
        l: usize,
        width: usize,
        past: usize,
        hd: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let dev = &Device::Cpu;
        let att = Tensor::from_slice(scores, (1, heads, l, width), dev)?;
        let att = (att / (hd as f64).sqrt())?;
        let mask: Vec<f32> = (0..l)
            .flat_map(|i| {
                (0..width).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0. })
            })
            .collect();
        let att = att.broadcast_add(&Tensor::from_vec(mask, (l, width), dev)?)?;
        candle_nn::ops::softmax_last_dim(&att)?
            .flatten_all()?
            .to_vec1::<f32>()
    }

    #[test]
    fn equals_candle_bit_for_bit() -> candle_core::Result<()> {
        let mut seed = 11;
        // New tokens with and without earlier positions; rows with and without whole
        // 32-chunks; scores large enough that some exponentials leave the fast range.
        for (heads, l, past, hd) in [
            (9, 1, 0, 64),
            (9, 14, 0, 64),
            (9, 4, 20, 64),
            (3, 33, 31, 64),
            (2, 256, 256, 64),
            (9, 100, 1000, 64),
            (1, 7, 3, 48),
        ] {
            let width = past + l;
            let scores: Vec<f32> = (0..heads * l * width)
                .map(|_| 1000.0 * lcg(&mut seed))
                .collect();
            let want = candle_reference(&scores, heads, l, width, past, hd)?;
            let mut got = scores.clone();
            let scale = (1.0 / (hd as f64).sqrt()) as f32;
            causal_softmax(&mut got, width, l, past, scale);
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{heads} heads, {l} tokens after {past}");
        }
        Ok(())
    }

    #[test]
    fn masked_positions_get_nothing() {
        let (l, past) = (5, 2);
        let width = past + l;
        let mut got = vec![1.0f32; l * width];
        causal_softmax(&mut got, width, l, past, 0.125);
        for (i, row) in got.chunks_exact(width).enumerate() {
            let sees = past + i + 1;
            assert!(row[sees..].iter().all(|&p| p == 0.0), "row {i}: {row:?}");
            let want = 1.0 / sees as f32;
            assert!(row[..sees].iter().all(|&p| p == want), "row {i}: {row:?}");
        }
    }
}
