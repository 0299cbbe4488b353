//! NVIDIA Hopper GPU evidence (confidential computing mode): the SPDM measurement report
//! signed by the GPU, its certificate chain to NVIDIA's device identity root, and the
//! policy's reference values. Sans-IO like the rest: bytes, the expected nonce and `now` in.
//!
//! Checks, in order ([`verify_gpu`]):
//! 1. `parse`: the SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS response ([`spdm`]).
//! 2. `cert_chain`: leaf first, each certificate ECDSA P-384/SHA-384-signed by the next, every
//!    issuer a CA, ending at (or issued by) the pinned root. `cert_validity`: each at `now`.
//! 3. `revocation`: NVIDIA revokes GPU certificates through OCSP (`ocsp.ndis.nvidia.com`),
//!    which a sans-IO verifier cannot ask. Veil does not check revocation yet; every verdict
//!    says so in a warning (stapled OCSP responses are not carried yet).
//! 4. `fwid`: the leaf's DICE firmware id equals the report's FWID opaque field (the leaf is
//!    issued per boot by the GSP firmware that the FWID measures); a chain of another GPU or
//!    boot fails here, by name, before the signature does.
//! 5. `signature`: ECDSA P-384 over SHA-384 of the request and the response up to the
//!    signature, with the leaf's key.
//! 6. `nonce`: the request's nonce is the verifier's (when the caller gives one).
//! 7. `gpu_version`, `measurement`: driver/VBIOS versions and measurements against `[gpu]`.
//!
//! **Where the trust anchor comes from.** `roots/nvidia_device_identity_ca.pem` is NVIDIA's
//! "NVIDIA Device Identity CA" (P-384, valid 2021-11-05 .. 9999-12-31, SHA-256 of the DER
//! `102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48`), byte-identical to
//! `guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/verifier_device_root.pem`
//! in github.com/NVIDIA/nvtrust (commit b75351ab108ff098076954e1a20e9479b51dabb7) and to the
//! root of the captured Hopper chains in `tests/vectors/nvidia/`.
//!
//! **Where reference values come from.** NVIDIA publishes, per driver version and per VBIOS,
//! a signed Reference Integrity Manifest (a SWID tag, served by `rim.attestation.nvidia.com`,
//! ids `NV_GPU_DRIVER_GH100_<driver>` and `NV_GPU_VBIOS_<project>_<sku>_<chip sku>_<vbios>`)
//! listing the expected value(s) of each measurement index. Veil does not fetch or parse
//! RIMs: a `[gpu]` section pins indices and values taken from the RIMs of the driver and
//! VBIOS the deployment runs (checked with NVIDIA's tools), or from a known-good GPU (trust
//! on first use). The test vectors' values are those of the captured report itself.

mod certs;
mod policy;
pub mod spdm;

pub use certs::{MAX_CHAIN_LEN, NVIDIA_DEVICE_ROOT_PEM, nvidia_root_der};
pub use policy::{GpuMeasurements, GpuPolicy};

use p384::ecdsa::{Signature, signature::Verifier as _};
use serde::{Deserialize, Serialize};

use crate::encoding::{b64, hex_serialize};
use crate::verdict::{Check, CheckName, Checks};
use crate::{UnixTime, VerifyError};

/// Evidence from one GPU: its report and certificate chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GpuEvidence {
    /// The SPDM GET_MEASUREMENTS request and response, as the GPU produced them.
    #[serde(with = "b64")]
    pub report: Vec<u8>,
    /// The certificate chain (DER), leaf first; the root may be left out.
    #[serde(with = "b64_list")]
    pub certs: Vec<Vec<u8>>,
}

impl GpuEvidence {
    /// GPU evidence from a report and its chain (DER, leaf first).
    pub fn new(report: Vec<u8>, certs: Vec<Vec<u8>>) -> Self {
        Self { report, certs }
    }

    /// GPU evidence from files: the report as raw bytes or hex text, the chain as PEM
    /// (leaf first) or one DER certificate.
    pub fn from_files(report: &[u8], certs: &[u8]) -> Result<Self, VerifyError> {
        Ok(Self {
            report: spdm::decode_report_file(report)?,
            certs: crate::snp::split_certificates(certs)?,
        })
    }
}

mod b64_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|c| STANDARD.encode(c)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// One GPU measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuMeasurement {
    /// Measurement index.
    pub index: u8,
    /// Value (hex in JSON).
    #[serde(serialize_with = "hex_serialize")]
    pub value: Vec<u8>,
}

/// What a successful GPU verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GpuVerdict {
    /// The GPU, from the leaf certificate (`GH100 A01`).
    pub gpu: String,
    /// Driver version from the report.
    pub driver_version: Option<String>,
    /// VBIOS version from the report.
    pub vbios_version: Option<String>,
    /// Firmware id (hex in JSON).
    #[serde(serialize_with = "hex_serialize")]
    pub fwid: Vec<u8>,
    /// The requester's nonce the report answers (hex in JSON).
    #[serde(serialize_with = "hex_serialize")]
    pub nonce: [u8; 32],
    /// Measurements, in report order.
    pub measurements: Vec<GpuMeasurement>,
    /// Measurement indices the policy pinned (and which matched).
    pub pinned_indices: Vec<u8>,
    /// Subject names of the chain, leaf first.
    pub certificates: Vec<String>,
    /// Things that held but deserve attention.
    pub warnings: Vec<String>,
}

/// Every check of one GPU verification, and the outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GpuAudit {
    /// Checks in the order they ran; on failure the last one failed.
    pub checks: Vec<Check>,
    /// The verdict, or why the evidence was rejected.
    pub outcome: Result<GpuVerdict, VerifyError>,
}

/// Verifies GPU evidence against `[gpu]` at `now`; `nonce`: the nonce the verifier sent
/// (`None`: not checked, with a warning — the report may then be a replay).
pub fn verify_gpu(
    ev: &GpuEvidence,
    policy: &GpuPolicy,
    nonce: Option<&[u8; 32]>,
    now: UnixTime,
) -> GpuAudit {
    let mut checks = Checks::default();
    let outcome = run(ev, policy, nonce, now, &mut checks);
    let mut checks = checks.0;
    if let Err(e) = &outcome {
        checks.push(Check {
            name: e.check(),
            ok: false,
            detail: e.to_string(),
        });
    }
    GpuAudit { checks, outcome }
}

fn run(
    ev: &GpuEvidence,
    policy: &GpuPolicy,
    nonce: Option<&[u8; 32]>,
    now: UnixTime,
    checks: &mut Checks,
) -> Result<GpuVerdict, VerifyError> {
    let report = spdm::parse(&ev.report)?;
    if !report.signature_requested {
        return Err(VerifyError::Malformed(
            "the GPU report's request did not ask for a signature".into(),
        ));
    }
    let (driver, vbios) = (report.driver_version(), report.vbios_version());
    checks.pass(
        CheckName::Parse,
        format!(
            "SPDM 1.1 measurements: {} blocks, driver {}, VBIOS {}",
            report.blocks.len(),
            driver.as_deref().unwrap_or("none"),
            vbios.as_deref().unwrap_or("none"),
        ),
    );
    let mut warnings = Vec::new();
    if report.trailing > 0 {
        warnings.push(format!(
            "{} zero bytes after the GPU report's signature (not signed) were ignored",
            report.trailing
        ));
    }

    let chain = certs::verify_chain(&ev.certs)?;
    checks.pass(
        CheckName::CertChain,
        format!("{} (pinned)", chain.names.join(" -> ")),
    );
    chain.check_validity(now)?;
    checks.pass(
        CheckName::CertValidity,
        format!(
            "chain valid {} .. {}",
            chain.valid.0.to_rfc3339(),
            chain.valid.1.to_rfc3339()
        ),
    );
    checks.pass(
        CheckName::Revocation,
        "not checked: NVIDIA's OCSP cannot be asked offline and no response is stapled",
    );
    warnings.push(
        "GPU certificate revocation not checked (NVIDIA OCSP; no stapled response)".to_owned(),
    );

    let fwid = report.fwid().unwrap_or_default();
    if fwid != chain.fwid.as_slice() {
        return Err(VerifyError::FwidMismatch {
            cert: hex::encode(&chain.fwid),
            report: if fwid.is_empty() {
                "none".into()
            } else {
                hex::encode(fwid)
            },
        });
    }
    checks.pass(CheckName::Fwid, format!("{} in both", hex::encode(fwid)));

    let signed = ev.report.get(..report.signed_len).unwrap_or_default();
    let sig = Signature::from_slice(&report.signature)
        .map_err(|e| VerifyError::SignatureInvalid(format!("GPU report signature: {e}")))?;
    chain.leaf_key.verify(signed, &sig).map_err(|_| {
        VerifyError::SignatureInvalid("GPU report: does not verify with the leaf key".into())
    })?;
    checks.pass(
        CheckName::Signature,
        format!("ECDSA P-384 over {} bytes, leaf key", report.signed_len),
    );

    match nonce {
        Some(n) if n != &report.nonce => {
            return Err(VerifyError::NonceMismatch {
                expected: hex::encode(n),
                got: hex::encode(report.nonce),
            });
        }
        Some(_) => checks.pass(CheckName::Nonce, "equals the expected nonce"),
        None => {
            checks.pass(CheckName::Nonce, "not checked (no expected nonce)");
            warnings.push("GPU nonce not checked: the report may be a replay".to_owned());
        }
    }

    check_version(
        "driver",
        driver.as_deref(),
        &policy.driver_versions,
        &mut warnings,
    )?;
    check_version(
        "vbios",
        vbios.as_deref(),
        &policy.vbios_versions,
        &mut warnings,
    )?;
    checks.pass(
        CheckName::GpuVersion,
        format!(
            "driver {}, VBIOS {}",
            driver.as_deref().unwrap_or("none"),
            vbios.as_deref().unwrap_or("none")
        ),
    );

    for (&index, want) in &policy.measurements.0 {
        let got = report.blocks.iter().find(|b| b.index == index);
        if !got.is_some_and(|b| want.contains(&b.value)) {
            return Err(VerifyError::GpuMeasurementMismatch {
                index,
                expected: want.iter().map(hex::encode).collect::<Vec<_>>().join(", "),
                got: got.map_or_else(|| "missing".to_owned(), |b| hex::encode(&b.value)),
            });
        }
    }
    let pinned_indices: Vec<u8> = policy.measurements.0.keys().copied().collect();
    if pinned_indices.is_empty() {
        warnings.push("no GPU measurement pinned: any GPU firmware is accepted".to_owned());
    }
    checks.pass(
        CheckName::Measurement,
        format!(
            "{} of {} measurements pinned and equal",
            pinned_indices.len(),
            report.blocks.len()
        ),
    );

    let gpu = chain.names.first().map_or_else(String::new, |cn| {
        cn.split(' ').take(2).collect::<Vec<_>>().join(" ")
    });
    Ok(GpuVerdict {
        gpu,
        driver_version: driver,
        vbios_version: vbios,
        fwid: chain.fwid.clone(),
        nonce: report.nonce,
        measurements: report
            .blocks
            .iter()
            .map(|b| GpuMeasurement {
                index: b.index,
                value: b.value.clone(),
            })
            .collect(),
        pinned_indices,
        certificates: chain.names.clone(),
        warnings,
    })
}

fn check_version(
    component: &'static str,
    got: Option<&str>,
    allowed: &[String],
    warnings: &mut Vec<String>,
) -> Result<(), VerifyError> {
    if allowed.is_empty() {
        warnings.push(format!("GPU {component} version not pinned by the policy"));
        return Ok(());
    }
    if got.is_some_and(|g| allowed.iter().any(|a| a.eq_ignore_ascii_case(g))) {
        return Ok(());
    }
    Err(VerifyError::GpuVersionNotAllowed {
        component,
        got: got.unwrap_or("none").to_owned(),
        allowed: allowed.join(", "),
    })
}
