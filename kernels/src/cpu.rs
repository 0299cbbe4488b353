//! The CPU's instruction sets, detected once, and the proofs of them that the SIMD code
//! takes.
//!
//! Every kernel chooses its code by [`cpu`]: one value, detected at run time on first use.
//! None chooses at compile time (`cfg(target_feature)`): a `RUSTFLAGS` variable replaces
//! the workspace's `target-cpu=x86-64-v3` and would silently turn such a choice off.
//!
//! A `#[target_feature]` function may only run where the CPU has those features. The SIMD
//! modules take a token for the set they enable ([`Avx2`], [`Avx2Fma`], [`Avx512Vnni`]), a
//! zero-sized value that only this module makes, and only where detection found every
//! feature of its set: holding one is the argument of their `unsafe` calls. Nothing here
//! is `unsafe`, but the soundness of those calls rests on this module making no token it
//! should not.

use std::sync::OnceLock;

/// The instruction sets the kernels use, as this CPU reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CpuFeatures {
    avx2: bool,
    fma: bool,
    avx512f: bool,
    avx512vl: bool,
    avx512vnni: bool,
}

/// This CPU's features, detected on the first call.
pub(crate) fn cpu() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(CpuFeatures::detect)
}

impl CpuFeatures {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            Self {
                avx2: has!("avx2"),
                fma: has!("fma"),
                avx512f: has!("avx512f"),
                avx512vl: has!("avx512vl"),
                avx512vnni: has!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self::default()
    }

    /// AVX2, if this CPU has it.
    pub(crate) fn avx2(self) -> Option<Avx2> {
        self.avx2.then_some(Avx2(()))
    }

    /// AVX2 and FMA, if this CPU has both.
    pub(crate) fn avx2_fma(self) -> Option<Avx2Fma> {
        (self.avx2 && self.fma).then_some(Avx2Fma(()))
    }

    /// AVX-512 F, VL and VNNI, with AVX2 and FMA, if this CPU has them all (AMD Zen 4 and
    /// later, Intel Ice Lake server and later).
    pub(crate) fn avx512_vnni(self) -> Option<Avx512Vnni> {
        (self.avx2 && self.fma && self.avx512f && self.avx512vl && self.avx512vnni)
            .then_some(Avx512Vnni(()))
    }
}

/// Proof that this CPU has AVX2 (`#[target_feature(enable = "avx2")]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

/// Proof that this CPU has AVX2 and FMA (`enable = "avx2,fma"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma(());

/// Proof that this CPU has AVX2, FMA, AVX-512 F, VL and VNNI (any subset of
/// `enable = "avx2,fma,avx512f,avx512vl,avx512vnni"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512Vnni(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_once_and_tokens_follow_the_features() {
        let f = cpu();
        assert_eq!(f, cpu());
        assert_eq!(f.avx2().is_some(), f.avx2);
        assert_eq!(f.avx2_fma().is_some(), f.avx2 && f.fma);
        // Each token needs every feature of its set.
        let none = CpuFeatures::default();
        assert!(none.avx2().is_none() && none.avx2_fma().is_none());
        let almost = CpuFeatures {
            avx2: true,
            fma: true,
            avx512f: true,
            avx512vl: false,
            avx512vnni: true,
        };
        assert!(almost.avx512_vnni().is_none() && almost.avx2_fma().is_some());
        #[cfg(target_arch = "x86_64")]
        {
            // The workspace builds for x86-64-v3: every CPU it runs on has AVX2 and FMA.
            assert!(f.avx2_fma().is_some(), "{f:?}");
            assert_eq!(
                f.avx512_vnni().is_some(),
                std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            );
        }
    }
}
