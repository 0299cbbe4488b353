//! The inputs of `veil-repro image` from the file system: the pinned kernel package (via
//! `apt-get download`, sha256-checked, unpacked with `dpkg-deb`), its modules (inflated
//! with `xz`/`zstd`/`gzip` to read their dependencies), the shared libraries of the init
//! and the server, and the model with its manifest.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use veil_repro::image::elf_libs::dynamic_deps;
use veil_repro::image::kernel::{
    self, DEFAULT_KERNEL_DEB_SHA256, DEFAULT_KERNEL_PACKAGE, DEFAULT_KERNEL_RELEASE,
    DEFAULT_KERNEL_VERSION, DRIVERS, ModuleTree, Need, TEE_DRIVERS,
};
use veil_repro::image::{self as img, KernelSource};

use super::{output_of, read, sha256_hex};

/// Files by name (or path), with their bytes.
pub(super) type NamedFiles = Vec<(String, Vec<u8>)>;

/// The kernel and the modules the image loads.
pub(super) struct Kernel {
    pub(super) vmlinuz: Vec<u8>,
    pub(super) modules: Vec<(String, Vec<u8>)>,
    pub(super) source: KernelSource,
}

fn cache_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = non_empty("VEIL_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("veil"));
    }
    let home = non_empty("HOME").context("no cache directory: set VEIL_CACHE_DIR or HOME")?;
    Ok(PathBuf::from(home).join(".cache").join("veil"))
}

/// The pinned kernel package: `deb` if given, else the cached or downloaded file; checked
/// against the pinned sha256 either way.
fn kernel_deb(deb: Option<&Path>) -> Result<PathBuf> {
    let check = |p: &Path| -> Result<()> {
        let got = sha256_hex(&read(p)?);
        if got != DEFAULT_KERNEL_DEB_SHA256 {
            bail!(
                "{} has sha256 {got}, not the pinned {DEFAULT_KERNEL_DEB_SHA256} of \
                 {DEFAULT_KERNEL_PACKAGE} {DEFAULT_KERNEL_VERSION}",
                p.display()
            );
        }
        Ok(())
    };
    if let Some(p) = deb {
        check(p)?;
        return Ok(p.to_owned());
    }
    let dir = cache_dir()?.join("kernels");
    let cached = dir.join(format!("{DEFAULT_KERNEL_DEB_SHA256}.deb"));
    if cached.exists() && check(&cached).is_ok() {
        return Ok(cached);
    }
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let spec = format!("{DEFAULT_KERNEL_PACKAGE}={DEFAULT_KERNEL_VERSION}");
    let got = output_of(&tmp, "apt-get", &["download", "-q", &spec]).with_context(|| {
        format!(
            "downloading the pinned kernel {spec} (Debian bookworm's archive must be an apt \
             source; or pass --kernel-deb FILE, or --kernel with --kernel-modules)"
        )
    });
    let found = got.and_then(|_| {
        std::fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download produced no .deb")
    });
    let result = found.and_then(|p| {
        check(&p)?;
        std::fs::rename(&p, &cached).with_context(|| format!("caching {}", cached.display()))
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    Ok(cached)
}

fn module_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            module_files(root, &p, out)?;
        } else if let (Some(_), Ok(rel)) = (
            kernel::module_name_of_path(&p.to_string_lossy()),
            p.strip_prefix(root),
        ) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// A module file's bytes, inflated.
fn inflate(path: &Path) -> Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => return read(path),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} to read {}", path.display()))?;
    if !out.status.success() {
        bail!("{tool} -dc {} failed", path.display());
    }
    Ok(out.stdout)
}

/// The modules of `root` (`/lib/modules/RELEASE`) the image needs, in load order.
fn modules(root: &Path, kernel_name: &str, tee_auto: bool) -> Result<Vec<(String, Vec<u8>)>> {
    let builtin_path = root.join("modules.builtin");
    let builtin = std::fs::read_to_string(&builtin_path).with_context(|| {
        format!(
            "reading {} (the kernel's list of built-in drivers)",
            builtin_path.display()
        )
    })?;
    let mut files = Vec::new();
    module_files(root, root, &mut files)?;
    files.sort();
    let tree = ModuleTree::new(&builtin, files.iter().map(String::as_str));
    let lacks = |driver: &str, why| veil_repro::ReproError::KernelLacksDriver {
        kernel: kernel_name.to_owned(),
        driver: driver.to_owned(),
        why,
    };
    for (d, need) in DRIVERS {
        if *need == Need::Required && !tree.has(d) {
            return Err(lacks(d, "the image's network needs it").into());
        }
    }
    if tee_auto && !TEE_DRIVERS.iter().any(|d| tree.has(d)) {
        return Err(lacks(
            "sev-guest or tdx-guest",
            "--tee auto needs a TEE guest driver (or build with --tee simulated)",
        )
        .into());
    }
    let wanted: Vec<&str> = DRIVERS
        .iter()
        .map(|(d, _)| *d)
        .filter(|d| tree.has(d))
        .collect();
    let order = tree.load_order(&wanted, &mut |rel| {
        let bytes = inflate(&root.join(rel))
            .map_err(|e| veil_repro::ReproError::KernelModule(format!("{rel}: {e:#}")))?;
        kernel::modinfo_depends(&bytes)
            .map_err(|e| veil_repro::ReproError::KernelModule(format!("{rel}: {e}")))
    })?;
    order
        .into_iter()
        .map(|rel| Ok((rel.clone(), read(&root.join(&rel))?)))
        .collect()
}

/// The kernel: `--kernel` with `--kernel-modules`, else the pinned Debian package.
pub(super) fn kernel(
    file: Option<&Path>,
    modules_dir: Option<&Path>,
    deb: Option<&Path>,
    tee_auto: bool,
    work: &Path,
) -> Result<Kernel> {
    if let Some(file) = file {
        let dir = modules_dir.context(
            "--kernel needs --kernel-modules DIR (its /lib/modules/RELEASE tree, with \
             modules.builtin), so the drivers the image needs can be checked",
        )?;
        let name = file.display().to_string();
        let modules = modules(dir, &name, tee_auto)?;
        return Ok(Kernel {
            vmlinuz: read(file)?,
            source: KernelSource {
                kind: "file".to_owned(),
                package: String::new(),
                package_sha256: String::new(),
                modules: modules.iter().map(|(p, _)| p.clone()).collect(),
            },
            modules,
        });
    }
    let deb = kernel_deb(deb)?;
    let unpacked = work.join("kernel");
    output_of(
        work,
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), &unpacked.to_string_lossy()],
    )
    .with_context(|| format!("unpacking {}", deb.display()))?;
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{DEFAULT_KERNEL_RELEASE}"));
    let root = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| unpacked.join(d).join(DEFAULT_KERNEL_RELEASE))
        .find(|p| p.is_dir())
        .context("the kernel package has no modules directory")?;
    let modules = modules(&root, DEFAULT_KERNEL_PACKAGE, tee_auto)?;
    Ok(Kernel {
        vmlinuz: read(&vmlinuz)?,
        source: KernelSource {
            kind: "debian-package".to_owned(),
            package: format!("{DEFAULT_KERNEL_PACKAGE} {DEFAULT_KERNEL_VERSION}"),
            package_sha256: DEFAULT_KERNEL_DEB_SHA256.to_owned(),
            modules: modules.iter().map(|(p, _)| p.clone()).collect(),
        },
        modules,
    })
}

const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
];

/// The ELF interpreter and shared libraries `programs` need, transitively, by their path
/// in the image (libraries in `/lib/x86_64-linux-gnu`, where glibc's loader looks).
pub(super) fn libraries(programs: &[(&str, &[u8])]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut queue: Vec<(String, Vec<u8>)> = programs
        .iter()
        .map(|(n, b)| ((*n).to_owned(), b.to_vec()))
        .collect();
    while let Some((name, bytes)) = queue.pop() {
        let (interp, needed) =
            dynamic_deps(&bytes).with_context(|| format!("reading {name}'s dynamic section"))?;
        if let Some(i) = interp
            && !found.contains_key(&i)
        {
            let b = read(Path::new(&i))?;
            found.insert(i.clone(), b.clone());
            queue.push((i, b));
        }
        for lib in needed {
            let image_path = format!("/lib/x86_64-linux-gnu/{lib}");
            if found.contains_key(&image_path)
                || found.keys().any(|k| k.ends_with(&format!("/{lib}")))
            {
                continue;
            }
            let host = LIBRARY_DIRS
                .iter()
                .map(|d| Path::new(d).join(&lib))
                .find(|p| p.exists())
                .with_context(|| {
                    format!("{name} needs {lib}, found in none of {LIBRARY_DIRS:?}")
                })?;
            let b = read(&host)?;
            found.insert(image_path.clone(), b.clone());
            queue.push((image_path, b));
        }
    }
    Ok(found.into_iter().collect())
}

/// The model: its manifest (JSON bytes) and files. A directory has `manifest.json`; a
/// single file must be the default model (the server's `manifest --model` names its
/// manifest); no `--model` fetches the default model through the server
/// (`veil-server fetch-model`: pinned, cached).
pub(super) fn model(server: &Path, model: Option<&Path>) -> Result<(Vec<u8>, NamedFiles)> {
    let cwd = std::env::current_dir()?;
    let fetched;
    let model = match model {
        Some(m) => m,
        None => {
            let server_s = server.to_string_lossy();
            fetched = PathBuf::from(output_of(&cwd, &server_s, &["fetch-model"]).context(
                "fetching the default model with `veil-server fetch-model` (or pass --model)",
            )?);
            &fetched
        }
    };
    let (manifest, dir) = if model.is_dir() {
        (read(&model.join("manifest.json"))?, model.to_owned())
    } else {
        if !model.is_file() {
            bail!("--model {}: no such file or directory", model.display());
        }
        let text = output_of(
            &cwd,
            &server.to_string_lossy(),
            &["manifest", "--model", &model.to_string_lossy()],
        )
        .with_context(|| format!("--model {}: not the default model", model.display()))?;
        let json = text
            .rsplit_once("\ndigest:")
            .map(|(j, _)| j)
            .context("unexpected output of `veil-server manifest`")?;
        let dir = model.parent().map(Path::to_owned).unwrap_or_default();
        (json.as_bytes().to_vec(), dir)
    };
    let names =
        img::model_file_names(&manifest).with_context(|| format!("--model {}", model.display()))?;
    let files = names
        .into_iter()
        .map(|n| Ok((n.clone(), read(&dir.join(&n))?)))
        .collect::<Result<Vec<_>>>()?;
    img::check_model(&manifest, &files).with_context(|| format!("--model {}", model.display()))?;
    Ok((manifest, files))
}
