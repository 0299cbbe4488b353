//! One negative test per rule of the encapsulation layer: each alteration is detected
//! with its own typed error.

use crate::common;

use common::FixedRng;
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, ChunkedResponseOpener, Error, GatewayKey,
    KeyConfig, SymmetricSuite, decapsulate_request, encapsulate_request, os_rng,
};

const AES256: SymmetricSuite = SymmetricSuite::HKDF_SHA256_AES_256_GCM;
const AES128: SymmetricSuite = SymmetricSuite::HKDF_SHA256_AES_128_GCM;
const CHACHA: SymmetricSuite = SymmetricSuite::HKDF_SHA256_CHACHA20_POLY1305;
const PLAINTEXT: &[u8] = b"inner request bytes";

fn key(id: u8, suites: &[SymmetricSuite]) -> GatewayKey {
    GatewayKey::derive(id, suites, &[id; 32])
}

fn request(key: &GatewayKey, suite: SymmetricSuite) -> Vec<u8> {
    encapsulate_request(key.config(), suite, PLAINTEXT, &mut os_rng())
        .expect("encapsulate")
        .0
}

#[test]
fn round_trips_every_suite() {
    let k = key(1, &SymmetricSuite::ALL);
    for suite in SymmetricSuite::ALL {
        let (req, opener) =
            encapsulate_request(k.config(), suite, PLAINTEXT, &mut os_rng()).expect("seal");
        let d = decapsulate_request(&k, &req).expect("open");
        assert_eq!(d.request, PLAINTEXT);
        let res = d
            .response
            .seal(b"answer", &mut os_rng())
            .expect("seal response");
        assert_eq!(
            opener.open(&res).expect("open response"),
            b"answer",
            "{suite}"
        );
    }
}

#[test]
fn rejects_tampered_request_ciphertext() {
    let k = key(1, &[AES256]);
    let req = request(&k, AES256);
    // Every byte after the header (enc, ciphertext, tag) is authenticated.
    for i in 7..req.len() {
        let mut bad = req.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            decapsulate_request(&k, &bad).err(),
            Some(Error::Authentication),
            "byte {i}"
        );
    }
}

#[test]
fn rejects_request_header_swapped_to_other_offered_suite() {
    let k = key(1, &[AES256, AES128]);
    let mut req = request(&k, AES256);
    req[6] = 0x01; // AEAD id: AES-256-GCM -> AES-128-GCM (offered, but not what was sealed)
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::Authentication)
    );
}

#[test]
fn rejects_wrong_key_id() {
    let k = key(1, &[AES256]);
    let mut req = request(&k, AES256);
    req[0] = 2;
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::UnknownKeyId(2))
    );
}

#[test]
fn rejects_request_sealed_to_another_key_with_same_id() {
    let k = key(1, &[AES256]);
    let other = GatewayKey::derive(1, &[AES256], &[0xee; 32]);
    let req = request(&other, AES256);
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::Authentication)
    );
}

#[test]
fn rejects_unknown_suite() {
    let k = key(1, &[AES256]);
    let mut req = request(&k, AES256);
    req[5..7].copy_from_slice(&0xffffu16.to_be_bytes()); // export-only AEAD
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::UnsupportedSuite {
            kdf: 1,
            aead: 0xffff
        })
    );
}

#[test]
fn rejects_suite_not_offered_by_key() {
    let k = key(1, &[AES256]);
    let both = key(1, &[AES256, CHACHA]);
    // Sealed with ChaCha20-Poly1305 to the same public key, which the gateway does not offer.
    let req = request(&both, CHACHA);
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::UnsupportedSuite { kdf: 1, aead: 3 })
    );
    // And the client refuses to seal with a suite the configuration does not offer.
    assert!(matches!(
        encapsulate_request(k.config(), CHACHA, PLAINTEXT, &mut os_rng()),
        Err(Error::UnsupportedSuite { .. })
    ));
}

#[test]
fn rejects_unsupported_kem() {
    let k = key(1, &[AES256]);
    let mut req = request(&k, AES256);
    req[1..3].copy_from_slice(&0x0010u16.to_be_bytes()); // P-256
    assert_eq!(
        decapsulate_request(&k, &req).err(),
        Some(Error::UnsupportedKem(0x10))
    );
}

#[test]
fn rejects_truncated_request() {
    let k = key(1, &[AES256]);
    let req = request(&k, AES256);
    for len in [0, 1, 6, 7, 38, 39, 40, req.len() - 1] {
        assert!(decapsulate_request(&k, &req[..len]).is_err(), "len {len}");
    }
}

#[test]
fn rejects_tampered_response() {
    let k = key(1, &[AES256]);
    for i in 0..(32 + 6 + 16) {
        let (req, opener) =
            encapsulate_request(k.config(), AES256, PLAINTEXT, &mut os_rng()).expect("seal");
        let d = decapsulate_request(&k, &req).expect("open");
        let mut res = d.response.seal(b"answer", &mut os_rng()).expect("seal");
        res[i] ^= 0x80;
        assert_eq!(
            opener.open(&res).err(),
            Some(Error::Authentication),
            "byte {i}"
        );
    }
}

#[test]
fn rejects_response_to_another_request() {
    let k = key(1, &[AES256]);
    let (_, opener_a) =
        encapsulate_request(k.config(), AES256, PLAINTEXT, &mut os_rng()).expect("a");
    let (req_b, _) = encapsulate_request(k.config(), AES256, PLAINTEXT, &mut os_rng()).expect("b");
    let d = decapsulate_request(&k, &req_b).expect("open b");
    let res_b = d.response.seal(b"answer", &mut os_rng()).expect("seal");
    assert_eq!(opener_a.open(&res_b).err(), Some(Error::Authentication));
}

/// A chunked exchange: the response split as [nonce, chunk0, chunk1, chunk2, final].
fn chunked_exchange(suite: SymmetricSuite) -> (ChunkedResponseOpener, Vec<u8>, Vec<Vec<u8>>) {
    let k = key(1, &SymmetricSuite::ALL);
    let (mut sealer, mut req) =
        ChunkedRequestSealer::start(k.config(), suite, &mut os_rng()).expect("start");
    req.extend(sealer.seal_final(PLAINTEXT).expect("final"));
    let opener = sealer.response_opener().expect("opener");
    let mut gw = ChunkedRequestOpener::new(&k);
    gw.push(&req).expect("push");
    assert_eq!(gw.finish().expect("finish"), PLAINTEXT);
    let (mut rs, nonce) = gw.response_sealer(&mut os_rng()).expect("sealer");
    let parts = vec![
        rs.seal_chunk(b"data: one\n\n").expect("0"),
        rs.seal_chunk(b"data: two\n\n").expect("1"),
        rs.seal_chunk(b"data: three\n\n").expect("2"),
        rs.seal_final(b"data: [DONE]\n\n").expect("final"),
    ];
    (opener, nonce, parts)
}

fn join(nonce: &[u8], parts: &[&Vec<u8>]) -> Vec<u8> {
    let mut out = nonce.to_vec();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn chunked_response_round_trips_every_suite() {
    for suite in SymmetricSuite::ALL {
        let (opener, nonce, p) = chunked_exchange(suite);
        let got = opener
            .open_all(&join(&nonce, &[&p[0], &p[1], &p[2], &p[3]]))
            .expect("open");
        assert_eq!(
            got,
            b"data: one\n\ndata: two\n\ndata: three\n\ndata: [DONE]\n\n"
        );
    }
}

#[test]
fn rejects_truncated_stream_without_final_chunk() {
    let (mut opener, nonce, p) = chunked_exchange(AES256);
    // Every non-final chunk opens and is delivered...
    let got = opener
        .push(&join(&nonce, &[&p[0], &p[1], &p[2]]))
        .expect("chunks");
    assert_eq!(got, b"data: one\n\ndata: two\n\ndata: three\n\n");
    assert!(!opener.is_complete());
    // ...but the end of the stream without the final chunk is truncation.
    assert_eq!(opener.finish(), Err(Error::Truncated));
}

#[test]
fn rejects_stream_cut_inside_a_chunk_as_truncated() {
    let (mut opener, nonce, p) = chunked_exchange(AES256);
    let wire = join(&nonce, &[&p[0], &p[1]]);
    opener.push(&wire[..wire.len() - 3]).expect("partial");
    assert_eq!(opener.finish(), Err(Error::Truncated));
}

#[test]
fn rejects_stream_cut_before_nonce_as_truncated() {
    let (mut opener, nonce, _) = chunked_exchange(AES256);
    opener.push(&nonce[..5]).expect("partial nonce");
    assert_eq!(opener.finish(), Err(Error::Truncated));
}

#[test]
fn rejects_reordered_chunks() {
    let (opener, nonce, p) = chunked_exchange(AES256);
    let wire = join(&nonce, &[&p[1], &p[0], &p[2], &p[3]]);
    assert_eq!(
        opener.open_all(&wire),
        Err(Error::ChunkAuthentication { index: 0 })
    );
}

#[test]
fn rejects_dropped_middle_chunk() {
    let (opener, nonce, p) = chunked_exchange(AES256);
    let wire = join(&nonce, &[&p[0], &p[2], &p[3]]);
    assert_eq!(
        opener.open_all(&wire),
        Err(Error::ChunkAuthentication { index: 1 })
    );
}

#[test]
fn rejects_non_final_chunk_marked_final() {
    let (opener, nonce, p) = chunked_exchange(AES256);
    // Re-frame chunk 1 as the final chunk (zero length prefix, rest of stream).
    let mut wire = join(&nonce, &[&p[0]]);
    wire.push(0);
    wire.extend_from_slice(&p[1][1..]);
    assert_eq!(
        opener.open_all(&wire),
        Err(Error::ChunkAuthentication { index: 1 })
    );
}

#[test]
fn rejects_tampered_chunk_byte() {
    let (opener, nonce, p) = chunked_exchange(CHACHA);
    let mut wire = join(&nonce, &[&p[0], &p[1], &p[2], &p[3]]);
    let at = nonce.len() + p[0].len() + 5;
    wire[at] ^= 0x01;
    assert_eq!(
        opener.open_all(&wire),
        Err(Error::ChunkAuthentication { index: 1 })
    );
}

#[test]
fn rejects_bytes_appended_after_final_chunk() {
    let (opener, nonce, p) = chunked_exchange(AES256);
    let mut wire = join(&nonce, &[&p[0], &p[1], &p[2], &p[3]]);
    wire.push(0);
    assert_eq!(
        opener.open_all(&wire),
        Err(Error::ChunkAuthentication { index: 3 })
    );
}

#[test]
fn rejects_input_after_completion_or_error() {
    let (mut opener, nonce, p) = chunked_exchange(AES256);
    opener
        .push(&join(&nonce, &[&p[0], &p[1], &p[2], &p[3]]))
        .expect("all");
    opener.finish().expect("final");
    assert_eq!(opener.push(b"x"), Err(Error::UnexpectedInput));

    let (mut opener, nonce, p) = chunked_exchange(AES256);
    assert!(opener.push(&join(&nonce, &[&p[1]])).is_err());
    // Once failed, the stream stays failed (no resynchronisation on later chunks).
    assert_eq!(opener.push(&p[2]), Err(Error::UnexpectedInput));
}

#[test]
fn rejects_truncated_chunked_request() {
    let k = key(1, &[AES256]);
    let (mut sealer, mut req) =
        ChunkedRequestSealer::start(k.config(), AES256, &mut os_rng()).expect("start");
    req.extend(sealer.seal_chunk(PLAINTEXT).expect("chunk"));
    let mut gw = ChunkedRequestOpener::new(&k);
    assert_eq!(gw.push(&req).expect("chunk opens"), PLAINTEXT);
    assert_eq!(gw.finish(), Err(Error::Truncated));
}

#[test]
fn rejects_oversized_chunk_length_before_allocating() {
    let (mut opener, nonce, _) = chunked_exchange(AES256);
    let mut wire = nonce.clone();
    wire.extend_from_slice(&[0xbf, 0xff, 0xff, 0xff]); // varint 2^30 - 1
    assert!(matches!(opener.push(&wire), Err(Error::TooLarge { .. })));
}

#[test]
fn client_fixes_ephemeral_key_through_rng_per_rfc9180() {
    // RFC 9180 A.1 (base mode, X25519, HKDF-SHA256, AES-128-GCM): with the random source
    // yielding ikmE, the encapsulated key is the published pkEm; with ikmR, the gateway key
    // is the published pkRm.
    let v: Vec<serde_json::Value> = serde_json::from_str(include_str!(
        "../vectors/hpke-rfc9180-x25519-sha256-base.json"
    ))
    .expect("vectors");
    for t in &v {
        let h = |f: &str| common::hex(t[f].as_str().expect("field"));
        let gw = GatewayKey::derive(1, &SymmetricSuite::ALL, &h("ikmR"));
        assert_eq!(gw.config().public_key().to_vec(), h("pkRm"));
        let mut rng = FixedRng::new(&[&h("ikmE")]);
        let (req, _) = encapsulate_request(gw.config(), AES128, PLAINTEXT, &mut rng).expect("seal");
        assert!(rng.is_empty());
        assert_eq!(req[7..39].to_vec(), h("pkEm"));
    }
}

#[test]
fn key_config_decoding_rejects_malformed_input() {
    let k = key(1, &SymmetricSuite::ALL);
    let good = k.config().encode();
    assert_eq!(KeyConfig::decode(&good).expect("good"), *k.config());
    for len in 0..good.len() {
        assert!(
            KeyConfig::decode(&good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(KeyConfig::decode(&trailing).is_err());
    let mut odd = good.clone();
    odd[35..37].copy_from_slice(&5u16.to_be_bytes());
    assert!(KeyConfig::decode(&odd).is_err());
    let mut kem = good.clone();
    kem[1..3].copy_from_slice(&0x0010u16.to_be_bytes());
    assert_eq!(KeyConfig::decode(&kem), Err(Error::UnsupportedKem(0x10)));
}

#[test]
fn key_config_list_skips_unsupported_kem_and_keeps_order() {
    let a = key(1, &[AES256]).config().clone();
    let b = key(2, &[AES128, CHACHA]).config().clone();
    let mut list = KeyConfig::encode_list(std::slice::from_ref(&a));
    // An entry for a KEM this crate does not implement (P-256, 65-byte key).
    let mut foreign = vec![3, 0x00, 0x10];
    foreign.extend_from_slice(&[4; 65]);
    foreign.extend_from_slice(&[0, 4, 0, 1, 0, 1]);
    list.extend_from_slice(&(foreign.len() as u16).to_be_bytes());
    list.extend_from_slice(&foreign);
    list.extend(KeyConfig::encode_list(std::slice::from_ref(&b)));
    assert_eq!(KeyConfig::decode_list(&list).expect("list"), vec![a, b]);
    assert!(KeyConfig::decode_list(&list[..list.len() - 1]).is_err());
}
