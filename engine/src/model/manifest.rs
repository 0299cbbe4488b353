//! The model manifest: which files make up a model, with their sizes and SHA-256 digests.
//!
//! The manifest is the model's identity. Its [`ModelManifest::digest`] is what the
//! attestation binds (REPORT_DATA), so a client that verifies the evidence knows exactly
//! which weights answer it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Domain separator of the canonical encoding hashed by [`ModelManifest::digest`].
pub const MANIFEST_DIGEST_DOMAIN: &[u8] = veil_attest::MODEL_MANIFEST_DIGEST_DOMAIN;

/// Largest manifest accepted, in bytes (checked before parsing).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name, relative to the model directory; no path separators.
    pub name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the file, 64 lowercase hex digits.
    pub sha256: String,
}

/// What kind of file a manifest entry is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// GGUF weights (with tokenizer and chat template in its metadata).
    Gguf,
    /// safetensors weights.
    Safetensors,
    /// A JSON side file (`config.json`, `tokenizer.json`, …): data, never code.
    Json,
}

impl FileKind {
    /// Classifies a file by name; refuses pickle-based and unknown formats.
    pub fn of(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        let refuse = |reason: &str| Error::UnsupportedFormat {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        match lower.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gguf") => Ok(Self::Gguf),
            Some("safetensors") => Ok(Self::Safetensors),
            Some("json") => Ok(Self::Json),
            Some("bin" | "pt" | "pth" | "pkl" | "pickle" | "ckpt" | "joblib" | "npy" | "npz") => {
                Err(refuse("pickle-based formats can run code when loaded"))
            }
            _ => Err(refuse("unknown file format")),
        }
    }

    /// Whether files of this kind hold weights.
    pub fn is_weights(self) -> bool {
        matches!(self, Self::Gguf | Self::Safetensors)
    }
}

/// A model: its id (the OpenAI `model` name) and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// The model id clients name in requests.
    pub id: String,
    /// The files, each pinned by size and SHA-256.
    pub files: Vec<ManifestFile>,
}

impl ModelManifest {
    /// The built-in manifest of the default model, SmolLM2-135M-Instruct in Q4_1 GGUF.
    pub fn smollm2_135m_instruct() -> Self {
        Self {
            id: DEFAULT_MODEL_ID.to_owned(),
            files: vec![ManifestFile {
                name: DEFAULT_MODEL_FILE.to_owned(),
                size: DEFAULT_MODEL_SIZE,
                sha256: DEFAULT_MODEL_SHA256.to_owned(),
            }],
        }
    }

    /// Parses and validates a manifest from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(Error::InvalidManifest(format!(
                "{} bytes, the limit is {MAX_MANIFEST_LEN}",
                bytes.len()
            )));
        }
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the rules every manifest must follow: a printable id, at least one file,
    /// safe unique names, well-formed digests, accepted formats and exactly one weights file.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidManifest(m));
        if self.id.is_empty()
            || self.id.len() > 128
            || !self.id.chars().all(|c| c.is_ascii_graphic())
        {
            return bad("id must be 1 to 128 printable ASCII characters".to_owned());
        }
        if self.files.is_empty() {
            return bad("no files".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        let mut weights = 0;
        for f in &self.files {
            if f.name.is_empty()
                || f.name.starts_with('.')
                || f.name.contains(['/', '\\', '\0'])
                || f.name.len() > 255
            {
                return bad(format!("unsafe file name {:?}", f.name));
            }
            if !names.insert(f.name.as_str()) {
                return bad(format!("file `{}` listed twice", f.name));
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return bad(format!(
                    "file `{}`: sha256 must be 64 lowercase hex digits",
                    f.name
                ));
            }
            if FileKind::of(&f.name)?.is_weights() {
                weights += 1;
            }
        }
        if weights != 1 {
            return bad(format!(
                "exactly one weights file expected, found {weights}"
            ));
        }
        Ok(())
    }

    /// The weights file (validated manifests have exactly one).
    pub fn weights(&self) -> Result<(&ManifestFile, FileKind)> {
        for f in &self.files {
            let kind = FileKind::of(&f.name)?;
            if kind.is_weights() {
                return Ok((f, kind));
            }
        }
        Err(Error::InvalidManifest("no weights file".to_owned()))
    }

    /// SHA-256 of the manifest's canonical encoding: the value the attestation binds.
    ///
    /// The encoding is, with every integer big-endian and every string UTF-8 prefixed by
    /// its length as a `u32`:
    ///
    /// ```text
    /// "veil-model-manifest-v1" ‖ len(id) ‖ id ‖ u32(file count)
    ///   ‖ for each file, sorted by name: len(name) ‖ name ‖ u64(size) ‖ sha256 (32 raw bytes)
    /// ```
    ///
    /// It does not depend on JSON formatting, key order or file order, and two manifests
    /// with the same digest name the same bytes under the same names.
    pub fn digest(&self) -> [u8; 32] {
        veil_attest::model_manifest_digest(
            &self.id,
            self.files.iter().map(|f| veil_attest::ModelFileRef {
                name: &f.name,
                size: f.size,
                sha256: &f.sha256,
            }),
        )
    }
}

/// The default model's id, as clients name it.
pub const DEFAULT_MODEL_ID: &str = "SmolLM2-135M-Instruct-Q4_1";
/// The default model's GGUF file name.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The default model's exact size in bytes.
pub const DEFAULT_MODEL_SIZE: u64 = 98_362_432;
/// The default model's SHA-256.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

#[cfg(test)]
mod tests;
