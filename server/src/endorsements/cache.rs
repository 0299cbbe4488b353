//! What was fetched, for which request, from where and for how long it holds; the rule
//! that decides between serving, refreshing and refusing (pure: `now` comes in); and the
//! on-disk copy (one JSON file per request, written atomically). Endorsements are public
//! (AMD's and Intel's certificates, CRLs and signed TCB data): nothing here is tied to a
//! client or to evidence content.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use veil_attest::SnpCerts;
use veil_attest::snp::Product;

use super::EndorsementError;

/// What endorsements were asked for: enough to fetch them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// A VCEK and its chain: `path` is KDS's `{product}/{hwid}?blSPL=..` (the reported TCB
    /// is part of it, so a TCB change is a new request).
    Snp {
        /// The product.
        product: Product,
        /// The part of the URL after `/vcek/v1/`.
        path: String,
    },
    /// TDX collateral for a platform (FMSPC, upper-case hex) and its PCK CA.
    Tdx {
        /// FMSPC, 12 upper-case hex digits.
        fmspc: String,
        /// `processor` or `platform`.
        ca: String,
    },
}

impl Request {
    /// A file-system-safe name for this request.
    pub fn key(&self) -> String {
        match self {
            Self::Snp { product, path } => {
                let h = Sha256::digest(path.as_bytes());
                format!("snp-{}-{}", product.name(), hex::encode(&h[..12]))
            }
            Self::Tdx { fmspc, ca } => format!("tdx-{fmspc}-{ca}"),
        }
    }
}

/// The endorsements themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Payload {
    /// VCEK, ASK, ARK and (where KDS served one that verifies) the CRL.
    Snp(SnpCerts),
    /// dcap-qvl collateral.
    Tdx(Box<dcap_qvl::QuoteCollateralV3>),
}

/// One fetched set, with its validity window (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// What was asked for.
    pub request: Request,
    /// The URLs it came from.
    pub sources: Vec<String>,
    /// When it was fetched.
    pub fetched_at: u64,
    /// The latest issue date among its parts (not usable before).
    pub not_before: u64,
    /// The earliest `nextUpdate` / `notAfter` among its parts: after this the set no
    /// longer verifies and is not served.
    pub expires: u64,
    /// When to fetch it again (well before `expires`).
    pub refresh_at: u64,
    /// The endorsements.
    pub payload: Payload,
}

/// What to do with a cached entry at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, but fetch a newer one first if possible.
    Due,
    /// It no longer verifies: never serve it.
    Expired,
}

impl Entry {
    /// `refresh_at` for a set fetched at `fetched_at` valid until `expires`: halfway through
    /// what is left of its window, and no later than `max_age` after the fetch.
    pub fn refresh_time(fetched_at: u64, expires: u64, max_age: u64) -> u64 {
        let half = fetched_at + expires.saturating_sub(fetched_at) / 2;
        half.min(fetched_at.saturating_add(max_age))
    }

    /// Whether to serve, refresh or refuse this entry at `now`.
    pub fn freshness(&self, now: u64) -> Freshness {
        if now >= self.expires || now < self.not_before {
            Freshness::Expired
        } else if now >= self.refresh_at {
            Freshness::Due
        } else {
            Freshness::Fresh
        }
    }
}

/// Largest cache file read back.
const MAX_ENTRY_LEN: u64 = 1 << 20;

/// The on-disk cache: `DIR/KEY.json`.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, request: &Request) -> PathBuf {
        self.dir.join(format!("{}.json", request.key()))
    }

    /// The entry for `request`, if a readable one is on disk.
    pub fn load(&self, request: &Request) -> Option<Entry> {
        let e = read_entry(&self.path(request)).ok()?;
        (e.request == *request).then_some(e)
    }

    /// Every readable entry, sorted by file name; unreadable files are reported by name.
    pub fn list(&self) -> Result<Vec<Result<Entry, String>>, EndorsementError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EndorsementError::cache(&self.dir, &e)),
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths
            .iter()
            .map(|p| read_entry(p).map_err(|e| format!("{}: {e}", p.display())))
            .collect())
    }

    /// Writes `entry` (a temporary file, then a rename: readers never see half a file).
    pub fn store(&self, entry: &Entry) -> Result<(), EndorsementError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EndorsementError::cache(&self.dir, &e))?;
        let path = self.path(&entry.request);
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|e| EndorsementError::Invalid(format!("cache entry: {e}")))?;
        std::fs::write(&tmp, json).map_err(|e| EndorsementError::cache(&tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| EndorsementError::cache(&path, &e))
    }
}

fn read_entry(path: &Path) -> Result<Entry, String> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ENTRY_LEN).read_to_end(&mut buf))
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&buf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(not_before: u64, refresh_at: u64, expires: u64) -> Entry {
        Entry {
            request: Request::Tdx {
                fmspc: "00906ED50000".into(),
                ca: "processor".into(),
            },
            sources: vec!["https://pccs.example/x".into()],
            fetched_at: not_before,
            not_before,
            expires,
            refresh_at,
            payload: Payload::Snp(SnpCerts::default()),
        }
    }

    #[test]
    fn an_entry_is_fresh_then_due_then_expired() {
        let e = entry(100, 200, 300);
        assert_eq!(e.freshness(99), Freshness::Expired, "not yet valid");
        assert_eq!(e.freshness(100), Freshness::Fresh);
        assert_eq!(e.freshness(200), Freshness::Due);
        assert_eq!(e.freshness(299), Freshness::Due);
        assert_eq!(e.freshness(300), Freshness::Expired);
    }

    #[test]
    fn refresh_comes_halfway_and_within_max_age() {
        assert_eq!(Entry::refresh_time(0, 100, 1000), 50);
        assert_eq!(Entry::refresh_time(0, 30 * 86_400, 86_400), 86_400);
        assert_eq!(Entry::refresh_time(500, 400, 1000), 500, "already expired");
    }

    #[test]
    fn the_disk_cache_round_trips_and_keys_by_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = DiskCache::new(dir.path().join("sub"));
        let e = entry(1, 2, 3);
        assert!(cache.load(&e.request).is_none());
        cache.store(&e).expect("store");
        let back = cache.load(&e.request).expect("load");
        assert_eq!(back.expires, 3);
        let other = Request::Tdx {
            fmspc: "00906ED50000".into(),
            ca: "platform".into(),
        };
        assert!(cache.load(&other).is_none());
        std::fs::write(dir.path().join("sub/junk.json"), b"{").expect("junk");
        let listed = cache.list().expect("list");
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(Result::is_err));
    }
}
