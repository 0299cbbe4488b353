//! [`Attestation`]: what `GET /v1/attestation?nonce=…` returns, and its full check —
//! the evidence, then the binding of the gateway key, the client's nonce, the server
//! manifest and the GPUs' evidence into REPORT_DATA, then the manifest against the policy,
//! then each GPU's evidence against `[gpu]` and the nonce derived from the transcript.

use serde::{Deserialize, Serialize};

use crate::encoding::b64;
use crate::nvidia::{GpuEvidence, GpuPolicy, GpuVerdict, verify_gpu};
use crate::{
    Evidence, HexBytes, Policy, ReportData, ServerManifest, UnixTime, Verdict, VerifyError,
    gpu_evidence_digest, verify,
};

/// The server's answer to an attestation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Attestation {
    /// Hardware (or simulated) evidence whose REPORT_DATA binds the fields below.
    pub evidence: Evidence,
    /// The exact OHTTP key configuration bytes clients must encrypt to: the gateway's current
    /// configurations as one `application/ohttp-keys` list (RFC 9540; Veil's server: X-Wing,
    /// then X25519), all bound by REPORT_DATA; empty in an evidence file.
    #[serde(with = "b64")]
    pub key_config: Vec<u8>,
    /// What the server runs.
    pub manifest: ManifestClaims,
    /// The nonce the evidence was requested with, recorded by a file writer such as
    /// `veil-server evidence` (servers answering `/v1/attestation` leave it out: the client
    /// holds its own nonce). `veil verify --evidence` checks the binding against it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex32_opt")]
    pub nonce: Option<[u8; 32]>,
    /// Evidence of the server's confidential GPUs, each taken with the nonce
    /// [`ReportData::gpu_nonce`] derives from this transcript; REPORT_DATA binds its digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuEvidence>,
}

/// The server manifest as claimed in an [`Attestation`] (bound by REPORT_DATA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ManifestClaims {
    /// SHA-256 of the server binary (hex).
    #[serde(with = "hex32")]
    pub binary_sha256: [u8; 32],
    /// Digest of the model manifest (hex).
    #[serde(with = "hex32")]
    pub model_digest: [u8; 32],
    /// The model's id, for display (not bound; the digest is).
    pub model_id: String,
    /// The server says it runs from a measured VM image (`veil-repro image`): its binary
    /// and model are the ones in the initrd the launch measurement covers. Bound by
    /// REPORT_DATA ([`ServerManifest::digest_for`]), but a claim like the others: only a
    /// policy `[[reference]]` measurement of that image makes it true.
    #[serde(default)]
    pub measured_image: bool,
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        crate::encoding::parse_hex::<32>(&s).map_err(serde::de::Error::custom)
    }
}

mod hex32_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let s = String::deserialize(d)?;
        crate::encoding::parse_hex::<32>(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

impl ManifestClaims {
    /// Claims from the binary digest, the model manifest digest and the model id.
    pub fn new(binary_sha256: [u8; 32], model_digest: [u8; 32], model_id: String) -> Self {
        Self {
            binary_sha256,
            model_digest,
            model_id,
            measured_image: false,
        }
    }

    /// The same claims, from a server in a measured image (or not).
    pub fn in_measured_image(mut self, measured_image: bool) -> Self {
        self.measured_image = measured_image;
        self
    }

    /// The digest REPORT_DATA binds: binary, model, and whether the server claims to run
    /// from a measured image.
    pub fn digest(&self) -> [u8; 32] {
        self.server_manifest().digest_for(self.measured_image)
    }

    /// Binary and model (REPORT_DATA binds [`ManifestClaims::digest`], which adds whether
    /// the server runs from a measured image).
    pub fn server_manifest(&self) -> ServerManifest {
        ServerManifest {
            binary_sha256: self.binary_sha256,
            model_digest: self.model_digest,
        }
    }
}

impl Attestation {
    /// Builds the response a server sends (the evidence must bind these exact values).
    pub fn new(evidence: Evidence, key_config: Vec<u8>, manifest: ManifestClaims) -> Self {
        Self {
            evidence,
            key_config,
            manifest,
            nonce: None,
            gpus: Vec::new(),
        }
    }

    /// Adds the GPUs' evidence (the CPU evidence must bind it: [`ReportData::with_gpus`]).
    pub fn with_gpus(mut self, gpus: Vec<GpuEvidence>) -> Self {
        self.gpus = gpus;
        self
    }

    /// The REPORT_DATA this attestation's evidence must carry for `nonce`.
    pub fn expected_report_data(&self, nonce: &[u8; 32]) -> Result<ReportData, VerifyError> {
        let manifest = self.manifest.digest();
        if self.gpus.is_empty() {
            ReportData::new(&self.key_config, nonce, &manifest)
        } else {
            let gpus = gpu_evidence_digest(&self.gpus);
            ReportData::with_gpus(&self.key_config, nonce, &manifest, &gpus)
        }
    }

    /// Records the nonce the evidence was requested with (for a file, not a server answer).
    pub fn with_nonce(mut self, nonce: [u8; 32]) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Parses a response body (JSON), bounded like an evidence bundle.
    pub fn from_json(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > crate::MAX_BUNDLE_LEN {
            return Err(VerifyError::Malformed(
                "attestation response too large".into(),
            ));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| VerifyError::Malformed(format!("attestation response: {e}")))
    }

    /// Verifies the evidence against `policy` at `now`, then that REPORT_DATA is the
    /// transcript over this key configuration, `nonce`, manifest and GPU evidence, then the
    /// manifest against the policy's `[binary]` and `[model]`, then every GPU's evidence
    /// (against `[gpu]`, or the default GPU policy, and the transcript's GPU nonce). A
    /// policy with `[gpu]` refuses an attestation without GPU evidence.
    pub fn verify(
        &self,
        policy: &Policy,
        nonce: &[u8; 32],
        now: UnixTime,
    ) -> Result<Verdict, VerifyError> {
        let gpu_nonce = ReportData::gpu_nonce(&self.key_config, nonce, &self.manifest.digest())?;
        self.verify_bound(policy, nonce, &gpu_nonce, now)
    }

    fn verify_bound(
        &self,
        policy: &Policy,
        nonce: &[u8; 32],
        gpu_nonce: &[u8; 32],
        now: UnixTime,
    ) -> Result<Verdict, VerifyError> {
        if policy.gpu.is_some() && self.gpus.is_empty() {
            return Err(VerifyError::GpuEvidenceMissing);
        }
        let expected = self.expected_report_data(nonce)?;
        // The transcript decides REPORT_DATA here; a policy that names another value cannot
        // both hold, and silently replacing it would hide the caller's mistake.
        if let Some(set) = policy.report_data.filter(|set| set.0 != expected.0) {
            return Err(VerifyError::Policy(format!(
                "the policy's report_data {set} conflicts with the attestation transcript \
                 (key configuration, nonce, manifest), which decides REPORT_DATA here: \
                 remove report_data from the policy"
            )));
        }
        let mut policy = policy.clone().expect_report_data(expected.0);
        let gpu_policy = policy.gpu.take().unwrap_or_default();
        let mut verdict = verify(&self.evidence, &policy, now)?;
        check_digest(
            "binary",
            policy.binary.as_ref().map(|d| &d.sha256),
            &self.manifest.binary_sha256,
        )?;
        check_digest(
            "model",
            policy.model.as_ref().map(|d| &d.sha256),
            &self.manifest.model_digest,
        )?;
        verdict.gpus = verify_gpus(&self.gpus, &gpu_policy, gpu_nonce, now)?;
        for (i, g) in verdict.gpus.iter().enumerate() {
            let more: Vec<String> = g.warnings.iter().map(|w| format!("gpu {i}: {w}")).collect();
            verdict.warnings.extend(more);
        }
        Ok(verdict)
    }
}

fn verify_gpus(
    gpus: &[GpuEvidence],
    policy: &GpuPolicy,
    nonce: &[u8; 32],
    now: UnixTime,
) -> Result<Vec<GpuVerdict>, VerifyError> {
    gpus.iter()
        .map(|g| verify_gpu(g, policy, Some(nonce), now).outcome)
        .collect()
}

fn check_digest(
    what: &'static str,
    want: Option<&HexBytes<32>>,
    got: &[u8; 32],
) -> Result<(), VerifyError> {
    match want {
        Some(w) if &w.0 != got => Err(VerifyError::ManifestMismatch {
            what,
            expected: w.to_string(),
            got: hex::encode(got),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attester::{Attester, Simulated};
    use crate::{DigestReference, Reference};

    fn attestation(nonce: &[u8; 32]) -> Attestation {
        let manifest = ManifestClaims {
            binary_sha256: [1; 32],
            model_digest: [2; 32],
            model_id: "m".into(),
            measured_image: false,
        };
        let key_config = b"\x01\x00\x20 the gateway key configuration".to_vec();
        let rd = ReportData::new(&key_config, nonce, &manifest.digest()).expect("rd");
        let sim = Simulated::new([3; 32], [4; 48]);
        Attestation::new(sim.attest(&rd.0).expect("evidence"), key_config, manifest)
    }

    fn policy() -> Policy {
        Policy::default()
            .allow_simulated(true)
            .with_reference(Reference::simulated([4; 48]))
    }

    #[test]
    fn accepts_the_bound_key_nonce_and_manifest() {
        let a = attestation(&[9; 32]);
        let back = Attestation::from_json(serde_json::to_string(&a).expect("json").as_bytes())
            .expect("parses");
        back.verify(&policy(), &[9; 32], UnixTime(0))
            .expect("bound");
    }

    #[test]
    fn rejects_another_nonce_key_or_manifest() {
        let a = attestation(&[9; 32]);
        let rd_err = |r: Result<Verdict, VerifyError>| {
            matches!(r, Err(VerifyError::ReportDataMismatch { .. }))
        };
        assert!(
            rd_err(a.verify(&policy(), &[8; 32], UnixTime(0))),
            "stale nonce"
        );
        let mut k = a.clone();
        k.key_config[5] ^= 1;
        assert!(
            rd_err(k.verify(&policy(), &[9; 32], UnixTime(0))),
            "swapped key"
        );
        let mut m = a.clone();
        m.manifest.model_digest[0] ^= 1;
        assert!(
            rd_err(m.verify(&policy(), &[9; 32], UnixTime(0))),
            "other model"
        );
        let mut i = a.clone();
        i.manifest.measured_image = true;
        assert!(
            rd_err(i.verify(&policy(), &[9; 32], UnixTime(0))),
            "a measured-image claim added in transit"
        );
    }

    #[test]
    fn measured_image_claim_is_bound_and_defaults_off() {
        let nonce = [9; 32];
        let mut a = attestation(&nonce);
        a.manifest.measured_image = true;
        let rd = ReportData::new(&a.key_config, &nonce, &a.manifest.digest()).expect("rd");
        a.evidence = Simulated::new([3; 32], [4; 48])
            .attest(&rd.0)
            .expect("evidence");
        a.verify(&policy(), &nonce, UnixTime(0))
            .expect("bound with the claim");
        let json = serde_json::to_value(&a.manifest).expect("json");
        assert_eq!(json["measured_image"], true);
        let mut old = json.clone();
        old.as_object_mut()
            .expect("object")
            .remove("measured_image");
        let back: ManifestClaims = serde_json::from_value(old).expect("older servers");
        assert!(!back.measured_image);
        assert_ne!(
            a.manifest.digest(),
            a.manifest.server_manifest().digest(),
            "its own domain"
        );
    }

    #[test]
    fn rejects_binary_or_model_other_than_the_policy_pins() {
        let a = attestation(&[9; 32]);
        let mut p = policy();
        p.binary = Some(DigestReference {
            sha256: HexBytes([1; 32]),
        });
        p.model = Some(DigestReference {
            sha256: HexBytes([2; 32]),
        });
        a.verify(&p, &[9; 32], UnixTime(0))
            .expect("pinned and equal");
        p.model = Some(DigestReference {
            sha256: HexBytes([7; 32]),
        });
        assert!(matches!(
            a.verify(&p, &[9; 32], UnixTime(0)),
            Err(VerifyError::ManifestMismatch { what: "model", .. })
        ));
        p.binary = Some(DigestReference {
            sha256: HexBytes([7; 32]),
        });
        assert!(matches!(
            a.verify(&p, &[9; 32], UnixTime(0)),
            Err(VerifyError::ManifestMismatch { what: "binary", .. })
        ));
    }

    #[test]
    fn a_policy_report_data_other_than_the_transcript_is_an_error() {
        let a = attestation(&[9; 32]);
        let p = policy().expect_report_data([5; 64]);
        assert!(matches!(
            a.verify(&p, &[9; 32], UnixTime(0)),
            Err(VerifyError::Policy(m)) if m.contains("conflicts with the attestation transcript")
        ));
        // The transcript's own value is no conflict.
        let expected =
            ReportData::new(&a.key_config, &[9; 32], &a.manifest.digest()).expect("transcript");
        a.verify(
            &policy().expect_report_data(expected.0),
            &[9; 32],
            UnixTime(0),
        )
        .expect("same value");
    }

    mod gpu;
}
