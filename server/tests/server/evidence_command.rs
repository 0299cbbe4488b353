//! `veil-server evidence`: which backend a host can use, and a bundle whose REPORT_DATA is
//! the Veil transcript over the nonce and this binary's and the model's manifest.

use crate::common;

use std::process::Command;

use sha2::{Digest, Sha256};
use veil_attest::{
    Attestation, Evidence, Policy, ReportData, ServerManifest, UnixTime, VerifyError, verify,
};

fn evidence(args: &[&str]) -> std::process::Output {
    let s = common::source();
    let model = s.dir.join(&s.manifest.weights().expect("weights").0.name);
    Command::new(env!("CARGO_BIN_EXE_veil-server"))
        .arg("evidence")
        .args(args)
        .arg("--model")
        .arg(model)
        .output()
        .expect("run veil-server evidence")
}

#[test]
fn simulated_bundle_binds_nonce_binary_and_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle.json");
    let nonce = [0x5a_u8; 32];
    let r = evidence(&[
        "--tee",
        "simulated",
        "--nonce",
        &hex::encode(nonce),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("backend simulated"));

    // The file records what was asked for: the nonce and the manifest, beside the evidence.
    let saved = Attestation::from_json(&std::fs::read(&out).expect("bundle")).expect("parses");
    assert_eq!(saved.nonce, Some(nonce));
    assert!(saved.key_config.is_empty());
    let ev: Evidence = saved.evidence.clone();
    let binary: [u8; 32] =
        Sha256::digest(std::fs::read(env!("CARGO_BIN_EXE_veil-server")).expect("binary")).into();
    let manifest = ServerManifest {
        binary_sha256: binary,
        model_digest: common::source().manifest.digest(),
    };
    let rd = ReportData::new(&[], &nonce, &manifest.digest()).expect("rd");
    let now = UnixTime(1_764_000_000);
    assert_eq!(
        verify(&ev, &Policy::default(), now),
        Err(VerifyError::SimulatedRejected)
    );
    verify(
        &ev,
        &Policy::default()
            .allow_simulated(true)
            .expect_report_data(rd.0),
        now,
    )
    .expect("bound");

    let mut other = nonce;
    other[31] ^= 1;
    let rd2 = ReportData::new(&[], &other, &manifest.digest()).expect("rd");
    assert!(matches!(
        verify(
            &ev,
            &Policy::default()
                .allow_simulated(true)
                .expect_report_data(rd2.0),
            now
        ),
        Err(VerifyError::ReportDataMismatch { .. })
    ));

    // The recorded nonce is what the binding is checked against: the saved file verifies,
    // and the same evidence under another recorded nonce does not.
    let sim = Policy::default().allow_simulated(true);
    saved.verify(&sim, &nonce, now).expect("recorded nonce");
    let forged = saved.clone().with_nonce(other);
    assert!(matches!(
        forged.verify(&sim, &other, now),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn auto_names_what_is_missing_on_a_machine_without_a_tee() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bundle.json");
    let r = evidence(&[
        "--tee",
        "auto",
        "--tsm-root",
        "/nonexistent/tsm",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("no TEE found") && err.contains("/nonexistent/tsm"),
        "{err}"
    );
    assert!(!out.exists());
}

/// `--gpus nvml` on a build without NVML fails at start and says why, before any model is
/// fetched or port taken.
#[cfg(not(feature = "nvml"))]
#[test]
fn serve_with_nvml_gpus_needs_the_nvml_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_veil-server"))
        .args(["serve", "--tee", "simulated", "--no-auth", "--gpus", "nvml"])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run veil-server serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built without the `nvml` feature"), "{err}");
}
