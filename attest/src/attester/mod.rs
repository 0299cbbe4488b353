//! The guest side: producing [`Evidence`] inside a confidential VM.
//!
//! Backends: [`ConfigfsTsm`] (the kernel's configfs-tsm interface, SNP and TDX),
//! [`SevGuestDevice`] (`/dev/sev-guest`), [`TdxGuestDevice`] (`/dev/tdx_guest`) and
//! [`Simulated`] (software key, for demos); for NVIDIA GPUs, [`GpuAttester`] ([`ReplayedGpus`],
//! and `NvmlGpus` with the `nvml` feature). [`detect`] picks a hardware backend and says why;
//! it never picks the simulated one, which must be asked for by name.
//!
//! Unlike verification, this is I/O by nature; the parsing it relies on (`SnpCerts`
//! tables, quote layout) is the same sans-IO code the verifier uses.

mod configfs;
mod devices;
mod endorsements;
#[cfg(any(test, feature = "testing"))]
mod fake;
mod gpu;
mod simulated;

use std::path::{Path, PathBuf};

pub use configfs::{ConfigfsTsm, StdFs, TsmFs};
pub use devices::{SevGuestDevice, TdxGuestDevice};
pub use endorsements::{EndorsementSource, Endorsements};
#[cfg(any(test, feature = "testing"))]
pub use fake::{FakeTsm, FakeTsmConfig};
#[cfg(feature = "nvml")]
pub use gpu::NvmlGpus;
pub use gpu::{GpuAttester, ReplayedGpus};
pub use simulated::Simulated;

use crate::{Evidence, Platform};

/// Default configfs-tsm report directory.
pub const DEFAULT_TSM_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Default SEV-SNP guest device.
pub const DEFAULT_SEV_DEVICE: &str = "/dev/sev-guest";
/// Default TDX guest device.
pub const DEFAULT_TDX_DEVICE: &str = "/dev/tdx_guest";

/// Why evidence could not be produced. Every variant names what is missing or wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The configfs-tsm report directory does not exist (configfs not mounted, or a kernel
    /// older than 6.7, or no TSM driver loaded).
    #[error(
        "configfs-tsm not available: {0} does not exist (mount configfs; needs Linux >= 6.7 with sev-guest or tdx-guest)"
    )]
    NotMounted(PathBuf),
    /// The process may not create report entries.
    #[error("permission denied on {path}: run as root or grant access to the TSM report directory")]
    PermissionDenied {
        /// The path that was refused.
        path: PathBuf,
    },
    /// The report entry has no provider: no TEE driver backs configfs-tsm.
    #[error(
        "configfs-tsm entry {0} has no provider: no TEE guest driver (sev-guest, tdx-guest) is bound"
    )]
    NoProvider(PathBuf),
    /// The provider is not one Veil knows.
    #[error("unknown configfs-tsm provider {0:?} (expected sev_guest or tdx_guest)")]
    UnknownProvider(String),
    /// The kernel accepted fewer than 64 bytes of REPORT_DATA.
    #[error("short write to inblob: {written} of 64 bytes")]
    ShortInblob {
        /// Bytes accepted.
        written: usize,
    },
    /// Another writer changed the entry while we used it, more often than we retry.
    #[error(
        "configfs-tsm entry raced by another writer {attempts} times (generation {before} -> {after})"
    )]
    Raced {
        /// Attempts made.
        attempts: u32,
        /// Generation read before writing.
        before: u64,
        /// Generation read after reading the output.
        after: u64,
    },
    /// The output has an impossible size.
    #[error("{what} is {got} bytes, expected {expected}")]
    OutputSize {
        /// Which blob.
        what: &'static str,
        /// Bytes read.
        got: usize,
        /// What was expected.
        expected: String,
    },
    /// No certificate for the SNP report: the host supplies none and no cache is configured.
    #[error(
        "no {0} certificate: the host provided none (empty certificate table) and no certificate directory is configured"
    )]
    NoCertificates(&'static str),
    /// No TDX collateral configured.
    #[error(
        "no TDX collateral: configure a collateral file (PCS collateral for this platform's FMSPC)"
    )]
    NoCollateral,
    /// The endorsement source could not supply current endorsements (unreachable and
    /// nothing cached, or what is cached has expired).
    #[error("endorsements unavailable: {0}")]
    Endorsements(String),
    /// Only a TD report (not a quote) could be obtained.
    #[error("{0}")]
    QuoteUnavailable(String),
    /// No TEE interface was found on this machine.
    #[error("no TEE found: looked for {0}; use the simulated platform explicitly for a demo")]
    NoTee(String),
    /// An I/O error at a named path.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Data read from the TEE or a cache did not parse.
    #[error("invalid evidence material: {0}")]
    Invalid(#[from] crate::VerifyError),
    /// The TEE firmware refused the request.
    #[error("TEE firmware error: {0}")]
    Firmware(String),
    /// The GPUs' evidence could not be obtained (no NVML, no GPU, CC mode off).
    #[error("GPU evidence unavailable: {0}")]
    Gpu(String),
}

impl AttestError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            Self::PermissionDenied {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Something that can produce evidence binding 64 bytes of REPORT_DATA.
pub trait Attester: std::fmt::Debug + Send + Sync {
    /// Produces evidence whose REPORT_DATA is `report_data`.
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError>;
    /// The platform this backend produces evidence for, where known before attesting.
    fn platform(&self) -> Option<Platform>;
    /// A short name (`configfs-tsm`, `sev-guest`, `tdx-guest`, `simulated`).
    fn name(&self) -> &'static str;
}

/// Where [`detect`] looks, and where endorsements come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DetectConfig {
    /// configfs-tsm report directory.
    pub tsm_root: PathBuf,
    /// SEV-SNP guest device.
    pub sev_device: PathBuf,
    /// TDX guest device.
    pub tdx_device: PathBuf,
    /// Certificate and collateral sources.
    pub endorsements: Endorsements,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            tsm_root: DEFAULT_TSM_ROOT.into(),
            sev_device: DEFAULT_SEV_DEVICE.into(),
            tdx_device: DEFAULT_TDX_DEVICE.into(),
            endorsements: Endorsements::default(),
        }
    }
}

/// A chosen backend and the reason it was chosen.
#[derive(Debug)]
pub struct Detected {
    /// The backend.
    pub attester: Box<dyn Attester>,
    /// Why it was picked.
    pub why: String,
}

/// Picks the hardware backend this machine supports: configfs-tsm first (the kernel's
/// standard interface), then `/dev/sev-guest`, then `/dev/tdx_guest`. Never the simulated one.
pub fn detect(cfg: &DetectConfig) -> Result<Detected, AttestError> {
    if cfg.tsm_root.is_dir() {
        return Ok(Detected {
            attester: Box::new(ConfigfsTsm::new(
                cfg.tsm_root.clone(),
                cfg.endorsements.clone(),
            )),
            why: format!(
                "configfs-tsm report directory {} exists",
                cfg.tsm_root.display()
            ),
        });
    }
    if cfg.sev_device.exists() {
        return Ok(Detected {
            attester: Box::new(SevGuestDevice::new(
                cfg.sev_device.clone(),
                cfg.endorsements.clone(),
            )),
            why: format!(
                "{} exists and configfs-tsm ({}) does not",
                cfg.sev_device.display(),
                cfg.tsm_root.display()
            ),
        });
    }
    if cfg.tdx_device.exists() {
        return Ok(Detected {
            attester: Box::new(TdxGuestDevice::new(cfg.tdx_device.clone())),
            why: format!(
                "{} exists and configfs-tsm ({}) does not: only TD reports, no quotes",
                cfg.tdx_device.display(),
                cfg.tsm_root.display()
            ),
        });
    }
    Err(AttestError::NoTee(format!(
        "{}, {}, {}",
        cfg.tsm_root.display(),
        cfg.sev_device.display(),
        cfg.tdx_device.display()
    )))
}

#[cfg(test)]
mod tests;
