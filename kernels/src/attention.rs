//! One decode step of grouped-query attention for a batch of sequences, each reading its own
//! key/value cache, fused into one pass over candle's thread pool.
//!
//! candle computes decode attention as a dozen tensor operations per sequence and layer
//! (concatenate the cache, repeat the key/value heads, two matrix products, scale, softmax,
//! transposes): at eight sequences that is a third of a decode step, spent mostly on
//! copies and per-operation overhead, and all of it on one thread. Here each (sequence,
//! key/value head) is one work item that reads that head's cache in place, once for all the
//! query heads that share it (no repeated heads, no concatenation), and writes their slices
//! of the output.
//!
//! Like [`crate::Q41Matrix`], it gives candle's result bit for bit: each score, softmax and
//! weighted sum follows the order of floating-point operations of the path candle takes for
//! that shape (gemm's horizontal kernel, row-major or column-major gemv, or `gevv`, chosen by
//! the number of positions; candle's softmax sum), and the tests compare with candle's
//! operations on every path. A sequence's result never depends on the rest of its batch or
//! on the number of threads.

/// Heads and widths of a grouped-query attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads; divides `n_head`.
    pub n_kv_head: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttentionShape {
    /// Floats of one position's keys (or values) in a cache: `n_kv_head * head_dim`.
    pub fn kv_width(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Floats of one sequence's queries (and of its output): `n_head * head_dim`.
    pub fn q_width(&self) -> usize {
        self.n_head * self.head_dim
    }
}

/// One sequence's cache for one layer, head-major: key/value head `g` holds its `len`
/// positions as consecutive `head_dim`-float rows starting at `g * capacity * head_dim` of
/// `k` (keys) and of `v` (values), so that each head's positions are read as one contiguous
/// run (rows strided by the other heads read at a fraction of the memory bandwidth). The
/// newest position is the query's own.
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a> {
    k: &'a [f32],
    v: &'a [f32],
    len: usize,
    capacity: usize,
}

impl<'a> KvView<'a> {
    /// A view of `len` positions in buffers laid out for `capacity` positions per head
    /// (`decode_attention` checks the buffers against its shape).
    pub fn new(k: &'a [f32], v: &'a [f32], len: usize, capacity: usize) -> Self {
        Self {
            k,
            v,
            len,
            capacity,
        }
    }

    /// Keys and values of head `g`: `len` rows of `hd` floats each.
    fn head(&self, g: usize, hd: usize) -> (&'a [f32], &'a [f32]) {
        let at = g * self.capacity * hd;
        let n = self.len * hd;
        (&self.k[at..][..n], &self.v[at..][..n])
    }
}

/// Rotates each consecutive pair `(x[2i], x[2i+1])` of every head in `x` by the angle whose
/// cosine and sine are `cos[i]`, `sin[i]` (`head_dim / 2` each): candle's `rope_i`, with the
/// same operations, so the same bits.
pub fn rope_interleaved(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    assert!(
        cos.len() >= half && sin.len() >= half,
        "rope tables too short"
    );
    for head in x.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

/// Attention of each sequence's query (`q`: `b` rows of `n_head * head_dim`) over its own
/// cache (`caches[i]`, already holding the query's position), scaled by `1/sqrt(head_dim)`,
/// into `out` (`b` rows of `n_head * head_dim`, heads in order).
pub fn decode_attention(shape: AttentionShape, q: &[f32], caches: &[KvView<'_>], out: &mut [f32]) {
    let AttentionShape {
        n_head,
        n_kv_head,
        head_dim,
    } = shape;
    assert!(
        n_kv_head > 0 && n_head.is_multiple_of(n_kv_head) && head_dim > 0,
        "heads do not group"
    );
    let (qw, kvw) = (shape.q_width(), shape.kv_width());
    let b = caches.len();
    assert_eq!(q.len(), b * qw, "one query row per cache");
    assert_eq!(out.len(), b * qw, "one output row per cache");
    for c in caches {
        assert!(
            c.len > 0
                && c.len <= c.capacity
                && c.k.len() == c.capacity * kvw
                && c.v.len() == c.capacity * kvw,
            "a cache holds whole heads of `capacity` positions, and 1 to `capacity` of them"
        );
    }
    let n_rep = n_head / n_kv_head;
    let simd = Simd::for_width(head_dim);
    // candle divides by sqrt(head_dim) as `affine(1 / sqrt, 0)`, the factor rounded from f64.
    let scale = (1.0 / (head_dim as f64).sqrt()) as f32;
    // One item per (sequence, key/value head): its cache rows are read once for all the
    // query heads that share them, and it writes their outputs, out[item * n_rep *
    // head_dim..][..n_rep * head_dim] (query heads g * n_rep .. (g + 1) * n_rep of sequence
    // i: out holds b * qw = b * n_kv_head * n_rep * head_dim floats, asserted above).
    let work = |range: std::ops::Range<usize>, outs: &mut [f32]| {
        let mut scores = Vec::new();
        let end = range.end;
        for (item, acc) in range.zip(outs.chunks_exact_mut(n_rep * head_dim)) {
            let (i, g) = (item / n_kv_head, item % n_kv_head);
            let at = i * qw + g * n_rep * head_dim;
            let qg = &q[at..][..n_rep * head_dim];
            let head = caches[i].head(g, head_dim);
            // This range's next item is read from memory while this one computes.
            let next = (item + 1 < end)
                .then(|| caches[(item + 1) / n_kv_head].head((item + 1) % n_kv_head, head_dim));
            group(qg, head, next, head_dim, scale, simd, &mut scores, acc);
        }
    };
    crate::disjoint::spread_chunks(out, n_rep * head_dim, work);
}

/// The `n_rep` query heads in `q` (consecutive) against one key/value head of one cache
/// (its keys and values, `hd` floats per position): for each, the softmax of its scaled
/// scores, then the weighted sum of the values, into its `hd` floats of `acc`. `next`: the
/// keys and values the caller reads next, asked for from memory meanwhile.
#[allow(clippy::too_many_arguments)]
fn group(
    q: &[f32],
    (keys, vals): (&[f32], &[f32]),
    next: Option<(&[f32], &[f32])>,
    hd: usize,
    scale: f32,
    simd: Simd,
    scores: &mut Vec<f32>,
    acc: &mut [f32],
) {
    let len = keys.len() / hd;
    let n_rep = q.len() / hd;
    // scores[r * len + j]: query head r against position j, as candle's `matmul` then
    // `affine` compute it (gemm's horizontal kernel up to 256 positions, its row-major gemv
    // beyond). Positions go KEYS at a time, so that many independent chains of fused
    // multiply-adds are in flight; each score's own order of operations is unchanged.
    let horizontal = len <= HORIZONTAL_MAX;
    scores.clear();
    scores.resize(n_rep * len, 0.0);
    for (r, (qh, row)) in q
        .chunks_exact(hd)
        .zip(scores.chunks_exact_mut(len))
        .enumerate()
    {
        match simd {
            // The first query head's pass brings the keys and the values (for the weighted
            // sums) in from memory as it goes; the second and third, whose keys are then in
            // cache, the next item's keys and values (with fewer query heads per group, that
            // much less of them).
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2(cpu) => {
                let later = match (r, next) {
                    (1, Some((k, _))) => k,
                    (2, Some((_, v))) => v,
                    _ => &[],
                };
                x86::score_row(
                    cpu,
                    qh,
                    keys,
                    horizontal,
                    scale,
                    row,
                    (r == 0).then_some(vals),
                    later,
                );
            }
            Simd::Portable => score_row(qh, keys, horizontal, scale, row),
        }
    }
    for row in scores.chunks_exact_mut(len) {
        softmax(row);
    }
    // acc[r] = Σ_j p[r][j] · v[j], in gemm's order for a 1-row product: its `gevv` for one or
    // two positions (separate multiply and add), else its column-major gemv (the first
    // product, then fused multiply-adds in position order).
    let values = |j: usize| &vals[j * hd..][..hd];
    for (r, a) in acc.chunks_exact_mut(hd).enumerate() {
        let p = &scores[r * len..][..len];
        match len {
            1 => {
                for (a, &v) in a.iter_mut().zip(values(0)) {
                    *a = v * p[0];
                }
            }
            2 => {
                for ((a, &v0), &v1) in a.iter_mut().zip(values(0)).zip(values(1)) {
                    *a = p[1] * v1 + p[0] * v0;
                }
            }
            _ => weighted_sum(p, &values, a),
        }
    }
}

/// Positions scored together.
const KEYS: usize = 8;

/// How scores are computed: both ways give the same bits.
#[derive(Debug, Clone, Copy)]
enum Simd {
    /// AVX2 and FMA registers (heads a whole number of 8-float lanes wide).
    #[cfg(target_arch = "x86_64")]
    Avx2(crate::cpu::Avx2Fma),
    /// Plain Rust, element by element.
    Portable,
}

impl Simd {
    /// The fastest way this CPU has for heads `hd` floats wide.
    fn for_width(hd: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = crate::cpu::cpu().avx2_fma()
            && hd.is_multiple_of(LANES)
        {
            return Self::Avx2(cpu);
        }
        let _ = hd;
        Self::Portable
    }
}

/// `row[j]`: the scaled score of query head `qh` against key `j` (`keys`: `row.len()` rows
/// as wide as `qh`), as candle computes it: gemm's horizontal kernel (`horizontal`) or its
/// row-major gemv, then `* scale + 0`. Keys go [`KEYS`] at a time, so that many independent
/// chains of fused multiply-adds are in flight.
fn score_row(qh: &[f32], keys: &[f32], horizontal: bool, scale: f32, row: &mut [f32]) {
    let hd = qh.len();
    let len = row.len();
    let key = |j: usize| &keys[j * hd..][..hd];
    let mut blocks = row.chunks_exact_mut(KEYS);
    for (bi, out) in (&mut blocks).enumerate() {
        let ks: [&[f32]; KEYS] = std::array::from_fn(|t| key(bi * KEYS + t));
        let dots = if horizontal {
            dot_lanes(qh, ks)
        } else {
            dot_gemv(qh, ks)
        };
        for (o, d) in out.iter_mut().zip(dots) {
            *o = d * scale + 0.0;
        }
    }
    let done = len / KEYS * KEYS;
    for (t, o) in blocks.into_remainder().iter_mut().enumerate() {
        let k = [key(done + t)];
        let [d] = if horizontal {
            dot_lanes(qh, k)
        } else {
            dot_gemv(qh, k)
        };
        *o = d * scale + 0.0;
    }
}

/// Output floats kept in registers while a weighted sum runs over the positions.
const COLUMNS: usize = 8 * LANES;

/// `a = Σ_j p[j] · values(j)` as gemm's column-major gemv computes it: the first product,
/// then fused multiply-adds in position order; COLUMNS outputs at a time held in registers
/// over all the positions.
fn weighted_sum<'v>(p: &[f32], values: &impl Fn(usize) -> &'v [f32], a: &mut [f32]) {
    let mut at = 0;
    for out in a.chunks_mut(COLUMNS) {
        if let Ok(out) = <&mut [f32; COLUMNS]>::try_from(&mut *out) {
            let first = &values(0)[at..][..COLUMNS];
            let mut acc: [f32; COLUMNS] = std::array::from_fn(|d| first[d] * p[0]);
            for (j, &pj) in p.iter().enumerate().skip(1) {
                let Ok(v) = <&[f32; COLUMNS]>::try_from(&values(j)[at..][..COLUMNS]) else {
                    unreachable!("a slice of COLUMNS floats")
                };
                for d in 0..COLUMNS {
                    acc[d] = v[d].mul_add(pj, acc[d]);
                }
            }
            *out = acc;
        } else {
            for (o, &v) in out.iter_mut().zip(&values(0)[at..]) {
                *o = v * p[0];
            }
            for (j, &pj) in p.iter().enumerate().skip(1) {
                for (o, &v) in out.iter_mut().zip(&values(j)[at..]) {
                    *o = v.mul_add(pj, *o);
                }
            }
        }
        at += out.len();
    }
}

/// Positions up to which gemm computes a one-row score product with its horizontal kernel
/// (`m * n <= 16 * 16`).
const HORIZONTAL_MAX: usize = 256;

/// Lanes of gemm's AVX2 f32 kernels.
const LANES: usize = 8;

/// `a · b` for each `b` in `bs`, as gemm's horizontal kernel computes one output: eight
/// lanes of fused multiply-adds (a partial last chunk padded with zeros), then its pairwise
/// reduction. The products of all of `bs` are interleaved, each in its own lanes.
#[inline(always)]
fn dot_lanes<const K: usize>(a: &[f32], bs: [&[f32]; K]) -> [f32; K] {
    let n = a.len();
    let bs: [&[f32]; K] = std::array::from_fn(|k| &bs[k][..n]);
    let mut l = [[0f32; LANES]; K];
    let whole = n / LANES * LANES;
    for d in (0..whole).step_by(LANES) {
        let Ok(x) = <&[f32; LANES]>::try_from(&a[d..d + LANES]) else {
            unreachable!("a chunk of LANES floats")
        };
        for (lk, b) in l.iter_mut().zip(&bs) {
            let Ok(y) = <&[f32; LANES]>::try_from(&b[d..d + LANES]) else {
                unreachable!("a chunk of LANES floats")
            };
            for i in 0..LANES {
                lk[i] = x[i].mul_add(y[i], lk[i]);
            }
        }
    }
    for (lk, b) in l.iter_mut().zip(&bs) {
        for (i, d) in (whole..n).enumerate() {
            lk[i] = a[d].mul_add(b[d], lk[i]);
        }
    }
    l.map(|l| ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])))
}

/// `a · b` for each `b` in `bs`, as gemm's row-major gemv computes one output: eight
/// accumulators of eight lanes over chunks of 64, summed as a tree; further whole chunks of
/// 8 into the first; its lanes summed in order; then the scalar tail, fused.
#[inline(always)]
fn dot_gemv<const K: usize>(a: &[f32], bs: [&[f32]; K]) -> [f32; K] {
    bs.map(|b| dot_gemv_one(a, b))
}

#[inline(always)]
fn dot_gemv_one(a: &[f32], b: &[f32]) -> f32 {
    const WIDE: usize = 8 * LANES;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [[0f32; LANES]; 8];
    let wide = n / WIDE * WIDE;
    for (xa, xb) in a[..wide]
        .chunks_exact(WIDE)
        .zip(b[..wide].chunks_exact(WIDE))
    {
        for (c, lanes) in acc.iter_mut().enumerate() {
            for i in 0..LANES {
                lanes[i] = xa[c * LANES + i].mul_add(xb[c * LANES + i], lanes[i]);
            }
        }
    }
    let add =
        |x: [f32; LANES], y: [f32; LANES]| std::array::from_fn::<f32, LANES, _>(|i| x[i] + y[i]);
    let (a01, a23) = (add(acc[0], acc[1]), add(acc[2], acc[3]));
    let (a45, a67) = (add(acc[4], acc[5]), add(acc[6], acc[7]));
    let mut lanes = add(add(a01, a23), add(a45, a67));
    let narrow = n / LANES * LANES;
    for d in (wide..narrow).step_by(LANES) {
        for i in 0..LANES {
            lanes[i] = a[d + i].mul_add(b[d + i], lanes[i]);
        }
    }
    let mut sum = lanes[0];
    for &x in &lanes[1..] {
        sum += x;
    }
    for d in narrow..n {
        sum = a[d].mul_add(b[d], sum);
    }
    sum
}

/// candle's `softmax_last_dim` on one row: the maximum, `exp(x - max)`, their sum in
/// candle's order (four 8-lane accumulators over chunks of 32, its reduction, then the tail
/// in order), and a division of each by the sum.
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(row[0], f32::max);
    for x in row.iter_mut() {
        *x -= max;
    }
    crate::exp::exp_in_place(row);
    let whole = row.len() / (4 * LANES) * (4 * LANES);
    let mut acc = [[0f32; LANES]; 4];
    for chunk in row[..whole].chunks_exact(4 * LANES) {
        for (c, lanes) in acc.iter_mut().enumerate() {
            for i in 0..LANES {
                lanes[i] += chunk[c * LANES + i];
            }
        }
    }
    let x: [f32; LANES] = std::array::from_fn(|i| {
        let x0 = acc[0][i] + acc[1][i];
        let x2 = acc[2][i] + acc[3][i];
        x0 + x2
    });
    // 128-bit halves added, then two horizontal adds.
    let t: [f32; 4] = std::array::from_fn(|i| x[i] + x[i + 4]);
    let mut sum = (t[0] + t[1]) + (t[2] + t[3]);
    for &e in &row[whole..] {
        sum += e;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;
