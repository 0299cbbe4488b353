//! veil-protocol's integration tests, one binary: a module per former test binary, and their shared `common`.
//! One binary links the crate and its dependencies once.

mod common;

mod fuzz_smoke;
mod gateway;
mod hybrid_gateway;
mod interop;
mod rejections;
mod xwing;
