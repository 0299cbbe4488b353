//! `image`: build the VM image (kernel, initrd, command line) and `image.json`.
//!
//! Everything is computed, then written to a fresh directory next to `--out` that becomes
//! `--out` only when complete: on any error nothing is written to `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use veil_repro::image::{
    self as img, IMAGE_JSON, IMAGE_RECORD_VERSION, ImageFiles, ImageRecord, ServerSettings,
    SnpLaunch, TdxRuntime,
};
use veil_repro::manifest::{ReferenceValues, TdxReferenceValues};
use veil_repro::snp::{SnpInputs, VmmType, launch_digest};
use veil_repro::tdx::{PageAddOrder, Rtmr, mrtd, rtmr1_events, rtmr2_events};

use super::image_inputs;
use super::{ImageArgs, ImageTee, read, sha256_hex, write};

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating veil-repro")?;
    Ok(exe.with_file_name(name))
}

fn existing(opt: &str, p: &Path) -> Result<()> {
    if !p.is_file() {
        bail!("--{opt} {}: no such file", p.display());
    }
    Ok(())
}

/// Checks the options that need no work, so bad input fails at once.
fn check_args(a: &ImageArgs) -> Result<()> {
    if veil_repro::snp::vcpu_type_sig(&a.vcpu_type).is_err() {
        bail!(
            "--vcpu-type {}: unknown vCPU type (EPYC, EPYC-v1..v4, EPYC-Rome, EPYC-Milan, \
             EPYC-Genoa, ...)",
            a.vcpu_type
        );
    }
    if a.vcpus == 0 {
        bail!("--vcpus must be at least 1");
    }
    for (opt, p) in [
        ("ovmf", &a.ovmf),
        ("tdvf", &a.tdvf),
        ("kernel", &a.kernel),
        ("kernel-deb", &a.kernel_deb),
        ("server", &a.server),
        ("init", &a.init),
    ] {
        if let Some(p) = p {
            existing(opt, p)?;
        }
    }
    if let Some(d) = &a.kernel_modules
        && !d.is_dir()
    {
        bail!("--kernel-modules {}: no such directory", d.display());
    }
    if a.out.exists()
        && std::fs::read_dir(&a.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "--out {}: exists and is not an empty directory",
            a.out.display()
        );
    }
    Ok(())
}

pub(super) fn image(a: ImageArgs) -> Result<()> {
    check_args(&a)?;
    let server_path = a
        .server
        .clone()
        .map_or_else(|| sibling("veil-server"), Ok)?;
    let init_path = a
        .init
        .clone()
        .map_or_else(|| sibling("veil-image-init"), Ok)?;
    existing("server", &server_path)?;
    existing("init", &init_path)?;
    let out = a.out.clone();
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().context("--out has no directory name")?;
    let partial = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let work = parent.join(format!(
        ".{}.work-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = build(&a, &server_path, &init_path, &partial, &work);
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(summary) => {
            if out.exists() {
                std::fs::remove_dir(&out)
                    .with_context(|| format!("replacing the empty {}", out.display()))?;
            }
            std::fs::rename(&partial, &out)
                .with_context(|| format!("moving the image to {}", out.display()))?;
            for line in summary {
                println!("{line}");
            }
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn build(
    a: &ImageArgs,
    server_path: &Path,
    init_path: &Path,
    dir: &Path,
    work: &Path,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let server = read(server_path)?;
    let init = read(init_path)?;
    let tee_auto = a.tee == ImageTee::Auto;
    let (model_manifest, model_files) = image_inputs::model(server_path, a.model.as_deref())?;
    let kernel = image_inputs::kernel(
        a.kernel.as_deref(),
        a.kernel_modules.as_deref(),
        a.kernel_deb.as_deref(),
        tee_auto,
        work,
    )?;
    let model_digest = veil_attest::model_manifest_digest_json(&model_manifest)
        .context("the model manifest's digest")?;
    let model_id = serde_json::from_slice::<serde_json::Value>(&model_manifest)?
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let libraries = image_inputs::libraries(&[("veil-server", &server), ("init", &init)])?;
    let settings = ServerSettings {
        port: a.port,
        tee: match a.tee {
            ImageTee::Auto => "auto",
            ImageTee::Simulated => "simulated",
        }
        .to_owned(),
    };
    let files = ImageFiles {
        init,
        server,
        libraries,
        modules: kernel.modules,
        model_manifest,
        model_files,
        settings: Some(settings.clone()),
    };
    let initrd = img::initrd(&files)?;
    let entries = img::initrd_entries(&initrd);
    let initrd_bytes = initrd.to_gzip()?;
    drop(initrd);
    let cmdline = img::cmdline(&a.ip);

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (vmlinuz_path, initrd_path) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    write(&vmlinuz_path, &kernel.vmlinuz)?;
    write(&initrd_path, &initrd_bytes)?;
    write(&dir.join("cmdline"), cmdline.as_bytes())?;

    let snp = match &a.ovmf {
        Some(ovmf) => {
            let digest = launch_digest(&SnpInputs {
                ovmf: ovmf.clone(),
                kernel: Some(vmlinuz_path.clone()),
                initrd: Some(initrd_path.clone()),
                append: Some(cmdline.clone()),
                vcpus: a.vcpus,
                vcpu_type: a.vcpu_type.clone(),
                vmm: VmmType::Qemu,
                guest_features: 0x1,
            })
            .with_context(|| format!("SNP launch digest with --ovmf {}", ovmf.display()))?;
            Some(SnpLaunch {
                vcpus: a.vcpus,
                vcpu_type: a.vcpu_type.clone(),
                ovmf_sha256: sha256_hex(&read(ovmf)?),
                launch_digest: digest.to_hex(),
            })
        }
        None => None,
    };
    // RTMR1 hashes the kernel as a PE/COFF image; a kernel without the EFI stub has none.
    let tdx = rtmr1_events(&kernel.vmlinuz).ok().map(|e1| TdxRuntime {
        rtmr1: Rtmr::replay(&e1).to_hex(),
        rtmr2: Rtmr::replay(&rtmr2_events(&cmdline, Some(&initrd_bytes))).to_hex(),
    });
    let tdx_reference = match (&a.tdvf, &tdx) {
        (Some(tdvf), Some(t)) => Some(TdxReferenceValues {
            mrtd: hex::encode(
                mrtd(&read(tdvf)?, PageAddOrder::SinglePass)
                    .with_context(|| format!("MRTD of --tdvf {}", tdvf.display()))?,
            ),
            rtmr0: None,
            rtmr1: t.rtmr1.clone(),
            rtmr2: t.rtmr2.clone(),
        }),
        (Some(_), None) => bail!("--tdvf: the kernel is not a PE/COFF image, no RTMR1"),
        _ => None,
    };
    let server_sha = entries
        .iter()
        .find(|e| e.path == img::SERVER)
        .map(|e| e.sha256.clone())
        .context("no server in the initrd")?;
    let files_sha: BTreeMap<String, String> = [
        ("vmlinuz", sha256_hex(&kernel.vmlinuz)),
        ("initrd.img", sha256_hex(&initrd_bytes)),
        ("cmdline", sha256_hex(cmdline.as_bytes())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let record = ImageRecord {
        version: IMAGE_RECORD_VERSION,
        files: files_sha.clone(),
        cmdline: cmdline.clone(),
        kernel: kernel.source,
        binary_sha256: server_sha,
        model_manifest_digest: hex::encode(model_digest),
        model_id,
        tee: settings.tee,
        port: a.port,
        simulated_measurement: hex::encode(veil_attest::attester::Simulated::measurement_of(
            &files.server,
        )),
        reference_values: ReferenceValues {
            snp_measurements: snp.iter().map(|s| s.launch_digest.clone()).collect(),
            tdx: tdx_reference,
            ..Default::default()
        },
        snp,
        tdx,
        initrd_files: entries,
    };
    let json = record.to_json()?;
    write(&dir.join(IMAGE_JSON), &json)?;
    let mut summary: Vec<String> = files_sha
        .iter()
        .map(|(name, sha)| format!("{sha}  {}", a.out.join(name).display()))
        .collect();
    summary.push(format!(
        "{}  {}",
        hex::encode(Sha256::digest(&json)),
        a.out.join(IMAGE_JSON).display()
    ));
    summary.push(format!("binary_sha256 {}", record.binary_sha256));
    summary.push(format!(
        "model_manifest_digest {}",
        record.model_manifest_digest
    ));
    if let Some(s) = &record.snp {
        summary.push(format!("snp launch digest {}", s.launch_digest));
    }
    Ok(summary)
}
