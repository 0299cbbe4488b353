//! The confidential transport's keys: two configurations per epoch (X-Wing, then X25519),
//! both bound into REPORT_DATA, rotated together; and the gateway route opening X-Wing
//! requests, plain and chunked; a streamed answer's chunks on the cadence, padded.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post as post_route};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use veil_attest::attester::Simulated;
use veil_attest::{ManifestClaims, Policy, Reference, UnixTime, VerifyError};
use veil_protocol::{
    Client, Kem, KeyConfig, MEDIA_TYPE_CHUNKED_REQUEST, MEDIA_TYPE_REQUEST, Padding, build_request,
    message::decode_message, os_rng,
};

use super::{Confidential, ConfidentialConfig, routes};

const MEASUREMENT: [u8; 48] = [7; 48];

fn confidential() -> Arc<Confidential> {
    Arc::new(Confidential::new(
        Arc::new(Simulated::new([9; 32], MEASUREMENT)),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig::default(),
    ))
}

fn policy() -> Policy {
    Policy::default()
        .allow_simulated(true)
        .with_reference(Reference::simulated(MEASUREMENT))
}

fn kems(list: &[u8]) -> Vec<(u8, Kem)> {
    KeyConfig::decode_list(list)
        .expect("list")
        .iter()
        .map(|c| (c.key_id(), c.kem()))
        .collect()
}

#[test]
fn publishes_xwing_then_x25519() {
    let conf = confidential();
    assert_eq!(
        kems(&conf.ohttp_keys()),
        [(1, Kem::XWing), (2, Kem::X25519HkdfSha256)]
    );
    assert_eq!(conf.attested_key_configs(), conf.ohttp_keys());
}

#[tokio::test]
async fn attestation_binds_both_configurations() {
    let conf = confidential();
    let nonce = [5u8; 32];
    let a = conf.attest(&hex::encode(nonce)).await.expect("evidence");
    assert_eq!(a.key_config, conf.ohttp_keys());
    assert_eq!(
        kems(&a.key_config),
        [(1, Kem::XWing), (2, Kem::X25519HkdfSha256)]
    );
    // Pinned `now`: simulated evidence carries no validity period.
    let now = UnixTime(1_764_000_000);
    a.verify(&policy(), &nonce, now).expect("bound");

    // Serving fewer configurations than were bound (say, only the X25519 one, to push
    // clients off the post-quantum key) breaks the binding.
    let list = KeyConfig::decode_list(&a.key_config).expect("list");
    for kept in [&list[1..], &list[..1]] {
        let mut stripped = a.clone();
        stripped.key_config = KeyConfig::encode_list(kept);
        assert!(matches!(
            stripped.verify(&policy(), &nonce, now),
            Err(VerifyError::ReportDataMismatch { .. })
        ));
    }
}

#[tokio::test]
async fn rotation_rotates_both_keys() {
    let conf = confidential();
    assert_eq!(conf.rotate(), [3, 4]);
    assert_eq!(
        kems(&conf.ohttp_keys()),
        [
            (3, Kem::XWing),
            (4, Kem::X25519HkdfSha256),
            (1, Kem::XWing),
            (2, Kem::X25519HkdfSha256)
        ]
    );
    let a = conf
        .attest(&hex::encode([1u8; 32]))
        .await
        .expect("evidence");
    assert_eq!(
        kems(&a.key_config),
        [(3, Kem::XWing), (4, Kem::X25519HkdfSha256)]
    );
    conf.retire_old();
    assert_eq!(conf.ohttp_keys(), conf.attested_key_configs());
    assert_eq!(
        kems(&conf.ohttp_keys()),
        [(3, Kem::XWing), (4, Kem::X25519HkdfSha256)]
    );
}

async fn post(app: &Router, media: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::post("/.well-known/ohttp-gateway")
        .header(header::CONTENT_TYPE, media)
        .body(Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn gateway_route_opens_xwing_requests_plain_and_chunked() {
    let conf = confidential();
    let inner = Router::new().route("/v1/models", get(|| async { "models-list" }));
    let app = routes(Arc::clone(&conf), inner);
    let configs = KeyConfig::decode_list(&conf.attested_key_configs()).expect("list");
    let config = KeyConfig::select(&configs).expect("usable").clone();
    assert_eq!(config.kem(), Kem::XWing);
    let client = Client::new(config).expect("client");
    let message = build_request("GET", "veil", "/v1/models", &[], b"", SystemTime::now());

    let (body, opener) = client.seal(&message, &mut os_rng()).expect("seal");
    assert_eq!(body[1..3], [0x64, 0x7a]);
    let (status, sealed) = post(&app, MEDIA_TYPE_REQUEST, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let answer = decode_message(&opener.open(&sealed).expect("opens")).expect("bhttp");
    assert_eq!(answer.content(), b"models-list");
    // The same request again is a replay.
    let (status, _) = post(&app, MEDIA_TYPE_REQUEST, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (body, opener) = client.seal_chunked(&message, &mut os_rng()).expect("seal");
    let (status, sealed) = post(&app, MEDIA_TYPE_CHUNKED_REQUEST, body).await;
    assert_eq!(status, StatusCode::OK);
    let plain = opener.open_all(&sealed).expect("chunks open");
    let answer = decode_message(&plain).expect("indeterminate-length bhttp");
    assert_eq!(answer.content(), b"models-list");
}

/// An inner app streaming `events` SSE events, one every `gap`.
fn sse_app(events: usize, gap: Duration) -> Router {
    Router::new().route(
        "/v1/chat/completions",
        post_route(move || async move {
            let s = futures_util::stream::unfold(0, move |i| async move {
                if i == events {
                    return None;
                }
                tokio::time::sleep(gap).await;
                let event = format!("data: {{\"token\": {i}}}\n\n");
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), i + 1))
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(s),
            )
        }),
    )
}

/// The plaintext length of each sealed chunk of a streamed answer (head first, final
/// last), and the answer's content, through a gateway with `cadence`.
async fn streamed(cadence: Duration, inner: Router) -> (Vec<usize>, Vec<u8>) {
    let conf = Arc::new(Confidential::new(
        Arc::new(Simulated::new([9; 32], MEASUREMENT)),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig {
            stream_cadence: cadence,
            ..ConfidentialConfig::default()
        },
    ));
    let app = routes(Arc::clone(&conf), inner);
    let configs = KeyConfig::decode_list(&conf.attested_key_configs()).expect("list");
    let client = Client::new(KeyConfig::select(&configs).expect("usable").clone()).expect("client");
    let message = build_request(
        "POST",
        "veil",
        "/v1/chat/completions",
        &[],
        b"{}",
        SystemTime::now(),
    );
    let (body, mut opener) = client.seal_chunked(&message, &mut os_rng()).expect("seal");
    let req = Request::post("/.well-known/ohttp-gateway")
        .header(header::CONTENT_TYPE, MEDIA_TYPE_CHUNKED_REQUEST)
        .body(Body::from(body))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut lens = Vec::new();
    let mut plain = Vec::new();
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        let opened = opener.push(&data).expect("opens");
        if first {
            // The response nonce: no chunk yet.
            first = false;
            assert!(opened.is_empty());
            continue;
        }
        // The final chunk is held back until `finish`.
        if !opened.is_empty() {
            lens.push(opened.len());
            plain.extend(opened);
        }
    }
    let last = opener.finish().expect("the final chunk came");
    lens.push(last.len());
    plain.extend(last);
    let msg = decode_message(&plain).expect("indeterminate-length bhttp");
    (lens, msg.content().to_vec())
}

/// Whether `len` is a padded piece: a bucket size, plus the content's length prefix.
fn padded(len: usize) -> bool {
    let p = Padding::default();
    [0, 1, 2, 4].iter().any(|prefix| {
        len >= *prefix && p.padded_len(len - prefix) == len - prefix && len - prefix >= 128
    })
}

#[tokio::test]
async fn a_streamed_answer_leaves_on_the_cadence_padded_whatever_its_token_count() {
    let gap = Duration::from_millis(2);
    // Per token (cadence zero): head, one chunk per event, final.
    let (per_token, content) = streamed(Duration::ZERO, sse_app(12, gap)).await;
    assert_eq!(per_token.len(), 1 + 12 + 1, "{per_token:?}");
    assert!(String::from_utf8_lossy(&content).contains("\"token\": 11"));
    // A cadence longer than the answer: head, one chunk holding all twelve events, final.
    let (coalesced, same) = streamed(Duration::from_secs(30), sse_app(12, gap)).await;
    assert_eq!(coalesced.len(), 3, "{coalesced:?}");
    let data = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| l.starts_with("data:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        data(&same),
        data(&content),
        "the same events, padding aside"
    );
    assert_eq!(data(&content).len(), 12);
    // Every head and content chunk is a bucket's size; the final chunk is the end marker.
    for lens in [&per_token, &coalesced] {
        let (last, rest) = lens.split_last().expect("chunks");
        assert!(rest.iter().all(|&l| padded(l)), "{lens:?}");
        assert_eq!(*last, 2, "end of content and no trailers");
    }
    // Nothing to send for a while: the ticks still go out, as padded comments.
    let (quiet, _) = streamed(
        Duration::from_millis(10),
        sse_app(1, Duration::from_millis(200)),
    )
    .await;
    assert!(quiet.len() >= 6, "{quiet:?}");
    let (_, rest) = quiet.split_last().expect("chunks");
    assert!(rest.iter().all(|&l| padded(l)), "{quiet:?}");
}

/// The simulated attester, taking `delay` per evidence (as hardware does, slower).
#[derive(Debug)]
struct Slow {
    inner: Simulated,
    delay: Duration,
}

impl veil_attest::attester::Attester for Slow {
    fn attest(
        &self,
        report_data: &[u8; 64],
    ) -> Result<veil_attest::Evidence, veil_attest::attester::AttestError> {
        std::thread::sleep(self.delay);
        self.inner.attest(report_data)
    }
    fn platform(&self) -> Option<veil_attest::Platform> {
        self.inner.platform()
    }
    fn name(&self) -> &'static str {
        "slow-simulated"
    }
}

/// How many of `n` attestation requests sent at once get evidence, with one permit.
async fn served_at_once(n: usize, queue: usize, wait: Duration) -> usize {
    let conf = Arc::new(Confidential::new(
        Arc::new(Slow {
            inner: Simulated::new([9; 32], MEASUREMENT),
            delay: Duration::from_millis(300),
        }),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig {
            max_concurrent_attestations: 1,
            attestation_queue: queue,
            attestation_wait: wait,
            ..ConfidentialConfig::default()
        },
    ));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let conf = Arc::clone(&conf);
            tokio::spawn(async move { conf.attest(&"ab".repeat(32)).await.is_ok() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.expect("task"));
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_attestations_waits_in_a_bounded_queue() {
    // Four at once with one permit: the three behind it wait their turn (300 ms each).
    assert_eq!(served_at_once(4, 32, Duration::from_secs(10)).await, 4);
    // A queue of one: one runs, one waits, two are refused at once.
    assert_eq!(served_at_once(4, 1, Duration::from_secs(10)).await, 2);
    // A wait shorter than one evidence: only the first is served.
    assert_eq!(served_at_once(3, 32, Duration::from_millis(20)).await, 1);
}

/// `GET /v1/attestation` over TCP from `local` (a loopback address) to the server at `addr`:
/// the status and `Retry-After`.
async fn attest_over_tcp(addr: std::net::SocketAddr, local: [u8; 4]) -> (u16, Option<String>) {
    veil_client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(local))
        .build()
        .expect("client");
    let r = http
        .get(format!(
            "http://{addr}/v1/attestation?nonce={}",
            "cd".repeat(32)
        ))
        .send()
        .await
        .expect("answered");
    let retry = r
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_spends_its_own_attestation_budget_only() {
    let conf = Arc::new(Confidential::new(
        Arc::new(Simulated::new([9; 32], MEASUREMENT)),
        ManifestClaims::new([1; 32], [2; 32], "test-model".into()),
        ConfidentialConfig {
            attestation_per_address: super::AddressBudget::new(2, 6),
            ..ConfidentialConfig::default()
        },
    ));
    let app = routes(conf, Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(crate::listen::serve(
        listener,
        app,
        crate::listen::ListenConfig::default(),
        std::future::pending(),
        crate::api::Drain::default(),
    ));
    let looping = [127, 0, 0, 2];
    assert_eq!(attest_over_tcp(addr, looping).await.0, 200);
    assert_eq!(attest_over_tcp(addr, looping).await.0, 200);
    // The burst is spent: refused before the queue, told when to come back (6 a minute).
    let (status, retry) = attest_over_tcp(addr, looping).await;
    assert_eq!(status, 429);
    let secs: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((9..=10).contains(&secs), "Retry-After {secs}");
    // Another address is served meanwhile.
    assert_eq!(attest_over_tcp(addr, [127, 0, 0, 3]).await.0, 200);
    // An in-process caller (no peer address) is not budgeted.
    let conf2 = confidential();
    for _ in 0..20 {
        conf2
            .attest_from(&"ab".repeat(32), None)
            .await
            .expect("no budget without an address");
    }
}
