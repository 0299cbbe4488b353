//! The gateway's private key with its configuration.
//!
//! The secret lives only inside `hpke`'s X25519 private key (an `x25519_dalek::StaticSecret`,
//! zeroized on drop); every temporary copy made here is zeroized too. The type is neither
//! `Clone`, serializable, nor printable: its `Debug` shows the key id and public key only.

use std::fmt;

use hpke::{Deserializable, Kem as _, Serializable, kem::X25519HkdfSha256, rand_core::CryptoRng};
use zeroize::Zeroizing;

use crate::{Error, KeyConfig, SymmetricSuite, cipher::PrivateKey, suite::X25519_KEY_LEN};

/// A gateway key: an X25519 key pair and the [`KeyConfig`] that publishes its public half.
pub struct GatewayKey {
    config: KeyConfig,
    secret: PrivateKey,
}

impl GatewayKey {
    /// Generates a fresh key pair from `rng` (`DeriveKeyPair` of 32 random bytes).
    pub fn generate(key_id: u8, suites: &[SymmetricSuite], rng: &mut impl CryptoRng) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        Self::derive(key_id, suites, ikm.as_ref())
    }

    /// Derives the key pair from input keying material (RFC 9180 `DeriveKeyPair`).
    pub fn derive(key_id: u8, suites: &[SymmetricSuite], ikm: &[u8]) -> Self {
        let (secret, public) = X25519HkdfSha256::derive_keypair(ikm);
        let mut pk = [0u8; X25519_KEY_LEN];
        pk.copy_from_slice(&public.to_bytes());
        Self {
            config: KeyConfig::new(key_id, pk, suites),
            secret,
        }
    }

    /// Builds the key from a serialized X25519 private key (32 bytes, as in RFC 9458's
    /// example). The caller remains responsible for zeroizing its own copy.
    pub fn from_secret_bytes(
        key_id: u8,
        suites: &[SymmetricSuite],
        secret: &[u8],
    ) -> Result<Self, Error> {
        let secret =
            PrivateKey::from_bytes(secret).map_err(|_| Error::Malformed("X25519 private key"))?;
        let public = X25519HkdfSha256::sk_to_pk(&secret);
        let mut pk = [0u8; X25519_KEY_LEN];
        pk.copy_from_slice(&public.to_bytes());
        Ok(Self {
            config: KeyConfig::new(key_id, pk, suites),
            secret,
        })
    }

    /// The public configuration.
    pub fn config(&self) -> &KeyConfig {
        &self.config
    }

    /// The key identifier.
    pub fn key_id(&self) -> u8 {
        self.config.key_id()
    }

    pub(crate) fn secret(&self) -> &PrivateKey {
        &self.secret
    }
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey")
            .field("config", &self.config)
            .field("secret", &"<redacted>")
            .finish()
    }
}
