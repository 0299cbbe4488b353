//! [`ReportData`]: the 64 bytes of hardware evidence that bind everything a client relies on.
//!
//! ```text
//! REPORT_DATA = SHA-512( field("veil-attest-v1")
//!                      ‖ field(ohttp_key_config)   // the key configurations (RFC 9458 §3:
//!                                                  //   key id, KEM, HPKE public key, suites)
//!                                                  //   as one RFC 9540 list: every one bound
//!                      ‖ field(client_nonce)       // 32 bytes, or empty for per-epoch evidence
//!                      ‖ field(manifest_digest) )  // 32 bytes: binary and model, see below
//! manifest_digest = SHA-256( field("veil-manifest-v1")          // a server outside an image,
//!                              or field("veil-manifest-image-v1") // one in a measured image
//!                          ‖ binary_sha256 ‖ model_digest )
//! field(x) = u32_be(len(x)) ‖ x
//! ```
//!
//! With NVIDIA GPUs in confidential-computing mode the GPUs' evidence joins the transcript.
//! Each GPU report must answer a nonce derived from the same inputs, and REPORT_DATA then
//! covers the digest of every GPU's report and chain, under its own domain:
//!
//! ```text
//! gpu_nonce   = SHA-256( field("veil-gpu-nonce-v1") ‖ field(ohttp_key_config)
//!                      ‖ field(client_nonce) ‖ field(manifest_digest) )
//! gpu_digest  = SHA-256( field("veil-gpu-evidence-v1") ‖ u32_be(number of GPUs)
//!                      ‖ for each GPU: field(report) ‖ u32_be(number of certs) ‖ field(cert)… )
//! REPORT_DATA = SHA-512( field("veil-attest-gpu-v1") ‖ field(ohttp_key_config)
//!                      ‖ field(client_nonce) ‖ field(manifest_digest) ‖ field(gpu_digest) )
//! ```
//!
//! So the CPU evidence names exactly these GPUs, and each GPU answered this transcript: a
//! client knows the TEE and the GPUs belong together (and the GPU evidence is fresh when the
//! client's nonce is).
//!
//! Every field is length-prefixed, so no two different inputs share a transcript. The same
//! function builds it on the server and recomputes it on the client; a golden test pins it.

use sha2::{Digest, Sha256, Sha512};

use crate::VerifyError;
use crate::nvidia::GpuEvidence;

const DOMAIN: &[u8] = b"veil-attest-v1";
const GPU_DOMAIN: &[u8] = b"veil-attest-gpu-v1";
const GPU_NONCE_DOMAIN: &[u8] = b"veil-gpu-nonce-v1";
const GPU_EVIDENCE_DOMAIN: &[u8] = b"veil-gpu-evidence-v1";
const MANIFEST_DOMAIN: &[u8] = b"veil-manifest-v1";
const IMAGE_MANIFEST_DOMAIN: &[u8] = b"veil-manifest-image-v1";
/// Length of a client nonce.
pub const NONCE_LEN: usize = 32;

/// The 64-byte REPORT_DATA of Veil evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportData(pub [u8; 64]);

/// What a server runs: the digest that goes into [`ReportData`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerManifest {
    /// SHA-256 of the server binary.
    pub binary_sha256: [u8; 32],
    /// Digest of the model manifest (files, sizes, sha256s) the server loaded.
    pub model_digest: [u8; 32],
}

impl ServerManifest {
    /// SHA-256 of `field("veil-manifest-v1") ‖ binary_sha256 ‖ model_digest`: the digest
    /// of a server that does not claim to run from a measured image.
    pub fn digest(&self) -> [u8; 32] {
        self.digest_for(false)
    }

    /// The digest REPORT_DATA binds: with `measured_image`, under the domain
    /// `"veil-manifest-image-v1"`, so the claim "this server runs from the measured
    /// initrd" cannot be added or removed without breaking the binding.
    pub fn digest_for(&self, measured_image: bool) -> [u8; 32] {
        let mut h = Sha256::new();
        field(
            &mut h,
            if measured_image {
                IMAGE_MANIFEST_DOMAIN
            } else {
                MANIFEST_DOMAIN
            },
        );
        h.update(self.binary_sha256);
        h.update(self.model_digest);
        h.finalize().into()
    }
}

/// The digest of the GPUs' evidence (reports and chains, in order) that REPORT_DATA binds.
pub fn gpu_evidence_digest(gpus: &[GpuEvidence]) -> [u8; 32] {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    let mut h = Sha256::new();
    field(&mut h, GPU_EVIDENCE_DOMAIN);
    h.update(count(gpus.len()));
    for g in gpus {
        field(&mut h, &g.report);
        h.update(count(g.certs.len()));
        for c in &g.certs {
            field(&mut h, c);
        }
    }
    h.finalize().into()
}

fn check_nonce(client_nonce: &[u8]) -> Result<(), VerifyError> {
    if client_nonce.is_empty() || client_nonce.len() == NONCE_LEN {
        return Ok(());
    }
    Err(VerifyError::Malformed(format!(
        "client nonce is {} bytes, expected {NONCE_LEN} or none",
        client_nonce.len()
    )))
}

fn field(h: &mut impl Digest, x: &[u8]) {
    // Inputs here are at most a few KiB (a key configuration); larger is a caller bug.
    let len = u32::try_from(x.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(x);
}

impl ReportData {
    /// Builds REPORT_DATA from the transcript. `client_nonce` is 32 bytes, or empty for
    /// evidence that is not tied to one client's request.
    pub fn new(
        key_config: &[u8],
        client_nonce: &[u8],
        manifest_digest: &[u8; 32],
    ) -> Result<Self, VerifyError> {
        check_nonce(client_nonce)?;
        let mut h = Sha512::new();
        field(&mut h, DOMAIN);
        field(&mut h, key_config);
        field(&mut h, client_nonce);
        field(&mut h, manifest_digest);
        Ok(Self(h.finalize().into()))
    }

    /// REPORT_DATA of a server with GPUs: the transcript also binds `gpu_digest`
    /// ([`gpu_evidence_digest`]), under the domain `"veil-attest-gpu-v1"`.
    pub fn with_gpus(
        key_config: &[u8],
        client_nonce: &[u8],
        manifest_digest: &[u8; 32],
        gpu_digest: &[u8; 32],
    ) -> Result<Self, VerifyError> {
        check_nonce(client_nonce)?;
        let mut h = Sha512::new();
        field(&mut h, GPU_DOMAIN);
        field(&mut h, key_config);
        field(&mut h, client_nonce);
        field(&mut h, manifest_digest);
        field(&mut h, gpu_digest);
        Ok(Self(h.finalize().into()))
    }

    /// The nonce each GPU's evidence must answer: derived from the same transcript inputs.
    pub fn gpu_nonce(
        key_config: &[u8],
        client_nonce: &[u8],
        manifest_digest: &[u8; 32],
    ) -> Result<[u8; 32], VerifyError> {
        check_nonce(client_nonce)?;
        let mut h = Sha256::new();
        field(&mut h, GPU_NONCE_DOMAIN);
        field(&mut h, key_config);
        field(&mut h, client_nonce);
        field(&mut h, manifest_digest);
        Ok(h.finalize().into())
    }

    /// Checks that `got` (from verified evidence) is this transcript's REPORT_DATA.
    pub fn check(&self, got: &[u8; 64]) -> Result<(), VerifyError> {
        if &self.0 == got {
            Ok(())
        } else {
            Err(VerifyError::ReportDataMismatch {
                expected: hex::encode(self.0),
                got: hex::encode(got),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> (Vec<u8>, [u8; 32], [u8; 32]) {
        // An RFC 9458-shaped key configuration: key id 1, X25519 KEM, a public key, one suite.
        let mut config = vec![0x01, 0x00, 0x20];
        config.extend((0u8..32).collect::<Vec<_>>());
        config.extend([0x00, 0x04, 0x00, 0x01, 0x00, 0x02]);
        let nonce = [0xA5; 32];
        let manifest = ServerManifest {
            binary_sha256: [0x11; 32],
            model_digest: [0x22; 32],
        };
        (config, nonce, manifest.digest())
    }

    #[test]
    fn transcript_is_pinned() {
        let (config, nonce, manifest) = inputs();
        assert_eq!(
            hex::encode(manifest),
            "71c701e0d7f4565f6bfa083aa095e08972de03b8f4f582db1806f0aeabf79303"
        );
        let rd = ReportData::new(&config, &nonce, &manifest).expect("valid");
        // Derived independently (Python hashlib) from the formula in the module docs.
        assert_eq!(
            hex::encode(rd.0),
            "fc72f9198f722fba53a4a830b99bf657a1bbc62af6cc22c5418ec34862c34fa7696921fb2abd545e5df24d9e07f2cecf80cbf88e693ecbe861431c15f18223ee"
        );
        let per_epoch = ReportData::new(&config, &[], &manifest).expect("valid");
        assert_ne!(per_epoch, rd);
    }

    #[test]
    fn measured_image_manifest_digest_is_pinned() {
        let m = ServerManifest {
            binary_sha256: [0x11; 32],
            model_digest: [0x22; 32],
        };
        assert_eq!(m.digest_for(false), m.digest());
        // Derived independently (Python hashlib) from the formula in the module docs.
        assert_eq!(
            hex::encode(m.digest_for(true)),
            "5ed14b820286ef7b47ccd045e1f470aa2e22e7110f62d085df4efa20d8162189"
        );
    }

    #[test]
    fn gpu_transcript_is_pinned() {
        let (config, nonce, manifest) = inputs();
        let gpus = [GpuEvidence::new(
            b"report".to_vec(),
            vec![b"c1".to_vec(), b"c2".to_vec()],
        )];
        // Derived independently (Python hashlib) from the formulas in the module docs.
        assert_eq!(
            hex::encode(ReportData::gpu_nonce(&config, &nonce, &manifest).expect("nonce")),
            "d591b45ac01e5b04b5c1b973454d44a6ec7503b2ce5af08763914ae2e5a69164"
        );
        let digest = gpu_evidence_digest(&gpus);
        assert_eq!(
            hex::encode(digest),
            "fc12495d1ad870194b9f9e65cab2956a257ec04d1ac3bbe1a40971e7040b736b"
        );
        let rd = ReportData::with_gpus(&config, &nonce, &manifest, &digest).expect("valid");
        assert_eq!(
            hex::encode(rd.0),
            "14254ddef38152bf4ad8281a04cb001368520ab16f32c58e268433deee166b36cc3a9cacb367fab0f0b141fee44f0ee516c048346848942c89a432e89ce257a9"
        );
        assert_ne!(
            rd,
            ReportData::new(&config, &nonce, &manifest).expect("valid")
        );
        // A certificate moved from one GPU to the other changes the digest (counts).
        let moved = [
            GpuEvidence::new(b"report".to_vec(), vec![b"c1".to_vec()]),
            GpuEvidence::new(b"c2".to_vec(), vec![]),
        ];
        assert_ne!(gpu_evidence_digest(&moved), digest);
        assert!(ReportData::gpu_nonce(&config, &[1; 31], &manifest).is_err());
    }

    #[test]
    fn rejects_nonce_of_wrong_length() {
        let (config, _, manifest) = inputs();
        assert!(matches!(
            ReportData::new(&config, &[1; 31], &manifest),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn one_bit_in_any_input_changes_report_data() {
        let (config, nonce, manifest) = inputs();
        let rd = ReportData::new(&config, &nonce, &manifest).expect("valid");
        for i in 0..config.len() {
            let mut c = config.clone();
            c[i] ^= 1;
            assert!(
                rd.check(&ReportData::new(&c, &nonce, &manifest).expect("valid").0)
                    .is_err()
            );
        }
        for i in 0..32 {
            let (mut n, mut m) = (nonce, manifest);
            n[i] ^= 1;
            m[i] ^= 1;
            assert!(
                rd.check(&ReportData::new(&config, &n, &manifest).expect("valid").0)
                    .is_err()
            );
            assert!(
                rd.check(&ReportData::new(&config, &nonce, &m).expect("valid").0)
                    .is_err()
            );
        }
        // Moving a byte from one field to the next changes the transcript (length prefixes).
        let shifted =
            ReportData::new(&config[..config.len() - 1], &nonce, &manifest).expect("valid");
        assert_ne!(shifted, rd);
        rd.check(&rd.0).expect("same inputs");
    }
}
