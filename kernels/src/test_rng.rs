//! A seeded generator of test inputs, shared by the kernels' tests (no dependency needed).

/// The next value in [-1, 1) of a 64-bit linear congruential sequence.
pub(crate) fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}
