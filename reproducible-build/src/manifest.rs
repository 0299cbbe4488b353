//! The signed release manifest: what a release *is*, in reference values.
//!
//! A [`ReleaseManifest`] names the binary (sha256), the model manifest
//! (sha256), the source commit and toolchain, and the launch measurements a
//! correct deployment produces. [`SignedManifest::sign`] signs the canonical
//! JSON of the manifest with Ed25519; the file is the canonical, pretty JSON of
//! `{manifest, signature}`. [`SignedManifest::verify`] accepts only that exact
//! canonical form, so **any** changed byte fails: a change in a value breaks the
//! signature, any other change breaks canonical form.
//!
//! The manifest digest that the server binds into REPORT_DATA is
//! [`SignedManifest::digest`]: SHA-256 of the file bytes.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ReproError;

/// The manifest format version this crate writes and accepts.
pub const MANIFEST_VERSION: u32 = 1;

/// Reference values for an Intel TDX deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxReferenceValues {
    /// MRTD, 48 bytes hex.
    pub mrtd: String,
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
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// SHA-256 of the server binary (hex).
    pub binary_sha256: String,
    /// SHA-256 of the model manifest file (hex).
    pub model_manifest_sha256: String,
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
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signature over the canonical manifest JSON (64 bytes hex).
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

fn check_hex(what: &'static str, value: &str, bytes: usize) -> Result<(), ReproError> {
    let ok = value.len() == bytes * 2
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ReproError::InvalidHex {
            what,
            expected: bytes * 2,
        })
    }
}

impl ReleaseManifest {
    /// Checks every digest is lower-case hex of the right length.
    pub fn validate(&self) -> Result<(), ReproError> {
        if self.version != MANIFEST_VERSION {
            return Err(ReproError::ManifestMalformed(format!(
                "unsupported version {}",
                self.version
            )));
        }
        check_hex("binary sha256", &self.binary_sha256, 32)?;
        check_hex("model manifest sha256", &self.model_manifest_sha256, 32)?;
        for m in &self.reference_values.snp_measurements {
            check_hex("SNP measurement", m, 48)?;
        }
        if let Some(t) = &self.reference_values.tdx {
            check_hex("TDX MRTD", &t.mrtd, 48)?;
            check_hex("TDX RTMR1", &t.rtmr1, 48)?;
            check_hex("TDX RTMR2", &t.rtmr2, 48)?;
        }
        Ok(())
    }

    /// A verifier policy (veil-attest `Policy` TOML) that accepts exactly this
    /// release: one `[[reference]]` per launch measurement, the binary and the
    /// model manifest digests. Call it only on a verified manifest.
    pub fn to_policy_toml(&self) -> String {
        let rv = &self.reference_values;
        let mut out = String::from("# Generated from a verified Veil release manifest.\n");
        for m in &rv.snp_measurements {
            out.push_str(&format!(
                "\n[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"{m}\"\n"
            ));
        }
        if let Some(t) = &rv.tdx {
            out.push_str(&format!(
                "\n[[reference]]\nplatform = \"tdx\"\nmrtd = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\n",
                t.mrtd, t.rtmr1, t.rtmr2
            ));
        }
        out.push_str(&format!(
            "\n[binary]\nsha256 = \"{}\"\n\n[model]\nsha256 = \"{}\"\n",
            self.binary_sha256, self.model_manifest_sha256
        ));
        out
    }

    /// The exact bytes that are signed: compact JSON in field order.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, ReproError> {
        serde_json::to_vec(self).map_err(|e| ReproError::ManifestMalformed(e.to_string()))
    }
}

/// Parses a 32-byte Ed25519 key (secret seed or public key) from hex text.
pub fn key_bytes_from_hex(what: &'static str, text: &str) -> Result<[u8; 32], ReproError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| ReproError::InvalidHex { what, expected: 64 })?;
    Ok(out)
}

impl SignedManifest {
    /// Validates and signs a manifest.
    pub fn sign(manifest: ReleaseManifest, key: &SigningKey) -> Result<Self, ReproError> {
        manifest.validate()?;
        let sig = key.sign(&manifest.signed_bytes()?);
        Ok(Self {
            manifest,
            signature: ManifestSignature {
                algorithm: "ed25519".to_owned(),
                value: hex::encode(sig.to_bytes()),
            },
        })
    }

    /// The release file bytes: pretty JSON and a final newline.
    pub fn to_file_bytes(&self) -> Result<Vec<u8>, ReproError> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| ReproError::ManifestMalformed(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// SHA-256 of the release file bytes: the digest bound into REPORT_DATA.
    pub fn digest(&self) -> Result<[u8; 32], ReproError> {
        Ok(Sha256::digest(self.to_file_bytes()?).into())
    }

    /// Parses a release file and verifies it under `public_key`: the file must be
    /// in canonical form and the signature must verify.
    pub fn verify(file: &[u8], public_key: &VerifyingKey) -> Result<Self, ReproError> {
        let parsed: Self = serde_json::from_slice(file)
            .map_err(|e| ReproError::ManifestMalformed(e.to_string()))?;
        if parsed.to_file_bytes()? != file {
            return Err(ReproError::ManifestMalformed(
                "not in canonical form (re-serialization differs)".to_owned(),
            ));
        }
        parsed.manifest.validate()?;
        if parsed.signature.algorithm != "ed25519" {
            return Err(ReproError::ManifestMalformed(format!(
                "unsupported signature algorithm {:?}",
                parsed.signature.algorithm
            )));
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&parsed.signature.value, &mut sig).map_err(|_| {
            ReproError::InvalidHex {
                what: "signature",
                expected: 128,
            }
        })?;
        public_key
            .verify_strict(
                &parsed.manifest.signed_bytes()?,
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| ReproError::ManifestSignatureInvalid)?;
        Ok(parsed)
    }
}
