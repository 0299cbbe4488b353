//! Known answers for X-Wing (KEM 0x647A): the draft's test vectors through `hpke` and through
//! Veil's request encapsulation, and whole OHTTP exchanges (plain and chunked) with fixed
//! randomness, pinned byte for byte and opened by `ohttp` 0.8 as an independent check.
//!
//! Vectors: `vectors/xwing-draft-connolly-06.json` (draft-connolly-cfrg-xwing-kem, via the
//! `x-wing` 0.1.1 crate; see `vectors/README.md`). The exchange pins below were produced by
//! this implementation and are checked here against `ohttp`, which shares only the
//! `x-wing`/`ml-kem` primitives with it, not the HPKE or OHTTP code.

use crate::common;

use common::{FixedRng, hex};
use hpke::Kem as _;
use ohttp::hpke::{Aead as OAead, Kdf as OKdf, Kem as OKem};
use sha2_next::{Digest, Sha256};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, Error, GatewayKey, HEADER_LEN, Kem, KeyConfig,
    SymmetricSuite, decapsulate_request, encapsulate_request,
};

const VECTORS: &str = include_str!("../vectors/xwing-draft-connolly-06.json");
const VECTORS_SHA256: &str = "a8726596f4c7629590f727b1bbeb483f6932292fbf5fd85c9cbb803190014f00";
const AES128: SymmetricSuite = SymmetricSuite::HKDF_SHA256_AES_128_GCM;
/// RFC 9458 Appendix A's Binary HTTP request and response (GET https://example.com/, 200).
const BHTTP_REQUEST: &str = "00034745540568747470730b6578616d706c652e636f6d012f";
const BHTTP_RESPONSE: &str = "0140c8";

struct Vector {
    sk: Vec<u8>,
    pk: Vec<u8>,
    eseed: Vec<u8>,
    ct: Vec<u8>,
    ss: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    assert_eq!(
        hex::encode(Sha256::digest(VECTORS.as_bytes())),
        VECTORS_SHA256,
        "the vector file is the one copied from x-wing 0.1.1"
    );
    let v: Vec<serde_json::Value> = serde_json::from_str(VECTORS).expect("vector JSON");
    assert_eq!(v.len(), 3);
    v.iter()
        .map(|t| {
            let h = |f: &str| hex(t[f].as_str().expect("field"));
            // The draft's secret key is the 32-byte seed itself.
            assert_eq!(h("sk"), h("seed"));
            Vector {
                sk: h("sk"),
                pk: h("pk"),
                eseed: h("eseed"),
                ct: h("ct"),
                ss: h("ss"),
            }
        })
        .collect()
}

#[test]
fn hpke_xwing_reproduces_the_draft_vectors() {
    type Pk = <hpke::kem::XWing as hpke::Kem>::PublicKey;
    use hpke::{Deserializable as _, Serializable as _};
    for (i, v) in vectors().iter().enumerate() {
        let pk = Pk::from_bytes(&v.pk).expect("pk");
        let mut rng = FixedRng::new(&[&v.eseed]);
        let (ss, ct) = hpke::kem::XWing::encap_with_rng(&pk, None, &mut rng).expect("encap");
        assert!(rng.is_empty(), "vector {i}: eseed is all the randomness");
        assert_eq!(ct.to_bytes().to_vec(), v.ct, "vector {i}: ciphertext");
        assert_eq!(ss.0.to_vec(), v.ss, "vector {i}: shared secret");
    }
}

#[test]
fn veil_key_and_encapsulation_match_the_draft_vectors() {
    for (i, v) in vectors().iter().enumerate() {
        let key = GatewayKey::from_secret_bytes_with(Kem::XWing, 1, &[AES128], &v.sk)
            .expect("seed is a key");
        assert_eq!(key.config().public_key(), v.pk, "vector {i}: public key");
        assert_eq!(key.config().kem_id(), 0x647a);

        // The request's `enc` is the draft's ciphertext for the same eseed, and the gateway
        // derives the same shared secret from it (it opens the request).
        let mut rng = FixedRng::new(&[&v.eseed]);
        let (req, _) =
            encapsulate_request(key.config(), AES128, b"hello", &mut rng).expect("encapsulate");
        assert!(rng.is_empty());
        assert_eq!(&req[1..3], &[0x64, 0x7a], "KEM id on the wire");
        assert_eq!(req[HEADER_LEN..HEADER_LEN + 1120].to_vec(), v.ct);
        assert_eq!(req.len(), HEADER_LEN + 1120 + 5 + 16);
        let d = decapsulate_request(&key, &req).expect("gateway opens");
        assert_eq!(d.request, b"hello");
        assert_eq!(d.enc, v.ct);

        // A changed ciphertext byte gives another (implicitly rejected) secret: the AEAD
        // refuses, whichever of the ML-KEM or X25519 halves was hit.
        for at in [HEADER_LEN, HEADER_LEN + 1088] {
            let mut bad = req.clone();
            bad[at] ^= 1;
            assert_eq!(
                decapsulate_request(&key, &bad).err(),
                Some(Error::Authentication),
                "vector {i}: flipped enc byte {at}"
            );
        }
    }
}

/// Input keying material of the fixed gateway key.
const IKM: [u8; 32] = [0x5a; 32];

/// `ohttp`'s server for the same X-Wing key: `DeriveKeyPair` of the same input on both
/// sides gives the same configuration bytes.
fn ohttp_server_for(ikm: &[u8]) -> (ohttp::Server, GatewayKey) {
    let config = ohttp::KeyConfig::derive(
        1,
        OKem::XWing,
        vec![ohttp::SymmetricSuite::new(
            OKdf::HkdfSha256,
            OAead::Aes128Gcm,
        )],
        ikm,
    )
    .expect("ohttp derives");
    let key = GatewayKey::derive_with(Kem::XWing, 1, &[AES128], ikm);
    assert_eq!(
        config.encode().expect("encode"),
        key.config().encode(),
        "both derive the same X-Wing key pair"
    );
    (ohttp::Server::new(config).expect("server"), key)
}

fn digest(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The fixed-randomness exchange: the key derived from [`IKM`], vector 0's eseed, response
/// nonce 0x11 × 16.
const REQUEST_SHA256: &str = "34c1bb52553898f649be2b932ce9ab5d8dd388481295375f9555bc21e5df05a5";
const RESPONSE: &str = "11111111111111111111111111111111c0737f6547c8c50ec592210386d021f9bfa7ba";

#[test]
fn fixed_randomness_request_and_response_are_pinned() {
    let (server, key) = ohttp_server_for(&IKM);
    let config = KeyConfig::decode(&key.config().encode()).expect("decode");
    assert_eq!(config.encode().len(), 1 + 2 + 1216 + 2 + 4);
    let mut rng = FixedRng::new(&[&vectors()[0].eseed]);
    let (req, opener) =
        encapsulate_request(&config, AES128, &hex(BHTTP_REQUEST), &mut rng).expect("seal");
    assert_eq!(req.len(), HEADER_LEN + 1120 + 25 + 16);
    assert_eq!(digest(&req), REQUEST_SHA256);
    let (plain, _) = server
        .decapsulate(&req)
        .expect("ohttp opens the pinned request");
    assert_eq!(plain, hex(BHTTP_REQUEST));

    let d = decapsulate_request(&key, &req).expect("open");
    assert_eq!(d.request, hex(BHTTP_REQUEST));
    let mut rng = FixedRng::new(&[&[0x11; 16]]);
    let res = d
        .response
        .seal(&hex(BHTTP_RESPONSE), &mut rng)
        .expect("seal");
    assert!(rng.is_empty());
    assert_eq!(hex::encode(&res), RESPONSE);
    assert_eq!(
        opener.open(&res).expect("client opens"),
        hex(BHTTP_RESPONSE)
    );
}

const CHUNKED_REQUEST_SHA256: &str =
    "065865e2abd2069bd56559a7aadd9a5e6a04f3435c11ee000f365246436b7628";
const CHUNKED_RESPONSE: &str = "22222222222222222222222222222222\
    119abd8ef4403912088455f1a7c2ac18b82600835c445856ef28dcf21cd9aa7c199cd401ba";

#[test]
fn fixed_randomness_chunked_exchange_is_pinned() {
    let key = GatewayKey::derive_with(Kem::XWing, 1, &[AES128], &IKM);
    let mut rng = FixedRng::new(&[&vectors()[0].eseed]);
    let (mut sealer, mut req) =
        ChunkedRequestSealer::start(key.config(), AES128, &mut rng).expect("start");
    let bhttp = hex(BHTTP_REQUEST);
    req.extend(sealer.seal_chunk(&bhttp[..10]).expect("chunk"));
    req.extend(sealer.seal_final(&bhttp[10..]).expect("final"));
    assert_eq!(digest(&req), CHUNKED_REQUEST_SHA256);

    // The gateway reads the 1127-byte header in pieces.
    let mut gw = ChunkedRequestOpener::new(&key);
    let mut plain = Vec::new();
    for piece in req.chunks(100) {
        plain.extend(gw.push(piece).expect("push"));
    }
    plain.extend(gw.finish().expect("final"));
    assert_eq!(plain, bhttp);
    assert_eq!(gw.enc().map(<[u8]>::len), Some(1120));
    let mut rng = FixedRng::new(&[&[0x22; 16]]);
    let (mut rs, mut res) = gw.response_sealer(&mut rng).expect("response");
    let response = hex(BHTTP_RESPONSE);
    res.extend(rs.seal_chunk(&response[..1]).expect("chunk"));
    res.extend(rs.seal_final(&response[1..]).expect("final"));
    assert_eq!(hex::encode(&res), CHUNKED_RESPONSE);
    let mut opener = sealer.response_opener().expect("opener");
    assert_eq!(opener.push(&res).expect("open"), &response[..1]);
    assert_eq!(opener.finish().expect("final"), &response[1..]);
}

#[test]
fn ohttp_and_veil_open_the_same_request_and_each_other_s_response() {
    let (server, key) = ohttp_server_for(&IKM);
    let mut rng = FixedRng::new(&[&vectors()[1].eseed]);
    let (req, opener) =
        encapsulate_request(key.config(), AES128, &hex(BHTTP_REQUEST), &mut rng).expect("seal");
    let (plain, server_response) = server
        .decapsulate(&req)
        .expect("ohttp opens Veil's request");
    assert_eq!(plain, hex(BHTTP_REQUEST));
    let res = server_response
        .encapsulate(&hex(BHTTP_RESPONSE))
        .expect("ohttp seals");
    assert_eq!(opener.open(&res).expect("Veil opens"), hex(BHTTP_RESPONSE));
    // And the same bytes through Veil's gateway with the same key.
    assert_eq!(
        decapsulate_request(&key, &req).expect("open").request,
        hex(BHTTP_REQUEST)
    );
}
