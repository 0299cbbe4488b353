//! The AVX-512 VNNI kernel: `vpdpbusd` on 256-bit registers does the multiply, pair and
//! sum of each four products, the same exact integers as the AVX2 kernel's three steps. A
//! SIMD module: it allows `unsafe` code (the crate denies it); its entry point is safe.

#![allow(unsafe_code)]

use super::avx2::{accumulate, act, broadcast4, each_row, store, unpack};
use super::{ActBlock, Block8, CHUNKS, ROWS};
use crate::cpu::Avx512Vnni;

/// For each of the `T` activation rows of `tile` (`T` rows of `w.len()` blocks), its eight
/// dot products with the eight interleaved rows of `w`.
#[inline]
pub(super) fn dot8_tile<const T: usize>(
    _cpu: Avx512Vnni,
    w: &[Block8],
    tile: &[ActBlock],
) -> [[f32; ROWS]; T] {
    assert_eq!(
        tile.len(),
        T * w.len(),
        "T activation rows of the weights' length"
    );
    // SAFETY: `_cpu` proves that this CPU has AVX2, AVX-512 VL and VNNI; `tile` holds T rows
    // of w.len() blocks (asserted).
    unsafe { dot8_tile_vnni(w, tile) }
}

/// # Safety
/// The CPU must support AVX2, AVX-512 VL and AVX-512 VNNI, and `tile` must hold `T` rows
/// of `w.len()` blocks.
#[target_feature(enable = "avx2,avx512vl,avx512vnni")]
unsafe fn dot8_tile_vnni<const T: usize>(w: &[Block8], tile: &[ActBlock]) -> [[f32; ROWS]; T] {
    use std::arch::x86_64::*;
    let kb = w.len();
    let mut acc = [_mm256_setzero_ps(); T];
    for (b, wb) in w.iter().enumerate() {
        crate::prefetch::ahead(wb);
        let (x, d, m) = unpack(wb);
        let row = |t: usize, acc: &mut __m256| {
            // SAFETY: t < T and b < kb, and the tile holds T rows of kb blocks.
            let ab = unsafe { act(tile, kb, t, b) };
            // Lane r += the four products of row r's elements 4j..4j+4 with the activations
            // (u8 times i8, summed in i32, no saturation): exact. Two chains, then one add.
            let zero = _mm256_setzero_si256();
            let mut s0 = _mm256_dpbusd_epi32(zero, x[0], broadcast4(ab, 0));
            let mut s1 = _mm256_dpbusd_epi32(zero, x[1], broadcast4(ab, 1));
            for j in (2..2 * CHUNKS).step_by(2) {
                s0 = _mm256_dpbusd_epi32(s0, x[j], broadcast4(ab, j));
                s1 = _mm256_dpbusd_epi32(s1, x[j + 1], broadcast4(ab, j + 1));
            }
            accumulate(acc, _mm256_add_epi32(s0, s1), d, m, ab);
        };
        each_row!(T, row, acc);
    }
    store(acc)
}
