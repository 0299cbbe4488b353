//! The init refuses to run as an ordinary process: started by mistake on a workstation it
//! would otherwise mount file systems and power the machine off.
//!
//! (What it does as PID 1 is tested by booting the image: `tests/` at the workspace root.)

use std::process::Command;

#[test]
fn refuses_to_run_unless_pid_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_veil-image-init"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not PID 1"), "{err}");
    assert!(out.stdout.is_empty());
}
