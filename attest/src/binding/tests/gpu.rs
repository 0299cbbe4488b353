//! The binding of NVIDIA GPU evidence, on the real Hopper vectors.

use super::*;
use crate::nvidia::GpuPolicy;
use crate::{CheckName, Platform};

const REPORT: &[u8] = include_bytes!("../../../tests/vectors/nvidia/hopperAttestationReport.txt");
const CHAIN: &[u8] = include_bytes!("../../../tests/vectors/nvidia/hopper_cert_chain_case1.txt");
/// The nonce the captured report answers.
const GPU_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn gpu_nonce() -> [u8; 32] {
    crate::encoding::parse_hex::<32>(GPU_NONCE).expect("hex")
}

fn now() -> UnixTime {
    UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time")
}

fn real_gpu() -> GpuEvidence {
    GpuEvidence::from_files(REPORT, CHAIN).expect("vectors")
}

/// Simulated CPU evidence that binds the real GPU evidence in its REPORT_DATA.
fn bound(nonce: &[u8; 32], gpus: Vec<GpuEvidence>) -> Attestation {
    let a = attestation(nonce).with_gpus(gpus);
    let rd = a.expected_report_data(nonce).expect("transcript");
    let sim = Simulated::new([3; 32], [4; 48]);
    Attestation {
        evidence: sim.attest(&rd.0).expect("evidence"),
        ..a
    }
}

fn gpu_policy() -> Policy {
    let mut p = policy();
    p.gpu = Some(
        GpuPolicy::default()
            .with_driver_versions(["550.90.07"])
            .with_measurement(2, hex::decode("8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338").expect("hex")),
    );
    p
}

#[test]
fn bound_gpu_evidence_verifies_and_joins_the_verdict() {
    let a = bound(&[9; 32], vec![real_gpu()]);
    let back = Attestation::from_json(serde_json::to_string(&a).expect("json").as_bytes())
        .expect("parses");
    assert_eq!(back.gpus, a.gpus);
    // The captured report answers its own nonce, not one derived from this transcript
    // (no GPU can be asked here): the binding is checked with that nonce injected.
    let v = back
        .verify_bound(&gpu_policy(), &[9; 32], &gpu_nonce(), now())
        .expect("bound");
    assert_eq!(v.platform, Platform::Simulated);
    assert_eq!(v.gpus.len(), 1);
    assert_eq!(v.gpus[0].driver_version.as_deref(), Some("550.90.07"));
    assert!(
        v.warnings.iter().any(|w| w.starts_with("gpu 0: ")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn gpu_evidence_for_another_transcript_is_refused() {
    // The public path derives the GPU nonce from the transcript: the captured report
    // answers another one, as a replayed or foreign GPU report would.
    let a = bound(&[9; 32], vec![real_gpu()]);
    let e = a
        .verify(&gpu_policy(), &[9; 32], now())
        .expect_err("stale GPU nonce");
    assert!(matches!(e, VerifyError::NonceMismatch { .. }), "{e:?}");
    assert_eq!(e.check(), CheckName::Nonce);
}

#[test]
fn gpu_evidence_removed_or_swapped_breaks_the_binding() {
    let a = bound(&[9; 32], vec![real_gpu()]);
    let mut removed = a.clone();
    removed.gpus.clear();
    assert!(matches!(
        removed.verify_bound(&policy(), &[9; 32], &gpu_nonce(), now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    let mut swapped = a.clone();
    swapped.gpus[0].certs = crate::snp::split_certificates(include_bytes!(
        "../../../tests/vectors/nvidia/hopper_coco_certs1.txt"
    ))
    .expect("certs");
    assert!(matches!(
        swapped.verify_bound(&policy(), &[9; 32], &gpu_nonce(), now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    let mut added = a.clone();
    added.gpus.push(real_gpu());
    assert!(matches!(
        added.verify_bound(&policy(), &[9; 32], &gpu_nonce(), now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn a_gpu_policy_refuses_a_server_without_gpus() {
    let a = attestation(&[9; 32]);
    assert_eq!(
        a.verify(&gpu_policy(), &[9; 32], now())
            .expect_err("no GPU")
            .check(),
        CheckName::Gpu
    );
    assert!(matches!(
        verify(&a.evidence, &gpu_policy(), now()),
        Err(VerifyError::GpuEvidenceMissing)
    ));
    // The same attestation passes without [gpu].
    a.verify(&policy(), &[9; 32], now())
        .expect("no GPU required");
    // A client refuses a [gpu] section that pins nothing.
    let mut p = gpu_policy();
    p.gpu = Some(GpuPolicy::default());
    assert!(matches!(p.check_pinned(), Err(VerifyError::Unpinned(m)) if m.contains("[gpu]")));
}

#[test]
fn gpu_measurement_mismatch_fails_the_attestation() {
    let a = bound(&[9; 32], vec![real_gpu()]);
    let mut p = gpu_policy();
    if let Some(g) = p.gpu.as_mut() {
        g.measurements.0.insert(2, vec![vec![0; 48]]);
    }
    assert!(matches!(
        a.verify_bound(&p, &[9; 32], &gpu_nonce(), now()),
        Err(VerifyError::GpuMeasurementMismatch { index: 2, .. })
    ));
}
