//! A stable-toolchain stand-in for the `veil-protocol` cargo-fuzz targets of `fuzz/` (which
//! need nightly and libFuzzer): the same entry points (`fuzz/src/protocol.rs`, included
//! below) run over every seed of `fuzz/seeds/<target>/`, deterministic mutations of each,
//! and pseudo-random inputs (`fuzz/smoke.rs`); none may panic or break an invariant.
//!
//! `cargo test -p veil-protocol --test protocol fuzz_smoke -- --ignored regenerate_seeds` rewrites
//! the seeds of these targets, and of `inner_response` (see `fuzz/README.md`).

#[allow(
    unreachable_pub,
    reason = "the fuzz crate's public entry points, included as a private module"
)]
#[path = "../../../fuzz/src/protocol.rs"]
mod harness;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the shared smoke driver; each crate's smoke test uses a subset"
)]
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

use harness::{TestRng, gateway_key, now};
use smoke::{random_inputs, seeds, write_seed};
use veil_protocol::bhttp::{Message, StatusCode};
use veil_protocol::message::{decode_message, encode_message};
use veil_protocol::{
    Client, GatewayKey, IndeterminateResponseEncoder, KeyConfig, Padding, SymmetricSuite,
    build_request,
};

/// Pseudo-random inputs per target, on top of the seeds and their mutations.
const RANDOM_INPUTS: usize = 2_000;

fn run(target: &str, entry: fn(&[u8])) {
    let runs = smoke::smoke(target, entry, &random_inputs(target, RANDOM_INPUTS, 512));
    assert!(runs > RANDOM_INPUTS, "{target}: {runs} inputs");
}

#[test]
fn ohttp_key_config_never_panics() {
    run("ohttp_key_config", harness::ohttp_key_config);
}

#[test]
fn ohttp_request_never_panics() {
    run("ohttp_request", harness::ohttp_request);
}

#[test]
fn ohttp_chunks_never_panics() {
    run("ohttp_chunks", harness::ohttp_chunks);
}

#[test]
fn bhttp_message_never_panics() {
    run("bhttp_message", harness::bhttp_message);
}

/// The seeds still reach past parsing: a stale seed (a `Date` outside the window, a key
/// that is no longer the fixed one) would leave the deep checks unfuzzed.
#[test]
fn seeds_reach_the_deep_checks() {
    for (name, bytes) in seeds("ohttp_key_config") {
        let n = KeyConfig::decode(&bytes)
            .map(|_| 1)
            .or_else(|_| KeyConfig::decode_list(&bytes).map(|l| l.len()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n >= 1, "{name}");
    }
    let mut xwing_seeds = 0;
    for (name, bytes) in seeds("ohttp_request") {
        let g = harness::gateway();
        xwing_seeds += usize::from(bytes.get(..3) == Some(&[harness::XWING_KEY_ID, 0x64, 0x7a]));
        let ok = if name.ends_with(".bhttp") {
            decode_message(&bytes).map(|_| ())
        } else if name.contains("chunked") {
            g.open_chunked_request(&bytes, now(), &mut TestRng::new(b"x"))
                .map(|_| ())
        } else {
            g.open_request(&bytes, now()).map(|_| ())
        };
        ok.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(xwing_seeds, 2, "an X-Wing request seed, plain and chunked");
    for (name, bytes) in seeds("bhttp_message") {
        decode_message(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn request() -> Message {
    build_request(
        "POST",
        "veil",
        "/v1/chat/completions",
        &[
            ("content-type", b"application/json"),
            ("authorization", b"Bearer sk-test"),
        ],
        br#"{"model":"test-model","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        now(),
    )
}

/// A chunk script for `ohttp_chunks`: suite byte, then (op, operand, payload) steps.
fn script(suite: u8, steps: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![suite];
    for &(op, payload) in steps {
        out.push(op);
        if op == 5 || op == 6 {
            out.push(payload.first().copied().unwrap_or(0));
        } else {
            out.push(u8::try_from(payload.len()).expect("short payload"));
            out.extend_from_slice(payload);
        }
    }
    out
}

/// Rewrites the seeds of the protocol targets (and `inner_response`, whose inputs
/// `veil-protocol` encodes). Run by hand when the formats or the fixed key change.
#[test]
#[ignore = "writes fuzz/seeds/; run explicitly"]
fn regenerate_seeds() {
    let key = gateway_key();

    // Key configurations: RFC 9458 §A's, and lists as a gateway serves them.
    let rfc9458 = hex::decode(
        "01002031e1f05a740102115220e9af918f738674aec95f54db6e04eb705aae8e79815500080001000100010003",
    )
    .expect("hex");
    write_seed("ohttp_key_config", "rfc9458-a.bin", &rfc9458);
    let second = GatewayKey::derive(2, &[SymmetricSuite::ALL[2]], &[0x43; 32]);
    let list = KeyConfig::encode_list(&[key.config().clone(), second.config().clone()]);
    write_seed("ohttp_key_config", "gateway-two-keys.list", &list);
    let mut foreign = rfc9458.clone();
    foreign[1..3].copy_from_slice(&0x0010_u16.to_be_bytes()); // DHKEM(P-256): skipped
    let mut mixed = (foreign.len() as u16).to_be_bytes().to_vec();
    mixed.extend_from_slice(&foreign);
    mixed.extend_from_slice(&KeyConfig::encode_list(&[key.config().clone()]));
    write_seed("ohttp_key_config", "unsupported-kem-first.list", &mixed);
    let published = KeyConfig::encode_list(&harness::gateway().current_configs());
    write_seed("ohttp_key_config", "gateway-xwing-x25519.list", &published);

    // Requests sealed to the fixed key, dated `now()`, and an inner request alone.
    let client = Client::new(key.config().clone()).expect("client");
    let mut rng = TestRng::new(b"ohttp_request seeds");
    let (body, _) = client.seal(&request(), &mut rng).expect("seal");
    write_seed("ohttp_request", "request.bin", &body);
    let (body, _) = client
        .with_suite(SymmetricSuite::ALL[2])
        .expect("offered")
        .seal_chunked(&request(), &mut rng)
        .expect("seal");
    write_seed("ohttp_request", "chunked-request.bin", &body);
    let inner = encode_message(&request(), &Padding::default()).expect("encode");
    write_seed("ohttp_request", "inner-request-padded.bhttp", &inner);
    let xwing = Client::new(harness::xwing_gateway_key().config().clone()).expect("client");
    let (body, _) = xwing.seal(&request(), &mut rng).expect("seal");
    write_seed("ohttp_request", "xwing-request.bin", &body);
    let (body, _) = xwing.seal_chunked(&request(), &mut rng).expect("seal");
    write_seed("ohttp_request", "xwing-chunked-request.bin", &body);

    // Chunk scripts: ops 0-2 seal a chunk, 3 the final chunk, 4 raw bytes, 5 flip, 6 cut.
    let sse: [&[u8]; 3] = [
        b"data: {\"a\":1}\n\n",
        b"data: {\"b\":2}\n\n",
        b"data: [DONE]\n\n",
    ];
    let clean = |suite| script(suite, &[(0, sse[0]), (1, sse[1]), (2, sse[2]), (3, b"")]);
    write_seed("ohttp_chunks", "clean-aes256.script", &clean(0));
    write_seed("ohttp_chunks", "clean-aes128.script", &clean(1));
    write_seed(
        "ohttp_chunks",
        "final-with-data-chacha.script",
        &script(2, &[(0, sse[0]), (3, sse[1])]),
    );
    write_seed(
        "ohttp_chunks",
        "flipped.script",
        &script(0, &[(0, sse[0]), (5, &[40]), (1, sse[1]), (3, b"")]),
    );
    write_seed(
        "ohttp_chunks",
        "cut-and-raw.script",
        &script(
            1,
            &[(0, sse[0]), (6, &[3]), (4, &[0x40, 0x11, 0]), (3, b"")],
        ),
    );

    // Binary HTTP: RFC 9292 §5.1's known-length GET, a Veil request, an indeterminate
    // response with trailers and padding.
    let get = hex::decode("00034745540568747470730b6578616d706c652e636f6d012f").expect("hex");
    write_seed("bhttp_message", "rfc9292-get.bin", &get);
    let plain = encode_message(&request(), &Padding::none()).expect("encode");
    write_seed("bhttp_message", "request-known-length.bin", &plain);
    write_seed("bhttp_message", "request-padded.bin", &inner);
    let mut enc = IndeterminateResponseEncoder::new();
    let mut streamed = enc
        .head(200, &[(b"content-type", b"text/event-stream")])
        .expect("head");
    for piece in sse {
        streamed.extend(enc.content(piece).expect("content"));
    }
    let mut with_trailers = streamed.clone();
    with_trailers.extend(enc.finish(&[(b"x-usage", b"7")], 9).expect("finish"));
    write_seed(
        "bhttp_message",
        "response-indeterminate.bin",
        &with_trailers,
    );

    // Inner responses as `veil-client` receives them.
    let mut enc = IndeterminateResponseEncoder::new();
    let mut sse_stream = enc
        .head(200, &[(b"content-type", b"text/event-stream")])
        .expect("head");
    for piece in sse {
        sse_stream.extend(enc.content(piece).expect("content"));
    }
    sse_stream.extend(enc.finish(&[], 0).expect("finish"));
    write_seed("inner_response", "sse-indeterminate.bin", &sse_stream);
    write_seed("inner_response", "sse-with-trailers.bin", &with_trailers);
    let mut json = Message::response(StatusCode::OK);
    json.put_header("content-type", "application/json");
    json.write_content(br#"{"id":"c1","object":"chat.completion","choices":[]}"#);
    let json = encode_message(&json, &Padding::default()).expect("encode");
    write_seed("inner_response", "json-known-length-padded.bin", &json);
    // 103 Early Hints, then 200 with one header and one content chunk, no trailers.
    let informational = [
        &[3, 0x40, 103, 4][..],
        b"link",
        &[5],
        b"</a>;",
        &[0, 0x40, 200, 0, 2],
        b"ok",
        &[0],
    ]
    .concat();
    write_seed("inner_response", "informational-103.bin", &informational);
}
