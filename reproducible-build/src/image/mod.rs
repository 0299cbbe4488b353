//! The VM image that serves: kernel, initrd and command line, and `image.json`, the record
//! of what they are and what they measure to.
//!
//! The initrd holds Veil's init (`veil-image-init`) as `/init`, `veil-server` as
//! `/bin/veil-server` with the shared libraries both need, the kernel modules the image
//! needs (`kernel`), the model manifest (`/etc/veil/model-manifest.json`) and the model's
//! files (`/model/`), and the server's arguments (`/etc/veil/server.args`). Every piece is
//! given as bytes; the `veil-repro image` command reads the files, fetches the kernel and
//! measures the result. Same bytes in, same initrd out ([`crate::initrd`]).

pub mod elf_libs;
pub mod kernel;
mod record;

pub use record::{
    IMAGE_JSON, IMAGE_RECORD_VERSION, ImageRecord, KernelSource, SnpLaunch, TdxRuntime,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ReproError;
use crate::initrd::Initrd;

/// Where the model's files are in the image.
pub const MODEL_DIR: &str = "/model";
/// The model manifest baked into the image: the server refuses any model but this one.
pub const MODEL_MANIFEST: &str = "/etc/veil/model-manifest.json";
/// The server binary in the image.
pub const SERVER: &str = "/bin/veil-server";
/// Where the image's modules are (the init loads them in the order of `/etc/veil/modules`).
pub const MODULE_DIR: &str = "/lib/modules";
/// The `ip=` parameter for QEMU's user network (guest 10.0.2.15/24, gateway 10.0.2.2).
pub const QEMU_USER_NET: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off";

/// The kernel command line: serial console, reboot (QEMU `-no-reboot`: exit) on panic, the
/// network. Measured with the kernel and initrd on SEV-SNP (`kernel-hashes=on`) and in
/// TDX's RTMR2.
pub fn cmdline(ip: &str) -> String {
    format!("console=ttyS0 panic=-1 {ip}")
}

/// The settings the server runs with, baked into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// TCP port on all interfaces.
    pub port: u16,
    /// `--tee` of `veil-server serve`: `auto` or `simulated`.
    pub tee: String,
}

impl ServerSettings {
    /// The arguments of `veil-server`: serve the baked model only, sealed requests only.
    /// API keys are off: the image has no key database (callers are authenticated by the
    /// attestation, not by keys; put a key-checking proxy in front if needed).
    pub fn args(&self) -> Vec<String> {
        [
            "serve",
            "--listen",
            &format!("0.0.0.0:{}", self.port),
            "--tee",
            &self.tee,
            "--model",
            MODEL_DIR,
            "--image-model-manifest",
            MODEL_MANIFEST,
            "--no-auth",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// Everything that goes into the initrd, as bytes.
#[derive(Debug, Clone, Default)]
pub struct ImageFiles {
    /// The init (`veil-image-init`).
    pub init: Vec<u8>,
    /// The server (`veil-server`).
    pub server: Vec<u8>,
    /// Shared libraries by absolute path in the image (the ELF interpreter included).
    pub libraries: Vec<(String, Vec<u8>)>,
    /// Kernel modules by path under [`MODULE_DIR`], in load order.
    pub modules: Vec<(String, Vec<u8>)>,
    /// The model manifest (JSON).
    pub model_manifest: Vec<u8>,
    /// The model's files by name.
    pub model_files: Vec<(String, Vec<u8>)>,
    /// The server's settings.
    pub settings: Option<ServerSettings>,
}

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Assembles the initrd. The model's files must match the manifest ([`check_model`]).
pub fn initrd(f: &ImageFiles) -> Result<Initrd, ReproError> {
    check_model(&f.model_manifest, &f.model_files)?;
    let mut i = Initrd::new();
    i.add_file("init", 0o755, f.init.clone())?;
    i.add_file(rel(SERVER), 0o755, f.server.clone())?;
    for (path, bytes) in &f.libraries {
        i.add_file(rel(path), 0o755, bytes.clone())?;
    }
    let mut list = String::new();
    for (path, bytes) in &f.modules {
        let full = format!("{MODULE_DIR}/{path}");
        i.add_file(rel(&full), 0o644, bytes.clone())?;
        list.push_str(&full);
        list.push('\n');
    }
    i.add_file("etc/veil/modules", 0o444, list.into_bytes())?;
    i.add_file(rel(MODEL_MANIFEST), 0o444, f.model_manifest.clone())?;
    for (name, bytes) in &f.model_files {
        i.add_file(&format!("{}/{name}", rel(MODEL_DIR)), 0o444, bytes.clone())?;
    }
    let settings = f
        .settings
        .as_ref()
        .ok_or_else(|| ReproError::ImageInput("no server settings".to_owned()))?;
    let mut args = settings.args().join("\n");
    args.push('\n');
    i.add_file("etc/veil/server.args", 0o444, args.into_bytes())?;
    for dir in ["proc", "sys", "dev", "tmp", "run"] {
        i.add_dir(dir, 0o755)?;
    }
    i.add_char_device("dev/console", 0o600, 5, 1)?;
    i.add_char_device("dev/null", 0o666, 1, 3)?;
    Ok(i)
}

#[derive(Deserialize)]
struct ManifestView {
    files: Vec<FileView>,
}

#[derive(Deserialize)]
struct FileView {
    name: String,
    size: u64,
    sha256: String,
}

/// The names of the files a model manifest lists.
pub fn model_file_names(manifest: &[u8]) -> Result<Vec<String>, ReproError> {
    let m: ManifestView = serde_json::from_slice(manifest)
        .map_err(|e| ReproError::ModelMismatch(format!("model manifest: {e}")))?;
    for f in &m.files {
        let ok = !f.name.is_empty()
            && !f.name.contains('/')
            && f.name != "."
            && f.name != ".."
            && f.name != "manifest.json";
        if !ok {
            return Err(ReproError::ModelMismatch(format!(
                "model manifest names a file {:?} that is not a plain file name",
                f.name
            )));
        }
    }
    Ok(m.files.into_iter().map(|f| f.name).collect())
}

/// Checks that `files` are exactly the manifest's files, with its sizes and SHA-256s.
pub fn check_model(manifest: &[u8], files: &[(String, Vec<u8>)]) -> Result<(), ReproError> {
    let m: ManifestView = serde_json::from_slice(manifest)
        .map_err(|e| ReproError::ModelMismatch(format!("model manifest: {e}")))?;
    model_file_names(manifest)?;
    if m.files.len() != files.len() {
        return Err(ReproError::ModelMismatch(format!(
            "the manifest lists {} files, the model has {}",
            m.files.len(),
            files.len()
        )));
    }
    for want in &m.files {
        let Some((_, bytes)) = files.iter().find(|(n, _)| n == &want.name) else {
            return Err(ReproError::ModelMismatch(format!(
                "{} is missing",
                want.name
            )));
        };
        let got = hex::encode(Sha256::digest(bytes));
        if bytes.len() as u64 != want.size || !got.eq_ignore_ascii_case(&want.sha256) {
            return Err(ReproError::ModelMismatch(format!(
                "{}: {} bytes, sha256 {got}; the manifest pins {} bytes, sha256 {}",
                want.name,
                bytes.len(),
                want.size,
                want.sha256
            )));
        }
    }
    Ok(())
}

/// One file of the initrd in `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitrdEntry {
    /// Path in the image.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// The initrd's regular files, their sizes and SHA-256s, in path order.
pub fn initrd_entries(initrd: &Initrd) -> Vec<InitrdEntry> {
    initrd
        .files()
        .map(|(path, bytes)| InitrdEntry {
            path: format!("/{path}"),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
        .collect()
}

#[cfg(test)]
mod tests;
