//! A stand-in for the kernel's configfs-tsm tree, in a real temporary directory, for tests
//! (feature `testing`). It follows the kernel's semantics: `mkdir` creates the entry's
//! attributes; a write to `inblob` must be 64 bytes, bumps `generation` and fills `outblob`
//! and `auxblob`; `rmdir` drops the entry with its attributes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::TsmFs;

/// Behaviour of the fake kernel.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FakeTsmConfig {
    /// Content of `provider` (`sev_guest`, `tdx_guest`); `None`: the attribute is missing.
    pub provider: Option<String>,
    /// What `outblob` returns after a write (a captured report or quote).
    pub outblob: Vec<u8>,
    /// What `auxblob` returns after a write (an SNP certificate table).
    pub auxblob: Vec<u8>,
    /// How many attempts another writer races (bumps `generation` once more).
    pub races: u32,
    /// Accept only this many bytes of each `inblob` write.
    pub short_write: Option<usize>,
}

impl FakeTsmConfig {
    /// A fake with this provider and output.
    pub fn new(provider: Option<&str>, outblob: Vec<u8>, auxblob: Vec<u8>) -> Self {
        Self {
            provider: provider.map(str::to_owned),
            outblob,
            auxblob,
            races: 0,
            short_write: None,
        }
    }
}

/// The fake configfs-tsm; [`TsmFs`] over a temporary directory.
#[derive(Debug)]
pub struct FakeTsm {
    cfg: Mutex<FakeTsmConfig>,
    inblobs: Mutex<Vec<Vec<u8>>>,
    entries: Mutex<Vec<PathBuf>>,
}

impl FakeTsm {
    /// A fake kernel behaving as `cfg` says.
    pub fn new(cfg: FakeTsmConfig) -> Self {
        Self {
            cfg: Mutex::new(cfg),
            inblobs: Mutex::new(Vec::new()),
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Every `inblob` the kernel accepted.
    pub fn inblobs(&self) -> Vec<Vec<u8>> {
        self.inblobs.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every entry directory created.
    pub fn entries(&self) -> Vec<PathBuf> {
        self.entries.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn bump(entry: &Path, by: u64) -> std::io::Result<()> {
        let g: u64 = std::fs::read_to_string(entry.join("generation"))?
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(entry.join("generation"), format!("{}\n", g + by))
    }
}

fn einval(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned())
}

impl TsmFs for FakeTsm {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)?;
        let cfg = self.cfg.lock().map_err(|_| einval("poisoned"))?.clone();
        if let Some(p) = &cfg.provider {
            std::fs::write(path.join("provider"), format!("{p}\n"))?;
        }
        std::fs::write(path.join("generation"), "0\n")?;
        for f in ["inblob", "outblob", "auxblob"] {
            std::fs::write(path.join(f), b"")?;
        }
        if let Ok(mut e) = self.entries.lock() {
            e.push(path.to_owned());
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn read(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        let mut v = std::fs::read(path)?;
        v.truncate(limit + 1);
        Ok(v)
    }

    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<usize> {
        let entry = path.parent().ok_or_else(|| einval("no entry"))?;
        if path.file_name().is_none_or(|n| n != "inblob") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "read-only attribute",
            ));
        }
        let mut cfg = self.cfg.lock().map_err(|_| einval("poisoned"))?;
        if cfg.provider.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no provider",
            ));
        }
        let taken = cfg.short_write.unwrap_or(data.len()).min(data.len());
        if taken == data.len() && data.len() != 64 {
            return Err(einval("inblob takes exactly 64 bytes"));
        }
        std::fs::write(path, &data[..taken])?;
        if let Ok(mut v) = self.inblobs.lock() {
            v.push(data[..taken].to_vec());
        }
        Self::bump(entry, 1)?;
        std::fs::write(entry.join("outblob"), &cfg.outblob)?;
        std::fs::write(entry.join("auxblob"), &cfg.auxblob)?;
        if cfg.races > 0 {
            cfg.races -= 1;
            Self::bump(entry, 1)?;
        }
        Ok(taken)
    }
}
