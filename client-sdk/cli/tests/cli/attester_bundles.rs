//! `veil verify --evidence` on bundles produced by each attester backend (issue 4).

use std::path::Path;
use std::sync::Arc;

use crate::{vectors, veil};
use veil_attest::attester::{
    Attester, ConfigfsTsm, Endorsements, FakeTsm, FakeTsmConfig, Simulated,
};
use veil_attest::{ReportData, ServerManifest, SnpCerts, snp::split_certificates};

fn report_data() -> ReportData {
    let manifest = ServerManifest {
        binary_sha256: [3; 32],
        model_digest: [4; 32],
    };
    ReportData::new(b"\x01\x00\x20key-config", &[8; 32], &manifest.digest()).expect("rd")
}

fn write_policy(dir: &Path, rd: &ReportData) -> String {
    let p = dir.join("policy.toml");
    std::fs::write(&p, format!("report_data = \"{}\"\n", hex::encode(rd.0))).expect("write");
    p.display().to_string()
}

#[test]
fn configfs_bundles_from_the_fake_tree_verify_and_the_binding_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rd = report_data();
    let policy = write_policy(dir.path(), &rd);
    let v = vectors();

    // SEV-SNP: a captured Milan report (current TCB, above AMD's floor) with its VCEK in the
    // certificate table (auxblob).
    let vcek = std::fs::read(v.join("snp/milan-v3-azure/vcek.pem")).expect("vcek");
    let table = SnpCerts::classify(split_certificates(&vcek).expect("pem"))
        .expect("certs")
        .to_cert_table();
    let report = std::fs::read(v.join("snp/milan-v3-azure/report.bin")).expect("report");
    // TDX: the captured quote with collateral from a configured file.
    let quote = std::fs::read(v.join("tdx/v4-b0c06f-phala/quote.bin")).expect("quote");
    let collateral = v.join("tdx/v4-b0c06f-phala/collateral.json");

    for (provider, out, aux, now) in [
        ("sev_guest", report, table, "2026-11-25T00:00:00Z"),
        ("tdx_guest", quote, Vec::new(), "2025-06-21T10:00:00Z"),
    ] {
        let root = tempfile::tempdir().expect("tsm root");
        let fake = Arc::new(FakeTsm::new(FakeTsmConfig::new(Some(provider), out, aux)));
        let tsm = ConfigfsTsm::with_fs(
            root.path().to_owned(),
            Endorsements::new(None, Some(collateral.clone())),
            fake,
        );
        let bundle = dir.path().join(format!("{provider}.json"));
        std::fs::write(&bundle, tsm.attest(&rd.0).expect("evidence").to_json()).expect("write");
        let b = bundle.to_str().expect("utf-8");

        let ok = veil(&["verify", "--evidence", b, "--now", now]);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{provider}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // The fake returns captured evidence: its REPORT_DATA is not our transcript.
        let bound = veil(&["verify", "--evidence", b, "--now", now, "--policy", &policy]);
        assert_eq!(bound.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&bound.stderr)
                .starts_with("veil: rejected: report_data: report_data mismatch"),
            "{provider}: {}",
            String::from_utf8_lossy(&bound.stderr)
        );
    }
}

#[test]
fn simulated_bundles_verify_only_when_allowed_and_bind_report_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rd = report_data();
    let sim = Simulated::new([6; 32], Simulated::measurement_of(b"veil-server binary"));
    let bundle = dir.path().join("sim.json");
    std::fs::write(&bundle, sim.attest(&rd.0).expect("evidence").to_json()).expect("write");
    let b = bundle.to_str().expect("utf-8");
    let policy = write_policy(dir.path(), &rd);

    let refused = veil(&["verify", "--evidence", b, "--policy", &policy]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("rejected: platform"));
    let ok = veil(&[
        "verify",
        "--evidence",
        b,
        "--policy",
        &policy,
        "--allow-simulated",
        "--json",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(j["platform"], "simulated");
    assert_eq!(j["report_data"], hex::encode(rd.0));

    let mut other = rd.0;
    other[0] ^= 1;
    let other_policy = dir.path().join("other.toml");
    std::fs::write(
        &other_policy,
        format!("report_data = \"{}\"\n", hex::encode(other)),
    )
    .expect("write");
    let bad = veil(&[
        "verify",
        "--evidence",
        b,
        "--allow-simulated",
        "--policy",
        other_policy.to_str().expect("utf-8"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rejected: report_data"));
}
