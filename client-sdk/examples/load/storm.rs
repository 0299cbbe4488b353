//! The attestation storm (issue #23): `looping` clients, each from its own loopback address,
//! ask for evidence back to back while `connects` clients, each from an address of its own,
//! run `Client::connect` (attest and verify). At least 99 % of the connects must succeed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use veil_client::{Client, Policy};

/// Connects running at once.
const CONNECTS_AT_ONCE: usize = 10;

/// What the storm did.
#[derive(Debug, Default)]
pub(crate) struct StormReport {
    pub(crate) connects: usize,
    pub(crate) connects_ok: usize,
    pub(crate) connect_ms: Vec<f64>,
    /// Storm requests by status.
    pub(crate) storm_statuses: BTreeMap<u16, u64>,
    pub(crate) seconds: f64,
}

/// A looping client: 127.0.0.(2 + i).
fn storm_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8))
}

/// A connecting client: 127.0.1.(1 + i), 127.0.2.…
fn connect_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        (1 + i / 250) as u8,
        0,
        1 + (i % 250) as u8,
    ))
}

pub(crate) async fn run(
    url: &str,
    policy: &Policy,
    looping: usize,
    connects: usize,
) -> Result<StormReport, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let storm: Vec<_> = (0..looping)
        .map(|i| {
            let (url, stop) = (url.to_owned(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .local_address(storm_address(i))
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut statuses = BTreeMap::<u16, u64>::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let nonce = format!("{:064x}", u128::from(n) << 8 | i as u128);
                    let status = http
                        .get(format!("{url}/v1/attestation?nonce={nonce}"))
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    *statuses.entry(status).or_default() += 1;
                }
                Ok::<_, String>(statuses)
            })
        })
        .collect();
    // Let the storm start first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut report = StormReport {
        connects,
        ..StormReport::default()
    };
    let mut next = 0;
    while next < connects {
        let wave: Vec<_> = (next..connects.min(next + CONNECTS_AT_ONCE))
            .map(|i| {
                let (url, policy) = (url.to_owned(), policy.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let r = Client::connect_from(&url, policy, Some(connect_address(i))).await;
                    if let Err(e) = &r {
                        eprintln!("load: connect {i} failed during the storm: {e}");
                    }
                    (r.is_ok(), t.elapsed().as_secs_f64() * 1e3)
                })
            })
            .collect();
        next += wave.len();
        for w in wave {
            let (ok, ms) = w.await.map_err(|e| e.to_string())?;
            report.connects_ok += usize::from(ok);
            report.connect_ms.push(ms);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in storm {
        for (s, n) in t.await.map_err(|e| e.to_string())?? {
            *report.storm_statuses.entry(s).or_default() += n;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
