//! Runtime dispatch over the `hpke` crate's statically typed contexts, one variant per KEM
//! and AEAD.
//!
//! The same two context types serve the request (an HPKE context from `SetupBaseS/R`)
//! and the response (an AEAD key and base nonce derived per RFC 9458 §4.4, driven
//! through `hpke::danger::streaming_enc`). Both compute each nonce as
//! `base_nonce XOR I2OSP(seq, Nn)` with `seq` counting messages from 0, which is the
//! chunk nonce of chunked OHTTP. The response contexts never touch the KEM, so they use
//! the X25519 variants whatever KEM the request used.

use hpke::{
    Deserializable, Kem as KemTrait, OpModeR, OpModeS, Serializable,
    aead::{AeadCtxR, AeadCtxS, AeadKey, AeadNonce, AesGcm128, AesGcm256, ChaCha20Poly1305},
    danger::streaming_enc::{ExporterSecret, create_receiver_context, create_sender_context},
    kdf::HkdfSha256,
    kem::{X25519HkdfSha256, XWing},
    rand_core::CryptoRng,
};

use crate::{Aead, Error, Kem};

type X25519 = X25519HkdfSha256;

/// A gateway's private key. Both `hpke` types zeroize their secret on drop (X25519: an
/// `x25519_dalek::StaticSecret`; X-Wing: the `x-wing` crate's 32-byte seed and the
/// expanded ML-KEM and X25519 keys, with its `zeroize` feature, which `hpke` enables). The
/// X-Wing key (1.6 KB expanded) is boxed, so the enum stays small.
pub(crate) enum PrivateKey {
    X25519(<X25519 as KemTrait>::PrivateKey),
    XWing(Box<<XWing as KemTrait>::PrivateKey>),
}

impl PrivateKey {
    /// `DeriveKeyPair(ikm)` of `kem` (RFC 9180 §7.1.3; draft-ietf-hpke-pq for X-Wing);
    /// returns the key and its serialized public key.
    pub(crate) fn derive(kem: Kem, ikm: &[u8]) -> (Self, Vec<u8>) {
        match kem {
            Kem::X25519HkdfSha256 => {
                let (sk, pk) = X25519::derive_keypair(ikm);
                (Self::X25519(sk), pk.to_bytes().to_vec())
            }
            Kem::XWing => {
                let (sk, pk) = XWing::derive_keypair(ikm);
                (Self::XWing(Box::new(sk)), pk.to_bytes().to_vec())
            }
        }
    }

    /// Parses a serialized private key (`Nsk` = 32 bytes for both KEMs; for X-Wing the
    /// seed the draft's key pair is expanded from); returns it with its public key.
    pub(crate) fn from_bytes(kem: Kem, bytes: &[u8]) -> Result<(Self, Vec<u8>), Error> {
        match kem {
            Kem::X25519HkdfSha256 => {
                let sk = <X25519 as KemTrait>::PrivateKey::from_bytes(bytes)
                    .map_err(|_| Error::Malformed("X25519 private key"))?;
                let pk = X25519::sk_to_pk(&sk).to_bytes().to_vec();
                Ok((Self::X25519(sk), pk))
            }
            Kem::XWing => {
                let sk = <XWing as KemTrait>::PrivateKey::from_bytes(bytes)
                    .map_err(|_| Error::Malformed("X-Wing private key"))?;
                let pk = XWing::sk_to_pk(&sk).to_bytes().to_vec();
                Ok((Self::XWing(Box::new(sk)), pk))
            }
        }
    }
}

/// A sealing context.
pub(crate) enum Sealer {
    Aes128(AeadCtxS<AesGcm128, HkdfSha256, X25519>),
    Aes256(AeadCtxS<AesGcm256, HkdfSha256, X25519>),
    ChaCha(AeadCtxS<ChaCha20Poly1305, HkdfSha256, X25519>),
    XWingAes128(AeadCtxS<AesGcm128, HkdfSha256, XWing>),
    XWingAes256(AeadCtxS<AesGcm256, HkdfSha256, XWing>),
    XWingChaCha(AeadCtxS<ChaCha20Poly1305, HkdfSha256, XWing>),
}

/// An opening context.
pub(crate) enum Opener {
    Aes128(AeadCtxR<AesGcm128, HkdfSha256, X25519>),
    Aes256(AeadCtxR<AesGcm256, HkdfSha256, X25519>),
    ChaCha(AeadCtxR<ChaCha20Poly1305, HkdfSha256, X25519>),
    XWingAes128(AeadCtxR<AesGcm128, HkdfSha256, XWing>),
    XWingAes256(AeadCtxR<AesGcm256, HkdfSha256, XWing>),
    XWingChaCha(AeadCtxR<ChaCha20Poly1305, HkdfSha256, XWing>),
}

macro_rules! each {
    ($self:expr, $ctx:ident => $body:expr) => {
        match $self {
            Self::Aes128($ctx) => $body,
            Self::Aes256($ctx) => $body,
            Self::ChaCha($ctx) => $body,
            Self::XWingAes128($ctx) => $body,
            Self::XWingAes256($ctx) => $body,
            Self::XWingChaCha($ctx) => $body,
        }
    };
}

impl Sealer {
    /// Seals the next message; the context's sequence number advances.
    pub(crate) fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        each!(self, c => c.seal(plaintext, aad)).map_err(|_| Error::Seal)
    }

    /// HPKE `Context.Export`.
    pub(crate) fn export(&self, label: &[u8], out: &mut [u8]) -> Result<(), Error> {
        each!(self, c => c.export(label, out)).map_err(|_| Error::Seal)
    }
}

impl Opener {
    /// Opens the next message; on success the context's sequence number advances.
    pub(crate) fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        each!(self, c => c.open(ciphertext, aad)).map_err(|_| Error::Authentication)
    }

    /// HPKE `Context.Export`.
    pub(crate) fn export(&self, label: &[u8], out: &mut [u8]) -> Result<(), Error> {
        each!(self, c => c.export(label, out)).map_err(|_| Error::Authentication)
    }
}

/// `SetupBaseS(pkR, info)` for `kem` with the randomness drawn from `rng` (X25519:
/// `DeriveKeyPair(random(Nsk))`, so a fixed `rng` fixes `ikmE`; X-Wing: the 64 bytes of
/// `eseed`, as in the draft's test vectors). Returns `enc` and the context.
pub(crate) fn setup_sender(
    kem: Kem,
    aead: Aead,
    pk_r: &[u8],
    info: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, Sealer), Error> {
    fn go<A: hpke::aead::Aead, K: KemTrait>(
        pk_r: &[u8],
        info: &[u8],
        rng: &mut impl CryptoRng,
        wrap: fn(AeadCtxS<A, HkdfSha256, K>) -> Sealer,
    ) -> Result<(Vec<u8>, Sealer), Error> {
        let pk = K::PublicKey::from_bytes(pk_r).map_err(|_| Error::InvalidPublicKey)?;
        let (enc, ctx) =
            hpke::setup_sender_with_rng::<A, HkdfSha256, K>(&OpModeS::Base, &pk, info, rng)
                .map_err(|_| Error::InvalidPublicKey)?;
        Ok((enc.to_bytes().to_vec(), wrap(ctx)))
    }
    match (kem, aead) {
        (Kem::X25519HkdfSha256, Aead::Aes128Gcm) => {
            go::<_, X25519>(pk_r, info, rng, Sealer::Aes128)
        }
        (Kem::X25519HkdfSha256, Aead::Aes256Gcm) => {
            go::<_, X25519>(pk_r, info, rng, Sealer::Aes256)
        }
        (Kem::X25519HkdfSha256, Aead::ChaCha20Poly1305) => {
            go::<_, X25519>(pk_r, info, rng, Sealer::ChaCha)
        }
        (Kem::XWing, Aead::Aes128Gcm) => go::<_, XWing>(pk_r, info, rng, Sealer::XWingAes128),
        (Kem::XWing, Aead::Aes256Gcm) => go::<_, XWing>(pk_r, info, rng, Sealer::XWingAes256),
        (Kem::XWing, Aead::ChaCha20Poly1305) => {
            go::<_, XWing>(pk_r, info, rng, Sealer::XWingChaCha)
        }
    }
}

/// `SetupBaseR(enc, skR, info)`.
pub(crate) fn setup_receiver(
    aead: Aead,
    sk_r: &PrivateKey,
    enc: &[u8],
    info: &[u8],
) -> Result<Opener, Error> {
    fn go<A: hpke::aead::Aead, K: KemTrait>(
        sk: &K::PrivateKey,
        enc: &[u8],
        info: &[u8],
        wrap: fn(AeadCtxR<A, HkdfSha256, K>) -> Opener,
    ) -> Result<Opener, Error> {
        let enc =
            K::EncappedKey::from_bytes(enc).map_err(|_| Error::Malformed("encapsulated key"))?;
        hpke::setup_receiver::<A, HkdfSha256, K>(&OpModeR::Base, sk, &enc, info)
            .map(wrap)
            .map_err(|_| Error::Decapsulation)
    }
    match (sk_r, aead) {
        (PrivateKey::X25519(sk), Aead::Aes128Gcm) => go::<_, X25519>(sk, enc, info, Opener::Aes128),
        (PrivateKey::X25519(sk), Aead::Aes256Gcm) => go::<_, X25519>(sk, enc, info, Opener::Aes256),
        (PrivateKey::X25519(sk), Aead::ChaCha20Poly1305) => {
            go::<_, X25519>(sk, enc, info, Opener::ChaCha)
        }
        (PrivateKey::XWing(sk), Aead::Aes128Gcm) => {
            go::<_, XWing>(sk, enc, info, Opener::XWingAes128)
        }
        (PrivateKey::XWing(sk), Aead::Aes256Gcm) => {
            go::<_, XWing>(sk, enc, info, Opener::XWingAes256)
        }
        (PrivateKey::XWing(sk), Aead::ChaCha20Poly1305) => {
            go::<_, XWing>(sk, enc, info, Opener::XWingChaCha)
        }
    }
}

fn key_and_nonce<A: hpke::aead::Aead>(key: &[u8], nonce: &[u8]) -> (AeadKey<A>, AeadNonce<A>) {
    let mut k = AeadKey::<A>::default();
    let mut n = AeadNonce::<A>::default();
    // Lengths were derived from the same `Aead` (Nk, Nn); zip never panics regardless.
    k.0.iter_mut().zip(key).for_each(|(d, s)| *d = *s);
    n.0.iter_mut().zip(nonce).for_each(|(d, s)| *d = *s);
    (k, n)
}

/// A sealing context for an AEAD key and base nonce (the response direction).
pub(crate) fn response_sealer(aead: Aead, key: &[u8], nonce: &[u8]) -> Sealer {
    fn go<A: hpke::aead::Aead>(key: &[u8], nonce: &[u8]) -> AeadCtxS<A, HkdfSha256, X25519> {
        let (k, n) = key_and_nonce::<A>(key, nonce);
        create_sender_context(&k, n, ExporterSecret::default())
    }
    match aead {
        Aead::Aes128Gcm => Sealer::Aes128(go(key, nonce)),
        Aead::Aes256Gcm => Sealer::Aes256(go(key, nonce)),
        Aead::ChaCha20Poly1305 => Sealer::ChaCha(go(key, nonce)),
    }
}

/// An opening context for an AEAD key and base nonce (the response direction).
pub(crate) fn response_opener(aead: Aead, key: &[u8], nonce: &[u8]) -> Opener {
    fn go<A: hpke::aead::Aead>(key: &[u8], nonce: &[u8]) -> AeadCtxR<A, HkdfSha256, X25519> {
        let (k, n) = key_and_nonce::<A>(key, nonce);
        create_receiver_context(&k, n, ExporterSecret::default())
    }
    match aead {
        Aead::Aes128Gcm => Opener::Aes128(go(key, nonce)),
        Aead::Aes256Gcm => Opener::Aes256(go(key, nonce)),
        Aead::ChaCha20Poly1305 => Opener::ChaCha(go(key, nonce)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &serde_json::Value) -> Vec<u8> {
        hex::decode(s.as_str().expect("hex string")).expect("hex")
    }

    /// RFC 9180 Appendix A vectors (base mode, X25519, HKDF-SHA256): each AEAD variant
    /// maps to the right `hpke` type, and the receiver opens the published ciphertexts
    /// and reproduces the published exports.
    #[test]
    fn receiver_dispatch_matches_rfc9180_vectors() {
        let vectors: Vec<serde_json::Value> = serde_json::from_str(include_str!(
            "../tests/vectors/hpke-rfc9180-x25519-sha256-base.json"
        ))
        .expect("vector JSON");
        assert_eq!(vectors.len(), 3);
        for v in &vectors {
            let aead_id = u16::try_from(v["aead_id"].as_u64().expect("aead_id")).expect("u16");
            let aead = Aead::from_id(aead_id).expect("implemented AEAD");
            let (sk, _) =
                PrivateKey::from_bytes(Kem::X25519HkdfSha256, &h(&v["skRm"])).expect("skRm");
            let mut opener =
                setup_receiver(aead, &sk, &h(&v["enc"]), &h(&v["info"])).expect("setup");
            for e in v["encryptions"].as_array().expect("encryptions") {
                let pt = opener
                    .open(&h(&e["ct"]), &h(&e["aad"]))
                    .expect("published ciphertext opens");
                assert_eq!(pt, h(&e["pt"]));
            }
            for x in v["exports"].as_array().expect("exports") {
                let mut out = vec![0u8; usize::try_from(x["L"].as_u64().expect("L")).expect("L")];
                opener
                    .export(&h(&x["exporter_context"]), &mut out)
                    .expect("export");
                assert_eq!(out, h(&x["exported_value"]));
            }
            // The same vector opened as another AEAD fails: the mapping matters.
            let other = if aead == Aead::Aes128Gcm {
                Aead::Aes256Gcm
            } else {
                Aead::Aes128Gcm
            };
            let mut wrong =
                setup_receiver(other, &sk, &h(&v["enc"]), &h(&v["info"])).expect("setup");
            let e = &v["encryptions"][0];
            assert_eq!(
                wrong.open(&h(&e["ct"]), &h(&e["aad"])).err(),
                Some(Error::Authentication)
            );
        }
    }
}
