//! Q4_1 weight matrices times f32 activations, on x86-64 with AVX2, with the same result as
//! candle's `QMatMul`, bit for bit.
//!
//! candle 0.11 has no SIMD kernel for Q4_1: its generic `vec_dot` for Q4_1 × Q8_1 is most
//! of a SmolLM2 decode step. The result of that generic kernel is defined by its order of
//! floating-point operations: for each 32-element block, an exact integer dot product
//! `sumi`, then `sumf += sumi as f32 * d_x * d_y + m_x * s_y`, block after block. This kernel
//! keeps that order exactly and gets its speed elsewhere:
//!
//! - eight weight rows are interleaved at load ([`Q41Matrix`]): a 32-byte chunk holds four
//!   stored bytes of each row, so its low nibbles are four consecutive elements of each of
//!   the eight rows and its high nibbles the four elements sixteen further on. Multiplied
//!   (`vpmaddubsw`) by the matching four activation bytes broadcast to every lane, and summed
//!   vertically over a block's eight such products (i16 sums stay below 8 · 2 · 15 · 128 =
//!   30 720: exact), then paired (`vpmaddwd`), lane `r` holds row `r`'s exact `sumi`. No
//!   horizontal reductions;
//! - the eight outputs then advance block by block in the eight lanes of one AVX register,
//!   each lane doing exactly the scalar sequence above (separate multiplies and adds: no FMA
//!   contraction, which would round differently);
//! - the activations are quantized to Q8_1 exactly as candle's `BlockQ8_1::from_float` does
//!   (a test compares them), a batch's rows in parallel, and the rows of work are spread
//!   over candle's own thread pool.
//!
//! On CPUs with AVX-512 VNNI (AMD Zen 4 and later, Intel Ice Lake server and later: the
//! SEV-SNP and TDX hosts of today), chosen at run time, `vpdpbusd` does the multiply, pair
//! and sum of each four products in one instruction: the same exact integers, fewer
//! instructions. The build target stays x86-64-v3.
//!
//! Where AVX2 is not available at run time, or a matrix's shape does not fit (rows not a
//! multiple of 8), [`Q41Matrix::from_qtensor`] says so and the caller keeps candle's `QMatMul`.
//!
//! Modules: this one repacks the weights and dispatches the work; [`quantize`] quantizes
//! the activations; [`avx2`] and [`vnni`] are the SIMD kernels (the only ones here with
//! `unsafe` code besides the pool pass, [`run`], and [`Q41Matrix::products`]).

use crate::cpu::{Avx2, Avx512Vnni};
use crate::disjoint::DisjointMut;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use quantize::quantize_rows;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod quantize;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod vnni;

/// Elements per Q4_1 / Q8_1 block.
const QK: usize = 32;
/// Bytes of one Q4_1 block as stored: `d: f16, m: f16, qs: [u8; 16]`.
const Q4_1_BLOCK_BYTES: usize = 20;
/// Rows interleaved together.
const ROWS: usize = 8;
/// Activation rows computed together against one group's weights, at most: eight where the
/// AVX-512 kernel takes more than four rows (32 registers hold their accumulators and the
/// unpacked weights; the group's weights are then read once for a batch of eight, not
/// twice), else four. See [`tile_rows`].
const TILE: usize = 8;

/// Activation rows of a tile for `m` rows with `kernel`.
fn tile_rows(kernel: Q41Kernel, m: usize) -> usize {
    if kernel == Q41Kernel::Avx512Vnni && m > 4 {
        8
    } else {
        4
    }
}

/// Chunks of 32 bytes per block of eight rows.
const CHUNKS: usize = QK / 2 / 4;

/// One block of eight interleaved rows: their scales and minimums as f32 (exact
/// conversions of the stored f16), and their stored bytes: `q[c][4r + t]` is byte `4c + t`
/// of row `r` (low nibble: element `4c + t`; high nibble: element `16 + 4c + t`).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Block8 {
    d: [f32; ROWS],
    m: [f32; ROWS],
    q: [[u8; 4 * ROWS]; CHUNKS],
}

impl Block8 {
    /// Stored byte `j` (0..16) of row `r`.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn byte(&self, r: usize, j: usize) -> u8 {
        self.q[j / 4][4 * r + j % 4]
    }
}

/// The instruction set a [`Q41Matrix`] computes with (all give the same bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Q41Kernel {
    /// AVX2 (`vpmaddubsw`, `vpmaddwd`): every x86-64-v3 CPU.
    Avx2,
    /// AVX-512 VNNI on 256-bit registers (`vpdpbusd`).
    Avx512Vnni,
}

impl Q41Kernel {
    /// The fastest kernel this CPU runs, if any.
    pub fn detect() -> Option<Self> {
        Isa::fastest().map(Isa::kernel)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        Isa::of(self).is_some()
    }
}

/// A kernel, with the proof that this CPU runs it.
#[derive(Debug, Clone, Copy)]
enum Isa {
    Avx2(Avx2),
    Vnni(Avx512Vnni),
}

impl Isa {
    /// The fastest kernel this CPU runs, if any.
    fn fastest() -> Option<Self> {
        let cpu = crate::cpu::cpu();
        cpu.avx512_vnni()
            .map(Self::Vnni)
            .or_else(|| cpu.avx2().map(Self::Avx2))
    }

    /// `kernel`, if this CPU runs it.
    fn of(kernel: Q41Kernel) -> Option<Self> {
        let cpu = crate::cpu::cpu();
        match kernel {
            Q41Kernel::Avx2 => cpu.avx2().map(Self::Avx2),
            Q41Kernel::Avx512Vnni => cpu.avx512_vnni().map(Self::Vnni),
        }
    }

    fn kernel(self) -> Q41Kernel {
        match self {
            Self::Avx2(_) => Q41Kernel::Avx2,
            Self::Vnni(_) => Q41Kernel::Avx512Vnni,
        }
    }
}

/// A Q4_1 matrix of `n` rows (outputs) by `k` columns (inputs), eight rows interleaved.
pub struct Q41Matrix {
    n: usize,
    k: usize,
    isa: Isa,
    /// `n / 8` groups of `k / 32` blocks.
    blocks: Vec<Block8>,
}

impl std::fmt::Debug for Q41Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q41Matrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("kernel", &self.kernel())
            .finish_non_exhaustive()
    }
}

/// One activation row's block, as the kernel reads it.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct ActBlock {
    qs: [i8; QK],
    d: f32,
    s: f32,
}

impl Q41Matrix {
    /// Whether this machine can run a kernel.
    pub fn supported() -> bool {
        Isa::fastest().is_some()
    }

    /// Repacks a Q4_1 `QTensor` of shape `(n, k)` for the fastest kernel this CPU runs;
    /// `None` if it is not Q4_1, its shape does not fit the kernel, or the CPU lacks AVX2.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Option<Self>> {
        match Isa::fastest() {
            Some(isa) => Self::from_qtensor_on(t, isa),
            None => Ok(None),
        }
    }

    /// As [`Q41Matrix::from_qtensor`], with a given kernel (`None` also if the CPU lacks it).
    pub fn from_qtensor_with(t: &QTensor, kernel: Q41Kernel) -> candle_core::Result<Option<Self>> {
        match Isa::of(kernel) {
            Some(isa) => Self::from_qtensor_on(t, isa),
            None => Ok(None),
        }
    }

    fn from_qtensor_on(t: &QTensor, isa: Isa) -> candle_core::Result<Option<Self>> {
        if t.dtype() != GgmlDType::Q4_1 {
            return Ok(None);
        }
        let Ok((n, k)) = t.shape().dims2() else {
            return Ok(None);
        };
        if n % ROWS != 0 || k % QK != 0 || n == 0 || k == 0 {
            return Ok(None);
        }
        let raw = t.data()?;
        let kb = k / QK;
        if raw.len() != n * kb * Q4_1_BLOCK_BYTES {
            return Ok(None);
        }
        let mut blocks = Vec::with_capacity(n / ROWS * kb);
        for g in 0..n / ROWS {
            for b in 0..kb {
                let mut out = Block8 {
                    d: [0.0; ROWS],
                    m: [0.0; ROWS],
                    q: [[0; 4 * ROWS]; CHUNKS],
                };
                for r in 0..ROWS {
                    let at = ((g * ROWS + r) * kb + b) * Q4_1_BLOCK_BYTES;
                    let src = &raw[at..at + Q4_1_BLOCK_BYTES];
                    out.d[r] = f16::from_le_bytes([src[0], src[1]]).to_f32();
                    out.m[r] = f16::from_le_bytes([src[2], src[3]]).to_f32();
                    for (c, chunk) in out.q.iter_mut().enumerate() {
                        chunk[4 * r..4 * r + 4].copy_from_slice(&src[4 + 4 * c..8 + 4 * c]);
                    }
                }
                blocks.push(out);
            }
        }
        Ok(Some(Self { n, k, isa, blocks }))
    }

    /// The kernel it computes with.
    pub fn kernel(&self) -> Q41Kernel {
        self.isa.kernel()
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `dst[i * n + j]` = row `j` of the matrix · row `i` of `lhs` (`lhs.len() / k` rows), as
    /// candle's `QMatMul::forward` computes it; the work is spread over candle's thread pool.
    pub fn matmul(&self, lhs: &[f32], dst: &mut [f32]) {
        Self::matmul_many(&[self], lhs, &mut [dst]);
    }

    /// [`Q41Matrix::matmul`] for several matrices of the same input width and the same `lhs`
    /// (a layer's query, key and value projections; its gate and up projections): the
    /// activations are quantized once and every product runs in one pass over the pool.
    /// `dsts[j]` receives matrix `j`'s product.
    pub fn matmul_many(mats: &[&Self], lhs: &[f32], dsts: &mut [&mut [f32]]) {
        assert_eq!(mats.len(), dsts.len(), "one destination per matrix");
        let m = mats.first().map_or(0, |mat| lhs.len() / mat.k.max(1));
        for (mat, dst) in mats.iter().zip(dsts.iter()) {
            assert!(dst.len() >= m * mat.n, "dst too small");
        }
        let dsts: Vec<DisjointMut<'_, f32>> =
            dsts.iter_mut().map(|d| DisjointMut::new(d)).collect();
        run(mats, lhs, &dsts);
    }

    /// [`Q41Matrix::matmul_many`] into new vectors, `[m * n]` each: every element is written
    /// by the kernel, so none is first filled with zeros.
    #[allow(unsafe_code)]
    pub fn products(mats: &[&Self], lhs: &[f32]) -> Vec<Vec<f32>> {
        let m = mats.first().map_or(0, |mat| lhs.len() / mat.k.max(1));
        let mut outs: Vec<Vec<f32>> = mats
            .iter()
            .map(|mat| Vec::with_capacity(m * mat.n))
            .collect();
        let dsts: Vec<DisjointMut<'_, f32>> = outs
            .iter_mut()
            .zip(mats)
            .map(|(out, mat)| DisjointMut::new_uninit(&mut out.spare_capacity_mut()[..m * mat.n]))
            .collect();
        run(mats, lhs, &dsts);
        for (out, mat) in outs.iter_mut().zip(mats) {
            // SAFETY: `run` returned, so it wrote all m * n elements: its work items cover
            // every (row tile, group of 8 columns) pair of each matrix, each writing its
            // rows' 8 columns, and n is a multiple of 8.
            unsafe { out.set_len(m * mat.n) };
        }
        outs
    }
}

/// The products of `mats` with `lhs`, matrix `j`'s written to the first `m * n` elements
/// of `dsts[j]` (row-major, `[m, n]`), every one of them.
#[allow(unsafe_code)]
fn run(mats: &[&Q41Matrix], lhs: &[f32], dsts: &[DisjointMut<'_, f32>]) {
    assert_eq!(mats.len(), dsts.len(), "one destination per matrix");
    let Some(k) = mats.first().map(|m| m.k) else {
        return;
    };
    assert!(mats.iter().all(|m| m.k == k), "matrices of one input width");
    let kb = k / QK;
    let m = lhs.len() / k;
    assert_eq!(m * k, lhs.len(), "lhs is not a whole number of rows");
    for (mat, dst) in mats.iter().zip(dsts) {
        assert!(dst.len() >= m * mat.n, "dst too small");
    }
    let acts = quantize_rows(lhs, m, k);
    // Matrix j owns work items starts[j]..starts[j + 1].
    let mut starts = vec![0usize];
    for mat in mats {
        let tiles = m.div_ceil(tile_rows(mat.kernel(), m));
        starts.push(starts[starts.len() - 1] + tiles * (mat.n / ROWS));
    }
    // Work items are (matrix, row tile, group of 8 matrix rows): a group's weights are read
    // once per tile of up to TILE activation rows (a batch of sequences, or prompt tokens).
    let work = |range: std::ops::Range<usize>| {
        for item in range {
            let j = starts.partition_point(|&s| s <= item) - 1;
            let (mat, local) = (mats[j], item - starts[j]);
            let (n, groups) = (mat.n, mat.n / ROWS);
            let (tile, g) = (local / groups, local % groups);
            let size = tile_rows(mat.kernel(), m);
            let first = tile * size;
            let count = size.min(m - first);
            let w = &mat.blocks[g * kb..(g + 1) * kb];
            let tile = &acts[first * kb..(first + count) * kb];
            let out = dot8_rows(mat.isa, w, tile);
            for (i, o) in out.iter().take(count).enumerate() {
                // SAFETY: each (matrix, tile, group) item writes its own 8 elements of each
                // of its rows of `dsts[j]`; no two items write the same element.
                unsafe { dsts[j].write((first + i) * n + g * ROWS, o) };
            }
        }
    };
    crate::spread::spread(starts[mats.len()], work);
}

/// For each activation row of `tile` (1 to [`TILE`] rows of `w.len()` blocks each, row after
/// row), its eight dot products with the eight interleaved rows of `w`; rows past the tile's
/// are zero.
fn dot8_rows(isa: Isa, w: &[Block8], tile: &[ActBlock]) -> [[f32; ROWS]; TILE] {
    fn padded<const T: usize>(out: [[f32; ROWS]; T]) -> [[f32; ROWS]; TILE] {
        let mut all = [[0f32; ROWS]; TILE];
        all[..T].copy_from_slice(&out);
        all
    }
    let kb = w.len();
    assert!(
        kb > 0 && tile.len().is_multiple_of(kb),
        "whole activation rows"
    );
    // Each row count is its own instance: the rows' accumulators stay in registers.
    match tile.len() / kb {
        1 => padded(dot8_tile::<1>(isa, w, tile)),
        2 => padded(dot8_tile::<2>(isa, w, tile)),
        3 => padded(dot8_tile::<3>(isa, w, tile)),
        4 => padded(dot8_tile::<4>(isa, w, tile)),
        5 => padded(dot8_tile::<5>(isa, w, tile)),
        6 => padded(dot8_tile::<6>(isa, w, tile)),
        7 => padded(dot8_tile::<7>(isa, w, tile)),
        8 => dot8_tile::<8>(isa, w, tile),
        rows => unreachable!("a tile of {rows} rows"),
    }
}

/// For each of the `T` activation rows of `tile`, its eight dot products with the eight
/// interleaved rows of `w`.
#[inline]
fn dot8_tile<const T: usize>(isa: Isa, w: &[Block8], tile: &[ActBlock]) -> [[f32; ROWS]; T] {
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx2(cpu) => avx2::dot8_tile(cpu, w, tile),
        Isa::Vnni(cpu) => vnni::dot8_tile(cpu, w, tile),
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        assert_eq!(
            tile.len(),
            T * w.len(),
            "T activation rows of the weights' length"
        );
        let mut out = [[0f32; ROWS]; T];
        for (o, a) in out.iter_mut().zip(tile.chunks_exact(w.len())) {
            *o = dot8_scalar(w, a);
        }
        out
    }
}

/// The reference order of operations (candle's generic `vec_dot` for Q4_1 × Q8_1), lane by
/// lane; used by tests and off x86-64.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn dot8_scalar(w: &[Block8], a: &[ActBlock]) -> [f32; ROWS] {
    let mut sumf = [0f32; ROWS];
    for (wb, ab) in w.iter().zip(a) {
        for (r, sum) in sumf.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..QK / 2 {
                let v0 = i32::from(wb.byte(r, j) & 0x0F);
                let v1 = i32::from(wb.byte(r, j) >> 4);
                sumi += v0 * i32::from(ab.qs[j]) + v1 * i32::from(ab.qs[j + QK / 2]);
            }
            *sum += sumi as f32 * wb.d[r] * ab.d + wb.m[r] * ab.s;
        }
    }
    sumf
}
