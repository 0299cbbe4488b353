//! The signed release manifest: what a release *is*, in reference values, and the
//! verifier [`Policy`](crate::Policy) it turns into.
//!
//! A [`ReleaseManifest`] names the binary (sha256), the model manifest (sha256), the
//! source commit and toolchain, and the launch measurements a correct deployment
//! produces. The publisher (`veil-repro manifest`) signs the compact JSON of the manifest
//! ([`ReleaseManifest::signed_bytes`]) with Ed25519; the release file is the canonical,
//! pretty JSON of `{manifest, signature}` ([`SignedManifest::to_file_bytes`]).
//! [`SignedManifest::verify`] accepts only that exact canonical form, so **any** changed
//! byte fails: a change in a value breaks the signature, any other change breaks
//! canonical form.
//!
//! Signing lives with the publisher (`veil-repro`); this crate only verifies, so a client
//! never carries a release signing key type it does not need.
//!
//! ```no_run
//! use veil_attest::release::{SignedManifest, public_key_from_hex};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (file, key_text): (Vec<u8>, String) = Default::default();
//! let key = public_key_from_hex(&key_text)?;
//! let signed = SignedManifest::verify(&file, &key)?;
//! let policy = veil_attest::Policy::from_toml(&signed.manifest.to_policy_toml())?;
//! # let _ = policy;
//! # Ok(()) }
//! ```

use ed25519_dalek::Signature;
pub use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest format version this crate writes and accepts.
pub const MANIFEST_VERSION: u32 = 1;

/// The only signature algorithm of release manifests.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// Largest release file accepted, in bytes (a real one is well under 2 KiB).
pub const MAX_RELEASE_FILE_LEN: usize = 64 << 10;

/// Why a release manifest was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The file could not be parsed, is not in canonical form, or has an unsupported
    /// version or signature algorithm.
    #[error("malformed release manifest: {0}")]
    Malformed(String),
    /// The Ed25519 signature does not verify under the given public key.
    #[error("release manifest signature does not verify under the given public key")]
    SignatureInvalid,
    /// A digest, measurement, key or signature is not lower-case hex of the right length.
    #[error("invalid {what}: expected {expected} lower-case hex characters")]
    InvalidHex {
        /// Which value was invalid.
        what: &'static str,
        /// The expected number of hex characters.
        expected: usize,
    },
    /// The 32 bytes are not an Ed25519 public key.
    #[error("not an Ed25519 public key")]
    InvalidPublicKey,
}

/// Reference values for an Intel TDX deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxReferenceValues {
    /// MRTD, 48 bytes hex.
    pub mrtd: String,
    /// RTMR0, 48 bytes hex, if the publisher states it. TDVF measures the host-supplied
    /// ACPI tables and TD HOB into it, so it depends on the VMM and its configuration
    /// (vCPUs, memory, devices) and cannot be computed from source alone: the publisher
    /// records it from a TD launched on the target host type. Absent, policies leave RTMR0
    /// unchecked with an explicit `"any"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr0: Option<String>,
    /// RTMR1, 48 bytes hex.
    pub rtmr1: String,
    /// RTMR2, 48 bytes hex.
    pub rtmr2: String,
}

/// Reference values per platform.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceValues {
    /// Allowed SEV-SNP launch digests (48 bytes hex each), e.g. one per vCPU count.
    pub snp_measurements: Vec<String>,
    /// TDX reference values, if the release supports TDX.
    pub tdx: Option<TdxReferenceValues>,
    /// The SEV-SNP TCB this release is deployed at, if the publisher states one: the
    /// policy pins it as `[tcb]` (it raises the verifier's built-in AMD floor, never lowers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp_min_tcb: Option<SnpMinTcb>,
    /// The oldest Intel TCB evaluation (`tcbEvaluationDataNumber`) the release accepts, if
    /// stated: the policy pins it as `[tdx] min_tcb_evaluation_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx_min_tcb_evaluation_number: Option<u32>,
}

/// SEV-SNP TCB minimums of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpMinTcb {
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

/// What is signed. The field order is the signed byte order: do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// SHA-256 of the server binary (hex).
    pub binary_sha256: String,
    /// The model manifest's canonical digest (hex; [`crate::model_manifest_digest`]), as
    /// the server attests it.
    pub model_manifest_digest: String,
    /// The git commit the binary was built from.
    pub source_commit: String,
    /// The toolchain (`rustc --version`).
    pub toolchain: String,
    /// Launch reference values.
    pub reference_values: ReferenceValues,
}

/// The Ed25519 signature block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// Always [`SIGNATURE_ALGORITHM`].
    pub algorithm: String,
    /// The signature over [`ReleaseManifest::signed_bytes`] (64 bytes hex).
    pub value: String,
}

/// A manifest with its signature; its canonical JSON is the release file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The signed content.
    pub manifest: ReleaseManifest,
    /// The signature.
    pub signature: ManifestSignature,
}

fn check_hex(what: &'static str, value: &str, bytes: usize) -> Result<(), ReleaseError> {
    let ok = value.len() == bytes * 2
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ReleaseError::InvalidHex {
            what,
            expected: bytes * 2,
        })
    }
}

/// A free-text value as one TOML comment line: no line break or control character can
/// end the comment and start a policy entry.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl ReleaseManifest {
    /// Checks the version, and that every digest is lower-case hex of the right length.
    pub fn validate(&self) -> Result<(), ReleaseError> {
        if self.version != MANIFEST_VERSION {
            return Err(ReleaseError::Malformed(format!(
                "unsupported version {}",
                self.version
            )));
        }
        check_hex("binary sha256", &self.binary_sha256, 32)?;
        check_hex("model manifest sha256", &self.model_manifest_digest, 32)?;
        for m in &self.reference_values.snp_measurements {
            check_hex("SNP measurement", m, 48)?;
        }
        if let Some(t) = &self.reference_values.tdx {
            check_hex("TDX MRTD", &t.mrtd, 48)?;
            if let Some(r0) = &t.rtmr0 {
                check_hex("TDX RTMR0", r0, 48)?;
            }
            check_hex("TDX RTMR1", &t.rtmr1, 48)?;
            check_hex("TDX RTMR2", &t.rtmr2, 48)?;
        }
        Ok(())
    }

    /// A verifier policy ([`Policy`](crate::Policy) TOML) that accepts exactly this
    /// release: one `[[reference]]` per launch measurement, the binary and the model
    /// manifest digests, and the strict defaults for everything else. Call it only on a
    /// verified manifest ([`SignedManifest::verify`]).
    pub fn to_policy_toml(&self) -> String {
        let rv = &self.reference_values;
        let mut out = String::from("# Generated from a verified Veil release manifest.\n");
        out.push_str(&format!(
            "# source commit: {}\n# toolchain: {}\n",
            comment_text(&self.source_commit),
            comment_text(&self.toolchain)
        ));
        for m in &rv.snp_measurements {
            out.push_str(&format!(
                "\n[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"{m}\"\n"
            ));
        }
        if let Some(t) = &rv.tdx {
            let zero = "00".repeat(48);
            let rtmr0 = match &t.rtmr0 {
                Some(r0) => format!(
                    "# RTMR0 (the host's ACPI tables and TD HOB, as TDVF measures them), as the\n\
                     # publisher recorded it on the target host type.\nrtmr0 = \"{r0}\"\n"
                ),
                None => {
                    "# RTMR0 (the host's ACPI tables and TD HOB, as TDVF measures them) is not in\n\
                     # the release manifest: unchecked on purpose until it is.\nrtmr0 = \"any\"\n"
                        .to_string()
                }
            };
            out.push_str(&format!(
                "\n[[reference]]\nplatform = \"tdx\"\nmrtd = \"{}\"\n{rtmr0}\
                 rtmr1 = \"{}\"\nrtmr2 = \"{}\"\n\
                 # Veil's guest extends no runtime register.\nrtmr3 = \"{zero}\"\n\n\
                 [tdx]\nmr_config_id = \"{zero}\"\nmr_owner = \"{zero}\"\n",
                t.mrtd, t.rtmr1, t.rtmr2
            ));
        }
        match (rv.tdx_min_tcb_evaluation_number, rv.tdx.is_some()) {
            (Some(n), true) => out.push_str(&format!("min_tcb_evaluation_number = {n}\n")),
            (Some(n), false) => {
                out.push_str(&format!("\n[tdx]\nmin_tcb_evaluation_number = {n}\n"));
            }
            (None, _) => {}
        }
        if let Some(t) = &rv.snp_min_tcb {
            out.push_str(&format!(
                "\n# The SEV-SNP TCB the release is deployed at (raises AMD's built-in floor).\n\
                 [tcb]\nbootloader = {}\ntee = {}\nsnp = {}\nmicrocode = {}\n",
                t.bootloader, t.tee, t.snp, t.microcode
            ));
        }
        out.push_str(&format!(
            "\n[binary]\nsha256 = \"{}\"\n\n[model]\nsha256 = \"{}\"\n",
            self.binary_sha256, self.model_manifest_digest
        ));
        out
    }

    /// The exact bytes that are signed: compact JSON in field order.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, ReleaseError> {
        serde_json::to_vec(self).map_err(|e| ReleaseError::Malformed(e.to_string()))
    }
}

/// Parses an Ed25519 public key from hex text (64 hex characters, surrounding whitespace
/// ignored): the format `veil-repro keygen --public-out` writes.
pub fn public_key_from_hex(text: &str) -> Result<VerifyingKey, ReleaseError> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| ReleaseError::InvalidHex {
        what: "Ed25519 public key",
        expected: 64,
    })?;
    VerifyingKey::from_bytes(&key).map_err(|_| ReleaseError::InvalidPublicKey)
}

impl SignedManifest {
    /// The release file bytes: pretty JSON and a final newline.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, ReleaseError> {
        let mut v =
            serde_json::to_vec_pretty(self).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// SHA-256 of the release file bytes: the name of a release.
    pub fn digest(&self) -> Result<[u8; 32], ReleaseError> {
        Ok(Sha256::digest(self.to_file_bytes()?).into())
    }

    /// Parses a release file and verifies it under `public_key`: the file must be in
    /// canonical form, valid, and the signature must verify (strict Ed25519).
    pub fn verify(file: &[u8], public_key: &VerifyingKey) -> Result<Self, ReleaseError> {
        if file.len() > MAX_RELEASE_FILE_LEN {
            return Err(ReleaseError::Malformed(format!(
                "{} bytes, more than {MAX_RELEASE_FILE_LEN}",
                file.len()
            )));
        }
        let parsed: Self =
            serde_json::from_slice(file).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        if parsed.to_file_bytes()? != file {
            return Err(ReleaseError::Malformed(
                "not in canonical form (re-serialization differs)".to_owned(),
            ));
        }
        parsed.manifest.validate()?;
        if parsed.signature.algorithm != SIGNATURE_ALGORITHM {
            return Err(ReleaseError::Malformed(format!(
                "unsupported signature algorithm {:?}",
                parsed.signature.algorithm
            )));
        }
        let mut sig = [0u8; 64];
        check_hex("signature", &parsed.signature.value, 64)?;
        hex::decode_to_slice(&parsed.signature.value, &mut sig).map_err(|_| {
            ReleaseError::InvalidHex {
                what: "signature",
                expected: 128,
            }
        })?;
        public_key
            .verify_strict(
                &parsed.manifest.signed_bytes()?,
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| ReleaseError::SignatureInvalid)?;
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::Policy;

    fn manifest() -> ReleaseManifest {
        ReleaseManifest {
            version: MANIFEST_VERSION,
            binary_sha256: "11".repeat(32),
            model_manifest_digest: "22".repeat(32),
            source_commit: "4df1d45".to_owned(),
            toolchain: "rustc 1.95.0".to_owned(),
            reference_values: ReferenceValues {
                snp_measurements: vec!["33".repeat(48)],
                tdx: Some(TdxReferenceValues {
                    mrtd: "aa".repeat(48),
                    rtmr0: None,
                    rtmr1: "bb".repeat(48),
                    rtmr2: "cc".repeat(48),
                }),
                ..Default::default()
            },
        }
    }

    /// Signs as the publisher does (`veil-repro`), with a fixed test key.
    fn sign(manifest: ReleaseManifest, key: &SigningKey) -> Vec<u8> {
        let sig = key.sign(&manifest.signed_bytes().expect("bytes"));
        SignedManifest {
            manifest,
            signature: ManifestSignature {
                algorithm: SIGNATURE_ALGORITHM.to_owned(),
                value: hex::encode(sig.to_bytes()),
            },
        }
        .to_file_bytes()
        .expect("file")
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn verifies_and_makes_a_policy_that_pins_every_value() {
        let file = sign(manifest(), &key());
        let signed = SignedManifest::verify(&file, &key().verifying_key()).expect("verifies");
        let policy = Policy::from_toml(&signed.manifest.to_policy_toml()).expect("parses");
        assert_eq!(policy.reference.len(), 2);
        let pin = |b| Some(crate::Pin::Value(crate::HexBytes([b; 48])));
        assert_eq!(policy.reference[0].measurement, pin(0x33));
        assert_eq!(policy.reference[1].rtmr2, pin(0xcc));
        // RTMR0 is not in a manifest: skipped on purpose; RTMR3, MRCONFIGID, MROWNER zero.
        assert_eq!(policy.reference[1].rtmr0, Some(crate::Pin::Any));
        assert_eq!(policy.reference[1].rtmr3, pin(0));
        assert_eq!(policy.tdx.mr_config_id, Some(crate::HexBytes([0; 48])));
        assert_eq!(policy.tdx.mr_owner, Some(crate::HexBytes([0; 48])));
        policy
            .check_pinned()
            .expect("a release policy is fully pinned");
        assert_eq!(policy.binary.map(|d| d.sha256.0), Some([0x11; 32]));
        assert_eq!(policy.model.map(|d| d.sha256.0), Some([0x22; 32]));
        assert!(!policy.allow_simulated && !policy.allow_debug);
        // No TCB stated: the policy sets none (the built-in floor applies), and the signed
        // bytes of such a manifest do not name the optional fields at all.
        assert_eq!(policy.tcb.microcode, 0);
        assert_eq!(policy.tdx.min_tcb_evaluation_number, None);
        let bytes = String::from_utf8(manifest().signed_bytes().expect("bytes")).expect("utf-8");
        assert!(!bytes.contains("snp_min_tcb") && !bytes.contains("evaluation"));
    }

    #[test]
    fn a_stated_rtmr0_is_signed_and_pinned_and_a_malformed_one_refused() {
        let mut m = manifest();
        if let Some(t) = m.reference_values.tdx.as_mut() {
            t.rtmr0 = Some("dd".repeat(48));
        }
        let file = sign(m.clone(), &key());
        let signed = SignedManifest::verify(&file, &key().verifying_key()).expect("verifies");
        let policy = Policy::from_toml(&signed.manifest.to_policy_toml()).expect("parses");
        assert_eq!(
            policy.reference[1].rtmr0,
            Some(crate::Pin::Value(crate::HexBytes([0xdd; 48])))
        );
        policy.check_pinned().expect("fully pinned");
        // The stated RTMR0 is signed: another value breaks the signature.
        let forged = String::from_utf8(file)
            .expect("utf-8")
            .replace(&"dd".repeat(48), &"de".repeat(48));
        assert!(matches!(
            SignedManifest::verify(forged.as_bytes(), &key().verifying_key()),
            Err(ReleaseError::SignatureInvalid)
        ));
        if let Some(t) = m.reference_values.tdx.as_mut() {
            t.rtmr0 = Some("dd".repeat(47));
        }
        let file = sign(m, &key());
        assert!(SignedManifest::verify(&file, &key().verifying_key()).is_err());
    }

    #[test]
    fn a_stated_tcb_is_signed_and_pinned_by_the_policy() {
        let mut m = manifest();
        m.reference_values.snp_min_tcb = Some(SnpMinTcb {
            bootloader: 4,
            tee: 0,
            snp: 24,
            microcode: 219,
        });
        m.reference_values.tdx_min_tcb_evaluation_number = Some(17);
        let file = sign(m, &key());
        let signed = SignedManifest::verify(&file, &key().verifying_key()).expect("verifies");
        let policy = Policy::from_toml(&signed.manifest.to_policy_toml()).expect("parses");
        let t = &policy.tcb;
        assert_eq!((t.bootloader, t.tee, t.snp, t.microcode), (4, 0, 24, 219));
        assert_eq!(policy.tdx.min_tcb_evaluation_number, Some(17));
        // Changing the stated floor breaks the signature.
        let text = String::from_utf8(file).expect("utf-8");
        let lowered = text.replacen("\"microcode\": 219", "\"microcode\": 115", 1);
        assert_ne!(lowered, text);
        assert_eq!(
            SignedManifest::verify(lowered.as_bytes(), &key().verifying_key()),
            Err(ReleaseError::SignatureInvalid)
        );
    }

    #[test]
    fn rejects_a_changed_value_another_key_and_a_non_canonical_file() {
        let file = sign(manifest(), &key());
        let text = String::from_utf8(file.clone()).expect("utf-8");
        let changed = text.replacen(&"33".repeat(48), &format!("34{}", "33".repeat(47)), 1);
        assert_eq!(
            SignedManifest::verify(changed.as_bytes(), &key().verifying_key()),
            Err(ReleaseError::SignatureInvalid)
        );
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(
            SignedManifest::verify(&file, &other),
            Err(ReleaseError::SignatureInvalid)
        );
        let compact = text.replace("\n  ", "\n ");
        assert!(matches!(
            SignedManifest::verify(compact.as_bytes(), &key().verifying_key()),
            Err(ReleaseError::Malformed(m)) if m.contains("canonical")
        ));
    }

    #[test]
    fn rejects_upper_case_hex_and_another_algorithm_even_when_signed() {
        let mut m = manifest();
        m.binary_sha256 = "AB".repeat(32);
        assert_eq!(
            SignedManifest::verify(&sign(m, &key()), &key().verifying_key()),
            Err(ReleaseError::InvalidHex {
                what: "binary sha256",
                expected: 64
            })
        );
        let file = String::from_utf8(sign(manifest(), &key())).expect("utf-8");
        let rsa = file.replace("\"ed25519\"", "\"rsa\"");
        assert!(matches!(
            SignedManifest::verify(rsa.as_bytes(), &key().verifying_key()),
            Err(ReleaseError::Malformed(m)) if m.contains("algorithm")
        ));
    }

    #[test]
    fn free_text_cannot_inject_policy_entries() {
        let mut m = manifest();
        m.toolchain =
            "rustc\n[[reference]]\nplatform = \"simulated\"\r\nallow_simulated = true".into();
        let toml = m.to_policy_toml();
        let policy = Policy::from_toml(&toml).expect("parses");
        assert!(!policy.allow_simulated, "{toml}");
        assert_eq!(policy.reference.len(), 2, "{toml}");
    }

    #[test]
    fn public_keys_parse_from_hex_only() {
        let hex_key = hex::encode(key().verifying_key().to_bytes());
        assert_eq!(
            public_key_from_hex(&format!("{hex_key}\n")),
            Ok(key().verifying_key())
        );
        assert!(matches!(
            public_key_from_hex(&hex_key[2..]),
            Err(ReleaseError::InvalidHex { .. })
        ));
    }
}
