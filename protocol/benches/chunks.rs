//! Cost of sealing and opening one streamed-response chunk (chunked OHTTP), per suite, for
//! chunk sizes typical of token streaming (one SSE event, padded) and of bulk transfer;
//! plus the per-request setup (HPKE encapsulation + decapsulation).
//!
//! Run with `cargo bench -p veil-protocol --bench chunks`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, GatewayKey, SymmetricSuite, os_rng,
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

fn request_setup(c: &mut Criterion) {
    let key = GatewayKey::generate(1, &SymmetricSuite::ALL, &mut os_rng());
    c.bench_function(
        "setup/encapsulate+decapsulate+response keys (AES-256-GCM)",
        |b| {
            b.iter(|| {
                let (mut s, mut req) = ChunkedRequestSealer::start(
                    key.config(),
                    SymmetricSuite::HKDF_SHA256_AES_256_GCM,
                    &mut os_rng(),
                )
                .expect("start");
                req.extend(s.seal_final(b"{}").expect("final"));
                let mut gw = ChunkedRequestOpener::new(&key);
                gw.push(&req).expect("push");
                gw.finish().expect("finish");
                black_box(gw.response_sealer(&mut os_rng()).expect("sealer"));
            })
        },
    );
}

criterion_group!(benches, chunk_seal_open, request_setup);
criterion_main!(benches);
