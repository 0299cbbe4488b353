//! `veil verify` on every real vector of `index.tsv`, on saved bundles, and with policies.

use std::path::{Path, PathBuf};

use crate::{json, vectors, veil};
use veil_attest::{Attestation, Evidence, ManifestClaims, ReportData, SimulatedEvidence};

struct Case {
    name: String,
    platform: String,
    ok: bool,
    now: String,
    flags: Vec<String>,
    inputs: Vec<(String, String)>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(vectors().join("index.tsv")).expect("index.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("case\t") && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                name: f[0].into(),
                platform: f[1].into(),
                ok: f[2] == "ok",
                now: f[3].into(),
                flags: if f[4] == "-" {
                    vec![]
                } else {
                    f[4].split(' ').map(Into::into).collect()
                },
                inputs: f[5]
                    .split(' ')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("k=v");
                        (k.into(), vectors().join(v).display().to_string())
                    })
                    .collect(),
            }
        })
        .collect()
}

fn case_args(c: &Case) -> Vec<String> {
    let mut a = vec!["verify".to_owned(), c.platform.clone()];
    for (k, v) in &c.inputs {
        a.push(format!("--{k}"));
        a.push(v.clone());
    }
    a.extend(["--now".to_owned(), c.now.clone()]);
    a.extend(c.flags.iter().cloned());
    a
}

#[test]
fn every_index_case_gives_its_expected_exit_status_and_json() {
    let cases = cases();
    assert_eq!(cases.len(), 27);
    for c in &cases {
        let mut args = case_args(c);
        let table = veil(&args.iter().map(String::as_str).collect::<Vec<_>>());
        args.push("--json".into());
        let out = veil(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let j = json(&out);
        let checks = j["checks"].as_array().expect("checks");
        assert!(!checks.is_empty(), "{}", c.name);
        if c.ok {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(table.status.code(), Some(0), "{}", c.name);
            assert_eq!(j["ok"], true);
            assert!(checks.iter().all(|k| k["ok"] == true));
            for name in ["signature", "tcb", "debug", "measurement", "report_data"] {
                assert!(
                    checks.iter().any(|k| k["name"] == name),
                    "{}: no {name} check",
                    c.name
                );
            }
            assert_eq!(j["report_data"].as_str().map(str::len), Some(128));
            assert!(j["measurement"].is_string());
            assert!(String::from_utf8_lossy(&table.stdout).starts_with("ACCEPTED"));
        } else {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{}: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(table.status.code(), Some(1), "{}", c.name);
            assert_eq!(j["ok"], false);
            let failed = checks.last().expect("failed check");
            assert_eq!(failed["ok"], false);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = format!(
                "veil: rejected: {}:",
                failed["name"].as_str().expect("name")
            );
            assert!(
                stderr.trim_end().lines().count() == 1 && stderr.starts_with(&line),
                "{}: {stderr}",
                c.name
            );
            assert!(String::from_utf8_lossy(&table.stdout).starts_with("REJECTED"));
        }
    }
}

#[test]
fn snp_chain_files_are_sorted_by_role_in_any_order() {
    let v = vectors();
    let report = v.join("snp/milan-v2-virtee/report.bin");
    let out = veil(&[
        "verify",
        "snp",
        "--cert",
        v.join("snp/milan-v2-virtee/ask_ark.pem")
            .to_str()
            .expect("utf-8"),
        "--report",
        report.to_str().expect("utf-8"),
        "--cert",
        v.join("snp/milan-v2-virtee/vcek.der")
            .to_str()
            .expect("utf-8"),
        "--now",
        "2026-11-25T00:00:00Z",
        "--json",
        "--allow-outdated-tcb",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["product"], "Milan");
    assert!(
        json(&out)["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("allow_outdated_tcb"))),
        "the opt-in is a warning"
    );
}

#[test]
fn saved_bundle_verifies_offline_and_policy_mismatch_is_named() {
    let dir = tempdir();
    let v = vectors();
    let report = std::fs::read(v.join("snp/milan-v3-azure/report.bin")).expect("report");
    let certs = veil_attest::SnpCerts::classify(
        veil_attest::snp::split_certificates(
            &std::fs::read(v.join("snp/milan-v3-azure/vcek.pem")).expect("vcek"),
        )
        .expect("pem"),
    )
    .expect("classify");
    let bundle = dir.join("bundle.json");
    std::fs::write(
        &bundle,
        Evidence::SevSnp(veil_attest::SnpEvidence::new(report, certs)).to_json(),
    )
    .expect("write");
    let b = bundle.to_str().expect("utf-8");

    let out = veil(&[
        "verify",
        "--evidence",
        b,
        "--now",
        "2026-11-25T00:00:00Z",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e\"\n[snp]\nproducts = [\"Milan\"]\n[tcb]\nbootloader = 4\nsnp = 24\nmicrocode = 219\n",
    )
    .expect("write");
    let out = veil(&[
        "verify",
        "--evidence",
        b,
        "--now",
        "2026-11-25T00:00:00Z",
        "--policy",
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"{}\"\n",
            "00".repeat(48)
        ),
    )
    .expect("write");
    let out = veil(&[
        "verify",
        "--evidence",
        b,
        "--now",
        "2026-11-25T00:00:00Z",
        "--policy",
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("veil: rejected: measurement:"));

    let newer = dir.join("newer.toml");
    std::fs::write(&newer, "[tcb]\nmicrocode = 220\n").expect("write");
    let out = veil(&[
        "verify",
        "--evidence",
        b,
        "--now",
        "2026-11-25T00:00:00Z",
        "--policy",
        newer.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("veil: rejected: tcb: TCB below minimum: microcode is 219")
    );
}

#[test]
fn simulated_bundle_needs_allow_simulated_and_says_so() {
    let dir = tempdir();
    let ev = Evidence::Simulated(SimulatedEvidence::sign(&[7; 32], [1; 48], [2; 64]));
    let bundle = dir.join("sim.json");
    std::fs::write(&bundle, ev.to_json()).expect("write");
    let b = bundle.to_str().expect("utf-8");

    let out = veil(&["verify", "--evidence", b, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("veil: rejected: platform: simulated evidence rejected")
    );
    assert_eq!(json(&out)["simulated"], true);

    let out = veil(&["verify", "--evidence", b, "--allow-simulated"]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("platform simulated") && table.contains("SIMULATED"),
        "{table}"
    );
}

#[test]
fn an_evidence_file_is_checked_against_the_nonce_it_records() {
    // What `veil-server evidence` writes: evidence over the transcript of its nonce and
    // manifest (no gateway key), with the nonce recorded beside it.
    let dir = tempdir();
    let nonce = [0x42; 32];
    let manifest = ManifestClaims::new([1; 32], [2; 32], "m".to_owned());
    let rd = ReportData::new(&[], &nonce, &manifest.digest()).expect("rd");
    let ev = Evidence::Simulated(SimulatedEvidence::sign(&[7; 32], [1; 48], rd.0));
    let good = Attestation::new(ev.clone(), Vec::new(), manifest.clone()).with_nonce(nonce);
    let mut other = nonce;
    other[0] ^= 1;
    let bad = Attestation::new(ev, Vec::new(), manifest).with_nonce(other);
    for (name, a, code) in [("good", good, 0), ("bad", bad, 1)] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_string(&a).expect("json")).expect("write");
        let out = veil(&[
            "verify",
            "--evidence",
            file.to_str().expect("utf-8"),
            "--allow-simulated",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(code), "{name}");
        let j = json(&out);
        let rd_check = j["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .rev()
            .find(|c| c["name"] == "report_data")
            .cloned()
            .expect("report_data check");
        assert_eq!(rd_check["ok"], code == 0, "{name}: {j}");
        if code == 0 {
            assert_eq!(rd_check["detail"], "equals the expected value", "{j}");
        }
    }
}

#[test]
fn crl_file_is_checked_and_require_crl_is_named() {
    let v = vectors();
    let snp = |extra: &[&str]| {
        let report = v.join("snp/milan-v2-virtee/report.bin");
        let vcek = v.join("snp/milan-v2-virtee/vcek.der");
        let mut args = vec![
            "verify",
            "snp",
            "--report",
            report.to_str().expect("utf-8"),
            "--cert",
            vcek.to_str().expect("utf-8"),
            "--now",
            "2025-11-24T16:00:00Z",
            "--json",
            // 2022 Milan firmware, below AMD's floor: this test is about the CRL.
            "--allow-outdated-tcb",
        ];
        args.extend_from_slice(extra);
        let out = veil(&args);
        (out.status.code(), json(&out))
    };
    let failed = |j: &serde_json::Value| {
        j["checks"]
            .as_array()
            .and_then(|c| c.last())
            .map(|c| (c["name"].clone(), c["ok"].clone()))
    };

    // No CRL: accepted, and the warning says revocation was not checked.
    let (code, j) = snp(&[]);
    assert_eq!(code, Some(0));
    assert!(
        j["warnings"].to_string().contains("revocation not checked"),
        "{j}"
    );

    // `require_crl` without a CRL: rejected at check `revocation`.
    let dir = tempdir();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[snp]\nrequire_crl = true\n").expect("write policy");
    let (code, j) = snp(&["--policy", policy.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&j), Some(("revocation".into(), false.into())));

    // A CRL signed by a test root in ARK-Milan's name (the fuzz seed), as DER and PEM: it
    // reaches the check, and the pinned ARK refuses it.
    for crl in [
        "test-root-revokes-milan-ask.crl",
        "test-root-revokes-milan-ask.pem",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/snp_crl")
            .join(crl);
        let (code, j) = snp(&["--crl", path.to_str().expect("utf-8")]);
        assert_eq!(code, Some(1), "{j}");
        assert_eq!(failed(&j), Some(("revocation".into(), false.into())));
        assert!(
            j["error"].to_string().contains("CRL not signed by the ARK"),
            "{j}"
        );
    }

    // Not a CRL: a usage error before anything is verified.
    let (code, _) = {
        let out = veil(&[
            "verify",
            "snp",
            "--report",
            v.join("snp/milan-v2-virtee/report.bin")
                .to_str()
                .expect("utf-8"),
            "--crl",
            v.join("snp/milan-v2-virtee/ask_ark.pem")
                .to_str()
                .expect("utf-8"),
        ]);
        (out.status.code(), ())
    };
    assert_eq!(code, Some(2));
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let out = veil(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to verify"));
    let out = veil(&["verify", "--evidence", "/nonexistent/bundle.json"]);
    assert_eq!(out.status.code(), Some(2));
    let out = veil(&["verify", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "veil-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}
