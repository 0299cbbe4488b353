//! `veil verify gpu` on every real NVIDIA vector of `nvidia/index.tsv`, with policies, raw
//! and hex reports, and without a nonce.

use crate::{json, vectors, veil};
use std::process::Output;

fn path(rel: &str) -> String {
    vectors().join(rel).display().to_string()
}

const NOW: &str = "2026-11-25T00:00:00Z";
const REPORT: &str = "nvidia/hopperAttestationReport.txt";
const CHAIN: &str = "nvidia/hopper_cert_chain_case1.txt";
const NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn verify_gpu(report: &str, certs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify", "gpu", "--report", report, "--certs", certs, "--json",
    ];
    args.extend(extra);
    veil(&args)
}

#[test]
fn every_gpu_case_gives_its_exit_status_and_json() {
    let text = std::fs::read_to_string(vectors().join("nvidia/index.tsv")).expect("index");
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("case\t"))
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, ok, now) = (f[0], f[2] == "ok", f[3]);
        let input = |k: &str| {
            f[5].split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")[..]))
                .expect("input")
                .to_owned()
        };
        let out = verify_gpu(
            &path(&input("report")),
            &path(&input("certs")),
            &["--nonce", &input("nonce"), "--now", now],
        );
        let v = json(&out);
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 1 }),
            "{name}: {v}"
        );
        assert_eq!(v["ok"], ok, "{name}");
        assert_eq!(v["platform"], "nvidia-gpu");
        // The report's claims are shown even when rejected.
        assert!(
            v["driver_version"]
                .as_str()
                .is_some_and(|d| d.starts_with("5")),
            "{name}"
        );
        assert_eq!(
            v["measurement_indices"].as_array().map(Vec::len),
            Some(64),
            "{name}"
        );
        let last = v["checks"]
            .as_array()
            .and_then(|c| c.last())
            .expect("checks");
        assert_eq!(last["ok"], ok, "{name}: {last}");
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn verdict_json_names_versions_measurements_and_checks() {
    let out = verify_gpu(
        &path(REPORT),
        &path(CHAIN),
        &["--nonce", NONCE, "--now", NOW],
    );
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["gpu"], "GH100 A01");
    assert_eq!(v["driver_version"], "550.90.07");
    assert_eq!(v["vbios_version"], "96.00.9f.00.01");
    assert_eq!(v["nonce"], NONCE);
    assert_eq!(
        v["measurements"]["2"],
        "8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338"
    );
    let checks: Vec<&str> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for name in [
        "cert_chain",
        "cert_validity",
        "fwid",
        "signature",
        "nonce",
        "measurement",
    ] {
        assert!(checks.contains(&name), "{name}: {checks:?}");
    }
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("revocation not checked"), "{warnings}");

    // Without --nonce: accepted, with the replay warning; the table form names the checks.
    let out = veil(&[
        "verify",
        "gpu",
        "--report",
        &path(REPORT),
        "--certs",
        &path(CHAIN),
        "--now",
        NOW,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ACCEPTED"), "{table}");
    assert!(table.contains("nonce not checked"), "{table}");
    assert!(table.contains("550.90.07"), "{table}");
}

#[test]
fn raw_report_bytes_and_policy_mismatches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hex = std::fs::read_to_string(vectors().join(REPORT)).expect("report");
    let raw = dir.path().join("report.bin");
    std::fs::write(&raw, hex::decode(hex.trim()).expect("hex")).expect("write");
    let raw = raw.display().to_string();
    let out = verify_gpu(&raw, &path(CHAIN), &["--nonce", NONCE, "--now", NOW]);
    assert_eq!(out.status.code(), Some(0), "{}", json(&out));

    let policy = dir.path().join("policy.toml");
    let write_policy = |body: &str| std::fs::write(&policy, body).expect("policy");
    let run = || {
        let p = policy.display().to_string();
        json(&verify_gpu(
            &raw,
            &path(CHAIN),
            &["--nonce", NONCE, "--now", NOW, "--policy", &p],
        ))
    };
    write_policy(
        "[gpu]\ndriver_versions = [\"550.90.07\"]\n[gpu.measurements]\n2 = \"8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338\"\n",
    );
    let v = run();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["pinned_indices"], serde_json::json!([2]));

    write_policy("[gpu]\n[gpu.measurements]\n2 = \"00\"\n");
    let v = run();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("GPU measurement 2")),
        "{v}"
    );

    write_policy("[gpu]\nvbios_versions = [\"96.00.9f.00.02\"]\n");
    let v = run();
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("vbios")),
        "{v}"
    );

    // Another nonce: rejected by name, exit 1.
    let out = verify_gpu(
        &raw,
        &path(CHAIN),
        &["--nonce", &"00".repeat(32), "--now", NOW],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected: nonce"));
}

#[test]
fn gpu_usage_errors_exit_2() {
    let out = veil(&["verify", "gpu", "--report", &path(REPORT)]);
    assert_eq!(out.status.code(), Some(2));
    let out = veil(&[
        "verify",
        "gpu",
        "--report",
        &path(REPORT),
        "--certs",
        &path(CHAIN),
        "--nonce",
        "abc",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = veil(&[
        "verify",
        "gpu",
        "--report",
        "/nonexistent",
        "--certs",
        &path(CHAIN),
    ]);
    assert_eq!(out.status.code(), Some(2));
}
