//! NVIDIA Hopper GPU evidence: every case of `nvidia/index.tsv` (real reports and chains)
//! gives its verdict, the verdict carries the values NVIDIA's parser found (the claims
//! file), and every check fails on tampered input.

use crate::common;

use std::collections::BTreeMap;

use veil_attest::nvidia::{
    GpuAudit, GpuEvidence, GpuPolicy, GpuVerdict, nvidia_root_der, spdm, verify_gpu,
};
use veil_attest::{CheckName, Policy, UnixTime, VerifyError};

const NONCE_550: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn now() -> UnixTime {
    UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time")
}

fn nonce() -> [u8; 32] {
    <[u8; 32]>::try_from(hex::decode(NONCE_550).expect("hex").as_slice()).expect("32")
}

fn hopper() -> GpuEvidence {
    common::case_gpu("gpu-hopper-550").gpu_evidence().0
}

fn run(ev: &GpuEvidence, policy: &GpuPolicy, now: UnixTime) -> GpuAudit {
    verify_gpu(ev, policy, Some(&nonce()), now)
}

fn verify(ev: &GpuEvidence, policy: &GpuPolicy) -> Result<GpuVerdict, VerifyError> {
    run(ev, policy, now()).outcome
}

/// The claims file: what trustee's NVIDIA parser extracted from the 550 report.
fn claims() -> serde_json::Value {
    serde_json::from_slice(&common::read("nvidia/hopperAttestationReport-claims.txt"))
        .expect("claims JSON")
}

/// A policy that pins every measurement of the 550 report and its versions.
fn full_policy() -> GpuPolicy {
    let c = claims();
    let mut p = GpuPolicy::default()
        .with_driver_versions(["550.90.07"])
        .with_vbios_versions(["96.00.9f.00.01"]);
    for (k, v) in c["measurements"].as_object().expect("measurements") {
        p = p.with_measurement(
            k.parse().expect("index"),
            hex::decode(v.as_str().expect("hex")).expect("hex"),
        );
    }
    p
}

fn expected_rejection(case: &str, e: &VerifyError) -> bool {
    use VerifyError as E;
    match case {
        "gpu-hopper-550-wrong-nonce" => matches!(e, E::NonceMismatch { .. }),
        "gpu-hopper-550-other-gpu-chain" => matches!(e, E::FwidMismatch { .. }),
        "gpu-hopper-550-root-only" => matches!(e, E::MissingCertificate(_)),
        "gpu-hopper-550-missing-ica" => {
            matches!(e, E::ChainSignature(m) if m.contains("issuer name differs"))
        }
        "gpu-hopper-550-no-leaf" => matches!(e, E::ChainSignature(m) if m.contains("may not sign")),
        "gpu-hopper-550-not-yet-valid" => {
            matches!(
                e,
                E::CertificateNotValid {
                    cert: "gpu intermediate",
                    ..
                }
            )
        }
        _ => false,
    }
}

#[test]
fn every_gpu_case_gives_its_expected_verdict() {
    let (mut ok, mut rejected) = (0, 0);
    for case in common::gpu_cases() {
        let (ev, nonce) = case.gpu_evidence();
        let a = verify_gpu(&ev, &GpuPolicy::default(), nonce.as_ref(), case.now());
        match (&a.outcome, case.expect_ok) {
            (Ok(v), true) => {
                ok += 1;
                assert!(
                    a.checks.iter().all(|c| c.ok),
                    "{}: {:?}",
                    case.name,
                    a.checks
                );
                assert_eq!(v.gpu, "GH100 A01", "{}", case.name);
                assert_eq!(v.measurements.len(), 64, "{}", case.name);
            }
            (Err(e), false) => {
                rejected += 1;
                assert!(
                    expected_rejection(&case.name, e),
                    "{}: wrong rejection {e:?}",
                    case.name
                );
                let last = a.checks.last().expect("a failed check");
                assert!(
                    !last.ok && last.name == e.check(),
                    "{}: {last:?}",
                    case.name
                );
            }
            (Ok(_), false) => panic!("{}: accepted, must be rejected", case.name),
            (Err(e), true) => panic!("{}: rejected ({e}), must verify", case.name),
        }
    }
    assert_eq!((ok, rejected), (2, 6));
}

#[test]
fn verdict_carries_the_reports_claims() {
    let c = claims();
    let v = verify(&hopper(), &full_policy()).expect("verifies");
    assert_eq!(
        v.driver_version.as_deref(),
        c["config"]["driver_version"].as_str()
    );
    assert_eq!(
        v.vbios_version.as_deref(),
        c["config"]["vbios_version"].as_str()
    );
    assert_eq!(
        Some(hex::encode(&v.fwid).as_str()),
        c["config"]["fwid"].as_str()
    );
    assert_eq!(hex::encode(v.nonce), NONCE_550);
    let got: BTreeMap<String, String> = v
        .measurements
        .iter()
        .map(|m| (m.index.to_string(), hex::encode(&m.value)))
        .collect();
    let want: BTreeMap<String, String> = c["measurements"]
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("hex").to_owned()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(v.pinned_indices.len(), 64);
    assert_eq!(v.certificates.len(), 5);
    assert_eq!(v.certificates[4], "NVIDIA Device Identity CA");
    // Everything pinned: only the revocation warning remains.
    assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    assert!(v.warnings[0].contains("revocation not checked"));
    let names: Vec<&str> = run(&hopper(), &full_policy(), now())
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "parse",
            "cert_chain",
            "cert_validity",
            "revocation",
            "fwid",
            "signature",
            "nonce",
            "gpu_version",
            "measurement"
        ]
    );
}

#[test]
fn unpinned_and_unchecked_are_warned() {
    let a = verify_gpu(&hopper(), &GpuPolicy::default(), None, now());
    let v = a.outcome.expect("verifies");
    let w = v.warnings.join("\n");
    for needle in [
        "revocation not checked",
        "nonce not checked",
        "driver version not pinned",
        "vbios version not pinned",
        "no GPU measurement pinned",
    ] {
        assert!(w.contains(needle), "{needle}: {w}");
    }
    // The 580 report's trailing zero byte is named.
    let (ev, n) = common::case_gpu("gpu-hopper-580").gpu_evidence();
    let v = verify_gpu(&ev, &GpuPolicy::default(), n.as_ref(), now())
        .outcome
        .expect("verifies");
    assert!(
        v.warnings.iter().any(|w| w.contains("1 zero bytes after")),
        "{:?}",
        v.warnings
    );
    assert_eq!(v.driver_version.as_deref(), Some("580.95.05"));
}

#[test]
fn measurement_and_version_mismatches_are_rejected() {
    let mut p = full_policy();
    p.measurements.0.insert(2, vec![vec![0; 48]]);
    assert!(matches!(
        verify(&hopper(), &p),
        Err(VerifyError::GpuMeasurementMismatch { index: 2, .. })
    ));
    // An index the report does not carry.
    let p = full_policy().with_measurement(200, vec![0; 48]);
    assert!(matches!(
        verify(&hopper(), &p),
        Err(VerifyError::GpuMeasurementMismatch { index: 200, ref got, .. }) if got == "missing"
    ));
    // Alternatives: any one listed value is accepted.
    let mut p = full_policy();
    let real = p.measurements.0[&3][0].clone();
    p.measurements.0.insert(3, vec![vec![1; 48], real]);
    verify(&hopper(), &p).expect("one alternative matches");

    let p = full_policy().with_driver_versions(["550.90.08", "535.0.0"]);
    assert!(matches!(
        verify(&hopper(), &p),
        Err(VerifyError::GpuVersionNotAllowed {
            component: "driver",
            ..
        })
    ));
    let p = full_policy().with_vbios_versions(["96.00.9f.00.02"]);
    let e = verify(&hopper(), &p).expect_err("vbios");
    assert!(matches!(
        e,
        VerifyError::GpuVersionNotAllowed {
            component: "vbios",
            ..
        }
    ));
    assert_eq!(e.check(), CheckName::GpuVersion);
}

#[test]
fn wrong_nonce_expired_and_foreign_roots_are_rejected() {
    let mut other = nonce();
    other[31] ^= 1;
    let e = verify_gpu(&hopper(), &full_policy(), Some(&other), now())
        .outcome
        .expect_err("nonce");
    assert!(matches!(e, VerifyError::NonceMismatch { .. }));
    assert_eq!(e.check(), CheckName::Nonce);

    // Every certificate ends 9999-12-31T23:59:59Z; one second later the chain has expired.
    let after = UnixTime(253_402_300_800);
    let e = run(&hopper(), &full_policy(), after)
        .outcome
        .expect_err("expired");
    assert!(
        matches!(
            e,
            VerifyError::CertificateNotValid {
                cert: "gpu leaf",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.check(), CheckName::CertValidity);
    run(&hopper(), &full_policy(), UnixTime(253_402_300_799))
        .outcome
        .expect("valid in its last second");
    // Before the leaf's notBefore (2020-10-17).
    let before = UnixTime::parse_rfc3339("2020-01-01T00:00:00Z").expect("time");
    assert!(matches!(
        run(&hopper(), &full_policy(), before).outcome,
        Err(VerifyError::CertificateNotValid {
            cert: "gpu leaf",
            ..
        })
    ));

    // The root replaced by another self-signed root (AMD's Milan ARK).
    let mut ev = hopper();
    let ark = veil_attest::snp::Product::Milan.ark_der().expect("ark");
    *ev.certs.last_mut().expect("root") = ark;
    assert!(matches!(
        verify(&ev, &full_policy()),
        Err(VerifyError::UntrustedGpuRoot(_))
    ));
    // The chain cut short above the root: it ends at a CA the root did not issue.
    let mut ev = hopper();
    ev.certs.truncate(3);
    assert!(matches!(
        verify(&ev, &full_policy()),
        Err(VerifyError::UntrustedGpuRoot(_))
    ));
    // Without the root (it is pinned, so it may be left out) the chain still verifies.
    let mut ev = hopper();
    assert_eq!(ev.certs.pop(), Some(nvidia_root_der().expect("root")));
    verify(&ev, &full_policy()).expect("root filled in");
    // The leaf alone: its issuer (the per-device BROM CA) is not the root.
    let mut ev = hopper();
    ev.certs.truncate(1);
    assert!(matches!(
        verify(&ev, &full_policy()),
        Err(VerifyError::UntrustedGpuRoot(_))
    ));
}

/// Flips one bit at `stride`-spaced offsets of the report: every flip must be refused, and
/// flips inside the signed measurement record must fail the signature (or the FWID) check.
#[test]
fn report_byte_flips_are_rejected() {
    let ev = hopper();
    let parsed = spdm::parse(&ev.report).expect("parses");
    let len = ev.report.len();
    let mut by_check: BTreeMap<&str, usize> = BTreeMap::new();
    for i in (0..len)
        .step_by(13)
        .chain([4, 35, 37 + 8, len - 97, len - 96, len - 49, len - 1])
    {
        let mut bad = ev.clone();
        bad.report[i] ^= 0x01;
        let e = verify(&bad, &GpuPolicy::default()).expect_err("a flipped byte must be refused");
        *by_check.entry(e.check().as_str()).or_default() += 1;
        // The record: 64 blocks of 55 bytes from byte 45, each value at +7..+55.
        if (45..45 + 64 * 55).contains(&i) && (i - 45) % 55 >= 7 {
            assert!(
                matches!(e, VerifyError::SignatureInvalid(_)),
                "byte {i}: {e:?}"
            );
        }
        if i >= parsed.signed_len || (4..36).contains(&i) {
            // The signature itself, and the request's nonce (signed; checked before the nonce).
            assert!(
                matches!(e, VerifyError::SignatureInvalid(_)),
                "byte {i}: {e:?}"
            );
        }
    }
    assert!(by_check["signature"] > 250, "{by_check:?}");
    assert!(by_check.contains_key("parse"), "{by_check:?}");
    eprintln!("{by_check:?}");
}

#[test]
fn certificate_byte_flips_are_rejected() {
    let ev = hopper();
    for cert in 0..ev.certs.len() - 1 {
        let n = ev.certs[cert].len();
        for i in (0..n).step_by(29).chain([n - 1, n - 20]) {
            let mut bad = ev.clone();
            bad.certs[cert][i] ^= 0x01;
            let e = verify(&bad, &GpuPolicy::default()).expect_err("flipped certificate");
            assert!(
                matches!(
                    e.check(),
                    CheckName::CertChain | CheckName::Fwid | CheckName::CertValidity
                ),
                "cert {cert} byte {i}: {e:?}"
            );
        }
    }
}

#[test]
fn truncated_and_padded_reports_are_malformed() {
    let ev = hopper();
    for n in (0..ev.report.len()).step_by(7) {
        let mut bad = ev.clone();
        bad.report.truncate(n);
        assert!(
            matches!(
                verify(&bad, &GpuPolicy::default()),
                Err(VerifyError::Malformed(_))
            ),
            "truncated to {n}"
        );
    }
    let mut bad = ev.clone();
    bad.report.push(1);
    assert!(matches!(
        verify(&bad, &GpuPolicy::default()),
        Err(VerifyError::Malformed(_))
    ));
    let mut bad = ev.clone();
    bad.report.extend([0; 17]);
    assert!(matches!(
        verify(&bad, &GpuPolicy::default()),
        Err(VerifyError::Malformed(_))
    ));
    let mut ok = ev;
    ok.report.extend([0; 3]);
    verify(&ok, &GpuPolicy::default()).expect("zero padding after the signature is ignored");
}

#[test]
fn gpu_policy_parses_from_toml_and_json() {
    let toml = r#"
        [gpu]
        driver_versions = ["550.90.07"]
        vbios_versions = ["96.00.9f.00.01"]
        [gpu.measurements]
        2 = "8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338"
        3 = ["00", "164f445c3e282ca8e4ab07c2179b8e02c8e3a2ceb83f9fae8dddaee70aa57207d87792d1481b46c02f9dba6e1fe1e77e"]
    "#;
    let p = Policy::from_toml(toml).expect("parses");
    let gpu = p.gpu.clone().expect("[gpu]");
    assert_eq!(gpu.measurements.0.len(), 2);
    assert_eq!(gpu.measurements.0[&3].len(), 2);
    verify(&hopper(), &gpu).expect("pinned values match");

    for bad in [
        "[gpu]\nmeasurements = { 0 = \"00\" }",
        "[gpu]\nmeasurements = { 255 = \"00\" }",
        "[gpu]\nmeasurements = { x = \"00\" }",
        "[gpu]\nmeasurements = { 2 = \"zz\" }",
        "[gpu]\nmeasurements = { 2 = [] }",
        "[gpu]\nunknown = 1",
    ] {
        assert!(Policy::from_toml(bad).is_err(), "{bad}");
    }
    let p = Policy::from_json(r#"{"gpu":{"measurements":{"2":"00"}}}"#).expect("json");
    assert_eq!(p.gpu.expect("gpu").measurements.0[&2], vec![vec![0]]);
}
