//! Known-answer tests: RFC 9458 Appendix A and draft-ietf-ohai-chunked-ohttp-08
//! Appendix A ("Example"), byte for byte. The hex below is copied from those documents.
//!
//! The client side of each example cannot re-encapsulate the request byte for byte: the
//! examples publish the ephemeral *secret key* `skE`, while `hpke` 0.15 only lets a caller
//! fix the randomness that `DeriveKeyPair` turns into `skE` (see
//! `tests/kat.rs::client_fixes_ephemeral_key_through_rng_per_rfc9180`). The client's
//! response opening is checked from the exported secret the examples publish.

use crate::{
    ChunkedRequestOpener, GatewayKey, SymmetricSuite,
    chunked::ChunkedResponseOpener,
    decapsulate_request,
    response::{LABEL_CHUNKED_RESPONSE, ResponseOpener, ResponseSecret},
    test_util::{FixedRng, hex},
};

const SUITES_AES128_CHACHA: [SymmetricSuite; 2] = [
    SymmetricSuite::HKDF_SHA256_AES_128_GCM,
    SymmetricSuite::HKDF_SHA256_CHACHA20_POLY1305,
];

/// The Binary HTTP request of both examples: GET https://example.com/.
const BHTTP_REQUEST: &str = "00034745540568747470730b6578616d706c652e636f6d012f";
/// The Binary HTTP response of both examples: 200, no fields.
const BHTTP_RESPONSE: &str = "0140c8";

mod rfc9458 {
    pub(super) const SK_R: &str =
        "3c168975674b2fa8e465970b79c8dcf09f1c741626480bd4c6162fc5b6a98e1a";
    pub(super) const KEY_CONFIG: &str =
        "01002031e1f05a740102115220e9af918f738674aec95f54db6e04eb705aae8e
        79815500080001000100010003";
    pub(super) const ENC_REQUEST: &str =
        "010020000100014b28f881333e7c164ffc499ad9796f877f4e1051ee6d31bad1
        9dec96c208b4726374e469135906992e1268c594d2a10c695d858c40a026e796
        5e7d86b83dd440b2c0185204b4d63525";
    pub(super) const EXPORTED: &str = "62d87a6ba569ee81014c2641f52bea36";
    pub(super) const RESPONSE_NONCE: &str = "c789e7151fcba46158ca84b04464910d";
    pub(super) const ENC_RESPONSE: &str =
        "c789e7151fcba46158ca84b04464910d86f9013e404feea014e7be4a441f234f
        857fbd";
}

mod chunked {
    pub(super) const SK_R: &str =
        "1c190d72acdbe4dbc69e680503bb781a932c70a12c8f3754434c67d8640d8698";
    pub(super) const KEY_CONFIG: &str =
        "010020668eb21aace159803974a4c67f08b4152d29bed10735fd08f98ccdd6fe
        09570800080001000100010003";
    pub(super) const ENC_REQUEST: &str = "01002000010001
        8811eb457e100811c40a0aa71340a1b81d804bb986f736f2f566a7199761a032
        1c2ad24942d4d692563012f2980c8fef437a336b9b2fc938ef77a5834f
        1d2e33d8fd25577afe31bd1c79d094f76b6250ae6549b473ecd950501311
        001c6c1395d0ef7c1022297966307b8a7f";
    pub(super) const ENC: &str = "8811eb457e100811c40a0aa71340a1b81d804bb986f736f2f566a7199761a032";
    pub(super) const EXPORTED: &str = "1d4484834ae36102a6ac42a5523454d9";
    pub(super) const RESPONSE_NONCE: &str = "bcce7f4cb921309ba5d62edf1769ef09";
    pub(super) const ENC_RESPONSE: &str = "bcce7f4cb921309ba5d62edf1769ef09
        1179bf1cc87fa0e2c02de4546945aa3d1e48
        12b348b5bd4c594c16b6170b07b475845d1f32
        00ed9d8a796617a5b27265f4d73247f639";
}

#[test]
fn rfc9458_key_config_encodes_byte_for_byte() {
    let key = GatewayKey::from_secret_bytes(1, &SUITES_AES128_CHACHA, &hex(rfc9458::SK_R))
        .expect("example secret key");
    assert_eq!(key.config().encode(), hex(rfc9458::KEY_CONFIG));
    let decoded = crate::KeyConfig::decode(&hex(rfc9458::KEY_CONFIG)).expect("decode");
    assert_eq!(&decoded, key.config());
}

#[test]
fn rfc9458_gateway_decapsulates_and_reproduces_response() {
    let key = GatewayKey::from_secret_bytes(1, &SUITES_AES128_CHACHA, &hex(rfc9458::SK_R))
        .expect("example secret key");
    let d = decapsulate_request(&key, &hex(rfc9458::ENC_REQUEST)).expect("decapsulates");
    assert_eq!(d.request, hex(BHTTP_REQUEST));
    assert_eq!(d.key_id, 1);
    assert_eq!(d.response.secret().exported(), hex(rfc9458::EXPORTED));
    let mut rng = FixedRng::new(&hex(rfc9458::RESPONSE_NONCE));
    let sealed = d
        .response
        .seal(&hex(BHTTP_RESPONSE), &mut rng)
        .expect("seal");
    assert!(
        rng.is_empty(),
        "the response nonce is all the randomness drawn"
    );
    assert_eq!(sealed, hex(rfc9458::ENC_RESPONSE));
}

#[test]
fn rfc9458_client_opens_published_response() {
    let enc: [u8; 32] = hex(rfc9458::ENC_REQUEST)[7..39]
        .try_into()
        .expect("32-byte enc");
    let secret =
        ResponseSecret::from_exported(&hex(rfc9458::EXPORTED), crate::Aead::Aes128Gcm, enc.into());
    let opened = ResponseOpener::from_secret(secret)
        .open(&hex(rfc9458::ENC_RESPONSE))
        .expect("opens");
    assert_eq!(opened, hex(BHTTP_RESPONSE));
}

#[test]
fn chunked_example_key_config_encodes_byte_for_byte() {
    let key = GatewayKey::from_secret_bytes(1, &SUITES_AES128_CHACHA, &hex(chunked::SK_R))
        .expect("example secret key");
    assert_eq!(key.config().encode(), hex(chunked::KEY_CONFIG));
}

#[test]
fn chunked_example_gateway_decapsulates_and_reproduces_response() {
    let key = GatewayKey::from_secret_bytes(1, &SUITES_AES128_CHACHA, &hex(chunked::SK_R))
        .expect("example secret key");
    let wire = hex(chunked::ENC_REQUEST);
    // Fed in awkward pieces, to exercise the incremental parser.
    let mut opener = ChunkedRequestOpener::new(&key);
    let mut plain = Vec::new();
    for piece in wire.chunks(5) {
        plain.extend(opener.push(piece).expect("chunk"));
    }
    plain.extend(opener.finish().expect("final chunk"));
    assert!(opener.is_complete());
    assert_eq!(plain, hex(BHTTP_REQUEST));
    assert_eq!(opener.enc().map(Vec::from), Some(hex(chunked::ENC)));

    let mut rng = FixedRng::new(&hex(chunked::RESPONSE_NONCE));
    let (mut sealer, mut out) = opener.response_sealer(&mut rng).expect("response");
    assert!(rng.is_empty());
    let response = hex(BHTTP_RESPONSE);
    out.extend(sealer.seal_chunk(&response[..1]).expect("chunk 0"));
    out.extend(sealer.seal_chunk(&response[1..]).expect("chunk 1"));
    out.extend(sealer.seal_final(b"").expect("final"));
    assert_eq!(out, hex(chunked::ENC_RESPONSE));
}

#[test]
fn chunked_example_client_opens_published_response() {
    let enc: [u8; 32] = hex(chunked::ENC).try_into().expect("32-byte enc");
    let secret =
        ResponseSecret::from_exported(&hex(chunked::EXPORTED), crate::Aead::Aes128Gcm, enc.into());
    let mut opener = ChunkedResponseOpener::new(secret);
    let mut plain = Vec::new();
    for b in hex(chunked::ENC_RESPONSE) {
        plain.extend(opener.push(&[b]).expect("byte by byte"));
    }
    plain.extend(opener.finish().expect("final"));
    assert_eq!(plain, hex(BHTTP_RESPONSE));
    // The exported secret really is the chunked label's export on the gateway side.
    let key =
        GatewayKey::from_secret_bytes(1, &SUITES_AES128_CHACHA, &hex(chunked::SK_R)).expect("key");
    let mut gw = ChunkedRequestOpener::new(&key);
    gw.push(&hex(chunked::ENC_REQUEST)).expect("request");
    gw.finish().expect("final");
    let (_, chunks) = gw.opened.as_ref().expect("header read");
    let s = ResponseSecret::from_opener(
        chunks.context(),
        LABEL_CHUNKED_RESPONSE,
        crate::Aead::Aes128Gcm,
        enc.into(),
    )
    .expect("export");
    assert_eq!(s.exported(), hex(chunked::EXPORTED));
}
