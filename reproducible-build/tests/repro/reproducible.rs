//! Two builds of the same source in two different directories, with separate
//! target directories, give the same bytes.
//!
//! Slow (two cold release builds), so it runs only with `VEIL_REPRO_TEST=1`.
//! `VEIL_REPRO_PACKAGE` / `VEIL_REPRO_BIN` choose what to build (default
//! `veil-client` / `veil`; `veil-server` once it exists). The copied files are
//! those a fresh clone would have after committing the work tree:
//! `git ls-files --cached --others --exclude-standard`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate is inside the workspace")
        .to_path_buf()
}

fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8 git output")
}

/// Copies the tracked and untracked-but-not-ignored files of `root` into `dest`.
fn copy_source(root: &Path, dest: &Path) {
    let files = git(
        root,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    for rel in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree, or a submodule
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().expect("file has a parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy source file");
    }
}

fn build(source: &Path, out: &Path, package: &str, bin: &str, epoch: &str) -> String {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_veil-repro"))
        .args(["build", "--package", package, "--bin", bin])
        .arg("--source")
        .arg(source)
        .arg("--out")
        .arg(out)
        .args(["--source-date-epoch", epoch])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("veil-repro runs");
    assert!(
        output.status.success(),
        "build in {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).expect("utf-8");
    eprintln!(
        "built in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        line.trim()
    );
    line.split_whitespace()
        .next()
        .expect("sha256 printed")
        .to_owned()
}

#[test]
fn two_builds_in_different_directories_are_identical() {
    if std::env::var("VEIL_REPRO_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set VEIL_REPRO_TEST=1 to run the two reproducible builds");
        return;
    }
    let package = std::env::var("VEIL_REPRO_PACKAGE").unwrap_or_else(|_| "veil-cli".into());
    let bin = std::env::var("VEIL_REPRO_BIN").unwrap_or_else(|_| "veil".into());
    let root = workspace_root();
    let epoch = git(&root, &["log", "-1", "--format=%ct"]).trim().to_owned();

    let tmp = tempfile::tempdir().expect("temp dir");
    // Different names and depths, so any leaked path would show.
    let a = tmp.path().join("a");
    let b = tmp.path().join("second/checkout-b");
    copy_source(&root, &a);
    copy_source(&root, &b);

    let ha = build(&a, &tmp.path().join("out-a"), &package, &bin, &epoch);
    let hb = build(&b, &tmp.path().join("out-b"), &package, &bin, &epoch);
    eprintln!("A: {ha}\nB: {hb}");
    if ha != hb {
        let diff = Command::new(env!("CARGO_BIN_EXE_veil-repro"))
            .arg("diff")
            .arg(tmp.path().join("out-a").join(&bin))
            .arg(tmp.path().join("out-b").join(&bin))
            .output()
            .expect("diff runs");
        eprintln!("{}", String::from_utf8_lossy(&diff.stdout));
    }
    assert_eq!(ha, hb, "the two builds differ");
}
