//! `veil policy from-manifest` (a release signed as `veil-repro` signs it) and `veil policy
//! from-evidence --trust-on-first-use`, each checked by what `veil verify` then accepts and
//! rejects, on real SNP/TDX evidence and on the test server's attestation.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{MEASUREMENT, TestServer};
use crate::veil;
use ed25519_dalek::SigningKey;
use veil_attest::attester::{Attester as _, Simulated};
use veil_attest::{
    Attestation, Evidence, ManifestClaims, ReportData, SnpCerts, SnpEvidence, TdxEvidence,
    snp::split_certificates,
};
use veil_repro::manifest::{
    MANIFEST_VERSION, ReferenceValues, ReleaseManifest, TdxReferenceValues, sign,
};

const SNP_NOW: &str = "2026-11-25T00:00:00Z";
const TDX_NOW: &str = "2025-06-21T10:00:00Z";
/// MEASUREMENT of `snp/milan-v3-azure/report.bin`.
const MILAN_V3_MEASUREMENT: &str = "6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e";

fn vector(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../attest/tests/vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Real evidence bundles: SNP (Milan, report v3) and TDX (v4 quote with its collateral).
fn bundles(dir: &Path) -> (PathBuf, PathBuf) {
    let certs = SnpCerts::classify(
        split_certificates(&vector("snp/milan-v3-azure/vcek.pem")).expect("pem"),
    )
    .expect("classify");
    let snp = Evidence::SevSnp(SnpEvidence::new(
        vector("snp/milan-v3-azure/report.bin"),
        certs,
    ));
    let tdx = Evidence::Tdx(
        TdxEvidence::new(
            vector("tdx/v4-b0c06f-phala/quote.bin"),
            &vector("tdx/v4-b0c06f-phala/collateral.json"),
        )
        .expect("collateral"),
    );
    let (s, t) = (dir.join("snp.json"), dir.join("tdx.json"));
    std::fs::write(&s, snp.to_json()).expect("write");
    std::fs::write(&t, tdx.to_json()).expect("write");
    (s, t)
}

/// The TDX registers the bundle shows, as `veil verify --json` prints them.
fn tdx_registers(bundle: &Path) -> serde_json::Value {
    let out = veil(&[
        "verify",
        "--evidence",
        path(bundle),
        "--now",
        TDX_NOW,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["measurements"].clone()
}

fn flip_last_hex_digit(h: &str) -> String {
    let (head, last) = h.split_at(h.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

fn release(snp: &str, tdx: &serde_json::Value) -> ReleaseManifest {
    let reg = |r: &str| tdx[r].as_str().expect("register").to_owned();
    ReleaseManifest {
        version: MANIFEST_VERSION,
        binary_sha256: "11".repeat(32),
        model_manifest_digest: "22".repeat(32),
        source_commit: "4df1d45".to_owned(),
        toolchain: "rustc 1.95.0".to_owned(),
        reference_values: ReferenceValues {
            snp_measurements: vec![snp.to_owned()],
            tdx: Some(TdxReferenceValues {
                mrtd: reg("mrtd"),
                rtmr0: Some(reg("rtmr0")),
                rtmr1: reg("rtmr1"),
                rtmr2: reg("rtmr2"),
            }),
            ..Default::default()
        },
    }
}

/// A fixed publisher key (never a release key) and its public key file.
fn publisher(dir: &Path, seed: u8) -> (SigningKey, PathBuf) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let p = dir.join(format!("release-{seed}.pub"));
    std::fs::write(
        &p,
        format!("{}\n", hex::encode(key.verifying_key().to_bytes())),
    )
    .expect("write");
    (key, p)
}

fn write_release(dir: &Path, name: &str, m: ReleaseManifest, key: &SigningKey) -> PathBuf {
    let p = dir.join(name);
    let bytes = sign(m, key).expect("signs").to_file_bytes().expect("file");
    std::fs::write(&p, bytes).expect("write");
    p
}

fn from_manifest(release: &Path, pubkey: &Path, out: &Path) -> Output {
    veil(&[
        "policy",
        "from-manifest",
        path(release),
        "--pubkey",
        path(pubkey),
        "-o",
        path(out),
    ])
}

fn verify_with(bundle: &Path, now: &str, policy: &Path) -> Output {
    veil(&[
        "verify",
        "--evidence",
        path(bundle),
        "--now",
        now,
        "--policy",
        path(policy),
    ])
}

#[test]
fn a_policy_from_a_signed_release_accepts_its_measurements_and_nothing_one_byte_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (snp, tdx) = bundles(d);
    let regs = tdx_registers(&tdx);
    let (key, pubkey) = publisher(d, 7);

    let good = write_release(
        d,
        "release.json",
        release(MILAN_V3_MEASUREMENT, &regs),
        &key,
    );
    let policy = d.join("policy.toml");
    let out = from_manifest(&good, &pubkey, &policy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&policy).expect("policy written");
    assert!(text.contains(MILAN_V3_MEASUREMENT) && text.contains(&"11".repeat(32)));
    for (bundle, now) in [(&snp, SNP_NOW), (&tdx, TDX_NOW)] {
        let out = verify_with(bundle, now, &policy);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    // SNP: a release whose measurement differs from the evidence in one byte.
    let off = write_release(
        d,
        "snp-off.json",
        release(&flip_last_hex_digit(MILAN_V3_MEASUREMENT), &regs),
        &key,
    );
    let off_policy = d.join("snp-off.toml");
    assert_eq!(
        from_manifest(&off, &pubkey, &off_policy).status.code(),
        Some(0)
    );
    let out = verify_with(&snp, SNP_NOW, &off_policy);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("veil: rejected: measurement: measurement mismatch"),
        "{}",
        stderr(&out)
    );

    // TDX: RTMR1 one byte off.
    let mut regs_off = regs.clone();
    regs_off["rtmr1"] = flip_last_hex_digit(regs["rtmr1"].as_str().expect("rtmr1")).into();
    let off = write_release(
        d,
        "tdx-off.json",
        release(MILAN_V3_MEASUREMENT, &regs_off),
        &key,
    );
    let off_policy = d.join("tdx-off.toml");
    assert_eq!(
        from_manifest(&off, &pubkey, &off_policy).status.code(),
        Some(0)
    );
    let out = verify_with(&tdx, TDX_NOW, &off_policy);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("veil: rejected: measurement: rtmr1 mismatch"),
        "{}",
        stderr(&out)
    );

    // TDX: the RTMR0 the publisher recorded, one byte off.
    let mut regs_off = regs.clone();
    regs_off["rtmr0"] = flip_last_hex_digit(regs["rtmr0"].as_str().expect("rtmr0")).into();
    let off = write_release(
        d,
        "rtmr0-off.json",
        release(MILAN_V3_MEASUREMENT, &regs_off),
        &key,
    );
    let off_policy = d.join("rtmr0-off.toml");
    assert_eq!(
        from_manifest(&off, &pubkey, &off_policy).status.code(),
        Some(0)
    );
    let out = verify_with(&tdx, TDX_NOW, &off_policy);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("veil: rejected: measurement: rtmr0 mismatch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_changed_byte_or_another_key_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let regs = tdx_registers(&bundles(d).1);
    let (key, pubkey) = publisher(d, 7);
    let (_, other_pubkey) = publisher(d, 8);
    let good = write_release(
        d,
        "release.json",
        release(MILAN_V3_MEASUREMENT, &regs),
        &key,
    );
    let file = std::fs::read(&good).expect("release");

    // One changed byte in a value: the signature no longer verifies.
    let at = file
        .windows(MILAN_V3_MEASUREMENT.len())
        .position(|w| w == MILAN_V3_MEASUREMENT.as_bytes())
        .expect("measurement in file");
    let mut value = file.clone();
    value[at] = b'7';
    // One changed byte outside any value: not the canonical form.
    let mut form = file.clone();
    let space = form.iter().position(|&b| b == b' ').expect("indent");
    form[space] = b'\t';
    for (name, bytes, pubkey, expect) in [
        ("value", value, &pubkey, "signature does not verify"),
        ("form", form, &pubkey, "not in canonical form"),
        ("key", file, &other_pubkey, "signature does not verify"),
    ] {
        let release = d.join(format!("{name}.json"));
        std::fs::write(&release, bytes).expect("write");
        let policy = d.join(format!("{name}.toml"));
        let out = from_manifest(&release, pubkey, &policy);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("veil: rejected: ")
                && err.contains(expect)
                && err.contains("no policy written"),
            "{name}: {err}"
        );
        assert!(!policy.exists(), "{name}: a policy was written");
    }

    // A correctly signed release that names no launch measurement would pin nothing.
    let mut empty = release(MILAN_V3_MEASUREMENT, &regs);
    empty.reference_values = ReferenceValues::default();
    let empty = write_release(d, "empty.json", empty, &key);
    let out = from_manifest(&empty, &pubkey, &d.join("empty.toml"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names no launch measurement"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("empty.toml").exists());

    // A public key file that is not one: a usage error.
    let bad_key = d.join("bad.pub");
    std::fs::write(&bad_key, "not hex\n").expect("write");
    let out = from_manifest(&good, &bad_key, &d.join("never.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.join("never.toml").exists());

    let help = veil(&["policy", "from-manifest", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}

#[test]
fn trust_on_first_use_needs_its_flag_and_refuses_evidence_that_does_not_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (snp, _) = bundles(d);
    let policy = d.join("tofu.toml");

    let out = veil(&["policy", "from-evidence", path(&snp), "-o", path(&policy)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--trust-on-first-use"),
        "{}",
        stderr(&out)
    );
    assert!(!policy.exists());

    // A debuggable guest (the captured report has DEBUG set) is not pinned.
    let certs = SnpCerts::classify([vector("snp/milan-v2-gosevguest/vcek.der")]).expect("vcek");
    let debug = d.join("debug.json");
    std::fs::write(
        &debug,
        Evidence::SevSnp(SnpEvidence::new(
            vector("snp/milan-v2-gosevguest/report.bin"),
            certs,
        ))
        .to_json(),
    )
    .expect("write");
    let out = tofu(&debug, &policy, &["--now", SNP_NOW]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("veil: rejected: tcb:"),
        "{}",
        stderr(&out)
    );
    let out = tofu(&debug, &policy, &["--now", SNP_NOW, "--allow-outdated-tcb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("veil: rejected: debug:"),
        "{}",
        stderr(&out)
    );
    assert!(!policy.exists());

    // Genuine evidence: the measurement and product are pinned; another report is rejected.
    let out = tofu(&snp, &policy, &["--now", SNP_NOW]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("only as good as that first contact"));
    assert!(stderr(&out).contains("binary and model are not pinned"));
    let text = std::fs::read_to_string(&policy).expect("policy");
    assert!(text.contains(MILAN_V3_MEASUREMENT) && text.contains("products = [\"Milan\"]"));
    assert_eq!(verify_with(&snp, SNP_NOW, &policy).status.code(), Some(0));
    let other = d.join("other.json");
    let certs = SnpCerts::classify([vector("snp/milan-v2-virtee/vcek.der")]).expect("vcek");
    std::fs::write(
        &other,
        Evidence::SevSnp(SnpEvidence::new(
            vector("snp/milan-v2-virtee/report.bin"),
            certs,
        ))
        .to_json(),
    )
    .expect("write");
    // 2022 firmware: refused for its TCB first, for its measurement when that is allowed.
    let out = verify_with(&other, SNP_NOW, &policy);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("veil: rejected: tcb:"),
        "{}",
        stderr(&out)
    );
    let out = veil(&[
        "verify",
        "--evidence",
        path(&other),
        "--now",
        SNP_NOW,
        "--policy",
        path(&policy),
        "--allow-outdated-tcb",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("veil: rejected: measurement:"),
        "{}",
        stderr(&out)
    );

    // Pinning old firmware on first use needs the flag, and the policy says so and pins
    // the TCB seen as its minimum.
    let old = d.join("old.toml");
    let out = tofu(&other, &old, &["--now", SNP_NOW]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = tofu(&other, &old, &["--now", SNP_NOW, "--allow-outdated-tcb"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&old).expect("policy");
    assert!(
        text.contains("allow_outdated_tcb = true") && text.contains("microcode = 115"),
        "{text}"
    );
    assert_eq!(verify_with(&other, SNP_NOW, &old).status.code(), Some(0));
}

fn tofu(bundle: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "policy",
        "from-evidence",
        path(bundle),
        "--trust-on-first-use",
        "-o",
        path(out),
    ];
    args.extend_from_slice(extra);
    veil(&args)
}

/// An attestation like the test server's, from another simulated launch image or binary.
fn forged_like(
    a: &Attestation,
    nonce: &[u8; 32],
    measurement: [u8; 48],
    binary: u8,
    seed: [u8; 32],
) -> String {
    let manifest = ManifestClaims::new(
        [binary; 32],
        a.manifest.model_digest,
        a.manifest.model_id.clone(),
    );
    let rd = ReportData::new(&a.key_config, nonce, &manifest.server_manifest().digest())
        .expect("report data");
    let evidence = Simulated::new(seed, measurement)
        .attest(&rd.0)
        .expect("evidence");
    serde_json::to_string(&Attestation::new(evidence, a.key_config.clone(), manifest))
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tofu_policy_from_a_live_attestation_accepts_it_and_rejects_another_launch() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_owned();
    let nonce = [0x5a_u8; 32];
    let nonce_hex = hex::encode(nonce);
    let saved = d.join("attestation.json");
    let policy = d.join("tofu.toml");
    let (attest, refused, made) = {
        let (saved, policy, nonce_hex) = (saved.clone(), policy.clone(), nonce_hex.clone());
        tokio::task::spawn_blocking(move || {
            let attest = veil(&["attest", &url, "-o", path(&saved), "--nonce", &nonce_hex]);
            let refused = tofu(&saved, &policy, &["--nonce", &nonce_hex]);
            let made = tofu(
                &saved,
                &policy,
                &["--nonce", &nonce_hex, "--allow-simulated"],
            );
            (attest, refused, made)
        })
        .await
        .expect("join")
    };
    assert_eq!(attest.status.code(), Some(0), "{}", stderr(&attest));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("simulated platform")
            && stderr(&refused).contains("no policy written"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    assert!(stderr(&made).contains("warning: trust on first use"));
    let text = std::fs::read_to_string(&policy).expect("policy");
    for pinned in [
        "allow_simulated = true".to_owned(),
        "platform = \"simulated\"".to_owned(),
        "simulated_key = ".to_owned(),
        hex::encode(MEASUREMENT),
        hex::encode([1u8; 32]),
        hex::encode([2u8; 32]),
    ] {
        assert!(text.contains(&pinned), "{pinned} not in\n{text}");
    }

    // The same attestation verifies under the policy, binding included.
    let n = nonce_hex.as_str();
    let same = veil(&[
        "verify",
        "--evidence",
        path(&saved),
        "--nonce",
        n,
        "--policy",
        path(&policy),
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));

    // Another launch image, or another binary, is named.
    let a = Attestation::from_json(&std::fs::read(&saved).expect("saved")).expect("attestation");
    // A simulated launch signed with another key is refused: the policy pins the key too.
    for (name, measurement, binary, seed, check) in [
        ("other-measurement", [5; 48], 1, [3; 32], "measurement"),
        ("other-binary", MEASUREMENT, 9, [3; 32], "manifest"),
        ("other-key", MEASUREMENT, 1, [4; 32], "signature"),
    ] {
        let p = d.join(format!("{name}.json"));
        std::fs::write(&p, forged_like(&a, &nonce, measurement, binary, seed)).expect("write");
        let out = veil(&[
            "verify",
            "--evidence",
            path(&p),
            "--nonce",
            n,
            "--policy",
            path(&policy),
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("veil: rejected: {check}:")),
            "{name}: {}",
            stderr(&out)
        );
    }
}
