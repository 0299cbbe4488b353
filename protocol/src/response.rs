//! Encapsulated responses (RFC 9458 §4.4): the gateway seals, the client opens.
//!
//! ```text
//! secret = context.Export(label, max(Nn, Nk))
//! prk    = Extract(enc ‖ response_nonce, secret)
//! key    = Expand(prk, "key", Nk);  nonce = Expand(prk, "nonce", Nn)
//! encapsulated_response = response_nonce ‖ Seal(key, nonce, "", response)
//! ```
//! The label is `"message/bhttp response"`, or `"message/bhttp chunked response"` for
//! chunked OHTTP (where the sealing then goes on chunk by chunk).

use std::fmt;

use hkdf::Hkdf;
use hpke::rand_core::CryptoRng;
use sha2_next::Sha256;
use zeroize::Zeroizing;

use crate::{
    Aead, Error,
    cipher::{self, Opener, Sealer},
};

pub(crate) const LABEL_RESPONSE: &[u8] = b"message/bhttp response";
pub(crate) const LABEL_CHUNKED_RESPONSE: &[u8] = b"message/bhttp chunked response";

/// The exported response secret, `max(Nn, Nk)` bytes, zeroized on drop.
pub(crate) struct ResponseSecret {
    secret: Zeroizing<[u8; 32]>,
    len: usize,
    enc: Vec<u8>,
    aead: Aead,
}

impl ResponseSecret {
    fn new(
        export: impl FnOnce(&mut [u8]) -> Result<(), Error>,
        aead: Aead,
        enc: Vec<u8>,
    ) -> Result<Self, Error> {
        let len = aead.response_nonce_len();
        let mut secret = Zeroizing::new([0u8; 32]);
        export(&mut secret[..len])?;
        Ok(Self {
            secret,
            len,
            enc,
            aead,
        })
    }

    pub(crate) fn from_sealer(
        s: &Sealer,
        label: &[u8],
        aead: Aead,
        enc: Vec<u8>,
    ) -> Result<Self, Error> {
        Self::new(|out| s.export(label, out), aead, enc)
    }

    pub(crate) fn from_opener(
        o: &Opener,
        label: &[u8],
        aead: Aead,
        enc: Vec<u8>,
    ) -> Result<Self, Error> {
        Self::new(|out| o.export(label, out), aead, enc)
    }

    /// A secret given directly (known-answer tests: the client side of a published example
    /// whose ephemeral key cannot be fixed through `hpke`).
    #[cfg(test)]
    pub(crate) fn from_exported(secret: &[u8], aead: Aead, enc: Vec<u8>) -> Self {
        let len = aead.response_nonce_len();
        let mut s = Zeroizing::new([0u8; 32]);
        s[..len].copy_from_slice(secret);
        Self {
            secret: s,
            len,
            enc,
            aead,
        }
    }

    #[cfg(test)]
    pub(crate) fn exported(&self) -> &[u8] {
        &self.secret[..self.len]
    }

    pub(crate) fn aead(&self) -> Aead {
        self.aead
    }

    /// Derives the response AEAD key and base nonce for `response_nonce`.
    fn derive(&self, response_nonce: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 12]>) {
        let mut salt = Vec::with_capacity(self.enc.len() + response_nonce.len());
        salt.extend_from_slice(&self.enc);
        salt.extend_from_slice(response_nonce);
        let prk = Hkdf::<Sha256>::new(Some(&salt), &self.secret[..self.len]);
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = Zeroizing::new([0u8; 12]);
        let nk = self.aead.key_len();
        // 32 and 12 bytes are far below HKDF-SHA256's 8160-byte output limit.
        let ok = prk.expand(b"key", &mut key[..nk]).is_ok()
            && prk.expand(b"nonce", &mut nonce[..]).is_ok();
        debug_assert!(ok);
        (key, nonce)
    }

    /// Gateway side: draws the response nonce from `rng`; returns it and the sealing context.
    pub(crate) fn sealer(&self, rng: &mut impl CryptoRng) -> (Vec<u8>, Sealer) {
        let mut response_nonce = vec![0u8; self.len];
        rng.fill_bytes(&mut response_nonce);
        let (key, nonce) = self.derive(&response_nonce);
        let sealer = cipher::response_sealer(self.aead, &key[..self.aead.key_len()], &nonce[..]);
        (response_nonce, sealer)
    }

    /// Client side: the opening context for a received response nonce.
    pub(crate) fn opener(&self, response_nonce: &[u8]) -> Opener {
        let (key, nonce) = self.derive(response_nonce);
        cipher::response_opener(self.aead, &key[..self.aead.key_len()], &nonce[..])
    }

    pub(crate) fn nonce_len(&self) -> usize {
        self.len
    }
}

/// Gateway: seals the one response to a decapsulated request (`message/ohttp-res`).
pub struct ResponseSealer {
    secret: ResponseSecret,
}

impl ResponseSealer {
    pub(crate) fn new(opener: &Opener, aead: Aead, enc: Vec<u8>) -> Result<Self, Error> {
        Ok(Self {
            secret: ResponseSecret::from_opener(opener, LABEL_RESPONSE, aead, enc)?,
        })
    }

    /// Seals `response` (Binary HTTP); the response nonce is drawn from `rng`.
    pub fn seal(self, response: &[u8], rng: &mut impl CryptoRng) -> Result<Vec<u8>, Error> {
        let (mut out, mut sealer) = self.secret.sealer(rng);
        out.extend_from_slice(&sealer.seal(response, b"")?);
        Ok(out)
    }
}

impl fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSealer")
            .field("aead", &self.secret.aead)
            .finish_non_exhaustive()
    }
}

/// Client: opens the one response to an encapsulated request (`message/ohttp-res`).
pub struct ResponseOpener {
    secret: ResponseSecret,
}

impl ResponseOpener {
    pub(crate) fn new(sealer: &Sealer, aead: Aead, enc: Vec<u8>) -> Result<Self, Error> {
        Ok(Self {
            secret: ResponseSecret::from_sealer(sealer, LABEL_RESPONSE, aead, enc)?,
        })
    }

    /// Opens an encapsulated response. Never panics on any input.
    pub fn open(self, encapsulated: &[u8]) -> Result<Vec<u8>, Error> {
        let n = self.secret.nonce_len();
        if encapsulated.len() < n + self.secret.aead.tag_len() {
            return Err(Error::Malformed("encapsulated response: too short"));
        }
        let (nonce, ct) = encapsulated.split_at(n);
        self.secret.opener(nonce).open(ct, b"")
    }
}

impl ResponseOpener {
    #[cfg(test)]
    pub(crate) fn from_secret(secret: ResponseSecret) -> Self {
        Self { secret }
    }
}

impl ResponseSealer {
    #[cfg(test)]
    pub(crate) fn secret(&self) -> &ResponseSecret {
        &self.secret
    }
}

impl fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseOpener")
            .field("aead", &self.secret.aead)
            .finish_non_exhaustive()
    }
}
