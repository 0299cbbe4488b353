//! The one error type of the library.

/// Everything that can go wrong while planning a build, building an initrd,
/// computing reference values, or signing and verifying a release manifest.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// A build path contains whitespace, which `RUSTFLAGS` cannot carry.
    #[error("build path contains whitespace: {0:?}")]
    PathWithWhitespace(String),

    /// A file given to `diff` is not an ELF object the `object` crate can parse.
    #[error("not a parsable ELF file: {0}")]
    NotElf(String),

    /// The SNP measurement inputs cannot be measured (the firmware image lacks
    /// what they need, or is malformed); `sev-snp-measure` refuses them too.
    #[error("SEV-SNP measurement failed: {0}")]
    SnpMeasurement(String),

    /// A file named in the SNP measurement inputs cannot be read.
    #[error("SEV-SNP measurement: cannot read {path}: {source}")]
    SnpInputFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },

    /// An SNP option value is unknown or missing (vCPU type, VMM type), or
    /// options are combined wrongly (an initrd without a kernel).
    #[error("unsupported SEV-SNP option {option}: {value}")]
    UnsupportedSnpOption {
        /// The option name.
        option: &'static str,
        /// The value given.
        value: String,
    },

    /// The firmware image has no TDVF metadata (GUID table entry or `TDVF` descriptor).
    #[error("TDVF metadata not found: {0}")]
    TdvfMetadataMissing(&'static str),

    /// The TDVF metadata is present but malformed.
    #[error("malformed TDVF metadata: {0}")]
    TdvfMetadataMalformed(String),

    /// The kernel image is not a PE/COFF image, so its Authenticode digest is undefined.
    #[error("kernel is not a PE/COFF image: {0}")]
    NotPeImage(String),

    /// An initrd entry path is empty, absolute, or has `.`/`..` components.
    #[error("invalid initrd path {0:?}")]
    InvalidInitrdPath(String),

    /// Two initrd entries have the same path.
    #[error("duplicate initrd path {0:?}")]
    DuplicateInitrdPath(String),

    /// An initrd entry is larger than the 4 GiB a cpio newc header can describe.
    #[error("initrd entry {0:?} is larger than 4 GiB")]
    InitrdEntryTooLarge(String),

    /// A release manifest is malformed, not canonical, or its signature does not verify
    /// (the format and its checks are `veil_attest::release`).
    #[error(transparent)]
    Release(#[from] veil_attest::release::ReleaseError),

    /// A key is not the expected hex length.
    #[error("invalid {what}: expected {expected} hex characters")]
    InvalidHex {
        /// Which value was invalid.
        what: &'static str,
        /// The expected number of hex characters.
        expected: usize,
    },

    /// A kernel module is missing, or its file cannot be read.
    #[error("kernel module: {0}")]
    KernelModule(String),

    /// The kernel lacks a driver the image needs.
    #[error("the kernel {kernel} has no {driver} driver (neither built in nor a module): {why}")]
    KernelLacksDriver {
        /// The kernel (file or package).
        kernel: String,
        /// The missing driver.
        driver: String,
        /// What it is needed for.
        why: &'static str,
    },

    /// The model's files do not match its manifest.
    #[error("the model does not match its manifest: {0}")]
    ModelMismatch(String),

    /// An input of the image is missing or invalid.
    #[error("image: {0}")]
    ImageInput(String),

    /// Writing the gzip stream to memory failed.
    #[error("gzip compression failed: {0}")]
    Gzip(#[from] std::io::Error),
}
