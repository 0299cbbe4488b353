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

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

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
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512vnni") && has!("avx512vl") && has!("avx2") {
                return Some(Self::Avx512Vnni);
            }
            if has!("avx2") {
                return Some(Self::Avx2);
            }
        }
        None
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        matches!(
            (Self::detect(), self),
            (Some(Self::Avx512Vnni), _) | (Some(Self::Avx2), Self::Avx2)
        )
    }
}

/// A Q4_1 matrix of `n` rows (outputs) by `k` columns (inputs), eight rows interleaved.
pub struct Q41Matrix {
    n: usize,
    k: usize,
    kernel: Q41Kernel,
    /// `n / 8` groups of `k / 32` blocks.
    blocks: Vec<Block8>,
}

impl std::fmt::Debug for Q41Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q41Matrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("kernel", &self.kernel)
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
        Q41Kernel::detect().is_some()
    }

    /// Repacks a Q4_1 `QTensor` of shape `(n, k)` for the fastest kernel this CPU runs;
    /// `None` if it is not Q4_1, its shape does not fit the kernel, or the CPU lacks AVX2.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Option<Self>> {
        match Q41Kernel::detect() {
            Some(kernel) => Self::from_qtensor_with(t, kernel),
            None => Ok(None),
        }
    }

    /// As [`Q41Matrix::from_qtensor`], with a given kernel (`None` also if the CPU lacks it).
    pub fn from_qtensor_with(t: &QTensor, kernel: Q41Kernel) -> candle_core::Result<Option<Self>> {
        if t.dtype() != GgmlDType::Q4_1 || !kernel.is_supported() {
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
        Ok(Some(Self {
            n,
            k,
            kernel,
            blocks,
        }))
    }

    /// The kernel it computes with.
    pub fn kernel(&self) -> Q41Kernel {
        self.kernel
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
        let dsts: Vec<*mut f32> = dsts.iter_mut().map(|d| d.as_mut_ptr()).collect();
        // SAFETY: each destination holds at least m * n elements (asserted above).
        unsafe { Self::run(mats, lhs, &dsts) };
    }

    /// [`Q41Matrix::matmul_many`] into new vectors, `[m * n]` each: every element is written
    /// by the kernel, so none is first filled with zeros.
    pub fn products(mats: &[&Self], lhs: &[f32]) -> Vec<Vec<f32>> {
        let m = mats.first().map_or(0, |mat| lhs.len() / mat.k.max(1));
        let mut outs: Vec<Vec<f32>> = mats
            .iter()
            .map(|mat| Vec::with_capacity(m * mat.n))
            .collect();
        let dsts: Vec<*mut f32> = outs.iter_mut().map(Vec::as_mut_ptr).collect();
        // SAFETY: each destination has capacity for m * n elements.
        unsafe { Self::run(mats, lhs, &dsts) };
        for (out, mat) in outs.iter_mut().zip(mats) {
            // SAFETY: `run` returned, so it wrote all m * n elements: its work items cover
            // every (row tile, group of 8 columns) pair of each matrix, each writing its
            // rows' 8 columns, and n is a multiple of 8.
            unsafe { out.set_len(m * mat.n) };
        }
        outs
    }

    /// The products of `mats` with `lhs`, matrix `j`'s written to `dsts[j]` (row-major,
    /// `[m, n]`).
    ///
    /// # Safety
    /// Each `dsts[j]` must be valid for writes of `m * mats[j].n` f32, and nothing else may
    /// access that memory during the call.
    unsafe fn run(mats: &[&Self], lhs: &[f32], dsts: &[*mut f32]) {
        assert_eq!(mats.len(), dsts.len(), "one destination per matrix");
        let Some(k) = mats.first().map(|m| m.k) else {
            return;
        };
        assert!(mats.iter().all(|m| m.k == k), "matrices of one input width");
        let kb = k / QK;
        let m = lhs.len() / k;
        assert_eq!(m * k, lhs.len(), "lhs is not a whole number of rows");
        let acts = quantize_rows(lhs, m, k);
        // Matrix j owns work items starts[j]..starts[j + 1].
        let mut starts = vec![0usize];
        for mat in mats {
            let tiles = m.div_ceil(tile_rows(mat.kernel, m));
            starts.push(starts[starts.len() - 1] + tiles * (mat.n / ROWS));
        }
        let dst_addrs: Vec<usize> = dsts.iter().map(|&d| d as usize).collect();
        // Work items are (matrix, row tile, group of 8 matrix rows): a group's weights are read
        // once per tile of up to TILE activation rows (a batch of sequences, or prompt tokens).
        let work = |range: std::ops::Range<usize>| {
            for item in range {
                let j = starts.partition_point(|&s| s <= item) - 1;
                let (mat, local) = (mats[j], item - starts[j]);
                let (n, groups) = (mat.n, mat.n / ROWS);
                let (tile, g) = (local / groups, local % groups);
                let size = tile_rows(mat.kernel, m);
                let first = tile * size;
                let count = size.min(m - first);
                let w = &mat.blocks[g * kb..(g + 1) * kb];
                let tile = &acts[first * kb..(first + count) * kb];
                let out = dot8_rows(mat.kernel, w, tile);
                for (i, o) in out.iter().take(count).enumerate() {
                    // SAFETY: each (matrix, tile, group) item writes its own 8 elements of each
                    // of its rows of `dsts[j]`, valid for m * n elements (the caller's
                    // contract) for the whole pool run; no two items write the same element.
                    unsafe {
                        let p = (dst_addrs[j] as *mut f32).add((first + i) * n + g * ROWS);
                        std::ptr::copy_nonoverlapping(o.as_ptr(), p, ROWS);
                    }
                }
            }
        };
        crate::spread::spread(starts[mats.len()], work);
    }
}

/// Quantizes each row of `lhs` to the Q8_1 blocks candle's matmul would use, laid out for the
/// kernel.
fn quantize_rows(lhs: &[f32], m: usize, k: usize) -> Vec<ActBlock> {
    assert!(
        k.is_multiple_of(QK) && lhs.len() == m * k,
        "m rows of whole blocks"
    );
    let kb = k / QK;
    if m < 2 {
        return lhs.chunks_exact(QK).map(quantize_block).collect();
    }
    // Several rows (a batch): spread over the pool, a row per item, into a vector that is
    // not first filled (every block is written).
    let mut out: Vec<ActBlock> = Vec::with_capacity(m * kb);
    let out_addr = out.as_mut_ptr() as usize;
    crate::spread::spread(m, |rows| {
        for r in rows {
            for (b, x) in lhs[r * k..(r + 1) * k].chunks_exact(QK).enumerate() {
                let block = quantize_block(x);
                // SAFETY: item r writes blocks r * kb .. (r + 1) * kb of `out` (capacity
                // m * kb), which outlives the pool's run; no two items write the same block.
                unsafe { (out_addr as *mut ActBlock).add(r * kb + b).write(block) };
            }
        }
    });
    // SAFETY: `spread` returned, so every row r < m wrote its kb blocks: all m * kb are
    // initialized (`lhs` is m rows of k = kb * 32 floats, asserted above).
    unsafe { out.set_len(m * kb) };
    out
}

/// One block quantized to Q8_1 exactly as candle's `BlockQ8_1::from_float` does it (a test
/// compares them): the largest magnitude, the scale `d = amax / 127`, each element times
/// `1 / d` rounded half away from zero (saturated to i8, NaN to 0), and the sum term
/// `s = f16(Σq) · f16(d)` in f16 arithmetic. On AVX2 eight elements at a time (the
/// compiler made the element-wise rounding and conversion scalar code).
fn quantize_block(xs: &[f32]) -> ActBlock {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if let Ok(xs) = <&[f32; QK]>::try_from(xs) {
        // SAFETY: AVX2 is enabled for the whole build (the x86-64-v3 target level).
        return unsafe { quantize_block_avx2(xs) };
    }
    quantize_block_portable(xs)
}

/// [`quantize_block`] element by element.
fn quantize_block_portable(xs: &[f32]) -> ActBlock {
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
fn act_block(qs: [i8; QK], d: f32, sum: i32) -> ActBlock {
    let d16 = f16::from_f32(d);
    ActBlock {
        qs,
        d: d16.to_f32(),
        s: (f16::from_f32(sum as f32) * d16).to_f32(),
    }
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
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
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[target_feature(enable = "avx2")]
fn round_half_away(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let below_half = _mm256_set1_ps(f32::from_bits(0x3EFF_FFFF));
    let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
    _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_add_ps(
        x,
        _mm256_or_ps(sign, below_half),
    ))
}

/// For each activation row of `tile` (1 to [`TILE`] rows of `w.len()` blocks each, row after
/// row), its eight dot products with the eight interleaved rows of `w`; rows past the tile's
/// are zero.
fn dot8_rows(kernel: Q41Kernel, w: &[Block8], tile: &[ActBlock]) -> [[f32; ROWS]; TILE] {
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
        1 => padded(dot8_tile::<1>(kernel, w, tile)),
        2 => padded(dot8_tile::<2>(kernel, w, tile)),
        3 => padded(dot8_tile::<3>(kernel, w, tile)),
        4 => padded(dot8_tile::<4>(kernel, w, tile)),
        5 => padded(dot8_tile::<5>(kernel, w, tile)),
        6 => padded(dot8_tile::<6>(kernel, w, tile)),
        7 => padded(dot8_tile::<7>(kernel, w, tile)),
        8 => dot8_tile::<8>(kernel, w, tile),
        rows => unreachable!("a tile of {rows} rows"),
    }
}

/// For each of the `T` activation rows of `tile`, its eight dot products with the eight
/// interleaved rows of `w`.
fn dot8_tile<const T: usize>(
    kernel: Q41Kernel,
    w: &[Block8],
    tile: &[ActBlock],
) -> [[f32; ROWS]; T] {
    assert_eq!(
        tile.len(),
        T * w.len(),
        "T activation rows of the weights' length"
    );
    #[cfg(target_arch = "x86_64")]
    {
        match kernel {
            // SAFETY: matrices are only built with a kernel the CPU supports
            // (`from_qtensor_with` checks `is_supported`); `tile` holds T rows of w.len()
            // blocks (asserted above).
            Q41Kernel::Avx2 => unsafe { dot8_tile_avx2(w, tile) },
            // SAFETY: as above.
            Q41Kernel::Avx512Vnni => unsafe { dot8_tile_vnni(w, tile) },
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
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

/// A block's eight rows unpacked: `x[j]` holds elements 4j..4j+4 of each row (one row per
/// 32-bit lane), and the rows' scales and minimums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn unpack(
    wb: &Block8,
) -> (
    [std::arch::x86_64::__m256i; 2 * CHUNKS],
    std::arch::x86_64::__m256,
    std::arch::x86_64::__m256,
) {
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
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn broadcast4(ab: &ActBlock, j: usize) -> std::arch::x86_64::__m256i {
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
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn accumulate(
    acc: &mut std::arch::x86_64::__m256,
    sumi: std::arch::x86_64::__m256i,
    d: std::arch::x86_64::__m256,
    m: std::arch::x86_64::__m256,
    ab: &ActBlock,
) {
    use std::arch::x86_64::*;
    let t = _mm256_mul_ps(
        _mm256_mul_ps(_mm256_cvtepi32_ps(sumi), d),
        _mm256_broadcast_ss(&ab.d),
    );
    let u = _mm256_mul_ps(m, _mm256_broadcast_ss(&ab.s));
    *acc = _mm256_add_ps(*acc, _mm256_add_ps(t, u));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn store<const T: usize>(acc: [std::arch::x86_64::__m256; T]) -> [[f32; ROWS]; T] {
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
#[cfg(target_arch = "x86_64")]
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

/// Activation block `b` of row `t` of a tile of rows `kb` blocks long.
///
/// # Safety
/// `t * kb + b` must be inside `tile`.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn act(tile: &[ActBlock], kb: usize, t: usize, b: usize) -> &ActBlock {
    // SAFETY: the caller's contract.
    unsafe { tile.get_unchecked(t * kb + b) }
}

/// # Safety
/// The CPU must support AVX2, and `tile` must hold `T` rows of `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
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

/// # Safety
/// The CPU must support AVX2, AVX-512 VL and AVX-512 VNNI, and `tile` must hold `T` rows
/// of `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::lcg;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module, Tensor};

    /// Decode (one row) and prefill (several rows) shapes of SmolLM2's matrices, and a
    /// multiple-of-8 row count that is not a multiple of candle's 4-column quads' worth.
    #[test]
    fn equals_candle_bit_for_bit() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut seed = 7u64;
        for (m, n, k) in [
            (1, 64, 576),
            (8, 64, 576),
            (9, 192, 576),
            (3, 1536, 576),
            (1, 576, 1536),
            (7, 192, 576),
            (2, 8, 64),
            // Every tile size: 4, 5, 6, and 8 + 5.
            (4, 64, 576),
            (5, 64, 576),
            (6, 64, 576),
            (13, 64, 576),
        ] {
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
            let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0).collect();
            let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &dev)?, GgmlDType::Q4_1)?;
            let xt = Tensor::from_vec(x.clone(), (m, k), &dev)?;
            let mut mats = Vec::new();
            for kernel in [Q41Kernel::Avx2, Q41Kernel::Avx512Vnni] {
                match Q41Matrix::from_qtensor_with(&q, kernel)? {
                    Some(mat) => mats.push(mat),
                    None => assert_ne!(kernel, Q41Kernel::Avx2, "x86-64-v3 is the build target"),
                }
            }
            let mat = Q41Matrix::from_qtensor(&q)?.expect("a kernel");
            let want: Vec<f32> = QMatMul::from_qtensor(q)?
                .forward(&xt)?
                .flatten_all()?
                .to_vec1()?;
            let mut got = vec![0f32; m * n];
            let mut ran = 0;
            for mat in &mats {
                let kernel = mat.kernel();
                got.fill(f32::NAN);
                mat.matmul(&x, &mut got);
                let differing = want
                    .iter()
                    .zip(&got)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differing, 0,
                    "{kernel:?} ({m},{n},{k}): {differing} outputs differ"
                );
                ran += 1;
            }
            let vnni = Q41Kernel::detect() == Some(Q41Kernel::Avx512Vnni);
            assert_eq!(
                ran,
                if vnni { 2 } else { 1 },
                "every kernel this CPU has ran"
            );
            mat.matmul(&x, &mut got);
            // The scalar statement of the order of operations agrees as well.
            let acts = quantize_rows(&x, m, k);
            let kb = k / QK;
            let scalar = dot8_scalar(&mat.blocks[..kb], &acts[..kb]);
            assert!(
                scalar
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
        Ok(())
    }

    use candle_core::quantized::k_quants::{BlockQ8_1, GgmlType};

    /// Bytes of one Q8_1 block: `d: f16, s: f16, qs: [i8; 32]`.
    const Q8_1_BLOCK_BYTES: usize = 36;

    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn vector_rounding_is_f32_round() {
        use std::arch::x86_64::*;
        let mut xs: Vec<f32> = Vec::new();
        // Every half from -300.5 to 300.5, and the floats either side of each.
        for k in -300..=300 {
            let h = k as f32 + 0.5;
            xs.extend([
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits() - 1),
            ]);
        }
        xs.extend([
            0.0,
            -0.0,
            0.499_999_97,
            -0.499_999_97,
            8_388_607.5,
            16_777_215.0,
        ]);
        xs.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e30,
        ]);
        let mut bits = 12_345u32;
        for _ in 0..1_000_000 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            xs.push(f32::from_bits(bits));
        }
        while !xs.len().is_multiple_of(8) {
            xs.push(1.5);
        }
        for c in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 is enabled for the build; loads and stores 8 f32 in bounds.
            unsafe {
                let r = round_half_away(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_ps(got.as_mut_ptr(), r);
            }
            for (&x, &g) in c.iter().zip(&got) {
                let want = x.round();
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{x:e}: {g:e} != {want:e}"
                );
            }
        }
    }

    #[test]
    fn vector_and_portable_quantization_agree() {
        let mut seed = 17u64;
        for i in 0..5000 {
            let scale = [1e-38f32, 1e-6, 1.0, 300.0, 3e38][i % 5];
            let mut xs: Vec<f32> = (0..QK).map(|_| lcg(&mut seed) * scale).collect();
            match i % 7 {
                0 => xs[i % QK] = f32::NAN,
                1 => xs[i % QK] = f32::INFINITY,
                2 => xs[i % QK] = f32::NEG_INFINITY,
                3 => xs.fill(f32::NAN),
                _ => {}
            }
            let (a, b) = (quantize_block(&xs), quantize_block_portable(&xs));
            assert_eq!(a.qs, b.qs, "{xs:?}");
            assert_eq!(a.d.to_bits(), b.d.to_bits(), "{xs:?}");
            assert_eq!(a.s.to_bits(), b.s.to_bits(), "{xs:?}");
        }
    }

    #[test]
    fn quantizes_activations_as_candle_does() {
        let mut seed = 9u64;
        let mut rows: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let scale = [1e-3f32, 1.0, 37.0, 1e4][i % 4];
                (0..QK).map(|_| lcg(&mut seed) * scale).collect()
            })
            .collect();
        // Ties: elements at exact halves of the step, zeros, and a block of zeros.
        rows.push((0..QK).map(|j| (j as f32 - 16.0) * 0.5).collect());
        rows.push(
            (0..QK)
                .map(|j| if j == 3 { 127.0 } else { j as f32 + 0.5 })
                .collect(),
        );
        rows.push(vec![0.0; QK]);
        // A NaN (ignored by the largest magnitude), and negative zeros.
        let mut odd: Vec<f32> = (0..QK).map(|j| j as f32 - 20.0).collect();
        odd[7] = f32::NAN;
        odd[QK - 1] = f32::NAN;
        odd[1] = -0.0;
        rows.push(odd);
        rows.push(vec![-0.0; QK]);
        for row in &rows {
            let mut want = [BlockQ8_1::zeros()];
            BlockQ8_1::from_float(row, &mut want);
            // SAFETY: BlockQ8_1 is `repr(C)` { d: f16, s: f16, qs: [i8; 32] }, 36 bytes.
            let b: &[u8] =
                unsafe { std::slice::from_raw_parts(want.as_ptr().cast::<u8>(), Q8_1_BLOCK_BYTES) };
            let got = quantize_block(row);
            let qs: Vec<i8> = b[4..].iter().map(|&x| x as i8).collect();
            assert_eq!(got.qs.as_slice(), qs.as_slice(), "{row:?}");
            assert_eq!(
                got.d.to_bits(),
                f16::from_le_bytes([b[0], b[1]]).to_f32().to_bits()
            );
            assert_eq!(
                got.s.to_bits(),
                f16::from_le_bytes([b[2], b[3]]).to_f32().to_bits()
            );
        }
    }

    #[test]
    fn many_matrices_at_once_and_into_new_vectors_equal_each_alone() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut seed = 5u64;
        let k = 576;
        let mats: Vec<Q41Matrix> = [576usize, 192, 192]
            .iter()
            .map(|&n| {
                let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
                let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &dev)?, GgmlDType::Q4_1)?;
                Ok(Q41Matrix::from_qtensor(&q)?.expect("a kernel"))
            })
            .collect::<candle_core::Result<_>>()?;
        for m in [1usize, 5, 8] {
            let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0).collect();
            let mut outs: Vec<Vec<f32>> = mats.iter().map(|a| vec![f32::NAN; m * a.n]).collect();
            let mut dsts: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
            let refs: Vec<&Q41Matrix> = mats.iter().collect();
            Q41Matrix::matmul_many(&refs, &x, &mut dsts);
            // The same products into new vectors (never zero-filled: all written).
            let fresh = Q41Matrix::products(&refs, &x);
            for ((mat, got), fresh) in mats.iter().zip(&outs).zip(&fresh) {
                let mut alone = vec![0f32; m * mat.n];
                mat.matmul(&x, &mut alone);
                assert_eq!(got, &alone, "{m} rows, {} outputs", mat.n);
                assert_eq!(fresh, &alone, "{m} rows, {} outputs, new vectors", mat.n);
            }
        }
        Ok(())
    }

    #[test]
    fn declines_what_it_cannot_compute() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::zeros((12, 64), candle_core::DType::F32, &dev)?;
        // 12 rows: not a multiple of 8.
        assert!(Q41Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q4_1)?)?.is_none());
        // Another block type.
        let w = Tensor::zeros((16, 64), candle_core::DType::F32, &dev)?;
        assert!(Q41Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0)?)?.is_none());
        Ok(())
    }
}
