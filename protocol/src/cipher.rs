//! Runtime dispatch over the `hpke` crate's statically typed contexts, one variant per AEAD.
//!
//! The same two context types serve the request (an HPKE context from `SetupBaseS/R`)
//! and the response (an AEAD key and base nonce derived per RFC 9458 §4.4, driven
//! through `hpke::danger::streaming_enc`). Both compute each nonce as
//! `base_nonce XOR I2OSP(seq, Nn)` with `seq` counting messages from 0, which is the
//! chunk nonce of chunked OHTTP.

use hpke::{
    Deserializable, OpModeR, OpModeS, Serializable,
    aead::{AeadCtxR, AeadCtxS, AeadKey, AeadNonce, AesGcm128, AesGcm256, ChaCha20Poly1305},
    danger::streaming_enc::{ExporterSecret, create_receiver_context, create_sender_context},
    kdf::HkdfSha256,
    kem::X25519HkdfSha256,
    rand_core::CryptoRng,
};

use crate::{Aead, Error, suite::X25519_KEY_LEN};

type PublicKey = <X25519HkdfSha256 as hpke::Kem>::PublicKey;
pub(crate) type PrivateKey = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
type EncappedKey = <X25519HkdfSha256 as hpke::Kem>::EncappedKey;

/// A sealing context.
pub(crate) enum Sealer {
    Aes128(AeadCtxS<AesGcm128, HkdfSha256, X25519HkdfSha256>),
    Aes256(AeadCtxS<AesGcm256, HkdfSha256, X25519HkdfSha256>),
    ChaCha(AeadCtxS<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>),
}

/// An opening context.
pub(crate) enum Opener {
    Aes128(AeadCtxR<AesGcm128, HkdfSha256, X25519HkdfSha256>),
    Aes256(AeadCtxR<AesGcm256, HkdfSha256, X25519HkdfSha256>),
    ChaCha(AeadCtxR<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>),
}

macro_rules! each {
    ($self:expr, $ctx:ident => $body:expr) => {
        match $self {
            Self::Aes128($ctx) => $body,
            Self::Aes256($ctx) => $body,
            Self::ChaCha($ctx) => $body,
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

/// Parses an X25519 public key.
pub(crate) fn public_key(bytes: &[u8]) -> Result<PublicKey, Error> {
    PublicKey::from_bytes(bytes).map_err(|_| Error::InvalidPublicKey)
}

/// `SetupBaseS(pkR, info)` with the ephemeral key drawn from `rng`
/// (`DeriveKeyPair(random(Nsk))`, so a fixed `rng` fixes `ikmE`).
pub(crate) fn setup_sender(
    aead: Aead,
    pk_r: &[u8],
    info: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<([u8; X25519_KEY_LEN], Sealer), Error> {
    let pk = public_key(pk_r)?;
    fn go<A: hpke::aead::Aead>(
        pk: &PublicKey,
        info: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(EncappedKey, AeadCtxS<A, HkdfSha256, X25519HkdfSha256>), Error> {
        hpke::setup_sender_with_rng::<A, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            pk,
            info,
            rng,
        )
        .map_err(|_| Error::InvalidPublicKey)
    }
    let (enc, sealer) = match aead {
        Aead::Aes128Gcm => go(&pk, info, rng).map(|(e, c)| (e, Sealer::Aes128(c)))?,
        Aead::Aes256Gcm => go(&pk, info, rng).map(|(e, c)| (e, Sealer::Aes256(c)))?,
        Aead::ChaCha20Poly1305 => go(&pk, info, rng).map(|(e, c)| (e, Sealer::ChaCha(c)))?,
    };
    let mut out = [0u8; X25519_KEY_LEN];
    out.copy_from_slice(&enc.to_bytes());
    Ok((out, sealer))
}

/// `SetupBaseR(enc, skR, info)`.
pub(crate) fn setup_receiver(
    aead: Aead,
    sk_r: &PrivateKey,
    enc: &[u8],
    info: &[u8],
) -> Result<Opener, Error> {
    let enc = EncappedKey::from_bytes(enc).map_err(|_| Error::Malformed("encapsulated key"))?;
    fn go<A: hpke::aead::Aead>(
        sk: &PrivateKey,
        enc: &EncappedKey,
        info: &[u8],
    ) -> Result<AeadCtxR<A, HkdfSha256, X25519HkdfSha256>, Error> {
        hpke::setup_receiver::<A, HkdfSha256, X25519HkdfSha256>(&OpModeR::Base, sk, enc, info)
            .map_err(|_| Error::Decapsulation)
    }
    Ok(match aead {
        Aead::Aes128Gcm => Opener::Aes128(go(sk_r, &enc, info)?),
        Aead::Aes256Gcm => Opener::Aes256(go(sk_r, &enc, info)?),
        Aead::ChaCha20Poly1305 => Opener::ChaCha(go(sk_r, &enc, info)?),
    })
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
    fn go<A: hpke::aead::Aead>(
        key: &[u8],
        nonce: &[u8],
    ) -> AeadCtxS<A, HkdfSha256, X25519HkdfSha256> {
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
    fn go<A: hpke::aead::Aead>(
        key: &[u8],
        nonce: &[u8],
    ) -> AeadCtxR<A, HkdfSha256, X25519HkdfSha256> {
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
            let sk = PrivateKey::from_bytes(&h(&v["skRm"])).expect("skRm");
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
