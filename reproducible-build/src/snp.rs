//! SEV-SNP launch digest, computed by the `sev` crate's measurement module.
//!
//! The same computation as virtee's `sev-snp-measure --mode snp` (checked
//! against it in the tests): the OVMF pages, the SEV metadata sections (secrets,
//! CPUID, zero pages, and the SNP kernel-hashes page when a kernel is given),
//! then one VMSA page per vCPU. `sev` 8.0.0 reads the OVMF, kernel and initrd
//! itself from paths, so this module takes paths; it does no other I/O.

use std::path::PathBuf;
use std::str::FromStr;

use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType};

use crate::ReproError;

/// A 48-byte SNP launch digest (the report's `MEASUREMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpLaunchDigest(pub [u8; 48]);

impl SnpLaunchDigest {
    /// Lower-case hex, as `sev-snp-measure` prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The hypervisor, which decides initial VMSA register values and CPUID page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmType {
    /// QEMU/KVM (the default).
    Qemu,
    /// Amazon EC2: accepted by `sev-snp-measure`; `sev` 8.0.0's EC2 VMSA
    /// differs from it (initial RDX), so measuring with it is an error.
    Ec2,
    /// Google Compute Engine: accepted by `sev-snp-measure`, **not modelled by
    /// `sev` 8.0.0**, so measuring with it is an error.
    Gce,
}

impl FromStr for VmmType {
    type Err = ReproError;
    fn from_str(s: &str) -> Result<Self, ReproError> {
        match s.to_ascii_lowercase().as_str() {
            "qemu" => Ok(Self::Qemu),
            "ec2" => Ok(Self::Ec2),
            "gce" => Ok(Self::Gce),
            _ => Err(ReproError::UnsupportedSnpOption {
                option: "vmm-type",
                value: s.to_owned(),
            }),
        }
    }
}

/// Everything that determines an SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpInputs {
    /// The OVMF firmware image (an AmdSev build to measure a kernel).
    pub ovmf: PathBuf,
    /// Kernel, for direct boot with measured kernel hashes.
    pub kernel: Option<PathBuf>,
    /// Initrd (with `kernel` only).
    pub initrd: Option<PathBuf>,
    /// Kernel command line (with `kernel` only).
    pub append: Option<String>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// QEMU vCPU model name, e.g. `EPYC-v4`, `EPYC-Milan`, `EPYC-Genoa`.
    pub vcpu_type: String,
    /// The hypervisor.
    pub vmm: VmmType,
    /// SEV_FEATURES of the VMSA (default `0x1`, SNP active).
    pub guest_features: u64,
}

/// Computes the SNP launch digest.
pub fn launch_digest(inputs: &SnpInputs) -> Result<SnpLaunchDigest, ReproError> {
    let vcpu_type = CpuType::try_from(inputs.vcpu_type.as_str()).map_err(|_| {
        ReproError::UnsupportedSnpOption {
            option: "vcpu-type",
            value: inputs.vcpu_type.clone(),
        }
    })?;
    let vmm_type = match inputs.vmm {
        VmmType::Qemu => VMMType::QEMU,
        // sev 8.0.0 sets the EC2 VMSA's initial RDX to 0 where the reference
        // (sev-snp-measure 0.0.13) sets 0x600: its EC2 digests disagree, so
        // none is produced rather than a wrong one.
        VmmType::Ec2 => {
            return Err(ReproError::UnsupportedSnpOption {
                option: "vmm-type",
                value: "ec2 (sev 8.0.0 disagrees with sev-snp-measure: VMSA RDX 0 vs 0x600)"
                    .to_owned(),
            });
        }
        VmmType::Gce => {
            return Err(ReproError::UnsupportedSnpOption {
                option: "vmm-type",
                value: "gce (not modelled by sev 8.0.0)".to_owned(),
            });
        }
    };
    // sev 8.0.0 trims the command line before hashing; QEMU and
    // sev-snp-measure hash it exactly. Refuse the inputs where they differ.
    if let Some(a) = &inputs.append
        && a.trim() != a
    {
        return Err(ReproError::UnsupportedSnpOption {
            option: "append",
            value: "leading or trailing whitespace (sev 8.0.0 trims it, QEMU does not)".to_owned(),
        });
    }
    if inputs.kernel.is_none() && (inputs.initrd.is_some() || inputs.append.is_some()) {
        return Err(ReproError::UnsupportedSnpOption {
            option: "initrd/append",
            value: "given without --kernel".to_owned(),
        });
    }
    let args = SnpMeasurementArgs {
        vcpus: inputs.vcpus,
        vcpu_type,
        ovmf_file: inputs.ovmf.clone(),
        guest_features: GuestFeatures(inputs.guest_features),
        kernel_file: inputs.kernel.clone(),
        initrd_file: inputs.initrd.clone(),
        append: inputs.append.as_deref(),
        ovmf_hash_str: None,
        vmm_type: Some(vmm_type),
    };
    let ld = snp_calc_launch_digest(args).map_err(|e| ReproError::SnpMeasurement(e.to_string()))?;
    let bytes: Vec<u8> = ld
        .try_into()
        .map_err(|e: sev::error::MeasurementError| ReproError::SnpMeasurement(e.to_string()))?;
    let arr: [u8; 48] = bytes
        .try_into()
        .map_err(|_| ReproError::SnpMeasurement("digest is not 48 bytes".to_owned()))?;
    Ok(SnpLaunchDigest(arr))
}
