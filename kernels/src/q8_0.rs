//! Q8_0 weight matrices times f32 activations on AVX-512 VNNI, with the same result as
//! candle's `QMatMul`, bit for bit.
//!
//! In SmolLM2 the Q8_0 matrix is the output projection (49 152 × 576, tied to the
//! embedding): at eight sequences candle's kernel for it is a quarter of a decode step.
//! candle's AVX2 `vec_dot` for Q8_0 × Q8_0 computes, per weight row and activation row, for
//! each 32-element block: eight exact integer lane sums (lane `i` sums the products of
//! elements `4i..4i+4`, via `vpsignb`/`vpmaddubsw`/`vpmaddwd`), converted to f32, then
//! `acc = fma(d_w * d_a, lanes, acc)` lane-wise; at the end a fixed horizontal sum. This
//! kernel produces the same lane sums another way and keeps every floating-point step:
//!
//! - weights are stored offset to unsigned (`w + 128`), so one `vpdpbusd` against the signed
//!   activations, started from `-128 * Σa` over the lane's four activations (computed once
//!   per activation block), gives each lane's exact sum;
//! - one 512-bit register holds two activation rows (one per 256-bit half), so each
//!   instruction serves two (weight row, activation row) pairs, each half doing exactly
//!   candle's 8-lane sequence;
//! - four weight rows are computed together, and the activation blocks stay in L1 while a
//!   group's weights are read once per pair of activation rows.
//!
//! candle's `vpmaddubsw` would saturate on a weight of -128 (the exact sum would then differ
//! from candle's): [`Q80Matrix::from_qtensor`] declines such matrices, and CPUs without
//! AVX-512 VNNI, and the caller keeps candle's `QMatMul`.
//!
//! A SIMD module: it allows `unsafe` code (the crate denies it), for its `#[target_feature]`
//! kernel, the pool's writes to the output ([`crate::disjoint`]), and the bytes of candle's
//! blocks.

#![allow(unsafe_code)]

use crate::cpu::Avx512Vnni;
use crate::disjoint::DisjointMut;
use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

/// Elements per Q8_0 block.
const QK: usize = 32;
/// Bytes of one Q8_0 block as stored: `d: f16, qs: [i8; 32]`.
const BLOCK_BYTES: usize = 34;
/// Weight rows computed together.
const GROUP: usize = 4;

/// A Q8_0 matrix of `n` rows (outputs) by `k` columns (inputs), ready for the VNNI kernel.
pub struct Q80Matrix {
    n: usize,
    k: usize,
    /// The CPU runs the kernel.
    cpu: Avx512Vnni,
    /// `n / 4` groups of `k / 32` blocks of four rows.
    blocks: Vec<Block4>,
}

/// Block `b` of four consecutive rows: their bytes plus 128 (`w ^ 0x80`), and their scales
/// as exact f32 conversions of the stored f16. One group's blocks are one stream in memory.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Block4 {
    q: [[u8; QK]; GROUP],
    d: [f32; GROUP],
}

impl std::fmt::Debug for Q80Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q80Matrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

/// Two activation rows' block `b`, as the kernel reads it: their bytes (row `2p` in the low
/// half, `2p + 1` in the high half), `-128 *` the sum of each lane's four bytes, and the
/// rows' scales, each repeated over its half's eight lanes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ActPair {
    qs: [i8; 2 * QK],
    corr: [i32; 16],
    d: [f32; 16],
}

impl Q80Matrix {
    /// Repacks a Q8_0 `QTensor` of shape `(n, k)`; `None` if it is not Q8_0, its shape does
    /// not fit (`n` a multiple of 4, `k` of 32), a weight is -128, or the CPU lacks AVX-512
    /// VNNI.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Option<Self>> {
        let Some(cpu) = crate::cpu::cpu().avx512_vnni() else {
            return Ok(None);
        };
        if t.dtype() != GgmlDType::Q8_0 {
            return Ok(None);
        }
        let Ok((n, k)) = t.shape().dims2() else {
            return Ok(None);
        };
        if n % GROUP != 0 || k % QK != 0 || n == 0 || k == 0 {
            return Ok(None);
        }
        let raw = t.data()?;
        if raw.len() != n * (k / QK) * BLOCK_BYTES {
            return Ok(None);
        }
        if raw
            .chunks_exact(BLOCK_BYTES)
            .any(|b| b[2..].contains(&0x80))
        {
            return Ok(None);
        }
        let kb = k / QK;
        let mut blocks = Vec::with_capacity(n / GROUP * kb);
        for g in 0..n / GROUP {
            for b in 0..kb {
                let mut out = Block4 {
                    q: [[0; QK]; GROUP],
                    d: [0.0; GROUP],
                };
                for r in 0..GROUP {
                    let at = ((g * GROUP + r) * kb + b) * BLOCK_BYTES;
                    let src = &raw[at..at + BLOCK_BYTES];
                    out.d[r] = f16::from_le_bytes([src[0], src[1]]).to_f32();
                    for (o, &x) in out.q[r].iter_mut().zip(&src[2..]) {
                        *o = x ^ 0x80;
                    }
                }
                blocks.push(out);
            }
        }
        Ok(Some(Self { n, k, cpu, blocks }))
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `dst[i * n + j]` = row `j` of the matrix · row `i` of `lhs` (`lhs.len() / k` rows), as
    /// candle's `QMatMul::forward` computes it; the work is spread over candle's thread pool.
    pub fn matmul(&self, lhs: &[f32], dst: &mut [f32]) {
        self.run(lhs, &DisjointMut::new(dst));
    }

    /// [`Q80Matrix::matmul`] into a new vector (`[m * n]`): every element is written by the
    /// kernel, so none is first filled with zeros.
    pub fn product(&self, lhs: &[f32]) -> Vec<f32> {
        let len = lhs.len() / self.k * self.n;
        let mut out = Vec::with_capacity(len);
        self.run(
            lhs,
            &DisjointMut::new_uninit(&mut out.spare_capacity_mut()[..len]),
        );
        // SAFETY: `run` returned, so it wrote all m * n elements: its work items are the
        // n / 4 groups of columns, each writing its four columns of every row.
        unsafe { out.set_len(len) };
        out
    }

    /// The product with `lhs`, written to the first `m * n` elements of `dst` (row-major,
    /// `[m, n]`).
    fn run(&self, lhs: &[f32], dst: &DisjointMut<'_, f32>) {
        let (n, k) = (self.n, self.k);
        let kb = k / QK;
        let m = lhs.len() / k;
        assert_eq!(m * k, lhs.len(), "lhs is not a whole number of rows");
        assert!(dst.len() >= m * n, "dst too small");
        let acts = quantize_pairs(lhs, m, k);
        let pairs = m.div_ceil(2);
        let work = |range: std::ops::Range<usize>| {
            for g in range {
                let rows = g * GROUP..(g + 1) * GROUP;
                let w = &self.blocks[g * kb..(g + 1) * kb];
                let pair = |p: usize| &acts[p * kb..(p + 1) * kb];
                let mut p = 0;
                while p < pairs {
                    // Two pairs (four activation rows) share each weight load where there are.
                    let (outs, count) = if p + 1 < pairs {
                        (dot_group(self.cpu, w, [pair(p), pair(p + 1)]), 2)
                    } else {
                        let [o] = dot_group(self.cpu, w, [pair(p)]);
                        ([o, [[0.0; GROUP]; 2]], 1)
                    };
                    for (i, out) in outs.iter().take(count).enumerate() {
                        for (half, row) in [2 * (p + i), 2 * (p + i) + 1].into_iter().enumerate() {
                            if row >= m {
                                break;
                            }
                            // SAFETY: group g writes elements g*GROUP..(g+1)*GROUP of each
                            // activation row, once; no two groups share one.
                            unsafe { dst.write(row * n + rows.start, &out[half]) };
                        }
                    }
                    p += count;
                }
            }
        };
        crate::spread::spread(n / GROUP, work);
    }
}

/// Quantizes each row of `lhs` with candle's own Q8_0 code (the blocks candle's matmul
/// would use), then lays out pairs of rows (the last one padded with zeros when `m` is odd).
fn quantize_pairs(lhs: &[f32], m: usize, k: usize) -> Vec<ActPair> {
    let kb = k / QK;
    let mut rows = vec![BlockQ8_0::zeros(); m.div_ceil(2) * 2 * kb];
    for (row, out) in lhs.chunks_exact(k).zip(rows.chunks_exact_mut(kb)) {
        BlockQ8_0::from_float(row, out);
    }
    let mut out = Vec::with_capacity(m.div_ceil(2) * kb);
    for pair in rows.chunks_exact(2 * kb) {
        for b in 0..kb {
            let mut a = ActPair {
                qs: [0; 2 * QK],
                corr: [0; 16],
                d: [0.0; 16],
            };
            for (half, blk) in [&pair[b], &pair[kb + b]].into_iter().enumerate() {
                let (d, qs) = block_parts(blk);
                a.qs[half * QK..][..QK].copy_from_slice(&qs);
                for lane in 0..8 {
                    let s: i32 = qs[4 * lane..4 * lane + 4]
                        .iter()
                        .map(|&x| i32::from(x))
                        .sum();
                    a.corr[half * 8 + lane] = -128 * s;
                    a.d[half * 8 + lane] = d;
                }
            }
            out.push(a);
        }
    }
    out
}

/// A candle Q8_0 block's scale (as f32) and bytes.
fn block_parts(b: &BlockQ8_0) -> (f32, [i8; QK]) {
    // SAFETY: BlockQ8_0 is `repr(C)` { d: f16, qs: [i8; 32] }, 34 bytes (candle asserts the
    // size at compile time); reading its bytes is reading initialized memory.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(b).cast::<u8>(), BLOCK_BYTES) };
    let mut qs = [0i8; QK];
    for (q, &x) in qs.iter_mut().zip(&bytes[2..]) {
        *q = x as i8;
    }
    (f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(), qs)
}

/// The dot products of a group's four weight rows with `P` pairs of activation rows:
/// `[pair][pair half][row of the group]`.
#[inline]
fn dot_group<const P: usize>(
    _cpu: Avx512Vnni,
    w: &[Block4],
    a: [&[ActPair]; P],
) -> [[[f32; GROUP]; 2]; P] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `_cpu` proves that this CPU has AVX-512 F and VNNI.
        unsafe { dot_group_vnni(w, a) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, a);
        unreachable!("no token off x86-64")
    }
}

/// candle's `hsum_float_8` on each 256-bit half: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
fn hsum8(l: &[f32]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// # Safety
/// The CPU must support AVX-512 F and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn dot_group_vnni<const P: usize>(
    w: &[Block4],
    a: [&[ActPair]; P],
) -> [[[f32; GROUP]; 2]; P] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); GROUP]; P];
    for (b, wb) in w.iter().enumerate() {
        crate::prefetch::ahead(wb);
        // SAFETY: reads the 32 bytes of each row's block (unaligned loads, in bounds).
        let ws: [__m512i; GROUP] = std::array::from_fn(|r| unsafe {
            _mm512_broadcast_i64x4(_mm256_loadu_si256(wb.q[r].as_ptr().cast()))
        });
        let ds: [__m512; GROUP] = std::array::from_fn(|r| _mm512_set1_ps(wb.d[r]));
        for (acc, a) in acc.iter_mut().zip(a) {
            let ab = &a[b];
            // SAFETY: `ab` is 64-byte aligned (`repr(align(64))`); its fields are 64 bytes.
            let (x, corr, da) = unsafe {
                (
                    _mm512_load_si512(ab.qs.as_ptr().cast()),
                    _mm512_load_si512(ab.corr.as_ptr().cast()),
                    _mm512_load_ps(ab.d.as_ptr()),
                )
            };
            for ((acc, &w), &d) in acc.iter_mut().zip(&ws).zip(&ds) {
                // Each lane: -128·Σa + Σ (w+128)·a over its four elements = Σ w·a, exact.
                let sumi = _mm512_dpbusd_epi32(corr, w, x);
                // d_w · d_a rounded once, as candle's scalar product, then its fused step.
                let dd = _mm512_mul_ps(d, da);
                *acc = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi), *acc);
            }
        }
    }
    let mut out = [[[0f32; GROUP]; 2]; P];
    for (out, acc) in out.iter_mut().zip(acc) {
        for (r, acc) in acc.into_iter().enumerate() {
            let mut lanes = [0f32; 16];
            // SAFETY: writes the 16 f32 of `lanes` (unaligned store, in bounds).
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
            out[0][r] = hsum8(&lanes[..8]);
            out[1][r] = hsum8(&lanes[8..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module, Tensor};

    /// Whether this CPU runs the kernel.
    fn cpu_supported() -> bool {
        crate::cpu::cpu().avx512_vnni().is_some()
    }

    #[test]
    fn equals_candle_bit_for_bit() -> candle_core::Result<()> {
        if !cpu_supported() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return Ok(());
        }
        let dev = Device::Cpu;
        let mut seed = 11;
        for (n, k) in [(64usize, 576usize), (1028, 64)] {
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
            let qt = QTensor::quantize(&Tensor::from_vec(w, (n, k), &dev)?, GgmlDType::Q8_0)?;
            let ours = Q80Matrix::from_qtensor(&qt)?.expect("fits");
            let candle = QMatMul::from_qtensor(qt)?;
            for m in [1usize, 2, 3, 8, 9] {
                let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0).collect();
                let want = candle
                    .forward(&Tensor::from_vec(x.clone(), (m, k), &dev)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut got = vec![f32::NAN; m * n];
                ours.matmul(&x, &mut got);
                assert_eq!(got, want, "{n}x{k}, {m} rows");
                assert_eq!(ours.product(&x), want, "{n}x{k}, {m} rows, new vector");
            }
        }
        Ok(())
    }

    fn from_raw(raw: &[u8], shape: (usize, usize)) -> candle_core::Result<QTensor> {
        let storage = candle_core::quantized::QStorage::from_data(
            std::borrow::Cow::Borrowed(raw),
            &Device::Cpu,
            GgmlDType::Q8_0,
        )?;
        QTensor::new(storage, shape)
    }

    #[test]
    fn declines_what_it_cannot_compute() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let t = |n: usize, k: usize, dt| {
            QTensor::quantize(&Tensor::ones((n, k), candle_core::DType::F32, &dev)?, dt)
        };
        assert!(Q80Matrix::from_qtensor(&t(8, 64, GgmlDType::Q4_1)?)?.is_none());
        assert!(Q80Matrix::from_qtensor(&t(6, 64, GgmlDType::Q8_0)?)?.is_none());
        // A weight of -128, where candle's AVX2 kernel would saturate.
        let mut raw = t(8, 64, GgmlDType::Q8_0)?.data()?.to_vec();
        assert!(Q80Matrix::from_qtensor(&from_raw(&raw, (8, 64))?)?.is_some() || !cpu_supported());
        raw[2 + 5] = 0x80;
        assert!(Q80Matrix::from_qtensor(&from_raw(&raw, (8, 64))?)?.is_none());
        Ok(())
    }
}
