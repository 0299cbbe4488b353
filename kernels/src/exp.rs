//! `expf` as the C library computes it, eight lanes at a time.
//!
//! candle's softmax and SiLU call `f32::exp`, which is glibc's `expf`; on x86-64-v3 (the
//! build target, so every CPU Veil runs on) glibc resolves it to its FMA variant. That
//! routine (glibc 2.28 and later) reduces `x·32/ln 2` to an integer `k` and a remainder `r`
//! in double precision, looks `2^(k/32)` up in a 32-entry table, and evaluates a cubic in
//! `r`: a few fused multiply-adds, then one rounding to f32. [`exp8`] evaluates the same
//! operations on eight lanes, so the compiler can vectorize them, and gives the same bits
//! for every input in its fast range (|x| < 88, checked against the C library in the tests:
//! all of it in `exp_equals_libm_exhaustively`, ignored by default, and a dense sample in
//! every run). Lanes outside that range (overflow, underflow, infinities, NaN) are handed
//! to `f32::exp` itself.

/// `2^(i/32)` as f64 bits, less `i << 47` (glibc's `__exp2f_data.tab`: adding `k << 47`
/// restores the entry and scales it by `2^(k/32 - i/32)`). Checked against `f64::exp2` in
/// the tests.
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
/// `32 / ln 2`.
const INV_LN2_N: f64 = f64::from_bits(0x40471547652b82fe);
/// `1.5 · 2^52`: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = f64::from_bits(0x4338000000000000);
/// The cubic's coefficients for `2^(r/32)`, highest degree first.
const C0: f64 = f64::from_bits(0x3ebc6af84b912394);
const C1: f64 = f64::from_bits(0x3f2ebfce50fac4f3);
const C2: f64 = f64::from_bits(0x3f962e42ff0c52d6);
/// The fast path's bound: glibc takes it where the top 12 bits of |x| are below 88.0's.
const FAST_BELOW: f32 = 88.0;

/// The C library's `expf` of one lane known to be in the fast range.
#[inline(always)]
fn lane(x: f32) -> f32 {
    let xd = f64::from(x);
    let kd = INV_LN2_N.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INV_LN2_N.mul_add(xd, -kd);
    let s = f64::from_bits(TABLE[(ki & 31) as usize].wrapping_add(ki << 47));
    let z = C0.mul_add(r, C1);
    let r2 = r * r;
    let y = C2.mul_add(r, 1.0);
    (z.mul_add(r2, y) * s) as f32
}

/// `x[i] = exp(x[i])` for eight lanes, bit for bit the C library's `expf`.
#[inline(always)]
pub(crate) fn exp8(x: &mut [f32; 8]) {
    // `abs() < 88` is false for NaN too: every lane outside the fast path goes to libm,
    // lane by lane (the others keep the fast path's value), except -inf, whose exp is +0
    // (a causal mask's lanes).
    if x.iter().all(|v| v.abs() < FAST_BELOW) {
        // A plain loop (not `map`, which the compiler left as a call in some callers).
        for v in x.iter_mut() {
            *v = lane(*v);
        }
    } else {
        for v in x.iter_mut() {
            *v = if v.abs() < FAST_BELOW {
                lane(*v)
            } else if *v == f32::NEG_INFINITY {
                0.0
            } else {
                v.exp()
            };
        }
    }
}

/// `x[i] = exp(x[i])` for a whole slice.
pub(crate) fn exp_in_place(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        if let Ok(c) = <&mut [f32; 8]>::try_from(c) {
            exp8(c);
        }
    }
    for v in chunks.into_remainder() {
        *v = v.exp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares [`exp8`] with `f32::exp` on every `step`-th f32 bit pattern.
    fn compare(step: usize) {
        let mut lanes = [0f32; 8];
        let mut bits = [0u32; 8];
        let mut n = 0;
        let check = |lanes: &mut [f32; 8], bits: &[u32; 8], n: usize| {
            exp8(lanes);
            for (i, (&got, &b)) in lanes.iter().zip(bits).enumerate().take(n) {
                let want = f32::from_bits(b).exp();
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "exp({:e}) lane {i}: {got:e} != libm {want:e}",
                    f32::from_bits(b)
                );
            }
        };
        for b in (0..=u32::MAX).step_by(step) {
            lanes[n] = f32::from_bits(b);
            bits[n] = b;
            n += 1;
            if n == 8 {
                check(&mut lanes, &bits, 8);
                n = 0;
            }
        }
        check(&mut lanes, &bits, n);
    }

    #[test]
    fn exp_equals_libm_on_a_dense_sample() {
        // Every 997th bit pattern (4.3 million values, both signs, every exponent,
        // subnormals, infinities, NaNs), plus the edges of the fast range.
        compare(997);
        let mut edges = [
            FAST_BELOW,
            -FAST_BELOW,
            f32::from_bits(FAST_BELOW.to_bits() - 1),
            -f32::from_bits(FAST_BELOW.to_bits() - 1),
            -103.5,
            -0.0,
            f32::MIN_POSITIVE,
            1e-30,
        ];
        let want = edges.map(f32::exp);
        exp8(&mut edges);
        assert_eq!(edges.map(f32::to_bits), want.map(f32::to_bits));
    }

    #[test]
    #[ignore = "all 2^32 inputs: about a minute; run by hand after a C library change"]
    fn exp_equals_libm_exhaustively() {
        compare(1);
    }

    #[test]
    fn table_is_two_to_the_i_over_32() {
        for (i, &t) in TABLE.iter().enumerate() {
            let want = (i as f64 / 32.0).exp2().to_bits() - ((i as u64) << 47);
            assert_eq!(t, want, "entry {i}");
        }
    }
}
