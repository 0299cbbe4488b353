//! `manifest` and `keygen`: sign a release; the secret key is never printed.

use std::path::Path;

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use veil_repro::image::ImageRecord;
use veil_repro::manifest::{
    MANIFEST_VERSION, ReferenceValues, ReleaseManifest, TdxReferenceValues, key_bytes_from_hex,
    sign,
};

use super::{ManifestArgs, output_of, read, read_text, sha256_hex, write};

pub(super) fn manifest(args: ManifestArgs) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let source_commit = match args.source_commit {
        Some(c) => c,
        None => output_of(&cwd, "git", &["rev-parse", "HEAD"])?,
    };
    let toolchain = match args.toolchain {
        Some(t) => t,
        None => output_of(&cwd, "rustc", &["--version"])?,
    };
    let tdx = match (args.tdx_mrtd, args.tdx_rtmr1, args.tdx_rtmr2) {
        (Some(mrtd), Some(rtmr1), Some(rtmr2)) => Some(TdxReferenceValues {
            mrtd: mrtd.to_ascii_lowercase(),
            rtmr0: None,
            rtmr1: rtmr1.to_ascii_lowercase(),
            rtmr2: rtmr2.to_ascii_lowercase(),
        }),
        _ => None,
    };
    let mut snp_measurements: Vec<String> = args
        .snp_measurements
        .iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let (binary_sha256, model_manifest_digest, tdx) =
        match (&args.image, &args.binary, &args.model_manifest) {
            (Some(image), _, _) => {
                let record: ImageRecord = serde_json::from_slice(&read(image)?)
                    .with_context(|| format!("{} is not an image.json", image.display()))?;
                snp_measurements.extend(record.reference_values.snp_measurements);
                (
                    record.binary_sha256,
                    record.model_manifest_digest,
                    record.reference_values.tdx,
                )
            }
            (None, Some(binary), Some(model_manifest)) => (
                sha256_hex(&read(binary)?),
                // The canonical digest the server attests (`veil_attest::model_manifest_digest`),
                // not the hash of the file's bytes.
                hex::encode(
                    veil_attest::model_manifest_digest_json(&read(model_manifest)?)
                        .with_context(|| format!("{}", model_manifest.display()))?,
                ),
                tdx,
            ),
            _ => anyhow::bail!("give --image, or --binary and --model-manifest"),
        };
    let tdx = match (tdx, args.tdx_rtmr0) {
        (Some(mut t), Some(r0)) => {
            t.rtmr0 = Some(r0.to_ascii_lowercase());
            Some(t)
        }
        (None, Some(_)) => anyhow::bail!(
            "--tdx-rtmr0 needs TDX reference values (--tdx-mrtd, or an --image built with --tdvf)"
        ),
        (t, None) => t,
    };
    let manifest = ReleaseManifest {
        version: MANIFEST_VERSION,
        binary_sha256,
        model_manifest_digest,
        source_commit,
        toolchain,
        reference_values: ReferenceValues {
            snp_measurements,
            tdx,
            snp_min_tcb: args
                .snp_min_tcb
                .as_deref()
                .map(parse_snp_min_tcb)
                .transpose()?,
            tdx_min_tcb_evaluation_number: args.tdx_min_tcb_evaluation_number,
        },
    };
    let seed = key_bytes_from_hex("secret key", &read_text(&args.sign_key)?)?;
    let key = SigningKey::from_bytes(&seed);
    let signed = sign(manifest, &key)?;
    let bytes = signed.to_file_bytes()?;
    write(&args.out, &bytes)?;
    println!("{}  {}", sha256_hex(&bytes), args.out.display());
    Ok(())
}

pub(super) fn keygen(secret_out: &Path, public_out: &Path) -> Result<()> {
    use std::io::{Read, Write};
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading /dev/urandom")?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(secret_out)
        .with_context(|| format!("creating {}", secret_out.display()))?;
    // Byte by byte, so no heap copy of the secret is left behind.
    for b in key.to_bytes() {
        write!(f, "{b:02x}")?;
    }
    writeln!(f)?;
    let public = hex::encode(key.verifying_key().to_bytes());
    write(public_out, format!("{public}\n").as_bytes())?;
    println!("public key: {public}");
    Ok(())
}

/// `BOOTLOADER,TEE,SNP,MICROCODE`, each 0..=255.
fn parse_snp_min_tcb(text: &str) -> Result<veil_repro::manifest::SnpMinTcb> {
    let parts: Vec<u8> = text
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| {
            format!("--snp-min-tcb {text:?}: expected BOOTLOADER,TEE,SNP,MICROCODE")
        })?;
    match parts[..] {
        [bootloader, tee, snp, microcode] => Ok(veil_repro::manifest::SnpMinTcb {
            bootloader,
            tee,
            snp,
            microcode,
        }),
        _ => anyhow::bail!(
            "--snp-min-tcb {text:?}: expected four numbers, BOOTLOADER,TEE,SNP,MICROCODE"
        ),
    }
}
