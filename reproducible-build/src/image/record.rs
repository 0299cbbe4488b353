//! `image.json`: what the image is (each file's SHA-256, the initrd's contents) and what it
//! measures to, in the release manifest's vocabulary (`binary_sha256`,
//! `model_manifest_digest`, `reference_values`), so `veil-repro manifest --image` signs it
//! and `veil policy from-manifest` pins it.

use serde::{Deserialize, Serialize};

use super::InitrdEntry;
use crate::manifest::ReferenceValues;

/// The file name of the record in the output directory.
pub const IMAGE_JSON: &str = "image.json";

/// Format version of `image.json`.
pub const IMAGE_RECORD_VERSION: u32 = 1;

/// Where the kernel came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSource {
    /// `debian-package` (pinned, sha256-checked) or `file` (`--kernel`).
    pub kind: String,
    /// Package name and version, or empty for `--kernel`.
    pub package: String,
    /// SHA-256 of the package file, or empty for `--kernel`.
    pub package_sha256: String,
    /// The modules in the initrd, load order.
    pub modules: Vec<String>,
}

/// The SNP launch configuration the digest was computed for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpLaunch {
    /// vCPU count.
    pub vcpus: u32,
    /// vCPU type (`EPYC-v4`, `EPYC-Milan`, ...).
    pub vcpu_type: String,
    /// SHA-256 of the OVMF file measured.
    pub ovmf_sha256: String,
    /// The launch digest (the report's MEASUREMENT).
    pub launch_digest: String,
}

/// TDX runtime measurements of the direct kernel boot (MRTD needs the TDVF: see
/// `reference_values.tdx` when `--tdvf` was given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxRuntime {
    /// RTMR1 (kernel image, boot actions).
    pub rtmr1: String,
    /// RTMR2 (command line, initrd).
    pub rtmr2: String,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// [`IMAGE_RECORD_VERSION`].
    pub version: u32,
    /// SHA-256 of `vmlinuz`, `initrd.img` and `cmdline`, by file name.
    pub files: std::collections::BTreeMap<String, String>,
    /// The kernel command line (the `cmdline` file's content).
    pub cmdline: String,
    /// Where the kernel came from.
    pub kernel: KernelSource,
    /// SHA-256 of `/bin/veil-server` in the initrd: what the server attests.
    pub binary_sha256: String,
    /// The baked model manifest's canonical digest: what the server attests.
    pub model_manifest_digest: String,
    /// The model's id.
    pub model_id: String,
    /// `--tee` of the server in the image.
    pub tee: String,
    /// The server's TCP port.
    pub port: u16,
    /// The measurement simulated evidence carries (SHA-384 of the server binary).
    pub simulated_measurement: String,
    /// The SNP launch, when `--ovmf` was given.
    pub snp: Option<SnpLaunch>,
    /// TDX RTMR1/RTMR2, when the kernel is a PE/COFF (EFI stub) image.
    pub tdx: Option<TdxRuntime>,
    /// The hardware reference values, as a release manifest carries them.
    pub reference_values: ReferenceValues,
    /// Every regular file of the initrd.
    pub initrd_files: Vec<InitrdEntry>,
}

impl ImageRecord {
    /// Pretty JSON with a final newline (deterministic: fields in declaration order, maps
    /// sorted).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }
}
