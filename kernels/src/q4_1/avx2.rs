//! The AVX2 kernel, and the AVX2 helpers that the VNNI kernel shares; the AVX2 activation
//! quantizer. A SIMD module: it allows `unsafe` code (the crate denies it). Its entry
//! points are safe: each takes the [`Avx2`] token that proves the CPU runs them, and checks
//! the slices its unchecked reads rely on.

#![allow(unsafe_code)]

use super::{ActBlock, Block8, CHUNKS, QK, ROWS, quantize::act_block};
use crate::cpu::Avx2;
use std::arch::x86_64::{__m256, __m256i};

/// For each of the `T` activation rows of `tile` (`T` rows of `w.len()` blocks), its eight
/// dot products with the eight interleaved rows of `w`.
#[inline]
pub(super) fn dot8_tile<const T: usize>(
    _cpu: Avx2,
    w: &[Block8],
    tile: &[ActBlock],
) -> [[f32; ROWS]; T] {
    assert_eq!(
        tile.len(),
        T * w.len(),
        "T activation rows of the weights' length"
    );
    // SAFETY: `_cpu` proves that this CPU has AVX2; `tile` holds T rows of w.len() blocks
    // (asserted).
    unsafe { dot8_tile_avx2(w, tile) }
}

/// [`super::quantize::quantize_block`] on AVX2 registers.
#[inline]
pub(super) fn quantize_block(_cpu: Avx2, xs: &[f32; QK]) -> ActBlock {
    // SAFETY: `_cpu` proves that this CPU has AVX2.
    unsafe { quantize_block_avx2(xs) }
}

/// [`round_half_away`] on eight floats (for its test).
#[cfg(test)]
pub(super) fn round_half_away_8(_cpu: Avx2, x: [f32; 8]) -> [f32; 8] {
    #[target_feature(enable = "avx2")]
    fn round(x: [f32; 8]) -> [f32; 8] {
        use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
        let mut out = [0f32; 8];
        // SAFETY: loads and stores the 8 f32 of `x` and `out` (unaligned, in bounds).
        unsafe {
            _mm256_storeu_ps(
                out.as_mut_ptr(),
                round_half_away(_mm256_loadu_ps(x.as_ptr())),
            )
        };
        out
    }
    // SAFETY: `_cpu` proves that this CPU has AVX2.
    unsafe { round(x) }
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(xs: &[f32; QK]) -> ActBlock {
    use std::arch::x86_64::*;
    // SAFETY: reads the 32 f32 of `xs` (unaligned loads, in bounds).
    let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(xs[8 * i..].as_ptr()) });
    let magnitude = _mm256_set1_ps(f32::from_bits(0x7FFF_FFFF));
    let mut m = _mm256_setzero_ps();
    for &v in &v {
        // `vmaxps` gives its second operand where either is NaN: a NaN leaves `m` as is, as
        // `f32::max` ignores it. The largest of numbers is exact in any order.
        m = _mm256_max_ps(_mm256_and_ps(v, magnitude), m);
    }
    let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    let amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let q: [__m256i; 4] = std::array::from_fn(|i| {
        let r = round_half_away(_mm256_mul_ps(v[i], id));
        // `as i8`: NaN to 0, then saturated; in range, the conversion is exact.
        let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
        let r = _mm256_min_ps(
            _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
            _mm256_set1_ps(127.0),
        );
        _mm256_cvttps_epi32(r)
    });
    // i32 → i8 with saturating packs (values are in range), then the 32-bit groups back in
    // order (each pack interleaves its operands' 128-bit halves).
    let bytes = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let mut qs = [0i8; QK];
    // SAFETY: writes the 32 bytes of `qs` (unaligned store, in bounds).
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), bytes) };
    let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<1>(s)));
    act_block(qs, d, sum)
}

/// `f32::round` (half away from zero) on eight lanes: `trunc(x + copysign(0.49999997, x))`,
/// the compiler's own lowering of `round` on x86 (adding the largest float below one half
/// never carries a value below .5 over, and always carries .5 itself, rounded to even).
#[target_feature(enable = "avx2")]
fn round_half_away(x: __m256) -> __m256 {
    use std::arch::x86_64::*;
    let below_half = _mm256_set1_ps(f32::from_bits(0x3EFF_FFFF));
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_add_ps(
        x,
        _mm256_or_ps(sign, below_half),
    ))
}

/// A block's eight rows unpacked: `x[j]` holds elements 4j..4j+4 of each row (one row per
/// 32-bit lane), and the rows' scales and minimums.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn unpack(wb: &Block8) -> ([__m256i; 2 * CHUNKS], __m256, __m256) {
    use std::arch::x86_64::*;
    let mask = _mm256_set1_epi8(0x0F);
    let mut x = [_mm256_setzero_si256(); 2 * CHUNKS];
    for (c, chunk) in wb.q.iter().enumerate() {
        // SAFETY: reads the 32 bytes of `chunk` (unaligned load, in bounds).
        let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
        x[c] = _mm256_and_si256(v, mask);
        x[c + CHUNKS] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
    }
    // SAFETY: reads the 8 f32 of `wb.d` and of `wb.m` (unaligned loads, in bounds).
    let (d, m) = unsafe {
        (
            _mm256_loadu_ps(wb.d.as_ptr()),
            _mm256_loadu_ps(wb.m.as_ptr()),
        )
    };
    (x, d, m)
}

/// Activation bytes 4j..4j+4 of a block, broadcast to every 32-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn broadcast4(ab: &ActBlock, j: usize) -> __m256i {
    let bytes = [
        ab.qs[4 * j],
        ab.qs[4 * j + 1],
        ab.qs[4 * j + 2],
        ab.qs[4 * j + 3],
    ];
    std::arch::x86_64::_mm256_set1_epi32(i32::from_le_bytes(bytes.map(|b| b as u8)))
}

/// `acc += ((sumi * d_x) * d_y) + (m_x * s_y)`: the scalar kernel's order, with no fused
/// multiply-add.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn accumulate(acc: &mut __m256, sumi: __m256i, d: __m256, m: __m256, ab: &ActBlock) {
    use std::arch::x86_64::*;
    let t = _mm256_mul_ps(
        _mm256_mul_ps(_mm256_cvtepi32_ps(sumi), d),
        _mm256_broadcast_ss(&ab.d),
    );
    let u = _mm256_mul_ps(m, _mm256_broadcast_ss(&ab.s));
    *acc = _mm256_add_ps(*acc, _mm256_add_ps(t, u));
}

#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn store<const T: usize>(acc: [__m256; T]) -> [[f32; ROWS]; T] {
    let mut out = [[0f32; ROWS]; T];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: writes the 8 f32 of `o` (unaligned store, in bounds).
        unsafe { std::arch::x86_64::_mm256_storeu_ps(o.as_mut_ptr(), a) };
    }
    out
}

/// `$row(t, &mut $acc[t])` for t in 0..$T (at most 8), unrolled by hand: `$T` is a constant,
/// so the tests are resolved at compile time, and the accumulators stay in registers (the
/// compiler does not unroll a loop over rows this long, and keeps them on the stack).
macro_rules! each_row {
    ($T:expr, $row:ident, $acc:ident) => {
        each_row!(@ $T, $row, $acc; 0 1 2 3 4 5 6 7)
    };
    (@ $T:expr, $row:ident, $acc:ident; $($t:literal)*) => {$(
        if $t < $T {
            $row($t, &mut $acc[$t]);
        }
    )*};
}
pub(super) use each_row;

/// Activation block `b` of row `t` of a tile of rows `kb` blocks long.
///
/// # Safety
/// `t * kb + b` must be inside `tile`.
#[inline]
pub(super) unsafe fn act(tile: &[ActBlock], kb: usize, t: usize, b: usize) -> &ActBlock {
    // SAFETY: the caller's contract.
    unsafe { tile.get_unchecked(t * kb + b) }
}

/// # Safety
/// The CPU must support AVX2, and `tile` must hold `T` rows of `w.len()` blocks.
#[target_feature(enable = "avx2")]
unsafe fn dot8_tile_avx2<const T: usize>(w: &[Block8], tile: &[ActBlock]) -> [[f32; ROWS]; T] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let kb = w.len();
    let mut acc = [_mm256_setzero_ps(); T];
    for (b, wb) in w.iter().enumerate() {
        crate::prefetch::ahead(wb);
        // Unpacked once for every activation row of the tile.
        let (x, d, m) = unpack(wb);
        let row = |t: usize, acc: &mut __m256| {
            // SAFETY: t < T and b < kb, and the tile holds T rows of kb blocks.
            let ab = unsafe { act(tile, kb, t, b) };
            // u8 nibbles (0..=15) times i8, pairs summed: at most 2 * 15 * 128 = 3840 in
            // magnitude, so `vpmaddubsw` never saturates; eight of them summed in i16 stay
            // within 30 720: exact.
            let p: [__m256i; 2 * CHUNKS] =
                std::array::from_fn(|j| _mm256_maddubs_epi16(x[j], broadcast4(ab, j)));
            let s = _mm256_add_epi16(
                _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3])),
                _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7])),
            );
            // Lane r: row r's exact integer dot product over the block.
            accumulate(acc, _mm256_madd_epi16(s, ones), d, m, ab);
        };
        each_row!(T, row, acc);
    }
    store(acc)
}
