//! SEV-SNP launch digest: the same computation as virtee's `sev-snp-measure`
//! 0.0.13 `--mode snp` (the reference; the tests compare against it).
//!
//! The digest chains, in order: the OVMF image's pages; the SEV metadata
//! sections the image declares (zero pages, the secrets and CPUID pages, and
//! the kernel-hashes page that holds the SHA-256 of kernel, initrd and command
//! line for a direct boot); then one VMSA page per vCPU.
//!
//! # Why this is computed here and not by the `sev` crate
//!
//! `sev` 8.0.0 (`sev::measurement::snp::snp_calc_launch_digest`) disagrees
//! with the reference on inputs the reference accepts, and its building blocks
//! cannot be composed into a fix: its guest-context digest is only reachable
//! through that one function (`Gctx::finished`/`ld` are crate-private), which
//! parses the OVMF file and hashes the kernel itself. What it gets wrong:
//!
//! - **OVMF images without SEV metadata** (Debian's `OVMF_CODE_4M.fd`): `sev`
//!   fails with "Can't find OVMF_SEV_METADATA_GUID"; the reference measures
//!   them with no metadata sections (the image's pages, then the VMSAs).
//! - **`ec2`**: `sev` builds the EC2 VMSA with RDX 0; EC2 (and the reference)
//!   load 0x600.
//! - **`gce`**: not modelled by `sev` (its SNP_SEC_MEM sections are
//!   *unmeasured* pages; the VMSA has RDX 0x600, PAT 0x70106, no MXCSR/FCW).
//! - **The command line**: `sev` trims it before hashing; QEMU and the
//!   reference hash it exactly as given.
//! - **A reset block with AP address 0 and more than one vCPU**: `sev` silently
//!   measures a single VMSA; the reference fails.
//! - **A hashes table that does not fit its page**: `sev` truncates the page;
//!   the reference fails.
//! - **Section types**: `sev` reads one byte of the 32-bit type field (so 0x101
//!   passes as 1) and panics on truncated metadata; the reference fails.
//! - **vCPU signatures**: `sev` takes only named CPU types (and also names the
//!   reference refuses, `EPYC-Turin-v1/-v2`); the reference also takes a raw
//!   signature (`--vcpu-sig`, or family/model/stepping), which [`SnpOptions`]
//!   carries here.
//!
//! So the whole computation is here, in four small parts: `ovmf` (footer
//! table and SEV metadata, parsed as leniently as the reference parses them),
//! `gctx` (the digest chain), `vmsa` (the VMSA pages) and `hashes` (the
//! kernel-hashes page). The tests pin digests produced by the
//! reference, run it live when it is installed, and check that this agrees
//! with `sev` on every input where `sev` is right.
//!
//! [`measure`] works on bytes; [`launch_digest`] and [`launch_digest_with`]
//! read the files named in [`SnpInputs`] first.

mod gctx;
mod hashes;
mod ovmf;
mod vmsa;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::ReproError;
use gctx::Gctx;
use hashes::SevHashes;
use ovmf::{Ovmf, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID, SectionType};

/// A 48-byte SNP launch digest (the report's `MEASUREMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpLaunchDigest(pub [u8; 48]);

impl SnpLaunchDigest {
    /// Lower-case hex, as `sev-snp-measure` prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The hypervisor, which decides initial VMSA register values and how some
/// metadata pages are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmType {
    /// QEMU/KVM (the default).
    Qemu,
    /// Amazon EC2: RDX 0x600, no MXCSR/FCW, the CPUID page measured last.
    Ec2,
    /// Google Compute Engine: RDX 0x600, its own PAT, pre-validated memory unmeasured.
    Gce,
}

impl FromStr for VmmType {
    type Err = ReproError;
    /// `sev-snp-measure`'s names (`QEMU`, `ec2`, `gce`), in any case.
    fn from_str(s: &str) -> Result<Self, ReproError> {
        match s.to_ascii_lowercase().as_str() {
            "qemu" => Ok(Self::Qemu),
            "ec2" => Ok(Self::Ec2),
            "gce" => Ok(Self::Gce),
            _ => Err(ReproError::UnsupportedSnpOption {
                option: "vmm-type",
                value: format!("{s} (known: QEMU, ec2, gce)"),
            }),
        }
    }
}

/// The QEMU vCPU models `sev-snp-measure` 0.0.13 knows, with their CPUID
/// signature (family, model, stepping).
pub const VCPU_TYPES: [(&str, (u32, u32, u32)); 16] = [
    ("EPYC", (23, 1, 2)),
    ("EPYC-v1", (23, 1, 2)),
    ("EPYC-v2", (23, 1, 2)),
    ("EPYC-IBPB", (23, 1, 2)),
    ("EPYC-v3", (23, 1, 2)),
    ("EPYC-v4", (23, 1, 2)),
    ("EPYC-Rome", (23, 49, 0)),
    ("EPYC-Rome-v1", (23, 49, 0)),
    ("EPYC-Rome-v2", (23, 49, 0)),
    ("EPYC-Rome-v3", (23, 49, 0)),
    ("EPYC-Milan", (25, 1, 1)),
    ("EPYC-Milan-v1", (25, 1, 1)),
    ("EPYC-Milan-v2", (25, 1, 1)),
    ("EPYC-Genoa", (25, 17, 0)),
    ("EPYC-Genoa-v1", (25, 17, 0)),
    ("EPYC-Turin", (26, 0, 0)),
];

/// The CPUID Fn0000_0001_EAX signature of a family, model and stepping
/// (AMD publication 25481).
pub fn cpu_sig(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) = if family > 0xf {
        (0xf, (family - 0xf) & 0xff)
    } else {
        (family, 0)
    };
    (family_high << 20)
        | (((model >> 4) & 0xf) << 16)
        | (family_low << 8)
        | ((model & 0xf) << 4)
        | (stepping & 0xf)
}

/// The CPUID signature of a QEMU vCPU model name (any case), or an error
/// naming the known ones.
pub fn vcpu_type_sig(name: &str) -> Result<u32, ReproError> {
    VCPU_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, (f, m, s))| cpu_sig(*f, *m, *s))
        .ok_or_else(|| ReproError::UnsupportedSnpOption {
            option: "vcpu-type",
            value: format!("{name} (known: {})", VCPU_TYPES.map(|(n, _)| n).join(", ")),
        })
}

/// Everything that determines an SNP launch digest, as files.
#[derive(Debug, Clone)]
pub struct SnpInputs {
    /// The OVMF firmware image (an AmdSev build to measure a kernel).
    pub ovmf: PathBuf,
    /// Kernel, for direct boot with measured kernel hashes.
    pub kernel: Option<PathBuf>,
    /// Initrd (with `kernel` only).
    pub initrd: Option<PathBuf>,
    /// Kernel command line (with `kernel` only), hashed exactly as given.
    pub append: Option<String>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// QEMU vCPU model name, e.g. `EPYC-v4`, `EPYC-Milan`, `EPYC-Genoa` (see
    /// [`VCPU_TYPES`]). Empty: none, which only `ec2`/`gce` (whose VMSA does
    /// not carry it) or [`SnpOptions::vcpu_sig`] allow.
    pub vcpu_type: String,
    /// The hypervisor.
    pub vmm: VmmType,
    /// SEV_FEATURES of the VMSA (default `0x1`, SNP active).
    pub guest_features: u64,
}

/// What `sev-snp-measure` takes beyond [`SnpInputs`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnpOptions {
    /// `--vcpu-sig` (or the signature of `--vcpu-family/-model/-stepping`,
    /// [`cpu_sig`]): QEMU's VMSA RDX, taking precedence over the vCPU type.
    /// As in the reference, 0 counts as not given.
    pub vcpu_sig: Option<u64>,
    /// `--snp-ovmf-hash`: the digest after the OVMF pages, computed earlier
    /// ([`ovmf_digest`]); the image's pages are then not hashed again (its
    /// table and metadata still are read).
    pub ovmf_hash: Option<[u8; 48]>,
}

/// An SNP launch, as bytes.
#[derive(Debug, Clone, Copy)]
pub struct SnpLaunch<'a> {
    /// The OVMF firmware image.
    pub ovmf: &'a [u8],
    /// Kernel for a direct boot (its hashes go into the kernel-hashes page).
    pub kernel: Option<&'a [u8]>,
    /// Initrd (with `kernel`; absent hashes as empty).
    pub initrd: Option<&'a [u8]>,
    /// Kernel command line (with `kernel`), hashed as given plus a NUL.
    pub append: Option<&'a str>,
    /// Number of vCPUs (one VMSA page each).
    pub vcpus: u32,
    /// The CPUID signature QEMU loads into RDX ([`vcpu_type_sig`],
    /// [`cpu_sig`]); `None` is an error with QEMU, and ignored by `ec2`/`gce`.
    pub vcpu_sig: Option<u64>,
    /// The hypervisor.
    pub vmm: VmmType,
    /// SEV_FEATURES of the VMSA.
    pub guest_features: u64,
    /// A digest to start from instead of hashing the OVMF pages ([`SnpOptions::ovmf_hash`]).
    pub ovmf_hash: Option<[u8; 48]>,
}

/// Computes the SNP launch digest from the files in `inputs`.
pub fn launch_digest(inputs: &SnpInputs) -> Result<SnpLaunchDigest, ReproError> {
    launch_digest_with(inputs, &SnpOptions::default())
}

/// [`launch_digest`] with the reference tool's further options.
///
/// As in the reference, an empty kernel path means no kernel (and then the
/// initrd and command line are not measured), an empty initrd path an empty
/// initrd, and an empty command line the same as none; an initrd or command
/// line with no kernel is refused.
pub fn launch_digest_with(
    inputs: &SnpInputs,
    options: &SnpOptions,
) -> Result<SnpLaunchDigest, ReproError> {
    let kernel = inputs
        .kernel
        .as_deref()
        .filter(|k| !k.as_os_str().is_empty());
    if inputs.kernel.is_none()
        && (inputs
            .initrd
            .as_ref()
            .is_some_and(|i| !i.as_os_str().is_empty())
            || inputs.append.as_ref().is_some_and(|a| !a.is_empty()))
    {
        return Err(ReproError::UnsupportedSnpOption {
            option: "initrd/append",
            value: "given without --kernel".to_owned(),
        });
    }
    let vcpu_sig = resolve_vcpu_sig(&inputs.vcpu_type, options.vcpu_sig)?;
    let ovmf = read(&inputs.ovmf)?;
    let kernel_bytes = kernel.map(read).transpose()?;
    let initrd_bytes = match (kernel, inputs.initrd.as_deref()) {
        (Some(_), Some(p)) if !p.as_os_str().is_empty() => Some(read(p)?),
        _ => None,
    };
    measure(&SnpLaunch {
        ovmf: &ovmf,
        kernel: kernel_bytes.as_deref(),
        initrd: initrd_bytes.as_deref(),
        append: inputs.append.as_deref().filter(|_| kernel.is_some()),
        vcpus: inputs.vcpus,
        vcpu_sig,
        vmm: inputs.vmm,
        guest_features: inputs.guest_features,
        ovmf_hash: options.ovmf_hash,
    })
}

/// The reference's choice of RDX: a non-zero signature, else the named type,
/// else none ([`measure`] refuses that with QEMU). A type name, when given,
/// must be known.
fn resolve_vcpu_sig(vcpu_type: &str, vcpu_sig: Option<u64>) -> Result<Option<u64>, ReproError> {
    let named = match vcpu_type {
        "" => None,
        name => Some(u64::from(vcpu_type_sig(name)?)),
    };
    Ok(vcpu_sig.filter(|s| *s != 0).or(named))
}

fn read(path: &Path) -> Result<Vec<u8>, ReproError> {
    std::fs::read(path).map_err(|source| ReproError::SnpInputFile {
        path: path.display().to_string(),
        source,
    })
}

/// The digest after the OVMF image's pages alone (`sev-snp-measure --mode
/// snp:ovmf-hash`), to pass as [`SnpOptions::ovmf_hash`].
pub fn ovmf_digest(ovmf: &[u8]) -> Result<SnpLaunchDigest, ReproError> {
    let image = Ovmf::parse(ovmf)?;
    let mut g = Gctx::new(None);
    g.normal_pages(ovmf_gpa(image.data())?, image.data())?;
    Ok(SnpLaunchDigest(g.ld()))
}

/// The image ends at 4 GiB.
fn ovmf_gpa(data: &[u8]) -> Result<u64, ReproError> {
    (1u64 << 32)
        .checked_sub(data.len() as u64)
        .ok_or_else(|| ReproError::SnpMeasurement("OVMF: larger than 4 GiB".to_owned()))
}

/// Computes the SNP launch digest of `launch`.
pub fn measure(launch: &SnpLaunch<'_>) -> Result<SnpLaunchDigest, ReproError> {
    let image = Ovmf::parse(launch.ovmf)?;
    let mut g = Gctx::new(launch.ovmf_hash);
    if launch.ovmf_hash.is_none() {
        g.normal_pages(ovmf_gpa(image.data())?, image.data())?;
    }
    if launch.kernel.is_none()
        && (launch.initrd.is_some() || launch.append.is_some_and(|a| !a.is_empty()))
    {
        return Err(ReproError::UnsupportedSnpOption {
            option: "initrd/append",
            value: "given without a kernel".to_owned(),
        });
    }
    let hashes = launch
        .kernel
        .map(|k| SevHashes::new(k, launch.initrd, launch.append));
    metadata_pages(&mut g, &image, hashes.as_ref(), launch.vmm)?;

    let vcpu_sig = match (launch.vcpu_sig, launch.vmm) {
        (Some(sig), _) => sig,
        (None, VmmType::Ec2 | VmmType::Gce) => 0,
        (None, VmmType::Qemu) => {
            return Err(ReproError::UnsupportedSnpOption {
                option: "vcpu-type",
                value: "missing (QEMU needs a vCPU type or signature)".to_owned(),
            });
        }
    };
    let ap_eip = image.table_u32(&SEV_ES_RESET_BLOCK_GUID, "SEV_ES_RESET_BLOCK_GUID")?;
    let bsp = vmsa::bsp(launch.guest_features, vcpu_sig, launch.vmm);
    let ap =
        (ap_eip != 0).then(|| vmsa::save_area(ap_eip, launch.guest_features, vcpu_sig, launch.vmm));
    for i in 0..launch.vcpus {
        match (i, &ap) {
            (0, _) => g.vmsa_page(&bsp),
            (_, Some(ap)) => g.vmsa_page(ap),
            (_, None) => {
                return Err(ReproError::SnpMeasurement(
                    "OVMF: the SEV-ES reset block gives no AP start address, so only one vCPU can start"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(SnpLaunchDigest(g.ld()))
}

/// The SEV metadata sections, in the image's order (EC2: CPUID pages last).
fn metadata_pages(
    g: &mut Gctx,
    image: &Ovmf<'_>,
    hashes: Option<&SevHashes>,
    vmm: VmmType,
) -> Result<(), ReproError> {
    for s in image.sections() {
        let gpa = u64::from(s.gpa);
        match s.kind {
            SectionType::SnpSecMem if vmm == VmmType::Gce => g.unmeasured_pages(gpa, s.size)?,
            SectionType::SnpSecMem | SectionType::SvsmCaa => g.zero_pages(gpa, s.size)?,
            SectionType::SnpSecrets => g.secrets_page(gpa),
            SectionType::Cpuid if vmm == VmmType::Ec2 => {}
            SectionType::Cpuid => g.cpuid_page(gpa),
            SectionType::SnpKernelHashes => match hashes {
                Some(h) => {
                    let table_gpa =
                        image.table_u32(&SEV_HASH_TABLE_RV_GUID, "SEV_HASH_TABLE_RV_GUID")?;
                    let page = h.page((table_gpa & 0xfff) as usize)?;
                    if s.size != 4096 {
                        return Err(ReproError::SnpMeasurement(format!(
                            "OVMF: the SNP_KERNEL_HASHES section is {} bytes, not one page",
                            s.size
                        )));
                    }
                    g.normal_pages(gpa, page.as_slice())?;
                }
                None => g.zero_pages(gpa, s.size)?,
            },
        }
    }
    if vmm == VmmType::Ec2 {
        for s in image.sections() {
            if s.kind == SectionType::Cpuid {
                g.cpuid_page(u64::from(s.gpa));
            }
        }
    }
    if hashes.is_some() && !image.has_section(SectionType::SnpKernelHashes) {
        return Err(ReproError::SnpMeasurement(
            "kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section \
             (an AmdSev OVMF build measures a kernel)"
                .to_owned(),
        ));
    }
    Ok(())
}
