//! Command-line parsing and the file/process I/O around the library.

use std::path::{Path, PathBuf};
use std::process::Command;

mod build;
mod image;
mod image_inputs;
mod release;
mod snp;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sha2::{Digest, Sha256};
use veil_repro::manifest::{SignedManifest, public_key_from_hex};
use veil_repro::tdx::{PageAddOrder, TdxInputs, measure};
use veil_repro::{DEFAULT_PACKAGE, initrd};

/// Rebuild Veil deterministically, compute its TEE reference values, sign and verify releases.
#[derive(Debug, Parser)]
#[command(name = "veil-repro", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a binary deterministically and print its sha256.
    Build(BuildArgs),
    /// Say where two builds differ (diffoscope if installed, and ELF section hashes).
    Diff {
        /// First binary.
        a: PathBuf,
        /// Second binary.
        b: PathBuf,
    },
    /// Pack the server into a deterministic initrd (cpio newc, gzip -n).
    Initrd {
        /// The server binary (becomes /init).
        #[arg(long)]
        binary: PathBuf,
        /// The model manifest (becomes /etc/veil/model-manifest.json).
        #[arg(long)]
        model_manifest: Option<PathBuf>,
        /// Write an uncompressed cpio archive.
        #[arg(long)]
        uncompressed: bool,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Build the VM image that serves: vmlinuz, initrd.img (Veil's init, veil-server, the
    /// model), cmdline, and image.json (every file's sha256 and the launch measurements).
    Image(Box<ImageArgs>),
    /// Compute launch measurements.
    #[command(subcommand)]
    Measure(MeasureCmd),
    /// Write a signed release manifest.
    Manifest(ManifestArgs),
    /// Verify a release manifest's canonical form and signature; print its digest.
    VerifyManifest {
        /// The release manifest.
        manifest: PathBuf,
        /// The Ed25519 public key (64 hex characters).
        #[arg(long)]
        pubkey: PathBuf,
    },
    /// Generate an Ed25519 release signing key (secret written 0600, never printed).
    Keygen {
        /// Where to write the secret key (hex seed).
        #[arg(long)]
        secret_out: PathBuf,
        /// Where to write the public key (hex).
        #[arg(long)]
        public_out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// The workspace to build (default: the current directory).
    #[arg(long)]
    pub(super) source: Option<PathBuf>,
    /// Where to copy the binary (default: <source>/target/veil-repro/out).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Package to build.
    #[arg(long, default_value = DEFAULT_PACKAGE)]
    pub(super) package: String,
    /// Binary target (default: the package name).
    #[arg(long)]
    pub(super) bin: Option<String>,
    /// Cargo target directory (default: <source>/target/veil-repro/build).
    #[arg(long)]
    pub(super) target_dir: Option<PathBuf>,
    /// Override SOURCE_DATE_EPOCH (default: `git log -1 --format=%ct` in <source>).
    #[arg(long)]
    pub(super) source_date_epoch: Option<u64>,
    /// Print the command and environment instead of running it.
    #[arg(long)]
    pub(super) print_command: bool,
}

/// The TEE backend of the server in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ImageTee {
    /// The hardware's (configfs-tsm, /dev/sev-guest, /dev/tdx_guest).
    Auto,
    /// Software-signed evidence: NO hardware protection (tests, demos).
    Simulated,
}

#[derive(Debug, Args)]
pub(super) struct ImageArgs {
    /// Output directory (created; must not exist or be empty). Nothing is written to it
    /// unless the whole image is built.
    #[arg(long)]
    pub(super) out: PathBuf,
    /// The model: a directory with manifest.json, or the default model's GGUF file
    /// [default: the default model, fetched by `veil-server fetch-model`].
    #[arg(long)]
    pub(super) model: Option<PathBuf>,
    /// A bzImage to boot instead of the pinned Debian kernel (needs --kernel-modules).
    #[arg(long, conflicts_with = "kernel_deb", requires = "kernel_modules")]
    pub(super) kernel: Option<PathBuf>,
    /// The /lib/modules/RELEASE tree of --kernel (modules.builtin and module files).
    #[arg(long, requires = "kernel")]
    pub(super) kernel_modules: Option<PathBuf>,
    /// The pinned Debian kernel package, already downloaded (checked against the pin).
    #[arg(long)]
    pub(super) kernel_deb: Option<PathBuf>,
    /// TEE backend of the server in the image.
    #[arg(long, value_enum, default_value_t = ImageTee::Auto)]
    pub(super) tee: ImageTee,
    /// TCP port the server listens on (all interfaces).
    #[arg(long, default_value_t = 8080)]
    pub(super) port: u16,
    /// The kernel command line's static network (`ip=` syntax; the default suits QEMU's
    /// user network).
    #[arg(long, default_value = veil_repro::image::QEMU_USER_NET)]
    pub(super) ip: String,
    /// vCPUs of the SEV-SNP guest (for the launch digest).
    #[arg(long, default_value_t = 2)]
    pub(super) vcpus: u32,
    /// vCPU type of the SEV-SNP guest (EPYC-v4, EPYC-Milan, EPYC-Genoa, ...).
    #[arg(long, default_value = "EPYC-v4")]
    pub(super) vcpu_type: String,
    /// AMD SEV OVMF (AmdSev build) to compute the SNP launch digest with.
    #[arg(long)]
    pub(super) ovmf: Option<PathBuf>,
    /// TDVF (OVMF.fd with TDX metadata) to compute MRTD with.
    #[arg(long)]
    pub(super) tdvf: Option<PathBuf>,
    /// The server binary [default: veil-server next to veil-repro].
    #[arg(long)]
    pub(super) server: Option<PathBuf>,
    /// The init binary [default: veil-image-init next to veil-repro].
    #[arg(long)]
    pub(super) init: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum MeasureCmd {
    /// SEV-SNP launch digest (same as `sev-snp-measure --mode snp`, same options).
    Snp(snp::SnpArgs),
    /// TDX MRTD, and RTMR1/RTMR2 for a direct kernel boot.
    Tdx {
        /// The unified TDVF/OVMF image (OVMF.fd).
        #[arg(long)]
        tdvf: PathBuf,
        /// Kernel as the firmware loads it (PE/COFF bzImage).
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Initrd.
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// Kernel command line.
        #[arg(long, requires = "kernel", default_value = "")]
        append: String,
        /// PAGE.ADD/MR.EXTEND order of the VMM.
        #[arg(long, value_enum, default_value_t = Order::SinglePass)]
        page_add_order: Order,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Order {
    SinglePass,
    TwoPass,
}

#[derive(Debug, Args)]
pub(super) struct ManifestArgs {
    /// The server binary.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    pub(super) binary: Option<PathBuf>,
    /// The model manifest file.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    pub(super) model_manifest: Option<PathBuf>,
    /// An image.json (`veil-repro image`): its binary sha256, model manifest digest and
    /// reference values (SNP launch digest, TDX values), plus any --snp-measurement.
    #[arg(long, conflicts_with_all = ["tdx_mrtd"])]
    pub(super) image: Option<PathBuf>,
    /// Allowed SNP launch digest (repeatable).
    #[arg(long = "snp-measurement")]
    pub(super) snp_measurements: Vec<String>,
    /// TDX MRTD.
    #[arg(long, requires_all = ["tdx_rtmr1", "tdx_rtmr2"])]
    pub(super) tdx_mrtd: Option<String>,
    /// TDX RTMR0, as recorded from a TD launched on the target host type (TDVF measures the
    /// host's ACPI tables and TD HOB into it, so it is not computed from source). With
    /// --tdx-mrtd or an --image that has TDX values; without it, policies write `"any"`.
    #[arg(long, value_name = "HEX48")]
    pub(super) tdx_rtmr0: Option<String>,
    /// TDX RTMR1.
    #[arg(long, requires = "tdx_mrtd")]
    tdx_rtmr1: Option<String>,
    /// TDX RTMR2.
    #[arg(long, requires = "tdx_mrtd")]
    tdx_rtmr2: Option<String>,
    /// The SEV-SNP TCB the release is deployed at, `BOOTLOADER,TEE,SNP,MICROCODE`: policies
    /// made from the manifest pin it as their `[tcb]` minimum.
    #[arg(long, value_name = "BL,TEE,SNP,UCODE")]
    pub(super) snp_min_tcb: Option<String>,
    /// The oldest Intel TCB evaluation data number the release accepts (TDX collateral).
    #[arg(long, value_name = "N")]
    pub(super) tdx_min_tcb_evaluation_number: Option<u32>,
    /// Source commit (default: `git rev-parse HEAD`).
    #[arg(long)]
    pub(super) source_commit: Option<String>,
    /// Toolchain (default: `rustc --version`).
    #[arg(long)]
    pub(super) toolchain: Option<String>,
    /// The Ed25519 secret key file (hex seed).
    #[arg(long)]
    pub(super) sign_key: PathBuf,
    /// Output file.
    #[arg(short, long)]
    pub(super) out: PathBuf,
}

pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Build(args) => build::build(args),
        Cmd::Diff { a, b } => build::diff(&a, &b),
        Cmd::Initrd {
            binary,
            model_manifest,
            uncompressed,
            out,
        } => {
            let server = read(&binary)?;
            let model = model_manifest.as_deref().map(read).transpose()?;
            let image = initrd::veil_initrd(server, model)?;
            let bytes = if uncompressed {
                image.to_cpio()
            } else {
                image.to_gzip()?
            };
            write(&out, &bytes)?;
            println!("{}  {}", sha256_hex(&bytes), out.display());
            Ok(())
        }
        Cmd::Image(args) => image::image(*args),
        Cmd::Measure(m) => measure_cmd(m),
        Cmd::Manifest(args) => release::manifest(args),
        Cmd::VerifyManifest { manifest, pubkey } => {
            let key = public_key_from_hex(&read_text(&pubkey)?)
                .with_context(|| format!("{}", pubkey.display()))?;
            let bytes = read(&manifest)?;
            let signed = SignedManifest::verify(&bytes, &key)
                .with_context(|| format!("{} does not verify", manifest.display()))?;
            println!("ok: signature valid");
            println!(
                "manifest digest (sha256): {}",
                hex::encode(signed.digest()?)
            );
            println!("binary sha256: {}", signed.manifest.binary_sha256);
            println!("source commit: {}", signed.manifest.source_commit);
            Ok(())
        }
        Cmd::Keygen {
            secret_out,
            public_out,
        } => release::keygen(&secret_out, &public_out),
    }
}

pub(super) fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}
pub(super) fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}
pub(super) fn write(p: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
}
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs a command in `dir` and returns its trimmed stdout.
pub(super) fn output_of(dir: &Path, program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn measure_cmd(m: MeasureCmd) -> Result<()> {
    match m {
        MeasureCmd::Snp(args) => println!("{}", snp::measure(args)?),
        MeasureCmd::Tdx {
            tdvf,
            kernel,
            initrd,
            append,
            page_add_order,
        } => {
            let tdvf = read(&tdvf)?;
            let kernel = kernel.as_deref().map(read).transpose()?;
            let initrd = initrd.as_deref().map(read).transpose()?;
            let m = measure(&TdxInputs {
                tdvf: &tdvf,
                kernel: kernel.as_deref(),
                initrd: initrd.as_deref(),
                append: &append,
                order: match page_add_order {
                    Order::SinglePass => PageAddOrder::SinglePass,
                    Order::TwoPass => PageAddOrder::TwoPass,
                },
            })?;
            println!("mrtd:  {}", hex::encode(m.mrtd));
            if let (Some(r1), Some(r2)) = (m.rtmr1, m.rtmr2) {
                println!("rtmr1: {}", r1.to_hex());
                println!("rtmr2: {}", r2.to_hex());
            }
        }
    }
    Ok(())
}
