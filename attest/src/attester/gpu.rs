//! NVIDIA GPU evidence on the guest side: each GPU's SPDM measurement report answering a
//! nonce, with its certificate chain ([`GpuEvidence`]), for the server to bind next to its
//! CPU evidence ([`crate::ReportData::with_gpus`]).
//!
//! Backends: [`NvmlGpus`] (feature `nvml`: NVIDIA's management library, on a confidential
//! VM with Hopper or later GPUs in CC mode) and [`ReplayedGpus`] (captured evidence replayed
//! whatever the nonce: for tests of the collection and binding; a client refuses its
//! reports, which answer the nonce they were captured with).

use std::sync::{Mutex, PoisonError};

use super::AttestError;
use crate::nvidia::GpuEvidence;

/// Something that can produce every GPU's evidence answering a 32-byte nonce.
pub trait GpuAttester: std::fmt::Debug + Send + Sync {
    /// Each GPU's report answering `nonce`, with its certificate chain, in device order.
    fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<Vec<GpuEvidence>, AttestError>;
    /// A short name (`nvml`, `replayed`).
    fn name(&self) -> &'static str;
}

/// Captured GPU evidence, replayed for any nonce; records the nonces it was asked for.
#[derive(Debug)]
pub struct ReplayedGpus {
    gpus: Vec<GpuEvidence>,
    asked: Mutex<Vec<[u8; 32]>>,
}

impl ReplayedGpus {
    /// Replays `gpus`.
    pub fn new(gpus: Vec<GpuEvidence>) -> Self {
        Self {
            gpus,
            asked: Mutex::new(Vec::new()),
        }
    }

    /// The nonces asked so far, oldest first.
    pub fn asked(&self) -> Vec<[u8; 32]> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl GpuAttester for ReplayedGpus {
    fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<Vec<GpuEvidence>, AttestError> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(*nonce);
        Ok(self.gpus.clone())
    }

    fn name(&self) -> &'static str {
        "replayed"
    }
}

#[cfg(feature = "nvml")]
pub use nvml::NvmlGpus;

/// NVIDIA's management library (`libnvidia-ml.so`, loaded at run time by `nvml-wrapper`).
#[cfg(feature = "nvml")]
mod nvml {
    use nvml_wrapper::Nvml;

    use super::{AttestError, GpuAttester, GpuEvidence};

    /// Every GPU NVML sees, asked through its confidential-computing calls.
    pub struct NvmlGpus {
        nvml: Nvml,
    }

    impl std::fmt::Debug for NvmlGpus {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("NvmlGpus").finish_non_exhaustive()
        }
    }

    fn nvml_error(what: &str, e: impl std::fmt::Display) -> AttestError {
        AttestError::Gpu(format!("{what}: {e}"))
    }

    impl NvmlGpus {
        /// Loads NVML; fails where the library or a driver is missing.
        pub fn new() -> Result<Self, AttestError> {
            let nvml = Nvml::init().map_err(|e| nvml_error("loading NVML", e))?;
            Ok(Self { nvml })
        }
    }

    impl GpuAttester for NvmlGpus {
        fn gpu_evidence(&self, nonce: &[u8; 32]) -> Result<Vec<GpuEvidence>, AttestError> {
            let count = self
                .nvml
                .device_count()
                .map_err(|e| nvml_error("counting GPUs", e))?;
            if count == 0 {
                return Err(AttestError::Gpu("NVML sees no GPU".to_owned()));
            }
            (0..count)
                .map(|i| {
                    let device = self
                        .nvml
                        .device_by_index(i)
                        .map_err(|e| nvml_error(&format!("GPU {i}"), e))?;
                    let report = device
                        .confidential_compute_gpu_attestation_report(*nonce)
                        .map_err(|e| nvml_error(&format!("GPU {i}'s attestation report"), e))?;
                    let certs = device
                        .confidential_compute_gpu_certificate()
                        .map_err(|e| nvml_error(&format!("GPU {i}'s certificates"), e))?;
                    let report_len = report.attestation_report_size as usize;
                    let chain_len = certs.attestation_cert_chain_size as usize;
                    let report_bytes =
                        report.attestation_report.get(..report_len).ok_or_else(|| {
                            AttestError::Gpu(format!("GPU {i}: report size out of range"))
                        })?;
                    let chain = certs
                        .attestation_cert_chain
                        .get(..chain_len)
                        .ok_or_else(|| {
                            AttestError::Gpu(format!(
                                "GPU {i}: certificate chain size out of range"
                            ))
                        })?;
                    Ok(GpuEvidence::from_files(report_bytes, chain)?)
                })
                .collect()
        }

        fn name(&self) -> &'static str {
            "nvml"
        }
    }
}
