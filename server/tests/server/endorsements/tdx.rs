//! TDX: collateral from a fake PCCS; refresh, expiry and the 503 a client then gets.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt as _;
use veil_attest::attester::{AttestError, Attester as _, EndorsementSource as _};
use veil_attest::{Attestation, Evidence, ManifestClaims, Policy, UnixTime, verify};
use veil_server::confidential::{Confidential, ConfidentialConfig, routes};
use veil_server::endorsements::{Freshness, Payload, Request as Wanted};

use super::fake::{Fake, Mode, pccs_for};
use super::{TestClock, attester, endorser, endorser_with_refresher, vector};

const NEAR: &str = "tdx/v4-20a06f-near";
const NEAR_NOW: &str = "2025-09-03T11:46:40Z";
const PHALA: &str = "tdx/v4-b0c06f-phala";
const PHALA_NOW: &str = "2025-06-21T10:00:00Z";

fn collateral(dir: &str) -> serde_json::Value {
    serde_json::from_slice(&vector(&format!("{dir}/collateral.json"))).expect("collateral")
}

fn fmspc_of(c: &serde_json::Value) -> String {
    let t: serde_json::Value =
        serde_json::from_str(c["tcb_info"].as_str().expect("tcb_info")).expect("tcb json");
    t["fmspc"].as_str().expect("fmspc").to_uppercase()
}

/// A PCCS knowing the platform of `dir` (and of `also`), as it was at `dir`'s time.
fn pccs_with(dir: &str, also: Option<&str>, always: Option<&str>) -> Fake {
    let m = std::iter::once(dir)
        .chain(also)
        .map(|d| {
            let c = collateral(d);
            (fmspc_of(&c), c)
        })
        .collect();
    pccs_for(m, always)
}

fn pccs(always: Option<&str>) -> Fake {
    pccs_with(NEAR, None, always)
}

fn no_kds() -> &'static str {
    "http://127.0.0.1:9"
}

#[test]
fn bundles_from_the_fake_pccs_verify_offline() {
    for (dir, now, ca) in [(NEAR, NEAR_NOW, "platform"), (PHALA, PHALA_NOW, "platform")] {
        let pccs = pccs_with(dir, None, None);
        let cache = tempfile::tempdir().expect("cache");
        let e = endorser(cache.path(), no_kds(), &pccs.url, TestClock::at(now));
        let (a, _tree) = attester("tdx_guest", vector(&format!("{dir}/quote.bin")), e);
        let ev = a.attest(&[0; 64]).expect("evidence");
        assert!(matches!(ev, Evidence::Tdx(_)));
        let t = UnixTime::parse_rfc3339(now).expect("now");
        verify(&ev, &Policy::default(), t).unwrap_or_else(|e| panic!("{dir}: {e}"));
        super::veil_accepts_until_expiry(&ev, now, dir);

        let fmspc = fmspc_of(&collateral(dir));
        let hits = pccs.shared.hits.lock().expect("hits").clone();
        assert_eq!(
            hits,
            [
                format!("/sgx/certification/v4/pckcrl?ca={ca}"),
                format!("/tdx/certification/v4/tcb?fmspc={fmspc}"),
                "/tdx/certification/v4/qe/identity".to_owned(),
                "/sgx/certification/v4/rootcacrl".to_owned(),
            ],
            "{dir}"
        );
        a.attest(&[1; 64]).expect("cached");
        assert_eq!(pccs.shared.count(), 4, "served from the cache");
    }
}

#[test]
fn collateral_for_another_fmspc_is_refused() {
    // A PCCS that answers every FMSPC with another platform's TCB info.
    let pccs = pccs_with(NEAR, Some(PHALA), Some(&fmspc_of(&collateral(PHALA))));
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(cache.path(), no_kds(), &pccs.url, TestClock::at(NEAR_NOW));
    let r = e.tdx_collateral(&vector(&format!("{NEAR}/quote.bin")));
    match r {
        Err(AttestError::Endorsements(m)) => assert!(m.contains("collateral for FMSPC"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_collateral_is_never_fetched_into_service() {
    // The service still serves collateral whose nextUpdate has passed.
    let pccs = pccs_with(PHALA, None, None);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(
        cache.path(),
        no_kds(),
        &pccs.url,
        TestClock::at("2026-11-25T00:00:00Z"),
    );
    let r = e.tdx_collateral(&vector(&format!("{PHALA}/quote.bin")));
    match r {
        Err(AttestError::Endorsements(m)) => assert!(m.contains("invalid endorsements"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(e.cache().list().expect("list").is_empty());
}

#[test]
fn truncated_oversized_and_slow_answers_are_refused() {
    for (mode, says) in [
        (Mode::Truncated, "invalid endorsements"),
        (Mode::Oversized, "larger than"),
        (Mode::Slow, "timed out"),
    ] {
        let pccs = pccs(None);
        pccs.shared.set(mode);
        let cache = tempfile::tempdir().expect("cache");
        let e = endorser(cache.path(), no_kds(), &pccs.url, TestClock::at(NEAR_NOW));
        match e.tdx_collateral(&vector(&format!("{NEAR}/quote.bin"))) {
            Err(AttestError::Endorsements(m)) => assert!(m.contains(says), "{mode:?}: {m}"),
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}

fn fetched_at(e: &veil_server::endorsements::Endorser, quote: &[u8]) -> u64 {
    let c = e.tdx_collateral(quote).expect("collateral");
    assert!(!c.is_empty());
    let req = e.cache().list().expect("list");
    let entry = req[0].as_ref().expect("entry");
    assert!(matches!(entry.request, Wanted::Tdx { .. }));
    assert!(matches!(entry.payload, Payload::Tdx(_)));
    entry.fetched_at
}

#[test]
fn a_failed_refresh_keeps_serving_until_expiry_then_refuses() {
    let pccs = pccs(None);
    let cache = tempfile::tempdir().expect("cache");
    let clock = TestClock::at(NEAR_NOW);
    let e = endorser(cache.path(), no_kds(), &pccs.url, clock.clone());
    let quote = vector(&format!("{NEAR}/quote.bin"));
    let t0 = fetched_at(&e, &quote);
    let entry = e.cache().list().expect("list").remove(0).expect("entry");
    assert!(entry.refresh_at > t0 && entry.refresh_at < entry.expires);
    assert_eq!(entry.freshness(t0), Freshness::Fresh);

    // Due, and the service fails: the cached set is still served.
    pccs.shared.set(Mode::Fail);
    clock.set(entry.refresh_at + 1);
    let before = pccs.shared.count();
    e.tdx_collateral(&quote).expect("cached set while valid");
    assert!(pccs.shared.count() > before, "a refresh was tried");
    // Within the retry wait nothing is asked again.
    let tried = pccs.shared.count();
    e.tdx_collateral(&quote).expect("cached");
    assert_eq!(pccs.shared.count(), tried);

    // The service recovers: after the wait, the next request refreshes.
    pccs.shared.set(Mode::Normal);
    clock.set(entry.refresh_at + 120);
    e.tdx_collateral(&quote).expect("refreshed");
    let now = e.cache().list().expect("list").remove(0).expect("entry");
    assert_eq!(now.fetched_at, entry.refresh_at + 120);

    // Past expiry with the service down: refused, with the window in the message.
    pccs.shared.set(Mode::Fail);
    clock.set(now.expires + 1);
    match e.tdx_collateral(&quote) {
        Err(AttestError::Endorsements(m)) => {
            assert!(m.contains("not served"), "{m}");
            assert!(m.contains(&UnixTime(now.expires).to_rfc3339()), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_collateral_is_a_503_on_the_attestation_route() {
    let pccs = pccs(None);
    let cache = tempfile::tempdir().expect("cache");
    let clock = TestClock::at(NEAR_NOW);
    let e = endorser(cache.path(), no_kds(), &pccs.url, clock.clone());
    let (a, _tree) = attester("tdx_guest", vector(&format!("{NEAR}/quote.bin")), e.clone());
    let conf = Arc::new(Confidential::new(
        Arc::new(a),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig::default(),
    ));
    let app = routes(conf, axum::Router::new());
    let ask = |app: axum::Router| async move {
        let uri = format!("/v1/attestation?nonce={}", "ab".repeat(32));
        app.oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response")
    };
    // What a client receives verifies offline at the vector's time.
    let ok = ask(app.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(ok.into_body())
        .await
        .expect("body")
        .to_bytes();
    let bundle = Attestation::from_json(&body).expect("attestation");
    let t = UnixTime::parse_rfc3339(NEAR_NOW).expect("now");
    verify(&bundle.evidence, &Policy::default(), t).expect("verifies offline");
    let expires = e
        .cache()
        .list()
        .expect("list")
        .remove(0)
        .expect("entry")
        .expires;
    pccs.shared.set(Mode::Fail);
    clock.set(expires);
    assert_eq!(ask(app).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn with_a_refresher_a_request_never_waits_for_a_refresh() {
    let pccs = pccs(None);
    let cache = tempfile::tempdir().expect("cache");
    let clock = TestClock::at(NEAR_NOW);
    let e = endorser_with_refresher(cache.path(), no_kds(), &pccs.url, clock.clone());
    let quote = vector(&format!("{NEAR}/quote.bin"));
    let entry = |e: &veil_server::endorsements::Endorser| {
        e.cache().list().expect("list").remove(0).expect("entry")
    };
    e.tdx_collateral(&quote)
        .expect("a first fetch is waited for");
    assert_eq!(pccs.shared.count(), 4);
    let first = entry(&e);

    clock.set(first.refresh_at + 1);
    e.tdx_collateral(&quote).expect("due: the cached set");
    assert_eq!(pccs.shared.count(), 4, "the request did not fetch");
    e.refresh_due();
    assert_eq!(pccs.shared.count(), 8, "the refresher did");
    let second = entry(&e);
    assert_eq!(second.fetched_at, first.refresh_at + 1);

    // An expired set is fetched again by the request itself, and refused when that fails.
    pccs.shared.set(Mode::Fail);
    clock.set(second.expires);
    assert!(e.tdx_collateral(&quote).is_err());
    assert!(pccs.shared.count() > 8);
}
