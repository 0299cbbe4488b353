//! The `veil-repro` binary end to end: keygen → manifest → verify-manifest,
//! initrd, measure, build --print-command, diff.

use std::path::Path;
use std::process::{Command, Output};

const BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/boot/");

fn repro(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil-repro"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("veil-repro runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn sign_then_verify_then_tamper() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    std::fs::write(d.join("server"), b"server bytes").expect("write");
    std::fs::write(d.join("model.json"), b"{\"id\":\"m\",\"files\":[]}").expect("write");
    let out = ok(&repro(
        &["keygen", "--secret-out", "sk", "--public-out", "pk"],
        d,
    ));
    let secret = std::fs::read_to_string(d.join("sk")).expect("secret");
    assert!(
        !out.contains(secret.trim()),
        "the secret key must never be printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("sk"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let snp = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
    ok(&repro(
        &[
            "manifest",
            "--binary",
            "server",
            "--model-manifest",
            "model.json",
            "--snp-measurement",
            snp,
            "--source-commit",
            "4df1d45",
            "--toolchain",
            "rustc 1.95.0",
            "--sign-key",
            "sk",
            "-o",
            "release.json",
        ],
        d,
    ));
    let verified = ok(&repro(
        &["verify-manifest", "release.json", "--pubkey", "pk"],
        d,
    ));
    assert!(verified.contains("ok: signature valid"));
    // The release pins the model by the digest the server attests, not the file's hash.
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("release.json")).expect("release"))
            .expect("json");
    let attested = veil_attest::model_manifest_digest("m", []);
    assert_eq!(
        release["manifest"]["model_manifest_digest"].as_str(),
        Some(hex::encode(attested).as_str()),
        "{release}"
    );

    let mut bytes = std::fs::read(d.join("release.json")).expect("release");
    let pos = bytes
        .windows(snp.len())
        .position(|w| w == snp.as_bytes())
        .expect("measurement in file");
    bytes[pos] = if bytes[pos] == b'7' { b'8' } else { b'7' };
    std::fs::write(d.join("tampered.json"), &bytes).expect("write");
    let out = repro(&["verify-manifest", "tampered.json", "--pubkey", "pk"], d);
    assert!(!out.status.success(), "a tampered manifest verified");
}

#[test]
fn a_recorded_rtmr0_goes_into_the_manifest_and_needs_tdx_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    std::fs::write(d.join("server"), b"server bytes").expect("write");
    std::fs::write(d.join("model.json"), b"{\"id\":\"m\",\"files\":[]}").expect("write");
    ok(&repro(
        &["keygen", "--secret-out", "sk", "--public-out", "pk"],
        d,
    ));
    let (mrtd, r0, r1, r2) = (
        "a1".repeat(48),
        "B2".repeat(48),
        "c3".repeat(48),
        "d4".repeat(48),
    );
    let base = [
        "manifest",
        "--binary",
        "server",
        "--model-manifest",
        "model.json",
        "--source-commit",
        "4df1d45",
        "--toolchain",
        "rustc 1.95.0",
        "--sign-key",
        "sk",
        "-o",
        "release.json",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--tdx-mrtd",
        &mrtd,
        "--tdx-rtmr0",
        &r0,
        "--tdx-rtmr1",
        &r1,
        "--tdx-rtmr2",
        &r2,
    ]);
    ok(&repro(&args, d));
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("release.json")).expect("release"))
            .expect("json");
    assert_eq!(
        release["manifest"]["reference_values"]["tdx"]["rtmr0"].as_str(),
        Some("b2".repeat(48).as_str()),
        "{release}"
    );
    let verified = ok(&repro(
        &["verify-manifest", "release.json", "--pubkey", "pk"],
        d,
    ));
    assert!(verified.contains("ok: signature valid"), "{verified}");

    // Without TDX values there is nothing to attach RTMR0 to.
    let mut args = base.to_vec();
    args.extend(["--tdx-rtmr0", &r0]);
    let out = repro(&args, d);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tdx-rtmr0 needs TDX reference values"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn initrd_twice_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = format!("{BOOT}init.sh");
    let a = ok(&repro(
        &["initrd", "--binary", &bin, "-o", "a.gz"],
        tmp.path(),
    ));
    let b = ok(&repro(
        &["initrd", "--binary", &bin, "-o", "b.gz"],
        tmp.path(),
    ));
    let hash = |s: &str| s.split_whitespace().next().expect("hash").to_owned();
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(
        hash(&a),
        "3f6b84628b29be2d03862feffd83247a90cdd49ae206d27297223631b056bf2a"
    );
}

#[test]
fn measure_snp_prints_the_reference_digest() {
    let ovmf = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ovmf/ovmf_OvmfX64_suffix.bin"
    );
    let out = ok(&repro(
        &[
            "measure",
            "snp",
            "--ovmf",
            ovmf,
            "--vcpus",
            "4",
            "--vcpu-type",
            "EPYC-Genoa",
        ],
        Path::new("."),
    ));
    assert_eq!(
        out.trim(),
        "403aa9a8e082a1763575d6b52d7b8bfbcc0f1b1d996f0b17040e6418bdfb6a855eca502b391ce776dbd5af275c6c8d0b"
    );
    let measure = |extra: &[&str]| {
        let mut args = vec!["measure", "snp", "--ovmf", ovmf, "--vcpus", "4"];
        args.extend_from_slice(extra);
        ok(&repro(&args, Path::new("."))).trim().to_owned()
    };
    // ec2, as sev-snp-measure 0.0.13 computes it (VMSA RDX 0x600).
    assert_eq!(
        measure(&["--vcpu-type", "EPYC-Genoa", "--vmm-type", "ec2"]),
        "ba53497dd710059deb7af1905ab5ef75016ddfdb18ef7da6250ab2ace45efacfbfb39ea35331f23787d57b1f97cd2651"
    );
    // --guest-features is read as Python's int(x, 0): "21" is decimal 21 = 0x15.
    let decimal = measure(&["--vcpu-type", "EPYC-Genoa", "--guest-features", "21"]);
    assert_eq!(
        decimal,
        "2d69bf3a301f4cd9c6d422094e278040637b992834fb0c985c82c699372a2eda0b988b89ceffc5d5e92fde9f59723f04"
    );
    assert_eq!(
        measure(&["--vcpu-type", "EPYC-Genoa", "--guest-features", "0x15"]),
        decimal
    );
    // Family/model/stepping instead of the type name.
    assert_eq!(
        measure(&[
            "--vcpu-family",
            "25",
            "--vcpu-model",
            "17",
            "--vcpu-stepping",
            "0",
            "--guest-features",
            "21"
        ]),
        decimal
    );
    for bad in [
        &["--vcpu-type", "EPYC-Zen9"][..],
        &["--vcpu-family", "25"],
        &["--vcpu-type", "EPYC-Genoa", "--vmm-type", "gcp"],
        &["--vcpu-type", "EPYC-Genoa", "--guest-features", "-1"],
    ] {
        let mut args = vec!["measure", "snp", "--ovmf", ovmf, "--vcpus", "4"];
        args.extend_from_slice(bad);
        assert!(!repro(&args, Path::new(".")).status.success(), "{bad:?}");
    }
}

#[test]
fn build_print_command_is_locked_remapped_and_fixed_cpu() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = ok(&repro(
        &[
            "build",
            "--print-command",
            "--source-date-epoch",
            "1700000000",
            "--package",
            "veil-cli",
            "--bin",
            "veil",
        ],
        tmp.path(),
    ));
    assert!(out.contains("SOURCE_DATE_EPOCH=1700000000"), "{out}");
    assert!(out.contains("-Ctarget-cpu=x86-64-v3"), "{out}");
    assert!(out.contains("=/veil "), "{out}");
    assert!(out.contains("cargo build --release --locked --target x86_64-unknown-linux-gnu --package veil-cli --bin veil"), "{out}");
}

#[test]
fn diff_reports_identical_and_different_files() {
    let exe = env!("CARGO_BIN_EXE_veil-repro");
    let same = repro(&["diff", exe, exe], Path::new("."));
    assert!(ok(&same).starts_with("identical: "));
    let tmp = tempfile::tempdir().expect("tmp");
    let mut bytes = std::fs::read(exe).expect("read exe");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let copy = tmp.path().join("changed");
    std::fs::write(&copy, bytes).expect("write");
    let out = repro(
        &["diff", exe, copy.to_str().expect("utf-8 path")],
        Path::new("."),
    );
    assert!(!out.status.success(), "different files must fail");
}
