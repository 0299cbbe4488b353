//! The signed release manifest: what a release *is*, in reference values.
//!
//! The format, its verification and the policy it turns into live in
//! [`veil_attest::release`] (clients verify releases without this crate) and are
//! re-exported here. This module adds what only the publisher does: [`sign`].
//!
//! A [`ReleaseManifest`] names the binary (sha256), the model manifest (sha256), the
//! source commit and toolchain, and the launch measurements a correct deployment
//! produces. [`sign`] signs the canonical JSON of the manifest with Ed25519; the file is
//! the canonical, pretty JSON of `{manifest, signature}`. [`SignedManifest::verify`]
//! accepts only that exact canonical form, so **any** changed byte fails: a change in a
//! value breaks the signature, any other change breaks canonical form.
//!
//! A release is named by [`SignedManifest::digest`]: SHA-256 of the file bytes.

use ed25519_dalek::{Signer, SigningKey};
pub use veil_attest::release::{
    MANIFEST_VERSION, ManifestSignature, ReferenceValues, ReleaseError, ReleaseManifest,
    SIGNATURE_ALGORITHM, SignedManifest, SnpMinTcb, TdxReferenceValues, public_key_from_hex,
};

use crate::ReproError;

/// Validates and signs a manifest.
pub fn sign(manifest: ReleaseManifest, key: &SigningKey) -> Result<SignedManifest, ReproError> {
    manifest.validate()?;
    let sig = key.sign(&manifest.signed_bytes()?);
    Ok(SignedManifest {
        manifest,
        signature: ManifestSignature {
            algorithm: SIGNATURE_ALGORITHM.to_owned(),
            value: hex::encode(sig.to_bytes()),
        },
    })
}

/// Parses a 32-byte Ed25519 key (secret seed or public key) from hex text.
pub fn key_bytes_from_hex(what: &'static str, text: &str) -> Result<[u8; 32], ReproError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| ReproError::InvalidHex { what, expected: 64 })?;
    Ok(out)
}
