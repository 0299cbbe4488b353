//! `--gpus`: the confidential GPUs whose evidence joins every attestation.

use std::sync::Arc;

use anyhow::Context as _;
use veil_attest::attester::GpuAttester;

/// Where GPU evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GpuArg {
    /// No GPU evidence: the server runs on the CPU, or its GPUs are not attested (a client
    /// whose policy has a `[gpu]` section refuses it).
    None,
    /// Every GPU NVML sees (NVIDIA Hopper or later in confidential-computing mode); needs a
    /// veil-server built with the `nvml` feature.
    Nvml,
}

/// The GPU evidence source `arg` names, checked once now (a GPU that cannot attest is
/// found at start, not by the first client).
pub(crate) fn source(arg: GpuArg) -> anyhow::Result<Option<Arc<dyn GpuAttester>>> {
    let gpus: Arc<dyn GpuAttester> = match arg {
        GpuArg::None => return Ok(None),
        GpuArg::Nvml => nvml()?,
    };
    let found = gpus
        .gpu_evidence(&[0; 32])
        .with_context(|| format!("--gpus {}: the GPUs cannot produce evidence", gpus.name()))?;
    tracing::info!(backend = gpus.name(), gpus = found.len(), "GPU evidence");
    Ok(Some(gpus))
}

#[cfg(feature = "nvml")]
fn nvml() -> anyhow::Result<Arc<dyn GpuAttester>> {
    Ok(Arc::new(
        veil_attest::attester::NvmlGpus::new().context("--gpus nvml")?,
    ))
}

#[cfg(not(feature = "nvml"))]
fn nvml() -> anyhow::Result<Arc<dyn GpuAttester>> {
    anyhow::bail!("--gpus nvml: this veil-server was built without the `nvml` feature")
}
