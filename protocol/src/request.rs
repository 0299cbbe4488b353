//! Encapsulated requests (RFC 9458 §4.3): the client seals, the gateway opens.
//!
//! ```text
//! hdr  = key_id(1) ‖ kem_id(2) ‖ kdf_id(2) ‖ aead_id(2)
//! info = "message/bhttp request" ‖ 0x00 ‖ hdr
//! enc, sctxt = SetupBaseS(pkR, info)
//! encapsulated_request = hdr ‖ enc ‖ sctxt.Seal("", request)
//! ```

use hpke::rand_core::CryptoRng;

use crate::{
    Error, GatewayKey, KeyConfig, SymmetricSuite,
    cipher::{self, Opener, Sealer},
    response::{ResponseOpener, ResponseSealer},
    suite::{Aead, Kdf, Kem, X25519_KEY_LEN},
    varint::Cursor,
};

/// Length of the request header `hdr` (key id, KEM, KDF, AEAD).
pub const HEADER_LEN: usize = 7;

/// Length of header plus encapsulated key for DHKEM(X25519) (for X-Wing it is
/// `HEADER_LEN + Kem::XWing.enc_len()`).
pub const HEADER_AND_ENC_LEN: usize = HEADER_LEN + X25519_KEY_LEN;

pub(crate) const LABEL_REQUEST: &[u8] = b"message/bhttp request";
pub(crate) const LABEL_CHUNKED_REQUEST: &[u8] = b"message/bhttp chunked request";

/// The parsed request header: which key and suite the client chose, and its `enc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHeader {
    pub(crate) key_id: u8,
    pub(crate) kem: Kem,
    pub(crate) suite: SymmetricSuite,
    pub(crate) enc: Vec<u8>,
}

impl RequestHeader {
    pub(crate) fn hdr(key_id: u8, kem: Kem, suite: SymmetricSuite) -> [u8; HEADER_LEN] {
        let [k0, k1] = kem.id().to_be_bytes();
        let [d0, d1] = suite.kdf.id().to_be_bytes();
        let [a0, a1] = suite.aead.id().to_be_bytes();
        [key_id, k0, k1, d0, d1, a0, a1]
    }

    pub(crate) fn info(label: &[u8], key_id: u8, kem: Kem, suite: SymmetricSuite) -> Vec<u8> {
        let mut info = Vec::with_capacity(label.len() + 1 + HEADER_LEN);
        info.extend_from_slice(label);
        info.push(0);
        info.extend_from_slice(&Self::hdr(key_id, kem, suite));
        info
    }

    /// Length of `hdr ‖ enc` for requests addressed to `key`.
    pub(crate) fn len_for(key: &GatewayKey) -> usize {
        HEADER_LEN + key.kem().enc_len()
    }

    /// Reads `hdr ‖ enc`; checks the key id and that `key` offers the suite.
    pub(crate) fn read(cur: &mut Cursor<'_>, key: &GatewayKey) -> Result<Self, Error> {
        let key_id = cur.u8("request header: key id")?;
        let kem = cur.u16("request header: KEM id")?;
        let kdf = cur.u16("request header: KDF id")?;
        let aead = cur.u16("request header: AEAD id")?;
        if key_id != key.key_id() {
            return Err(Error::UnknownKeyId(key_id));
        }
        let kem = match Kem::from_id(kem) {
            Some(k) if k == key.kem() => k,
            _ => return Err(Error::UnsupportedKem(kem)),
        };
        let suite = match (Kdf::from_id(kdf), Aead::from_id(aead)) {
            (Some(kdf), Some(aead)) => SymmetricSuite { kdf, aead },
            _ => return Err(Error::UnsupportedSuite { kdf, aead }),
        };
        if !key.config().offers(suite) {
            return Err(Error::UnsupportedSuite { kdf, aead });
        }
        let enc = cur
            .bytes(kem.enc_len(), "request header: encapsulated key")?
            .to_vec();
        Ok(Self {
            key_id,
            kem,
            suite,
            enc,
        })
    }

    pub(crate) fn receiver(&self, key: &GatewayKey, label: &[u8]) -> Result<Opener, Error> {
        let info = Self::info(label, self.key_id, self.kem, self.suite);
        cipher::setup_receiver(self.suite.aead, key.secret(), &self.enc, &info)
    }
}

/// The key identifier an encapsulated request (chunked or not) is addressed to, so a
/// gateway can pick the key before decapsulating. `None` for empty input.
pub fn request_key_id(encapsulated: &[u8]) -> Option<u8> {
    encapsulated.first().copied()
}

/// Starts an HPKE sending context for `config` and `suite`; returns `hdr ‖ enc` and the context.
pub(crate) fn start(
    config: &KeyConfig,
    suite: SymmetricSuite,
    label: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, Vec<u8>, Sealer), Error> {
    if !config.offers(suite) {
        return Err(Error::UnsupportedSuite {
            kdf: suite.kdf.id(),
            aead: suite.aead.id(),
        });
    }
    let kem = config.kem();
    let info = RequestHeader::info(label, config.key_id(), kem, suite);
    let (enc, sealer) = cipher::setup_sender(kem, suite.aead, config.public_key(), &info, rng)?;
    let mut out = Vec::with_capacity(HEADER_LEN + enc.len());
    out.extend_from_slice(&RequestHeader::hdr(config.key_id(), kem, suite));
    out.extend_from_slice(&enc);
    Ok((out, enc, sealer))
}

/// Client: encapsulates `request` (a Binary HTTP message) to the gateway key `config`
/// with `suite`. The ephemeral key is drawn from `rng`. Returns the `message/ohttp-req`
/// body and the state that opens the response.
pub fn encapsulate_request(
    config: &KeyConfig,
    suite: SymmetricSuite,
    request: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, ResponseOpener), Error> {
    let (mut out, enc, mut sealer) = start(config, suite, LABEL_REQUEST, rng)?;
    out.extend_from_slice(&sealer.seal(request, b"")?);
    let opener = ResponseOpener::new(&sealer, suite.aead, enc)?;
    Ok((out, opener))
}

/// Gateway: decapsulates a `message/ohttp-req` body with `key`. Returns the inner request
/// and the state that seals the response. Never panics on any input.
pub fn decapsulate_request(
    key: &GatewayKey,
    encapsulated: &[u8],
) -> Result<DecapsulatedRequest, Error> {
    let mut cur = Cursor::new(encapsulated);
    let header = RequestHeader::read(&mut cur, key)?;
    let mut opener = header.receiver(key, LABEL_REQUEST)?;
    let request = opener.open(cur.remaining(), b"")?;
    let response = ResponseSealer::new(&opener, header.suite.aead, header.enc.clone())?;
    Ok(DecapsulatedRequest {
        request,
        key_id: header.key_id,
        enc: header.enc,
        response,
    })
}

/// A request the gateway has decapsulated.
#[derive(Debug)]
#[non_exhaustive]
pub struct DecapsulatedRequest {
    /// The inner request (Binary HTTP, possibly padded).
    pub request: Vec<u8>,
    /// The key identifier it was addressed to.
    pub key_id: u8,
    /// The client's encapsulated key (`Nenc` bytes of the key's KEM): unique per request,
    /// what the replay cache remembers.
    pub enc: Vec<u8>,
    /// Seals the one response to this request.
    pub response: ResponseSealer,
}
