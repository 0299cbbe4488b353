//! The score products on AVX2 registers: each key's lanes as the portable code computes
//! them, then the eight keys' lanes transposed so that each reduction step adds the same
//! lanes in the same order for all eight at once.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps,
    _mm256_unpacklo_ps,
};

use super::{KEYS, LANES};
use crate::cpu::Avx2Fma;

/// [`super::score_row`] on AVX2 registers (heads a whole number of 8-float lanes wide);
/// where `fetch` is given (the values, as long as `keys`), it also asks for the keys a
/// block ahead and the values of the block in use to be brought in from memory; and for
/// `later` (any length) into the second-level cache, a share of it with each block.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn score_row(
    _cpu: Avx2Fma,
    qh: &[f32],
    keys: &[f32],
    horizontal: bool,
    scale: f32,
    row: &mut [f32],
    fetch: Option<&[f32]>,
    later: &[f32],
) {
    // SAFETY: `cpu` proves that this CPU has AVX2 and FMA; the function checks its slices.
    unsafe { score_row_avx2(qh, keys, horizontal, scale, row, fetch, later) }
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn score_row_avx2(
    qh: &[f32],
    keys: &[f32],
    horizontal: bool,
    scale: f32,
    row: &mut [f32],
    fetch: Option<&[f32]>,
    later: &[f32],
) {
    let (hd, len) = (qh.len(), row.len());
    assert!(
        hd > 0 && hd.is_multiple_of(LANES) && len > 0 && keys.len() == len * hd,
        "whole lanes and keys"
    );
    assert!(
        fetch.is_none_or(|v| v.len() == keys.len()),
        "values as keys"
    );
    let (scale, zero) = (_mm256_set1_ps(scale), _mm256_setzero_ps());
    let blocks = len.div_ceil(KEYS);
    for j in (0..len).step_by(KEYS) {
        let b = j / KEYS;
        crate::prefetch::slice_l2(&later[later.len() * b / blocks..later.len() * (b + 1) / blocks]);
        if let Some(vals) = fetch {
            let ahead = ((j + KEYS) * hd).min(keys.len());
            let now = j * hd..((j + KEYS) * hd).min(keys.len());
            crate::prefetch::slice(&keys[ahead..(ahead + KEYS * hd).min(keys.len())]);
            crate::prefetch::slice(&vals[now]);
        }
        // Past the last key, the last one again (each score is computed on its own, so
        // the padding changes none of the others; it is not stored).
        let at: [usize; KEYS] = std::array::from_fn(|t| (j + t).min(len - 1) * hd);
        let lanes = if horizontal {
            horizontal_lanes(qh, keys, at)
        } else {
            at.map(|o| gemv_lanes(qh, &keys[o..o + hd]))
        };
        let t = transpose(lanes);
        let dots = if horizontal {
            // ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))
            let a = _mm256_add_ps(_mm256_add_ps(t[0], t[4]), _mm256_add_ps(t[2], t[6]));
            let b = _mm256_add_ps(_mm256_add_ps(t[1], t[5]), _mm256_add_ps(t[3], t[7]));
            _mm256_add_ps(a, b)
        } else {
            // l0 + l1 + ... + l7, in order
            t[1..].iter().fold(t[0], |s, &l| _mm256_add_ps(s, l))
        };
        let scores = _mm256_add_ps(_mm256_mul_ps(dots, scale), zero);
        let n = (len - j).min(KEYS);
        if n == KEYS {
            // SAFETY: j + KEYS <= len: inside `row`.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(j), scores) };
        } else {
            let mut last = [0f32; KEYS];
            // SAFETY: `last` holds KEYS = 8 floats, one register.
            unsafe { _mm256_storeu_ps(last.as_mut_ptr(), scores) };
            row[j..].copy_from_slice(&last[..n]);
        }
    }
}

/// Each key's eight lanes of fused multiply-adds over the head, chunk after chunk.
/// (`at`: where each key starts in `keys`.)
#[target_feature(enable = "avx2,fma")]
#[inline]
fn horizontal_lanes(qh: &[f32], keys: &[f32], at: [usize; KEYS]) -> [__m256; KEYS] {
    let hd = qh.len();
    assert!(at.iter().all(|&o| o + hd <= keys.len()) && hd.is_multiple_of(LANES));
    let mut acc = [_mm256_setzero_ps(); KEYS];
    for d in (0..hd).step_by(LANES) {
        // SAFETY: d + LANES <= hd, the length of `qh`.
        let x = unsafe { _mm256_loadu_ps(qh.as_ptr().add(d)) };
        for (a, &o) in acc.iter_mut().zip(&at) {
            // SAFETY: o + d + LANES <= o + hd <= keys.len() (asserted).
            let k = unsafe { _mm256_loadu_ps(keys.as_ptr().add(o + d)) };
            *a = _mm256_fmadd_ps(x, k, *a);
        }
    }
    acc
}

/// One key's lanes as gemm's gemv leaves them before its final sum: eight accumulators
/// over chunks of 64, added as a tree, then further whole chunks of 8 into the result.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn gemv_lanes(qh: &[f32], key: &[f32]) -> __m256 {
    const WIDE: usize = 8 * LANES;
    let hd = qh.len();
    let wide = hd / WIDE * WIDE;
    let load = |x: &[f32], d: usize| {
        // SAFETY: every caller's d + LANES <= hd, the length of `qh` and `key`.
        unsafe { _mm256_loadu_ps(x.as_ptr().add(d)) }
    };
    let mut acc = [_mm256_setzero_ps(); 8];
    for w in (0..wide).step_by(WIDE) {
        for (c, a) in acc.iter_mut().enumerate() {
            let d = w + c * LANES;
            *a = _mm256_fmadd_ps(load(qh, d), load(key, d), *a);
        }
    }
    let a01 = _mm256_add_ps(acc[0], acc[1]);
    let a23 = _mm256_add_ps(acc[2], acc[3]);
    let a45 = _mm256_add_ps(acc[4], acc[5]);
    let a67 = _mm256_add_ps(acc[6], acc[7]);
    let mut lanes = _mm256_add_ps(_mm256_add_ps(a01, a23), _mm256_add_ps(a45, a67));
    for d in (wide..hd).step_by(LANES) {
        lanes = _mm256_fmadd_ps(load(qh, d), load(key, d), lanes);
    }
    lanes
}

/// `out[i]` holds lane `i` of every input register, in order.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}
