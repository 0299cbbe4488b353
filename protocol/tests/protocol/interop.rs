//! Interoperability with the `ohttp` crate 0.8 (rust-hpke backend) as an independent
//! oracle: Veil client ↔ ohttp server and ohttp client ↔ Veil gateway, chunked and not,
//! with HKDF-SHA256 and AES-128-GCM, for both KEMs: X-Wing (0x647A; `ohttp`'s `rust-hpke`
//! backend builds it on `hpke` 0.14's `mlkem` feature, which it always enables, over the same
//! `x-wing` 0.1.1 crate) and DHKEM(X25519).

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, executor::block_on};
use ohttp::hpke::{Aead as OAead, Kdf as OKdf, Kem as OKem};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, GatewayKey, Kem, KeyConfig, SymmetricSuite,
    decapsulate_request, encapsulate_request, os_rng,
};

const REQUEST: &[u8] = b"\x00\x04POST\x05https\x04veil\x14/v1/chat/completions\x00\x00";
const AES128: SymmetricSuite = SymmetricSuite::HKDF_SHA256_AES_128_GCM;

fn response_body() -> Vec<u8> {
    // Long enough to span several chunks of the ohttp stream writer.
    (0..40_000u32).map(|i| (i % 251) as u8).collect()
}

fn ohttp_kem(kem: Kem) -> OKem {
    match kem {
        Kem::XWing => OKem::XWing,
        _ => OKem::X25519Sha256,
    }
}

fn ohttp_server(kem: Kem) -> (ohttp::Server, Vec<u8>) {
    let config = ohttp::KeyConfig::new(
        1,
        ohttp_kem(kem),
        vec![ohttp::SymmetricSuite::new(
            OKdf::HkdfSha256,
            OAead::Aes128Gcm,
        )],
    )
    .expect("ohttp key config");
    let encoded = config.encode().expect("encode");
    (ohttp::Server::new(config).expect("server"), encoded)
}

fn veil_key(kem: Kem) -> GatewayKey {
    GatewayKey::generate_with(kem, 9, &[AES128], &mut os_rng())
}

/// Runs `f` for each KEM, naming the KEM if it fails.
fn each_kem(f: fn(Kem)) {
    for kem in Kem::ALL {
        if let Err(e) = std::panic::catch_unwind(|| f(kem)) {
            eprintln!("failed with {kem}");
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn veil_client_to_ohttp_server() {
    each_kem(veil_client_to_ohttp_server_with);
}

fn veil_client_to_ohttp_server_with(kem: Kem) {
    let (server, encoded) = ohttp_server(kem);
    let config = KeyConfig::decode(&encoded).expect("Veil decodes ohttp's key config");
    assert_eq!(config.encode(), encoded, "re-encodes to the same bytes");
    assert_eq!(config.kem(), kem);
    let (req, opener) =
        encapsulate_request(&config, AES128, REQUEST, &mut os_rng()).expect("encapsulate");
    let (plain, server_response) = server.decapsulate(&req).expect("ohttp decapsulates");
    assert_eq!(plain, REQUEST);
    let body = response_body();
    let res = server_response.encapsulate(&body).expect("ohttp seals");
    assert_eq!(opener.open(&res).expect("Veil opens"), body);
}

#[test]
fn ohttp_client_to_veil_gateway() {
    each_kem(ohttp_client_to_veil_gateway_with);
}

fn ohttp_client_to_veil_gateway_with(kem: Kem) {
    let key = veil_key(kem);
    let client = ohttp::ClientRequest::from_encoded_config(&key.config().encode())
        .expect("ohttp reads Veil's key config");
    let (req, client_response) = client.encapsulate(REQUEST).expect("ohttp encapsulates");
    assert_eq!(req[1..3], kem.id().to_be_bytes(), "ohttp used the KEM");
    assert_eq!(req.len(), 7 + kem.enc_len() + REQUEST.len() + 16);
    let d = decapsulate_request(&key, &req).expect("Veil decapsulates");
    assert_eq!(d.request, REQUEST);
    let body = response_body();
    let res = d.response.seal(&body, &mut os_rng()).expect("seal");
    assert_eq!(
        client_response.decapsulate(&res).expect("ohttp opens"),
        body
    );
}

#[test]
fn ohttp_key_list_round_trips_through_veil() {
    // The list a Veil gateway publishes: X-Wing first, then X25519.
    let xwing = veil_key(Kem::XWing);
    let x25519 = GatewayKey::generate(10, &[AES128], &mut os_rng());
    let list = KeyConfig::encode_list(&[xwing.config().clone(), x25519.config().clone()]);
    let configs = ohttp::KeyConfig::decode_list(&list).expect("ohttp decodes the list");
    assert_eq!(configs.len(), 2);
    // ohttp 0.8's list client takes the last configuration (X25519 here); an X-Wing-first
    // list keeps older clients working that way too.
    let client = ohttp::ClientRequest::from_encoded_config_list(&list).expect("client");
    let (req, _) = client.encapsulate(REQUEST).expect("encapsulate");
    assert_eq!(req[0], 10);
    assert_eq!(
        decapsulate_request(&x25519, &req).expect("open").request,
        REQUEST
    );
}

#[test]
fn veil_chunked_client_to_ohttp_stream_server() {
    each_kem(veil_chunked_client_to_ohttp_stream_server_with);
}

fn veil_chunked_client_to_ohttp_stream_server_with(kem: Kem) {
    let (server, encoded) = ohttp_server(kem);
    let config = KeyConfig::decode(&encoded).expect("decode");
    let (mut sealer, mut req) =
        ChunkedRequestSealer::start(&config, AES128, &mut os_rng()).expect("start");
    req.extend(sealer.seal_chunk(&REQUEST[..10]).expect("chunk"));
    req.extend(sealer.seal_final(&REQUEST[10..]).expect("final"));
    let mut opener = sealer.response_opener().expect("opener");

    let body = response_body();
    let res = block_on(async {
        let mut server_req = server.decapsulate_stream(&req[..]);
        let mut plain = Vec::new();
        server_req
            .read_to_end(&mut plain)
            .await
            .expect("ohttp reads chunks");
        assert_eq!(plain, REQUEST);
        let mut out = Vec::new();
        let mut w = server_req.response(&mut out).expect("response");
        w.write_all(&body).await.expect("write");
        w.close().await.expect("close");
        out
    });
    let mut plain = opener.push(&res).expect("Veil opens chunks");
    plain.extend(opener.finish().expect("final chunk"));
    assert_eq!(plain, body);
}

/// A byte buffer shared between an `ohttp` stream object (which owns its reader or writer)
/// and the test: writes append, reads drain from the front.
#[derive(Debug, Clone, Default)]
struct SharedBuf(Rc<RefCell<Vec<u8>>>);

impl AsyncWrite for SharedBuf {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.borrow_mut().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for SharedBuf {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut b = self.0.borrow_mut();
        let n = out.len().min(b.len());
        out[..n].copy_from_slice(&b[..n]);
        b.drain(..n);
        Poll::Ready(Ok(n))
    }
}

#[test]
fn ohttp_stream_client_to_veil_chunked_gateway() {
    each_kem(ohttp_stream_client_to_veil_chunked_gateway_with);
}

fn ohttp_stream_client_to_veil_chunked_gateway_with(kem: Kem) {
    let key = veil_key(kem);
    let client = ohttp::ClientRequest::from_encoded_config(&key.config().encode()).expect("config");
    let wire_req = SharedBuf::default();
    let wire_res = SharedBuf::default();
    let mut client_response = block_on(async {
        let mut w = client
            .encapsulate_stream(wire_req.clone())
            .expect("stream client");
        w.write_all(&REQUEST[..7]).await.expect("write");
        w.write_all(&REQUEST[7..]).await.expect("write");
        w.close().await.expect("close");
        w.response(wire_res.clone()).expect("response reader")
    });

    let mut opener = ChunkedRequestOpener::new(&key);
    let req = wire_req.0.borrow().clone();
    assert_eq!(req[1..3], kem.id().to_be_bytes(), "ohttp used the KEM");
    let mut plain = opener.push(&req).expect("Veil opens chunks");
    plain.extend(opener.finish().expect("final"));
    assert_eq!(plain, REQUEST);

    let body = response_body();
    let (mut sealer, nonce) = opener.response_sealer(&mut os_rng()).expect("sealer");
    let mut res = nonce;
    res.extend(sealer.seal_chunk(&body[..100]).expect("chunk"));
    res.extend(sealer.seal_chunk(&body[100..]).expect("chunk"));
    res.extend(sealer.seal_final(b"").expect("final"));
    wire_res.0.borrow_mut().extend_from_slice(&res);

    let got = block_on(async {
        let mut got = Vec::new();
        client_response
            .read_to_end(&mut got)
            .await
            .expect("ohttp opens Veil's chunks");
        got
    });
    assert_eq!(got, body);
}
