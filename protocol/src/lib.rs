//! Veil's wire protocol: Oblivious HTTP (RFC 9458) and chunked OHTTP
//! (draft-ietf-ohai-chunked-ohttp-08) on HPKE (RFC 9180, the `hpke` crate), with Binary
//! HTTP (RFC 9292) inner messages, and what the standards leave to a deployment: replay
//! protection, a `Date` window and length-hiding padding.
//!
//! Everything is sans-IO: functions take bytes, the time `now`, and a random number
//! generator (ephemeral keys, response nonces), and return bytes or a typed [`Error`].
//! Production passes [`os_rng`]; tests pass a fixed generator to reproduce published
//! vectors. KEMs: X-Wing (ML-KEM-768 + X25519, post-quantum; `hpke`'s `mlkem` feature) and
//! DHKEM(X25519, HKDF-SHA256); clients choose X-Wing when a gateway offers it
//! ([`KeyConfig::select`]). Symmetric suites: HKDF-SHA256 with AES-256-GCM first,
//! AES-128-GCM and ChaCha20-Poly1305 also.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use veil_protocol::{
//!     Client, DateWindow, Gateway, GatewayKey, Kem, KeyConfig, SymmetricSuite, build_request, os_rng,
//! };
//! // `now` comes from the caller (the server or client reads its clock at the edge).
//! fn round_trip(now: SystemTime) -> Result<(), veil_protocol::Error> {
//! // Gateway: one key per epoch; its configuration bytes are what attestation binds.
//! let mut gateway = Gateway::new(DateWindow::default());
//! gateway.rotate_all([
//!     GatewayKey::generate_with(Kem::XWing, 1, &SymmetricSuite::ALL, &mut os_rng()),
//!     GatewayKey::generate_with(Kem::X25519HkdfSha256, 2, &SymmetricSuite::ALL, &mut os_rng()),
//! ]);
//! let key_config_list = gateway.ohttp_keys(); // GET /.well-known/ohttp-gateway
//!
//! // Client: encrypts to the (attested) key configuration, X-Wing when offered.
//! let configs = KeyConfig::decode_list(&key_config_list)?;
//! let config = KeyConfig::select(&configs)?.clone();
//! let request = build_request("POST", "veil", "/v1/chat/completions",
//!     &[("content-type", b"application/json")], b"{}", now);
//! let (body, response_opener) = Client::new(config)?.seal_chunked(&request, &mut os_rng())?;
//!
//! // Gateway: checks key, authenticity, replay and Date, then streams the response.
//! let mut opened = gateway.open_chunked_request(&body, now, &mut os_rng())?;
//! let mut wire = opened.response_nonce.clone();
//! wire.extend(opened.response.seal_chunk(b"...bhttp bytes...")?);
//! wire.extend(opened.response.seal_final(b"")?);
//!
//! // Client: a stream without its final chunk is reported as truncated.
//! let plaintext = response_opener.open_all(&wire)?;
//! # let _ = plaintext;
//! Ok(())
//! }
//! # fn main() {}
//! ```

mod chunked;
mod cipher;
mod client;
mod error;
mod framing;
mod gateway;
mod gateway_key;
mod indeterminate;
#[cfg(test)]
mod kat_tests;
mod key_config;
pub mod message;
mod padding;
mod replay;
mod request;
mod response;
mod response_decoder;
mod suite;
#[cfg(test)]
mod test_util;
mod varint;

pub use chunked::{
    ChunkedRequestOpener, ChunkedRequestSealer, ChunkedResponseOpener, ChunkedResponseSealer,
    encapsulate_chunked_request,
};
pub use client::{Client, build_request};
pub use error::Error;
pub use framing::{MAX_CHUNK_PLAINTEXT, MAX_SEALED_CHUNK};
pub use gateway::{DEFAULT_REPLAY_PER_SECOND, Gateway, OpenedChunkedRequest, OpenedRequest};
pub use gateway_key::GatewayKey;
pub use indeterminate::IndeterminateResponseEncoder;
pub use key_config::{KeyConfig, MAX_CONFIGS, MAX_SUITES};
pub use padding::Padding;
pub use replay::{DateWindow, ReplayCache};
pub use request::{
    DecapsulatedRequest, HEADER_AND_ENC_LEN, HEADER_LEN, decapsulate_request, encapsulate_request,
    request_key_id,
};
pub use response::{ResponseOpener, ResponseSealer};
pub use response_decoder::{
    Decoded, DecodedResponse, ResponseDecoder, ResponseHead, decode_pieces,
};
pub use suite::{
    Aead, KEM_X25519_HKDF_SHA256, KEM_XWING, Kdf, Kem, SymmetricSuite, X25519_KEY_LEN,
};

/// Re-exported so callers use the same `bhttp` and `rand_core` versions as this crate.
pub use bhttp;
pub use hpke::rand_core;

/// Media type of an encapsulated request (RFC 9458).
pub const MEDIA_TYPE_REQUEST: &str = "message/ohttp-req";
/// Media type of an encapsulated response (RFC 9458).
pub const MEDIA_TYPE_RESPONSE: &str = "message/ohttp-res";
/// Media type of a chunked encapsulated request (draft-ietf-ohai-chunked-ohttp).
pub const MEDIA_TYPE_CHUNKED_REQUEST: &str = "message/ohttp-chunked-req";
/// Media type of a chunked encapsulated response (draft-ietf-ohai-chunked-ohttp).
pub const MEDIA_TYPE_CHUNKED_RESPONSE: &str = "message/ohttp-chunked-res";
/// Media type of a key configuration list (RFC 9540).
pub const MEDIA_TYPE_KEYS: &str = "application/ohttp-keys";
/// Media type of an HTTP problem details body (RFC 9457), as the gateway's refusals use.
pub const MEDIA_TYPE_PROBLEM: &str = "application/problem+json";
/// The problem type a gateway answers for a key id it does not hold (RFC 9458 section 5.3):
/// the only refusal after which a client may re-attest and re-send.
pub const PROBLEM_TYPE_KEY: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";

/// The operating system's random number generator (panics if the OS cannot supply
/// randomness, which leaves nothing safe to do).
pub fn os_rng() -> impl rand_core::CryptoRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}
