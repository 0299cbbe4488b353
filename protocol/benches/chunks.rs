//! Cost of sealing and opening one streamed-response chunk (chunked OHTTP), per suite, for
//! chunk sizes typical of token streaming (one SSE event, padded) and of bulk transfer;
//! plus the per-request setup (HPKE encapsulation + decapsulation) and the request size, for
//! each KEM: X-Wing (ML-KEM-768 + X25519) and X25519.
//!
//! Also the replay record's cost per accepted request when it is full: every second of the
//! default window holding its limit (`-- replay`).
//!
//! Run with `cargo bench -p veil-protocol --bench chunks` (`-- setup` for the setup only).

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, Client, DEFAULT_REPLAY_PER_SECOND, DateWindow,
    GatewayKey, Kem, ReplayCache, SymmetricSuite, build_request, os_rng,
};

fn chunk_seal_open(c: &mut Criterion) {
    let key = GatewayKey::generate(1, &SymmetricSuite::ALL, &mut os_rng());
    for suite in SymmetricSuite::ALL {
        for size in [128usize, 16_384] {
            let (mut req_sealer, mut req) =
                ChunkedRequestSealer::start(key.config(), suite, &mut os_rng()).expect("start");
            req.extend(req_sealer.seal_final(b"request").expect("final"));
            let mut opener = req_sealer.response_opener().expect("opener");
            let mut gw = ChunkedRequestOpener::new(&key);
            gw.push(&req).expect("push");
            gw.finish().expect("finish");
            let (mut sealer, nonce) = gw.response_sealer(&mut os_rng()).expect("sealer");
            opener.push(&nonce).expect("nonce");

            let data = vec![0x61u8; size];
            let mut g = c.benchmark_group(format!("chunk/{suite}/{size}B"));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function("seal+open", |b| {
                b.iter(|| {
                    let wire = sealer.seal_chunk(black_box(&data)).expect("seal");
                    let plain = opener.push(&wire).expect("open");
                    black_box(plain);
                })
            });
            g.finish();
        }
    }
}

/// What each KEM adds to a request on the wire: the same padded chat request sealed to each,
/// plain and chunked, and the key configuration a client fetches.
fn print_sizes() {
    let body = br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"Hello"}]}"#;
    let request = build_request(
        "POST",
        "veil",
        "/v1/chat/completions",
        &[("content-type", b"application/json")],
        body,
        UNIX_EPOCH,
    );
    for kem in Kem::ALL {
        let key = GatewayKey::generate_with(kem, 1, &SymmetricSuite::ALL, &mut os_rng());
        let client = Client::new(key.config().clone()).expect("client");
        let plain = client.seal(&request, &mut os_rng()).expect("seal").0.len();
        let chunked = client
            .seal_chunked(&request, &mut os_rng())
            .expect("seal")
            .0
            .len();
        println!(
            "size/{kem}: key configuration {} B, enc {} B; sealed chat request {plain} B \
             (chunked {chunked} B)",
            key.config().encode().len(),
            kem.enc_len(),
        );
    }
}

fn request_setup(c: &mut Criterion) {
    print_sizes();
    let suite = SymmetricSuite::HKDF_SHA256_AES_256_GCM;
    for kem in Kem::ALL {
        let key = GatewayKey::generate_with(kem, 1, &SymmetricSuite::ALL, &mut os_rng());
        let mut g = c.benchmark_group(format!("setup/{kem}"));
        g.bench_function("client: encapsulate + request keys (AES-256-GCM)", |b| {
            b.iter(|| {
                let (mut s, mut req) =
                    ChunkedRequestSealer::start(key.config(), suite, &mut os_rng()).expect("start");
                req.extend(s.seal_final(b"{}").expect("final"));
                black_box((req, s.response_opener().expect("opener")));
            })
        });
        let (mut s, mut req) =
            ChunkedRequestSealer::start(key.config(), suite, &mut os_rng()).expect("start");
        req.extend(s.seal_final(b"{}").expect("final"));
        g.bench_function("gateway: decapsulate + response keys", |b| {
            b.iter(|| {
                let mut gw = ChunkedRequestOpener::new(&key);
                gw.push(black_box(&req)).expect("push");
                gw.finish().expect("finish");
                black_box(gw.response_sealer(&mut os_rng()).expect("sealer"));
            })
        });
        g.bench_function("both: encapsulate + decapsulate + response keys", |b| {
            b.iter(|| {
                let (mut s, mut req) =
                    ChunkedRequestSealer::start(key.config(), suite, &mut os_rng()).expect("start");
                req.extend(s.seal_final(b"{}").expect("final"));
                let mut gw = ChunkedRequestOpener::new(&key);
                gw.push(&req).expect("push");
                gw.finish().expect("finish");
                black_box(gw.response_sealer(&mut os_rng()).expect("sealer"));
            })
        });
        g.finish();
    }
}

/// One accepted request (and one refused flood request) against a record whose every second
/// of the default window (120 s behind) holds its limit, while time moves on one second per
/// 1,024 requests: the cost includes dropping the expired second.
fn replay_record(c: &mut Criterion) {
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    let per_second = DEFAULT_REPLAY_PER_SECOND;
    let mut cache = ReplayCache::new(1, DateWindow::default(), per_second);
    let start = 1_000_000u64;
    let mut n: u64 = 0;
    for sec in start..start + 121 {
        for _ in 0..per_second {
            n += 1;
            cache
                .insert(&n.to_le_bytes(), t(sec), t(sec))
                .expect("room");
        }
    }
    let mut g = c.benchmark_group("replay");
    let mut now = start + 121;
    let mut in_second = 0;
    g.bench_function("insert into a full record (on time)", |b| {
        b.iter(|| {
            if in_second == per_second {
                now += 1;
                in_second = 0;
            }
            in_second += 1;
            n += 1;
            let at: SystemTime = t(now);
            black_box(cache.insert(&n.to_le_bytes(), at, at)).expect("room");
        })
    });
    let at = t(now);
    loop {
        n += 1;
        if cache.insert(&n.to_le_bytes(), at, at).is_err() {
            break;
        }
    }
    g.bench_function("refuse a flood request (second full)", |b| {
        b.iter(|| {
            n += 1;
            black_box(cache.insert(&n.to_le_bytes(), at, at)).expect_err("full");
        })
    });
    println!("replay record: {} entries held", cache.len());
    g.finish();
}

criterion_group!(benches, chunk_seal_open, request_setup, replay_record);
criterion_main!(benches);
