//! CPU kernels that make Veil's engine fast without changing its answers.
//!
//! Each kernel computes exactly what the candle operations it replaces compute, bit for bit
//! (its tests compare against candle), so a faster engine gives the same completions: the
//! Q4_1 matrix product ([`Q41Matrix`]), the Q8_0 one ([`Q80Matrix`]), the element-wise
//! steps of a layer ([`rms_norm`], [`silu_mul`]) and one decode step of attention over per-sequence
//! caches ([`decode_attention`], [`rope_interleaved`]), and greedy decoding's pick
//! ([`argmax_rows`]).
//! This is the workspace's only crate with `unsafe` code: SIMD intrinsics and disjoint
//! writes from candle's thread pool, each block with its safety argument.

mod argmax;
mod attention;
mod causal;
mod exp;
mod ops;
#[cfg(target_arch = "x86_64")]
mod prefetch;
mod q4_1;
mod q8_0;
mod spread;
#[cfg(test)]
mod test_rng;
mod threads;

pub use argmax::{argmax, argmax_rows};
pub use attention::{AttentionShape, KvView, decode_attention, rope_interleaved};
pub use causal::causal_softmax;
pub use ops::{rms_norm, silu_mul};
pub use q4_1::{Q41Kernel, Q41Matrix};
pub use q8_0::Q80Matrix;
pub use threads::settle_thread_count;
