//! The `veil` command, run as a user runs it: the real binary against real evidence
//! (`attest/tests/vectors/`) and the in-process test server of `client-sdk/tests/client/support`.
//! One test binary for the whole command: each binary links the SDK again.

#[path = "../../../tests/client/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// The real evidence the tests read (`attest/tests/vectors/`).
fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../attest/tests/vectors")
}

/// Runs the `veil` binary with `args` and waits for it.
fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .output()
        .expect("run veil")
}

/// `veil ... --json`'s standard output, parsed.
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
