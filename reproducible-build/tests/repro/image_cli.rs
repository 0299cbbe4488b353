//! `veil-repro image` on bad input: a clear error naming the file or option, and nothing
//! written to `--out` (nor left next to it). Building and booting a good image is
//! `tests/image_boot.rs` at the workspace root.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// Runs `veil-repro image --out DIR/out ARGS`; returns stderr after checking that it failed
/// and that DIR holds nothing but what the test put there.
fn refused(dir: &Path, args: &[&str]) -> String {
    let before: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_veil-repro"))
        .arg("image")
        .arg("--out")
        .arg(dir.join("out"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("veil-repro runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted {args:?}: {err}");
    let mut after: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    after.retain(|n| !before.contains(n));
    assert!(after.is_empty(), "left {after:?} after {args:?}");
    err
}

/// A model directory whose manifest pins `pinned` while the file holds `actual`.
fn model(dir: &Path, pinned: &[u8], actual: &[u8]) -> String {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).expect("model dir");
    std::fs::write(m.join("w.gguf"), actual).expect("weights");
    let manifest = format!(
        r#"{{"id":"m","files":[{{"name":"w.gguf","size":{},"sha256":"{}"}}]}}"#,
        pinned.len(),
        hex::encode(Sha256::digest(pinned))
    );
    std::fs::write(m.join("manifest.json"), manifest).expect("manifest");
    m.to_string_lossy().into_owned()
}

#[test]
fn refuses_bad_input_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    // Any existing files do as server and init until the kernel or model is looked at.
    let me = env!("CARGO_BIN_EXE_veil-repro");
    let good_model = model(&d.join("good"), b"GGUF weights", b"GGUF weights");
    let base = ["--server", me, "--init", me];

    let err = refused(d, &[&base[..], &["--vcpu-type", "EPYC-Nonesuch"]].concat());
    assert!(err.contains("--vcpu-type EPYC-Nonesuch"), "{err}");

    let err = refused(d, &[&base[..], &["--ovmf", "missing-OVMF.fd"]].concat());
    assert!(
        err.contains("--ovmf missing-OVMF.fd: no such file"),
        "{err}"
    );

    let err = refused(d, &["--server", "no-server", "--model", &good_model]);
    assert!(err.contains("--server no-server"), "{err}");

    let bad_model = model(&d.join("bad"), b"GGUF pinned", b"GGUF swapped");
    let err = refused(d, &[&base[..], &["--model", &bad_model]].concat());
    assert!(
        err.contains(&bad_model) && err.contains("w.gguf") && err.contains("pins"),
        "{err}"
    );

    // A kernel whose modules tree has neither virtio-pci nor virtio-net.
    let kdir = d.join("kernel");
    std::fs::create_dir_all(kdir.join("modules")).expect("kernel dir");
    std::fs::write(kdir.join("bzImage"), b"not really a kernel").expect("kernel");
    std::fs::write(
        kdir.join("modules/modules.builtin"),
        "kernel/fs/ext4/ext4.ko\n",
    )
    .expect("builtin");
    let kernel = kdir.join("bzImage").to_string_lossy().into_owned();
    let modules = kdir.join("modules").to_string_lossy().into_owned();
    let args = [
        &base[..],
        &["--model", &good_model, "--tee", "simulated"],
        &["--kernel", &kernel, "--kernel-modules", &modules],
    ]
    .concat();
    let err = refused(d, &args);
    assert!(
        err.contains(&kernel) && err.contains("virtio_pci driver"),
        "{err}"
    );

    let err = refused(d, &[&base[..], &["--kernel", &kernel]].concat());
    assert!(err.contains("--kernel-modules"), "{err}");

    // An existing, non-empty --out is left alone.
    std::fs::create_dir_all(d.join("out")).expect("out");
    std::fs::write(d.join("out/keep"), b"mine").expect("keep");
    let err = refused(d, &[&base[..], &["--model", &good_model]].concat());
    assert!(err.contains("not an empty directory"), "{err}");
    assert_eq!(std::fs::read(d.join("out/keep")).expect("kept"), b"mine");
}
