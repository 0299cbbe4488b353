//! Endorsements that keep themselves fresh: the VCEK, ASK/ARK and CRL of an SEV-SNP chip
//! from AMD's KDS (`kds.rs`), and TDX collateral from Intel's PCS or a PCCS (`pcs.rs`),
//! fetched when the host supplies none, cached on disk ([`cache`]) and handed to the
//! attester through [`veil_attest::attester::EndorsementSource`], so that the evidence a
//! client receives verifies offline in one round trip.
//!
//! The rules, in [`Endorser::get`]: a cached set is served while it is fresh; once its
//! refresh time passes (halfway to its earliest `nextUpdate`/`notAfter`, at most a day
//! after the fetch) a new set is fetched: by the background refresher where one runs (an
//! attestation request then never waits for a refresh), else by the request that finds
//! it due. If that fails the cached one is still served (and the fetch is retried no
//! sooner than `retry_after_failure`). A set past its expiry is never served: the
//! attester fails, `/v1/attestation` answers 503 and the log says which set expired when.
//! A new reported TCB (SNP) is a new request and is fetched.
//!
//! Time comes from a [`Clock`] (tests pin it to the vectors' dates). Fetches run on the
//! endorser's own small runtime, so the synchronous attester can call it from a blocking
//! thread or from `main`. Nothing here is tied to a client: endorsements are public.

pub mod cache;
mod error;
mod http;
mod kds;
mod pcs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use veil_attest::attester::{AttestError, EndorsementSource};
use veil_attest::snp::{Product, kds_query};
use veil_attest::{SnpCerts, UnixTime};

pub use cache::{DiskCache, Entry, Freshness, Payload, Request};
pub use error::EndorsementError;
pub use http::Limits;

/// AMD's Key Distribution Service.
pub const AMD_KDS_URL: &str = "https://kdsintf.amd.com";
/// Intel's Provisioning Certification Service.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";

/// Where time comes from.
pub trait Clock: std::fmt::Debug + Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Where endorsements come from and how they are kept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndorsementConfig {
    /// AMD KDS or a mirror with its paths.
    pub kds_url: String,
    /// Intel PCS or a PCCS with its v4 API.
    pub pccs_url: String,
    /// The on-disk cache.
    pub cache_dir: PathBuf,
    /// The product of SNP reports that do not name one (report v2).
    pub snp_product: Option<Product>,
    /// Timeouts, retries, backoff.
    pub limits: Limits,
    /// The longest a set is served before a refresh is tried.
    pub max_age: Duration,
    /// After a failed fetch, the wait before the next try.
    pub retry_after_failure: Duration,
    /// How often a background thread refreshes due sets; `None`: only on demand.
    pub refresh_every: Option<Duration>,
}

impl EndorsementConfig {
    /// AMD KDS and Intel PCS, cached in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            kds_url: AMD_KDS_URL.to_owned(),
            pccs_url: INTEL_PCS_URL.to_owned(),
            cache_dir,
            snp_product: None,
            limits: Limits::default(),
            max_age: Duration::from_secs(24 * 3600),
            retry_after_failure: Duration::from_secs(300),
            refresh_every: Some(Duration::from_secs(600)),
        }
    }
}

/// What a fetch returned, before the endorser dates it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) sources: Vec<String>,
    pub(crate) not_before: u64,
    pub(crate) expires: u64,
    pub(crate) payload: Payload,
}

#[derive(Debug, Default)]
struct Slot {
    entry: Option<Entry>,
    retry_after: u64,
    last_error: String,
    /// The latest quote for a TDX request, in memory only: the collateral is verified
    /// with it before it replaces the cached set.
    quote: Option<Vec<u8>>,
}

/// A runtime that may be dropped anywhere (also inside another runtime).
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Fetches, caches and serves endorsements.
#[derive(Debug)]
pub struct Endorser {
    config: EndorsementConfig,
    http: http::Http,
    clock: Arc<dyn Clock>,
    disk: DiskCache,
    slots: Mutex<HashMap<String, Slot>>,
    /// One fetch at a time: concurrent requests for a due set wait for one fetch.
    fetching: Mutex<()>,
    runtime: OwnRuntime,
}

fn rfc3339(t: u64) -> String {
    UnixTime(t).to_rfc3339()
}

impl Endorser {
    /// An endorser; starts the background refresher if `config.refresh_every` says so.
    pub fn new(
        config: EndorsementConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, EndorsementError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("veil-endorse")
            .enable_all()
            .build()
            .map_err(|e| EndorsementError::Runtime(e.to_string()))?;
        let this = Arc::new(Self {
            http: http::Http::new(config.limits)?,
            disk: DiskCache::new(config.cache_dir.clone()),
            config,
            clock,
            slots: Mutex::new(HashMap::new()),
            fetching: Mutex::new(()),
            runtime: OwnRuntime(Some(runtime)),
        });
        if let Some(every) = this.config.refresh_every {
            let weak = Arc::downgrade(&this);
            std::thread::Builder::new()
                .name("veil-endorse-refresh".into())
                .spawn(move || refresh_loop(&weak, every))
                .map_err(|e| EndorsementError::Runtime(e.to_string()))?;
        }
        Ok(this)
    }

    /// The on-disk cache.
    pub fn cache(&self) -> &DiskCache {
        &self.disk
    }

    /// Runs `fut` on the endorser's runtime and waits for it (from any thread that may block).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, EndorsementError> {
        let rt = self
            .runtime
            .0
            .as_ref()
            .ok_or_else(|| EndorsementError::Runtime("stopped".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| EndorsementError::Runtime("fetch task ended without an answer".into()))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current set for `request`: cached while fresh, fetched when missing or expired,
    /// and when due unless the background refresher will (a failed refresh keeps the cached
    /// set while it is valid); never an expired one. `quote`: the TDX quote the collateral
    /// must verify with.
    pub fn get(&self, request: &Request, quote: Option<&[u8]>) -> Result<Entry, EndorsementError> {
        self.get_or_refresh(request, quote, self.config.refresh_every.is_none())
    }

    fn get_or_refresh(
        &self,
        request: &Request,
        quote: Option<&[u8]>,
        refresh_due: bool,
    ) -> Result<Entry, EndorsementError> {
        let key = request.key();
        let now = self.clock.now();
        {
            let mut slots = self.slots();
            let slot = slots.entry(key.clone()).or_default();
            if slot.entry.is_none() {
                slot.entry = self.disk.load(request);
            }
            if let Some(q) = quote {
                slot.quote = Some(q.to_vec());
            }
            if let Some(e) = &slot.entry {
                match e.freshness(now) {
                    Freshness::Fresh => return Ok(e.clone()),
                    Freshness::Due if !refresh_due || now < slot.retry_after => {
                        return Ok(e.clone());
                    }
                    _ => {}
                }
            }
            if now < slot.retry_after {
                return Err(self.refusal(&key, slot, now));
            }
        }
        let _one = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
        // Another request may have fetched while this one waited.
        let fresh = self
            .slots()
            .get(&key)
            .and_then(|s| s.entry.clone())
            .filter(|e| e.freshness(now) == Freshness::Fresh);
        if let Some(e) = fresh {
            return Ok(e);
        }
        let quote = self.slots().get(&key).and_then(|s| s.quote.clone());
        let result = self.fetch(request, quote, now);
        let mut slots = self.slots();
        let slot = slots.entry(key.clone()).or_default();
        match result {
            Ok(entry) => {
                if let Err(e) = self.disk.store(&entry) {
                    tracing::warn!(error = %e, "endorsements fetched but not cached on disk");
                }
                tracing::info!(
                    key = %key,
                    expires = %rfc3339(entry.expires),
                    refresh_at = %rfc3339(entry.refresh_at),
                    "endorsements fetched"
                );
                slot.entry = Some(entry.clone());
                slot.retry_after = 0;
                slot.last_error.clear();
                Ok(entry)
            }
            Err(err) => {
                slot.retry_after = now + self.config.retry_after_failure.as_secs();
                slot.last_error = err.to_string();
                match &slot.entry {
                    Some(e) if e.freshness(now) != Freshness::Expired => {
                        tracing::warn!(
                            key = %key,
                            error = %err,
                            valid_until = %rfc3339(e.expires),
                            "endorsement refresh failed: serving the cached set"
                        );
                        Ok(e.clone())
                    }
                    Some(_) => Err(self.refusal(&key, slot, now)),
                    None => {
                        tracing::error!(key = %key, error = %err, "endorsements unavailable");
                        Err(err)
                    }
                }
            }
        }
    }

    /// Why nothing can be served for `key` now, logged.
    fn refusal(&self, key: &str, slot: &Slot, now: u64) -> EndorsementError {
        match &slot.entry {
            Some(e) => {
                tracing::error!(
                    key = %key,
                    not_before = %rfc3339(e.not_before),
                    expires = %rfc3339(e.expires),
                    last_error = %slot.last_error,
                    "endorsements expired and no fresh set could be fetched: refusing to serve evidence"
                );
                EndorsementError::Expired {
                    key: key.to_owned(),
                    not_before: rfc3339(e.not_before),
                    expires: rfc3339(e.expires),
                    now: rfc3339(now),
                }
            }
            None => EndorsementError::Backoff {
                key: key.to_owned(),
                retry_after: rfc3339(slot.retry_after),
                reason: slot.last_error.clone(),
            },
        }
    }

    fn fetch(
        &self,
        request: &Request,
        quote: Option<Vec<u8>>,
        now: u64,
    ) -> Result<Entry, EndorsementError> {
        let http = self.http.clone();
        let fetched = match request.clone() {
            Request::Snp { product, path } => {
                let base = self.config.kds_url.clone();
                self.run(async move { kds::fetch(&http, &base, product, &path, now).await })??
            }
            Request::Tdx { fmspc, ca } => {
                let quote = quote.ok_or_else(|| {
                    EndorsementError::Invalid("no quote to check TDX collateral with".into())
                })?;
                let base = self.config.pccs_url.clone();
                self.run(async move { pcs::fetch(&http, &base, &quote, &fmspc, &ca, now).await })??
            }
        };
        let entry = Entry {
            request: request.clone(),
            sources: fetched.sources,
            fetched_at: now,
            not_before: fetched.not_before,
            expires: fetched.expires,
            refresh_at: Entry::refresh_time(now, fetched.expires, self.config.max_age.as_secs()),
            payload: fetched.payload,
        };
        if entry.freshness(now) == Freshness::Expired {
            return Err(EndorsementError::Invalid(format!(
                "the service served endorsements valid {} .. {}, now {}",
                rfc3339(entry.not_before),
                rfc3339(entry.expires),
                rfc3339(now)
            )));
        }
        Ok(entry)
    }

    /// Refreshes every set in memory that is due (the background refresher's work).
    pub fn refresh_due(&self) {
        let now = self.clock.now();
        let due: Vec<Request> = self
            .slots()
            .values()
            .filter_map(|s| s.entry.as_ref())
            .filter(|e| e.freshness(now) != Freshness::Fresh)
            .map(|e| e.request.clone())
            .collect();
        for r in due {
            // `get_or_refresh` logs what happened.
            let _ = self.get_or_refresh(&r, None, true);
        }
    }
}

fn refresh_loop(endorser: &Weak<Endorser>, every: Duration) {
    loop {
        std::thread::sleep(every);
        match endorser.upgrade() {
            Some(e) => e.refresh_due(),
            None => return,
        }
    }
}

fn unavailable(e: &EndorsementError) -> AttestError {
    AttestError::Endorsements(e.to_string())
}

impl EndorsementSource for Endorser {
    fn snp_certs(&self, report: &[u8]) -> Result<SnpCerts, AttestError> {
        let q = kds_query(report)?;
        if q.vlek {
            return Err(AttestError::NoCertificates("VLEK"));
        }
        let product = q.product.or(self.config.snp_product).ok_or_else(|| {
            AttestError::Endorsements(
                "the SNP report (v2) does not name its product: set --snp-product".into(),
            )
        })?;
        let request = Request::Snp {
            product,
            path: q.vcek_path(product),
        };
        match self
            .get(&request, None)
            .map_err(|e| unavailable(&e))?
            .payload
        {
            Payload::Snp(certs) => Ok(certs),
            Payload::Tdx(_) => Err(AttestError::Endorsements(
                "cache holds TDX collateral for an SNP request".into(),
            )),
        }
    }

    fn tdx_collateral(&self, quote: &[u8]) -> Result<Vec<u8>, AttestError> {
        let (fmspc, ca) = pcs::platform_of(quote).map_err(|e| unavailable(&e))?;
        let request = Request::Tdx { fmspc, ca };
        match self
            .get(&request, Some(quote))
            .map_err(|e| unavailable(&e))?
            .payload
        {
            Payload::Tdx(c) => serde_json::to_vec(&c)
                .map_err(|e| AttestError::Endorsements(format!("collateral: {e}"))),
            Payload::Snp(_) => Err(AttestError::Endorsements(
                "cache holds SNP certificates for a TDX request".into(),
            )),
        }
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/veil/endorsements`, else
/// `~/.cache/veil/endorsements`, else `/var/cache/veil/endorsements`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("veil").join("endorsements")
}
