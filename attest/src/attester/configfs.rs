//! configfs-tsm (Linux >= 6.7): `mkdir` an entry under the report directory, write 64 bytes
//! to `inblob`, read `outblob` (SNP report or TDX quote) and `auxblob` (SNP certificate
//! table), check `generation` to detect a racing writer, then remove the entry.
//!
//! File operations go through [`TsmFs`], so tests can stand in a temporary directory that
//! behaves like the kernel's tree; [`StdFs`] is the real thing.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AttestError, Attester, Endorsements};
use crate::evidence::MAX_QUOTE_LEN;
use crate::snp::{MAX_CERT_TABLE_LEN, REPORT_LEN};
use crate::{Evidence, Platform, SnpCerts, SnpEvidence};

const MAX_ATTEMPTS: u32 = 3;
/// The smallest plausible quote: a 48-byte header and a 584-byte TD report.
const MIN_QUOTE_LEN: usize = 48 + 584;

/// The file operations configfs-tsm needs.
pub trait TsmFs: std::fmt::Debug + Send + Sync {
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// `mkdir`.
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    /// `rmdir` (configfs removes the attributes with the entry).
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Reads at most `limit + 1` bytes (so the caller can tell an oversized file).
    fn read(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>>;
    /// One `write(2)` of `data`; returns the number of bytes the kernel took.
    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<usize>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl TsmFs for StdFs {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn read(&self, path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(path)?
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<usize> {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write(data)
    }
}

/// The configfs-tsm backend.
#[derive(Debug, Clone)]
pub struct ConfigfsTsm {
    root: PathBuf,
    fs: Arc<dyn TsmFs>,
    endorsements: Endorsements,
}

static ENTRY_SEQ: AtomicU64 = AtomicU64::new(0);

struct Output {
    provider: String,
    outblob: Vec<u8>,
    auxblob: Vec<u8>,
}

impl ConfigfsTsm {
    /// The backend on the real file system.
    pub fn new(root: PathBuf, endorsements: Endorsements) -> Self {
        Self::with_fs(root, endorsements, Arc::new(StdFs))
    }

    /// The backend on a given file system (tests).
    pub fn with_fs(root: PathBuf, endorsements: Endorsements, fs: Arc<dyn TsmFs>) -> Self {
        Self {
            root,
            fs,
            endorsements,
        }
    }

    fn read(&self, path: &Path, limit: usize, what: &'static str) -> Result<Vec<u8>, AttestError> {
        let v = self
            .fs
            .read(path, limit)
            .map_err(|e| AttestError::io(path, e))?;
        if v.len() > limit {
            return Err(AttestError::OutputSize {
                what,
                got: v.len(),
                expected: format!("at most {limit}"),
            });
        }
        Ok(v)
    }

    fn generation(&self, entry: &Path) -> Result<u64, AttestError> {
        let p = entry.join("generation");
        let raw = self.read(&p, 32, "generation")?;
        String::from_utf8_lossy(&raw)
            .trim()
            .parse()
            .map_err(|_| AttestError::OutputSize {
                what: "generation",
                got: raw.len(),
                expected: "a decimal counter".into(),
            })
    }

    /// One attempt on a fresh entry. `Ok(Err((g0, g1)))` means another writer raced us.
    fn attempt(
        &self,
        entry: &Path,
        report_data: &[u8; 64],
    ) -> Result<Result<Output, (u64, u64)>, AttestError> {
        let provider_path = entry.join("provider");
        let provider = match self.fs.read(&provider_path, 64) {
            Ok(p) => String::from_utf8_lossy(&p).trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(AttestError::io(&provider_path, e)),
        };
        if provider.is_empty() {
            return Err(AttestError::NoProvider(entry.to_owned()));
        }
        let before = self.generation(entry)?;
        let inblob = entry.join("inblob");
        let written = self
            .fs
            .write(&inblob, report_data)
            .map_err(|e| AttestError::io(&inblob, e))?;
        if written != report_data.len() {
            return Err(AttestError::ShortInblob { written });
        }
        let outblob = self.read(&entry.join("outblob"), MAX_QUOTE_LEN, "outblob")?;
        let auxblob = if provider == "sev_guest" {
            match self.fs.read(&entry.join("auxblob"), MAX_CERT_TABLE_LEN) {
                Ok(a) if a.len() > MAX_CERT_TABLE_LEN => {
                    return Err(AttestError::OutputSize {
                        what: "auxblob",
                        got: a.len(),
                        expected: format!("at most {MAX_CERT_TABLE_LEN}"),
                    });
                }
                Ok(a) => a,
                // Hosts that supply no certificates leave auxblob empty or unreadable.
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let after = self.generation(entry)?;
        if after != before + 1 {
            return Ok(Err((before, after)));
        }
        Ok(Ok(Output {
            provider,
            outblob,
            auxblob,
        }))
    }

    fn evidence(&self, out: Output) -> Result<Evidence, AttestError> {
        match out.provider.as_str() {
            "sev_guest" => {
                if out.outblob.len() != REPORT_LEN {
                    return Err(AttestError::OutputSize {
                        what: "outblob (SNP report)",
                        got: out.outblob.len(),
                        expected: REPORT_LEN.to_string(),
                    });
                }
                let from_host = if out.auxblob.iter().any(|&b| b != 0) {
                    SnpCerts::from_cert_table(&out.auxblob)?
                } else {
                    SnpCerts::default()
                };
                let certs = if from_host.vcek.is_some() || from_host.vlek.is_some() {
                    from_host
                } else {
                    self.endorsements.snp_certs(&out.outblob)?
                };
                Ok(Evidence::SevSnp(SnpEvidence::new(out.outblob, certs)))
            }
            "tdx_guest" => {
                if out.outblob.len() < MIN_QUOTE_LEN {
                    return Err(AttestError::OutputSize {
                        what: "outblob (TDX quote)",
                        got: out.outblob.len(),
                        expected: format!("{MIN_QUOTE_LEN}..={MAX_QUOTE_LEN}"),
                    });
                }
                Ok(Evidence::Tdx(self.endorsements.tdx_evidence(out.outblob)?))
            }
            other => Err(AttestError::UnknownProvider(other.to_owned())),
        }
    }
}

impl Attester for ConfigfsTsm {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        if !self.fs.is_dir(&self.root) {
            return Err(AttestError::NotMounted(self.root.clone()));
        }
        let mut last = (0, 0);
        for _ in 0..MAX_ATTEMPTS {
            let name = format!(
                "veil-{}-{}",
                std::process::id(),
                ENTRY_SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let entry = self.root.join(name);
            self.fs
                .create_dir(&entry)
                .map_err(|e| AttestError::io(&entry, e))?;
            let result = self.attempt(&entry, report_data);
            // The entry is ours; remove it whatever happened (configfs drops its attributes).
            let _ = self.fs.remove_dir(&entry);
            match result? {
                Ok(out) => return self.evidence(out),
                Err(gens) => last = gens,
            }
        }
        Err(AttestError::Raced {
            attempts: MAX_ATTEMPTS,
            before: last.0,
            after: last.1,
        })
    }

    fn platform(&self) -> Option<Platform> {
        None
    }

    fn name(&self) -> &'static str {
        "configfs-tsm"
    }
}
