//! Fetching and checking `GET /v1/attestation`: a fresh nonce, the evidence, the binding
//! of key configuration, nonce and manifest into REPORT_DATA, the manifest against the
//! policy, and only then the key configuration that requests are sealed to.

use std::time::{Duration, SystemTime};

use veil_attest::{Attestation, NONCE_LEN, Policy, UnixTime, Verdict};
use veil_protocol::KeyConfig;
use veil_protocol::rand_core::Rng as _;

use crate::Error;
use crate::http::{Endpoint, read_capped};

/// A fresh 32-byte nonce from the operating system's random number generator.
pub fn fresh_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    veil_protocol::os_rng().fill_bytes(&mut nonce);
    nonce
}

/// The system clock as [`UnixTime`] (the edge where the SDK reads the clock).
pub fn system_now() -> Result<UnixTime, Error> {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| UnixTime(d.as_secs()))
        .map_err(|_| Error::Clock)
}

/// A verified attestation: what the server proved, and the key it proved it for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Attested {
    /// The server's answer, as received.
    pub attestation: Attestation,
    /// What verification established (platform, measurements, TCB, warnings).
    pub verdict: Verdict,
    /// The attested gateway key configuration requests are sealed to: X-Wing (post-quantum)
    /// when the server offers it, else X25519 ([`KeyConfig::select`]).
    pub key_config: KeyConfig,
    /// Every attested key configuration this SDK implements, in the server's order.
    pub key_configs: Vec<KeyConfig>,
    /// The nonce the evidence is bound to.
    pub nonce: [u8; NONCE_LEN],
}

/// Checks `attestation` against `policy` for `nonce` at `now` (pure: no clock, no I/O),
/// then decodes the attested key configurations and chooses one, X-Wing when offered. A
/// policy that leaves launch registers unpinned is refused ([`Policy::check_pinned`]) unless
/// it says `accept_any_measurement`; one that says `require_post_quantum` refuses a server
/// without an X-Wing key ([`Error::PostQuantumRequired`]). The verdict's `warnings` say what
/// the policy let through.
pub fn verify_attestation(
    attestation: Attestation,
    policy: &Policy,
    nonce: &[u8; NONCE_LEN],
    now: UnixTime,
) -> Result<Attested, Error> {
    policy.check_pinned()?;
    let verdict = attestation.verify(policy, nonce, now)?;
    policy.check_verdict_pinned(verdict.platform)?;
    let key_configs = KeyConfig::decode_list(&attestation.key_config).map_err(Error::KeyConfig)?;
    let key_config = KeyConfig::select(&key_configs)
        .map_err(Error::KeyConfig)?
        .clone();
    if policy.require_post_quantum && !key_config.kem().is_post_quantum() {
        return Err(Error::PostQuantumRequired {
            offered: key_configs.iter().map(KeyConfig::kem_id).collect(),
        });
    }
    Ok(Attested {
        attestation,
        verdict,
        key_config,
        key_configs,
        nonce: *nonce,
    })
}

/// Fetches the attestation for `nonce` from the server at `url` without judging it
/// (for saving, or for a caller that audits it step by step).
pub async fn fetch_attestation(url: &str, nonce: &[u8; NONCE_LEN]) -> Result<Attestation, Error> {
    let endpoint = Endpoint::new(url)?;
    endpoint.attestation(nonce).await
}

/// Requests for the attestation when the server answers 429 or 503 (busy producing
/// evidence for others, or evidence briefly unavailable): the first and three retries.
const ATTESTATION_ATTEMPTS: u32 = 4;
/// The first wait when the server names none; it doubles with each retry.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two requests, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// How long to wait before retry number `retry` (0 for the first): the server's
/// `Retry-After` seconds when it sends them, else an exponential backoff; plus up to a
/// quarter more, from `jitter`, so that clients refused together do not return together.
fn retry_wait(retry_after: Option<&str>, retry: u32, jitter: u8) -> Duration {
    let base = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(
            FIRST_RETRY_WAIT.saturating_mul(2u32.saturating_pow(retry)),
            Duration::from_secs,
        );
    let base = base.min(MAX_RETRY_WAIT);
    (base + base * u32::from(jitter) / 1020).min(MAX_RETRY_WAIT)
}

impl Endpoint {
    pub(crate) async fn attestation(&self, nonce: &[u8; NONCE_LEN]) -> Result<Attestation, Error> {
        let url = format!("{}/v1/attestation?nonce={}", self.base, hex::encode(nonce));
        let mut retry = 0;
        loop {
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| Error::transport(&e))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_capped(resp, veil_attest::MAX_BUNDLE_LEN).await?;
            if status == 200 {
                return Ok(Attestation::from_json(&body)?);
            }
            if matches!(status, 429 | 503) && retry + 1 < ATTESTATION_ATTEMPTS {
                let mut jitter = [0u8; 1];
                veil_protocol::os_rng().fill_bytes(&mut jitter);
                tokio::time::sleep(retry_wait(retry_after.as_deref(), retry, jitter[0])).await;
                retry += 1;
                continue;
            }
            return Err(Error::AttestationUnavailable {
                status,
                message: crate::error::short(&String::from_utf8_lossy(&body)),
            });
        }
    }

    /// Fetches with a fresh nonce and verifies at the system clock's `now`.
    pub(crate) async fn attest(&self, policy: &Policy) -> Result<Attested, Error> {
        let nonce = fresh_nonce();
        let attestation = self.attestation(&nonce).await?;
        verify_attestation(attestation, policy, &nonce, system_now()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_as_the_server_says_or_back_off_and_stay_bounded() {
        assert_eq!(retry_wait(Some("2"), 0, 0), Duration::from_secs(2));
        assert_eq!(retry_wait(Some(" 1 "), 3, 0), Duration::from_secs(1));
        assert_eq!(retry_wait(None, 0, 0), Duration::from_millis(250));
        assert_eq!(retry_wait(None, 2, 0), Duration::from_millis(1000));
        // An HTTP date or garbage counts as no advice; a huge value is capped.
        assert_eq!(
            retry_wait(Some("Wed, 21 Oct 2015 07:28:00 GMT"), 1, 0),
            Duration::from_millis(500)
        );
        assert_eq!(retry_wait(Some("86400"), 0, 0), MAX_RETRY_WAIT);
        assert_eq!(retry_wait(None, 40, 255), MAX_RETRY_WAIT);
        // Jitter adds up to a quarter.
        assert_eq!(retry_wait(None, 0, 255), Duration::from_micros(312_500));
    }
}
