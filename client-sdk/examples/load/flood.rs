//! The replay-record flood (issue #23): distinct, valid HPKE requests to the attested X25519
//! key (the cheapest for an attacker to make), dated `FUTURE` ahead so that they sit in the
//! gateway's replay record as long as it keeps anything, and carrying no API key. The
//! legitimate streams running beside them must see no error and their time to first token
//! must not double.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use veil_client::Client;
use veil_protocol::{Kem, MEDIA_TYPE_REQUEST, build_request, os_rng};

/// How far ahead the flood dates its requests (the gateway accepts 10 s).
const FUTURE: Duration = Duration::from_secs(9);
/// Requests in flight at once.
const IN_FLIGHT: usize = 32;

/// What the flood did.
#[derive(Debug, Default)]
pub(crate) struct FloodReport {
    pub(crate) sent: u64,
    pub(crate) seconds: f64,
    /// Outer HTTP status → count (200: opened, answered inside; 4xx: refused outside).
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) transport_errors: u64,
}

/// Sends `total` flood requests to `url`, sealed to `client`'s attested X25519 key.
pub(crate) async fn run(url: &str, client: &Client, total: u64) -> Result<FloodReport, String> {
    let attested = client.attested();
    let config = attested
        .key_configs
        .iter()
        .find(|c| c.kem() == Kem::X25519HkdfSha256)
        .cloned()
        .ok_or("the server attests no X25519 key")?;
    let sealer = Arc::new(veil_protocol::Client::new(config).map_err(|e| e.to_string())?);
    let authority = url.trim_start_matches("http://").to_owned();
    let endpoint = format!("{url}/.well-known/ohttp-gateway");
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (sealer, authority, endpoint, http, next) = (
                sealer.clone(),
                authority.clone(),
                endpoint.clone(),
                http.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = BTreeMap::<u16, u64>::new();
                let mut errors = 0u64;
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let inner = build_request(
                        "POST",
                        &authority,
                        "/v1/chat/completions",
                        &[("content-type", b"application/json")],
                        br#"{"model":"flood","messages":[{"role":"user","content":"x"}]}"#,
                        SystemTime::now() + FUTURE,
                    );
                    let Ok((body, _opener)) = sealer.seal(&inner, &mut os_rng()) else {
                        errors += 1;
                        continue;
                    };
                    match http
                        .post(&endpoint)
                        .header("content-type", MEDIA_TYPE_REQUEST)
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) => *statuses.entry(r.status().as_u16()).or_default() += 1,
                        Err(_) => errors += 1,
                    }
                }
                (statuses, errors)
            })
        })
        .collect();
    let mut report = FloodReport::default();
    for t in tasks {
        let (statuses, errors) = t.await.map_err(|e| e.to_string())?;
        for (s, n) in statuses {
            *report.statuses.entry(s).or_default() += n;
            report.sent += n;
        }
        report.transport_errors += errors;
        report.sent += errors;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
