//! CPU kernels that make Veil's engine fast without changing its answers.
//!
//! Each kernel computes exactly what the candle operation it replaces computes, bit for bit
//! (its tests compare against candle), so a faster engine gives the same completions.
//! This is the workspace's only crate with `unsafe` code: SIMD intrinsics and disjoint
//! writes from candle's thread pool, each block with its safety argument.

mod q4_1;
mod threads;

pub use q4_1::{Q41Kernel, Q41Matrix};
pub use threads::settle_thread_count;
