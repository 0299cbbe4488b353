//! The activations quantized to Q8_1 as candle's matmul quantizes them, laid out for the
//! kernels: a batch's rows spread over candle's pool.

use super::{ActBlock, QK};
use crate::cpu::Avx2;
use half::f16;

/// Quantizes each row of `lhs` to the Q8_1 blocks candle's matmul would use, laid out for the
/// kernel.
pub(super) fn quantize_rows(lhs: &[f32], m: usize, k: usize) -> Vec<ActBlock> {
    assert!(
        k.is_multiple_of(QK) && lhs.len() == m * k,
        "m rows of whole blocks"
    );
    let kb = k / QK;
    let cpu = crate::cpu::cpu().avx2();
    if m < 2 {
        return lhs
            .chunks_exact(QK)
            .map(|x| quantize_block(cpu, x))
            .collect();
    }
    // Several rows (a batch): spread over the pool, a row per item, into a vector that is
    // not first filled (every block is written).
    crate::disjoint::spread_collect(m, kb, |r, b| {
        quantize_block(cpu, &lhs[r * k + b * QK..][..QK])
    })
}

/// One block quantized to Q8_1 exactly as candle's `BlockQ8_1::from_float` does it (a test
/// compares them): the largest magnitude, the scale `d = amax / 127`, each element times
/// `1 / d` rounded half away from zero (saturated to i8, NaN to 0), and the sum term
/// `s = f16(Σq) · f16(d)` in f16 arithmetic. On AVX2 eight elements at a time (the
/// compiler made the element-wise rounding and conversion scalar code), where `cpu` says
/// this CPU has AVX2.
#[inline]
pub(super) fn quantize_block(cpu: Option<Avx2>, xs: &[f32]) -> ActBlock {
    #[cfg(target_arch = "x86_64")]
    if let (Some(cpu), Ok(xs)) = (cpu, <&[f32; QK]>::try_from(xs)) {
        return super::avx2::quantize_block(cpu, xs);
    }
    let _ = cpu;
    quantize_block_portable(xs)
}

/// [`quantize_block`] element by element.
pub(super) fn quantize_block_portable(xs: &[f32]) -> ActBlock {
    let amax = xs.iter().fold(0f32, |m, &x| m.max(x.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, &x) in qs.iter_mut().zip(xs) {
        *q = (x * id).round() as i8;
    }
    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
    act_block(qs, d, sum)
}

/// The block of bytes `qs` (summing to `sum`) at scale `d`.
pub(super) fn act_block(qs: [i8; QK], d: f32, sum: i32) -> ActBlock {
    let d16 = f16::from_f32(d);
    ActBlock {
        qs,
        d: d16.to_f32(),
        s: (f16::from_f32(sum as f32) * d16).to_f32(),
    }
}
