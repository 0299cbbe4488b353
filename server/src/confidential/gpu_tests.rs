//! GPU evidence in the attestation, on the real captured Hopper report replayed: each GPU is
//! asked for the nonce a client derives from the same transcript, the CPU evidence binds
//! what the GPUs answered, and a client refuses a report that answers another nonce (a
//! replay) or a server without GPU evidence under a `[gpu]` policy.

use std::sync::Arc;

use veil_attest::attester::{AttestError, GpuAttester, ReplayedGpus, Simulated};
use veil_attest::nvidia::{GpuEvidence, GpuPolicy};
use veil_attest::{ManifestClaims, Policy, Reference, ReportData, UnixTime, VerifyError};

use super::{AttestationError, Confidential, ConfidentialConfig};

const REPORT: &[u8] =
    include_bytes!("../../../attest/tests/vectors/nvidia/hopperAttestationReport.txt");
const CHAIN: &[u8] =
    include_bytes!("../../../attest/tests/vectors/nvidia/hopper_cert_chain_case1.txt");
/// The nonce the captured report answers.
const CAPTURED_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"; // pragma: allowlist secret
const MEASUREMENT: [u8; 48] = [7; 48];

/// Inside the captured certificates' validity.
fn now() -> UnixTime {
    UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time")
}

fn policy() -> Policy {
    Policy::default()
        .allow_simulated(true)
        .with_reference(Reference::simulated(MEASUREMENT))
}

fn confidential() -> Confidential {
    Confidential::new(
        Arc::new(Simulated::new([9; 32], MEASUREMENT)),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig::default(),
    )
}

fn replayed() -> Arc<ReplayedGpus> {
    Arc::new(ReplayedGpus::new(vec![
        GpuEvidence::from_files(REPORT, CHAIN).expect("vectors"),
    ]))
}

#[tokio::test]
async fn gpus_answer_the_transcripts_nonce_and_the_cpu_evidence_binds_them() {
    let gpus = replayed();
    let conf = confidential().with_gpus(gpus.clone());
    let nonce = [5u8; 32];
    let a = conf.attest(&hex::encode(nonce)).await.expect("evidence");
    assert_eq!(a.gpus.len(), 1);
    // The GPU was asked for the nonce a client derives from this transcript.
    let gpu_nonce =
        ReportData::gpu_nonce(&a.key_config, &nonce, &a.manifest.digest()).expect("nonce");
    assert_eq!(gpus.asked(), [gpu_nonce]);
    // The CPU evidence binds the GPU evidence (REPORT_DATA holds), and the client then
    // finds that the replayed report answers the nonce it was captured with, not this one.
    match a.verify(&policy(), &nonce, now()) {
        Err(VerifyError::NonceMismatch { expected, got }) => {
            assert_eq!(expected, hex::encode(gpu_nonce));
            assert_eq!(got, CAPTURED_NONCE);
        }
        other => panic!("a replayed GPU report must be refused by its nonce: {other:?}"),
    }
    // Dropping the GPU evidence from the bundle breaks the CPU evidence's binding.
    let mut stripped = a.clone();
    stripped.gpus.clear();
    assert!(matches!(
        stripped.verify(&policy(), &nonce, now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[tokio::test]
async fn a_gpu_policy_refuses_a_server_without_gpu_evidence() {
    let conf = confidential();
    let nonce = [6u8; 32];
    let a = conf.attest(&hex::encode(nonce)).await.expect("evidence");
    assert!(a.gpus.is_empty());
    a.verify(&policy(), &nonce, now())
        .expect("no [gpu]: accepted");
    let mut with_gpu = policy();
    with_gpu.gpu = Some(GpuPolicy::default());
    assert!(matches!(
        a.verify(&with_gpu, &nonce, now()),
        Err(VerifyError::GpuEvidenceMissing)
    ));
}

#[derive(Debug)]
struct BrokenGpus;

impl GpuAttester for BrokenGpus {
    fn gpu_evidence(&self, _: &[u8; 32]) -> Result<Vec<GpuEvidence>, AttestError> {
        Err(AttestError::Gpu("CC mode is off".to_owned()))
    }

    fn name(&self) -> &'static str {
        "broken"
    }
}

#[tokio::test]
async fn no_evidence_without_the_gpus_evidence() {
    let conf = confidential().with_gpus(Arc::new(BrokenGpus));
    let e = conf
        .attest(&hex::encode([7u8; 32]))
        .await
        .expect_err("no CPU evidence alone when the GPUs cannot answer");
    assert!(
        matches!(e, AttestationError::Attester(AttestError::Gpu(_))),
        "{e}"
    );
}
