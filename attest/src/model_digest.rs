//! The canonical digest of a model manifest: what a server's attestation binds as its model
//! (`ManifestClaims::model_digest`) and what a release manifest pins, computed by one function
//! for both, so that a policy made from a release matches the server that runs it.
//!
//! With every integer big-endian and every string UTF-8 prefixed by its length as a `u32`:
//!
//! ```text
//! "veil-model-manifest-v1" ‖ len(id) ‖ id ‖ u32(file count)
//!   ‖ for each file, sorted by name: len(name) ‖ name ‖ u64(size) ‖ sha256 (32 raw bytes)
//! ```
//!
//! It does not depend on JSON formatting, key order or file order, and two manifests with
//! the same digest name the same bytes under the same names.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::VerifyError;

/// Domain separator of the digest.
pub const MODEL_MANIFEST_DIGEST_DOMAIN: &[u8] = b"veil-model-manifest-v1";

/// One file of a model manifest.
#[derive(Debug, Clone, Copy)]
pub struct ModelFileRef<'a> {
    /// File name.
    pub name: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, as 64 hex digits.
    pub sha256: &'a str,
}

/// The canonical digest of a model manifest with `id` and `files`.
pub fn model_manifest_digest<'a>(
    id: &str,
    files: impl IntoIterator<Item = ModelFileRef<'a>>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MODEL_MANIFEST_DIGEST_DOMAIN);
    put_str(&mut h, id);
    let mut files: Vec<ModelFileRef<'a>> = files.into_iter().collect();
    files.sort_by(|a, b| a.name.cmp(b.name));
    h.update(u32_len(files.len()).to_be_bytes());
    for f in files {
        put_str(&mut h, f.name);
        h.update(f.size.to_be_bytes());
        // Validated manifests hold 64 hex digits; anything else hashes as its text, so an
        // unvalidated manifest still gets a distinct (never a colliding) digest.
        match hex::decode(f.sha256) {
            Ok(raw) if raw.len() == 32 => h.update(raw),
            _ => put_str(&mut h, f.sha256),
        }
    }
    h.finalize().into()
}

#[derive(Deserialize)]
struct ManifestJson {
    id: String,
    files: Vec<FileJson>,
}

#[derive(Deserialize)]
struct FileJson {
    name: String,
    size: u64,
    sha256: String,
}

/// The canonical digest of a model manifest file (`manifest.json`, as `veil-server manifest`
/// prints it): its `id` and `files`; other fields are not part of the digest.
pub fn model_manifest_digest_json(json: &[u8]) -> Result<[u8; 32], VerifyError> {
    let m: ManifestJson = serde_json::from_slice(json)
        .map_err(|e| VerifyError::Policy(format!("model manifest: {e}")))?;
    Ok(model_manifest_digest(
        &m.id,
        m.files.iter().map(|f| ModelFileRef {
            name: &f.name,
            size: f.size,
            sha256: &f.sha256,
        }),
    ))
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update(u32_len(s.len()).to_be_bytes());
    h.update(s.as_bytes());
}

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_parts_agree_whatever_the_order() {
        let a = br#"{"id":"m","files":[{"name":"b.json","size":2,"sha256":"00"},{"name":"a.gguf","size":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000001"}]}"#;
        let b = br#"{"files":[{"sha256":"0000000000000000000000000000000000000000000000000000000000000001","size":1,"name":"a.gguf"},{"name":"b.json","size":2,"sha256":"00"}],"id":"m"}"#;
        let da = model_manifest_digest_json(a).expect("parses");
        assert_eq!(da, model_manifest_digest_json(b).expect("parses"));
        let c = br#"{"id":"m","files":[{"name":"b.json","size":3,"sha256":"00"},{"name":"a.gguf","size":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000001"}]}"#;
        assert_ne!(da, model_manifest_digest_json(c).expect("parses"));
        assert!(model_manifest_digest_json(b"{}").is_err());
    }
}
