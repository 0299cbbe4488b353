//! The `veil` command, run as a user runs it: the real binary against real evidence
//! (`attest/tests/vectors/`) and the in-process test server of `client-sdk/tests/support`.
//! One test binary for the whole command: each binary links the SDK again.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod attester_bundles;
mod chat_pty;
mod first_hour;
mod policy;
mod post_quantum;
mod proxy;
mod require_pq;
mod secure_defaults;
mod verify;
mod verify_gpu;
