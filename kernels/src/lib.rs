//! CPU kernels that make Veil's engine fast without changing its answers.
//!
//! Each kernel computes exactly what the candle operations it replaces compute, bit for bit
//! (its tests compare against candle), so a faster engine gives the same completions: the
//! Q4_1 matrix product ([`Q41Matrix`]), the Q8_0 one ([`Q80Matrix`]), the element-wise
//! steps of a layer ([`rms_norm`], [`silu_mul`]) and one decode step of attention over per-sequence
//! caches ([`decode_attention`], [`rope_interleaved`]), and greedy decoding's pick
//! ([`argmax_rows`]).
//!
//! This is the workspace's only crate with `unsafe` code. The workspace denies it; these
//! modules alone allow it, each unsafe block with its safety argument:
//!
//! - the SIMD kernels, `#[target_feature]` code called with a token of the CPU's features
//!   (`cpu`, detected once): `q4_1::avx2`, `q4_1::vnni`, `q8_0`,
//!   `attention::x86`;
//! - `disjoint`, the one way the pool's tasks write their parts of an output;
//! - `Q41Matrix`'s pool pass and its new vectors (`q4_1::run`, `Q41Matrix::products`), which
//!   write through `disjoint` and initialize what it wrote;
//! - `threads`, which writes the environment while the process has one thread.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod argmax;
mod attention;
mod causal;
mod cpu;
mod disjoint;
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
pub use disjoint::for_each_mut;
pub use ops::{rms_norm, silu_mul};
pub use q4_1::{Q41Kernel, Q41Matrix};
pub use q8_0::Q80Matrix;
pub use threads::settle_thread_count;
