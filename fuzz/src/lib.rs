//! The fuzz entry points of Veil, one module per crate, one function per target.
//!
//! Each module depends on `std` and its own crate only, because the stable smoke test of
//! that crate (`<crate>/tests/<name>/fuzz_smoke.rs`) includes the module's file with `#[path]`:
//!
//! - [`attest`]: `veil-attest` (evidence, certificates, policies);
//! - [`protocol`]: `veil-protocol` (OHTTP key configurations, requests, chunks, Binary HTTP);
//! - [`client`]: `veil-client` (the incremental inner-response parser).
//!
//! Every function must return normally for every input: a panic is a bug.

pub mod attest;
pub mod client;
pub mod protocol;
