//! The confidential transport: attested OHTTP gateway keys, evidence on demand, and the
//! gateway that opens encrypted requests, runs them through the same router as plain
//! ones (marked [`Sealed`](crate::api::Sealed)), and seals the answers.
//!
//! - `GET /.well-known/ohttp-gateway`: the key configurations (`application/ohttp-keys`).
//! - `GET /v1/attestation?nonce=HEX`: [`veil_attest::Attestation`] whose REPORT_DATA binds the
//!   current key configurations (X-Wing, then X25519, as one `application/ohttp-keys` list),
//!   the client's nonce and the server manifest, and with confidential GPUs
//!   ([`Confidential::with_gpus`]) each GPU's evidence, answering a nonce derived from the
//!   same transcript.
//! - `POST /.well-known/ohttp-gateway`: `message/ohttp-req` → `message/ohttp-res`, or
//!   `message/ohttp-chunked-req` → streamed `message/ohttp-chunked-res`.
//!
//! Each epoch ([`ConfidentialConfig::epoch`]) has two keys: X-Wing (ML-KEM-768 + X25519,
//! post-quantum), which clients prefer, and DHKEM(X25519) for clients without it. Both rotate
//! together; the previous pair stays usable for a grace period. Evidence is produced only when a client asks for it with a nonce (bounded by
//! a semaphore), never on the inference path.

mod budget;
mod gateway;
#[cfg(test)]
mod gpu_tests;
mod setup;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use veil_attest::attester::{Attester, GpuAttester};
use veil_attest::{Attestation, ManifestClaims, ReportData, gpu_evidence_digest};
use veil_protocol::{DateWindow, Gateway, GatewayKey, Kem, KeyConfig, SymmetricSuite, os_rng};

pub use budget::{AddressBudget, MAX_ADDRESSES};
pub use gateway::routes;
pub use setup::{Tee, TeeOptions, attester, manifest_claims};

/// Settings of the confidential transport.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConfidentialConfig {
    /// How long a gateway key is current.
    pub epoch: Duration,
    /// How long the previous key is still accepted after a rotation.
    pub grace: Duration,
    /// Evidence generations that may run at once; more wait in a queue.
    pub max_concurrent_attestations: usize,
    /// Attestation requests that may wait for a turn; more get 429 at once.
    pub attestation_queue: usize,
    /// How long a queued attestation request waits for its turn before it gets 429.
    pub attestation_wait: Duration,
    /// Evidence requests one client address may make (burst, then a rate); more get 429
    /// with `Retry-After` before they reach the queue.
    pub attestation_per_address: AddressBudget,
    /// A streamed answer leaves the gateway as one sealed chunk per tick of this period,
    /// holding every event of the tick (an SSE comment when none came), so that the number
    /// and timing of chunks tell only the answer's duration, not its token count or the
    /// time of each token. Zero: one chunk per inner body frame (per token).
    pub stream_cadence: Duration,
}

impl Default for ConfidentialConfig {
    fn default() -> Self {
        Self {
            epoch: Duration::from_secs(3600),
            grace: Duration::from_secs(300),
            max_concurrent_attestations: 2,
            attestation_queue: 32,
            attestation_wait: Duration::from_secs(2),
            attestation_per_address: AddressBudget::default(),
            stream_cadence: Duration::from_millis(50),
        }
    }
}

/// Why evidence could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The nonce is not 64 hex characters.
    #[error("nonce must be 64 hex characters (32 bytes)")]
    BadNonce,
    /// Too many evidence requests at once.
    #[error("too many attestation requests in flight")]
    Busy,
    /// This client address has spent its attestation budget for now.
    #[error("attestation budget of this address spent; retry in {retry_after:?}")]
    AddressBudget {
        /// When the address may ask again.
        retry_after: Duration,
    },
    /// The TEE could not produce evidence.
    #[error("evidence unavailable: {0}")]
    Attester(#[from] veil_attest::attester::AttestError),
    /// The gateway has no key (cannot happen after [`Confidential::new`]).
    #[error("no gateway key")]
    NoKey,
}

/// Gateway keys, the attester and the server manifest.
#[derive(Debug)]
pub struct Confidential {
    /// Read-locked to open requests (decryption runs concurrently; each key's replay
    /// record has its own short lock), write-locked to rotate keys.
    gateway: RwLock<Gateway>,
    attester: Arc<dyn Attester>,
    /// The GPUs whose evidence joins the CPU's, if the server runs on confidential GPUs.
    gpus: Option<Arc<dyn GpuAttester>>,
    manifest: ManifestClaims,
    permits: tokio::sync::Semaphore,
    /// Per-address attestation budgets.
    budgets: budget::Budgets,
    /// Attestation requests waiting for a permit.
    waiting: AtomicUsize,
    config: ConfidentialConfig,
    next_key_id: AtomicU8,
}

impl Confidential {
    /// A transport with a fresh key (from the OS RNG).
    pub fn new(
        attester: Arc<dyn Attester>,
        manifest: ManifestClaims,
        config: ConfidentialConfig,
    ) -> Self {
        let c = Self {
            gateway: RwLock::new(Gateway::new(DateWindow::default())),
            attester,
            gpus: None,
            manifest,
            permits: tokio::sync::Semaphore::new(config.max_concurrent_attestations.max(1)),
            budgets: budget::Budgets::new(config.attestation_per_address),
            waiting: AtomicUsize::new(0),
            config,
            next_key_id: AtomicU8::new(1),
        };
        c.rotate();
        c
    }

    fn gateway(&self) -> RwLockReadGuard<'_, Gateway> {
        // A panic while holding this lock leaves the gateway state intact (no partial
        // updates span an unwind), so a poisoned lock is still usable.
        self.gateway.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn gateway_mut(&self) -> RwLockWriteGuard<'_, Gateway> {
        self.gateway.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a new key epoch: a new X-Wing key and a new X25519 key (in that order, ids
    /// `n` and `n + 1`) become current; the previous pair stays accepted until
    /// [`Confidential::retire_old`] removes it after the grace period. Returns the new ids.
    pub fn rotate(&self) -> Vec<u8> {
        let mut rng = os_rng();
        let keys: Vec<GatewayKey> = Kem::ALL
            .iter()
            .map(|&kem| {
                let id = self.next_key_id.fetch_add(1, Ordering::Relaxed);
                GatewayKey::generate_with(kem, id, &SymmetricSuite::ALL, &mut rng)
            })
            .collect();
        let ids: Vec<u8> = keys.iter().map(GatewayKey::key_id).collect();
        self.gateway_mut().rotate_all(keys);
        tracing::info!(key_ids = ?ids, "gateway keys rotated");
        if let Some(&preferred) = ids.first() {
            crate::metrics::global().key_rotated(preferred);
        }
        ids
    }

    /// Drops every key but the current epoch's.
    pub fn retire_old(&self) {
        let mut g = self.gateway_mut();
        let current: Vec<u8> = g.current_configs().iter().map(KeyConfig::key_id).collect();
        let old: Vec<u8> = g
            .key_configs()
            .iter()
            .map(KeyConfig::key_id)
            .filter(|id| !current.contains(id))
            .collect();
        for id in old {
            g.retire(id);
        }
    }

    /// Evidence from now on also carries `gpus`' evidence, each GPU asked to answer the nonce
    /// derived from the transcript ([`ReportData::gpu_nonce`]), and REPORT_DATA binds it
    /// ([`ReportData::with_gpus`]).
    pub fn with_gpus(mut self, gpus: Arc<dyn GpuAttester>) -> Self {
        self.gpus = Some(gpus);
        self
    }

    /// Rotates every epoch and retires the previous key after the grace period, forever.
    pub async fn run_rotation(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.epoch).await;
            self.rotate();
            tokio::time::sleep(self.config.grace.min(self.config.epoch)).await;
            self.retire_old();
        }
    }

    /// The key configuration list served at `GET /.well-known/ohttp-gateway`.
    pub fn ohttp_keys(&self) -> Vec<u8> {
        self.gateway().ohttp_keys()
    }

    /// The attested manifest.
    pub fn manifest(&self) -> &ManifestClaims {
        &self.manifest
    }

    /// The current epoch's key configurations as one `application/ohttp-keys` list (X-Wing,
    /// then X25519): the bytes attestation binds.
    pub fn attested_key_configs(&self) -> Vec<u8> {
        KeyConfig::encode_list(&self.gateway().current_configs())
    }

    /// As [`Confidential::attest`] for a client at `peer`, which first spends one request
    /// of that address's budget ([`ConfidentialConfig::attestation_per_address`]); `None`
    /// (no network peer: an in-process caller) is not budgeted.
    pub async fn attest_from(
        &self,
        nonce_hex: &str,
        peer: Option<IpAddr>,
    ) -> Result<Attestation, AttestationError> {
        if let Some(ip) = peer {
            self.budgets
                .take(ip, std::time::Instant::now())
                .map_err(|retry_after| AttestationError::AddressBudget { retry_after })?;
        }
        self.attest(nonce_hex).await
    }

    /// Evidence for `nonce_hex`, bound to the current key configurations and the manifest.
    pub async fn attest(&self, nonce_hex: &str) -> Result<Attestation, AttestationError> {
        let nonce: [u8; 32] = hex::decode(nonce_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(AttestationError::BadNonce)?;
        let _permit = self.permit().await?;
        let key_config = self.attested_key_configs();
        if key_config.is_empty() {
            return Err(AttestationError::NoKey);
        }
        let digest = self.manifest.digest();
        let (report_data, gpus) = match &self.gpus {
            None => (
                ReportData::new(&key_config, &nonce, &digest)
                    .map_err(|_| AttestationError::BadNonce)?,
                Vec::new(),
            ),
            Some(source) => {
                let gpu_nonce = ReportData::gpu_nonce(&key_config, &nonce, &digest)
                    .map_err(|_| AttestationError::BadNonce)?;
                let source = source.clone();
                let gpus = tokio::task::spawn_blocking(move || source.gpu_evidence(&gpu_nonce))
                    .await
                    .map_err(|_| AttestationError::NoKey)??;
                let report_data = ReportData::with_gpus(
                    &key_config,
                    &nonce,
                    &digest,
                    &gpu_evidence_digest(&gpus),
                )
                .map_err(|_| AttestationError::BadNonce)?;
                (report_data, gpus)
            }
        };
        let attester = self.attester.clone();
        let evidence = tokio::task::spawn_blocking(move || attester.attest(&report_data.0))
            .await
            .map_err(|_| AttestationError::NoKey)??;
        Ok(Attestation::new(evidence, key_config, self.manifest.clone()).with_gpus(gpus))
    }

    /// A turn to produce evidence: at once if one is free, else after a wait in a bounded
    /// queue (a short burst of clients is served, not refused); `Busy` when the queue is
    /// full or the wait runs out.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AttestationError> {
        if let Ok(p) = self.permits.try_acquire() {
            return Ok(p);
        }
        /// Leaves the queue however the wait ends.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if ahead >= self.config.attestation_queue {
            return Err(AttestationError::Busy);
        }
        match tokio::time::timeout(self.config.attestation_wait, self.permits.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(AttestationError::Busy),
        }
    }

    /// The period of sealed chunks of a streamed answer.
    pub(crate) fn stream_cadence(&self) -> Duration {
        self.config.stream_cadence
    }

    /// The gateway, shared: for opening requests.
    pub(crate) fn lock_gateway(&self) -> RwLockReadGuard<'_, Gateway> {
        self.gateway()
    }
}
