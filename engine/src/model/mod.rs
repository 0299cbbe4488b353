//! Model supply chain: the manifest, verification of the files against it, and loading.
//!
//! Every load reads each file once, checks its size, SHA-256 and format against the
//! manifest, and builds the model from exactly those verified bytes.

mod manifest;
mod verify;

pub use crate::llama::HfConfig;
pub use crate::tokenizer::HfTokenizerConfig;

pub use manifest::{
    DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID, DEFAULT_MODEL_SHA256, DEFAULT_MODEL_SIZE, FileKind,
    MANIFEST_DIGEST_DOMAIN, MAX_MANIFEST_LEN, ManifestFile, ModelManifest,
};
pub use verify::{GGUF_MAGIC, verify_file};

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::gguf_file;

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::llama::{Llama, WeightFormat};
use crate::tokenizer::Tokenizer;

/// Name of the manifest file inside a model directory.
pub const MANIFEST_FILE_NAME: &str = "manifest.json";

/// The side files a safetensors model must list in its manifest.
pub const REQUIRED_SIDE_FILES: [&str; 3] =
    ["config.json", "tokenizer.json", "tokenizer_config.json"];

/// Where a model's files are, and which manifest pins them.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// Directory holding the files the manifest names.
    pub dir: PathBuf,
    /// The manifest the files must match.
    pub manifest: ModelManifest,
}

impl ModelSource {
    /// A directory with a `manifest.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                name: MANIFEST_FILE_NAME.to_owned(),
                path: path.display().to_string(),
            },
            _ => Error::io(format!("reading {}", path.display()))(e),
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest: ModelManifest::from_json(&bytes)?,
        })
    }

    /// A single weights file pinned by `manifest`; the manifest must name exactly this
    /// file (so a file whose name or bytes differ from the pinned model is refused).
    pub fn from_file(path: &Path, manifest: ModelManifest) -> Result<Self> {
        manifest.validate()?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidManifest(format!("bad path {}", path.display())))?;
        let (weights, _) = manifest.weights()?;
        if weights.name != file_name {
            return Err(Error::InvalidManifest(format!(
                "the manifest pins `{}`, not `{file_name}`",
                weights.name
            )));
        }
        let dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self { dir, manifest })
    }

    /// A path given on the command line: a directory with a manifest, or a GGUF file that
    /// must be the built-in default model.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Self::from_dir(path)
        } else {
            Self::from_file(path, ModelManifest::smollm2_135m_instruct())
        }
    }

    /// Reads every file once and verifies it; returns the verified bytes of the weights and
    /// of the JSON side files.
    pub fn verify(&self) -> Result<VerifiedWeights> {
        self.manifest.validate()?;
        let mut weights = None;
        let mut side_files = BTreeMap::new();
        for file in &self.manifest.files {
            let path = self.dir.join(&file.name);
            let bytes = read_capped(&path, file)?;
            let kind = verify_file(file, &bytes)?;
            if kind.is_weights() {
                weights = Some((kind, bytes));
            } else {
                side_files.insert(file.name.clone(), bytes);
            }
        }
        let (kind, bytes) =
            weights.ok_or_else(|| Error::InvalidManifest("no weights file".to_owned()))?;
        Ok(VerifiedWeights {
            manifest: self.manifest.clone(),
            kind,
            bytes,
            side_files,
        })
    }
}

/// Reads a file, refusing before allocating if it is not the pinned size.
fn read_capped(path: &Path, file: &ManifestFile) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            name: file.name.clone(),
            path: path.display().to_string(),
        },
        _ => Error::io(format!("reading {}", path.display()))(e),
    })?;
    if meta.len() != file.size {
        return Err(Error::SizeMismatch {
            name: file.name.clone(),
            expected: file.size,
            got: meta.len(),
        });
    }
    std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))
}

/// Weights whose bytes matched the manifest.
#[derive(Debug)]
pub struct VerifiedWeights {
    /// The manifest they matched.
    pub manifest: ModelManifest,
    /// Their format.
    pub kind: FileKind,
    /// The verified bytes.
    pub bytes: Vec<u8>,
    /// The verified JSON side files (`config.json`, …), by name.
    pub side_files: BTreeMap<String, Vec<u8>>,
}

impl VerifiedWeights {
    /// A verified side file the manifest must list.
    pub fn side_file(&self, name: &str) -> Result<&[u8]> {
        self.side_files.get(name).map(Vec::as_slice).ok_or_else(|| {
            Error::InvalidManifest(format!(
                "a safetensors model needs `{name}` in its manifest"
            ))
        })
    }

    /// Parses the GGUF container (header, metadata, tensor index).
    pub fn gguf(&self) -> Result<(gguf_file::Content, Cursor<&[u8]>)> {
        if self.kind != FileKind::Gguf {
            return Err(Error::Model("the weights are not GGUF".to_owned()));
        }
        let mut reader = Cursor::new(self.bytes.as_slice());
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::Model(format!("GGUF: {e}")))?;
        Ok((content, reader))
    }
}

/// A loaded model: weights on a device, tokenizer, chat template, and the manifest.
#[derive(Debug)]
pub struct LoadedModel {
    /// The manifest the weights matched.
    pub manifest: ModelManifest,
    /// The network.
    pub llama: Llama,
    /// The tokenizer (GGUF metadata, or `tokenizer.json`).
    pub tokenizer: Tokenizer,
    /// The chat template (GGUF metadata, or `tokenizer_config.json`).
    pub template: ChatTemplate,
}

impl LoadedModel {
    /// Verifies and loads a model, keeping the weights as stored.
    pub fn load(source: &ModelSource, device: &Device) -> Result<Self> {
        Self::from_verified(&source.verify()?, device, WeightFormat::Stored)
    }

    /// Loads verified weights: a GGUF file, or a Hugging Face Llama directory (safetensors
    /// weights with `config.json`, `tokenizer.json` and `tokenizer_config.json`).
    pub fn from_verified(
        weights: &VerifiedWeights,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        if weights.kind == FileKind::Safetensors {
            return Self::from_safetensors(weights, device, format);
        }
        let (content, mut reader) = weights.gguf()?;
        let tokenizer = Tokenizer::from_gguf(&content)?;
        let template = ChatTemplate::from_gguf(&content, &tokenizer)?;
        let llama = Llama::from_gguf(&content, &mut reader, device, format)?;
        Ok(Self {
            manifest: weights.manifest.clone(),
            llama,
            tokenizer,
            template,
        })
    }
}

impl LoadedModel {
    fn from_safetensors(
        weights: &VerifiedWeights,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        let [config, tokenizer_json, tokenizer_config] =
            REQUIRED_SIDE_FILES.map(|name| weights.side_file(name));
        let config = HfConfig::from_json(config?)?;
        let tokenizer_config = HfTokenizerConfig::from_json(tokenizer_config?)?;
        let tokenizer = Tokenizer::from_hf_json(tokenizer_json?, &tokenizer_config)?;
        let template = ChatTemplate::new(
            tokenizer_config.chat_template.clone(),
            tokenizer.bos_token().unwrap_or_default(),
            tokenizer.eos_token().unwrap_or_default(),
        )?;
        let tensors = candle_core::safetensors::load_buffer(&weights.bytes, device)
            .map_err(|e| Error::Model(format!("safetensors: {e}")))?;
        let llama = Llama::from_safetensors(&config, tensors, device, format)?;
        if tokenizer.vocab_size() > llama.config().vocab_size {
            return Err(Error::Model(format!(
                "the tokenizer has {} tokens, the embedding {} rows",
                tokenizer.vocab_size(),
                llama.config().vocab_size
            )));
        }
        Ok(Self {
            manifest: weights.manifest.clone(),
            llama,
            tokenizer,
            template,
        })
    }
}
