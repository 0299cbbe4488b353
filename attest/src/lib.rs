//! Veil attestation: evidence from AMD SEV-SNP and Intel TDX confidential VMs and NVIDIA
//! confidential-computing GPUs ([`nvidia`]), and its verification.
//!
//! Verification is sans-IO: [`verify`] takes the evidence bytes (parsed into
//! [`Evidence`]), a [`Policy`] of reference values, and the time `now`; it reads
//! no clock, no file and no network. It answers with a [`Verdict`] or the exact
//! rule that failed ([`VerifyError`]). [`audit`] also returns every check that ran,
//! for display.
//!
//! ```no_run
//! use veil_attest::{Evidence, Policy, UnixTime, verify};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let bundle_bytes: Vec<u8> = Vec::new();
//! let evidence = Evidence::from_json(&bundle_bytes)?;
//! let policy = Policy::from_toml(r#"
//!     [[reference]]
//!     platform = "sev-snp"
//!     measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
//! "#)?;
//! let now = UnixTime::parse_rfc3339("2026-11-25T00:00:00Z")?;
//! let verdict = verify(&evidence, &policy, now)?;
//! println!("{} {:?}", verdict.platform, verdict.tcb);
//! # Ok(()) }
//! ```

pub mod attester;
mod binding;
mod encoding;
mod error;
mod evidence;
mod model_digest;
pub mod nvidia;
mod pinning;
mod policy;
pub mod release;
mod report_data;
mod simulated;
pub mod snp;
pub mod tdx;
mod verdict;

pub use binding::{Attestation, ManifestClaims};
pub use error::VerifyError;
pub use evidence::{
    Evidence, MAX_BUNDLE_LEN, MAX_CERT_LEN, MAX_QUOTE_LEN, SimulatedEvidence, SnpCerts,
    SnpEvidence, TdxEvidence,
};
pub use model_digest::{
    MODEL_MANIFEST_DIGEST_DOMAIN, ModelFileRef, model_manifest_digest, model_manifest_digest_json,
};
pub use policy::{
    DigestReference, HexBytes, Measurement48, Pin, Policy, Reference, SnpPolicy, TcbPolicy,
    TdxPolicy,
};
pub use report_data::{NONCE_LEN, ReportData, ServerManifest, gpu_evidence_digest};
pub use verdict::{Audit, Check, CheckName, Measurement, Platform, Tcb, UnixTime, Verdict};

use verdict::Checks;

/// Verifies evidence against a policy at time `now`.
pub fn verify(evidence: &Evidence, policy: &Policy, now: UnixTime) -> Result<Verdict, VerifyError> {
    audit(evidence, policy, now).outcome
}

/// Verifies like [`verify`], and also returns every check that ran, in order;
/// on failure the last check is the one that failed.
pub fn audit(evidence: &Evidence, policy: &Policy, now: UnixTime) -> Audit {
    let mut checks = Checks::default();
    let outcome = run(evidence, policy, now, &mut checks);
    let mut checks = checks.0;
    if let Err(e) = &outcome {
        checks.push(Check {
            name: e.check(),
            ok: false,
            detail: e.to_string(),
        });
    }
    Audit { checks, outcome }
}

fn run(
    evidence: &Evidence,
    policy: &Policy,
    now: UnixTime,
    checks: &mut Checks,
) -> Result<Verdict, VerifyError> {
    if policy.gpu.is_some() {
        // Bare CPU evidence carries no GPU evidence; an `Attestation` does.
        return Err(VerifyError::GpuEvidenceMissing);
    }
    let platform = evidence.platform();
    policy.check_platform(platform)?;
    checks.pass(
        CheckName::Platform,
        match platform {
            Platform::Simulated => {
                "simulated (allowed by policy: NO hardware protection)".to_owned()
            }
            p => p.to_string(),
        },
    );
    let mut verdict = match evidence {
        Evidence::SevSnp(ev) => snp::verify(ev, policy, now, checks),
        Evidence::Tdx(ev) => tdx::verify(ev, policy, now, checks),
        Evidence::Simulated(ev) => simulated::verify(ev, policy, checks),
    }?;
    verdict.warnings.extend(policy.warnings(platform));
    Ok(verdict)
}
