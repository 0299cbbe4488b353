//! veil-client's integration tests, one binary: a module per former test binary, and their shared `support`.
//! One binary links the crate and its dependencies once.

mod support;

mod fuzz_smoke;
mod post_quantum;
mod sdk;
mod secure_defaults;
