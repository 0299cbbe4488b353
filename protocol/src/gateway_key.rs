//! The gateway's private key with its configuration.
//!
//! The secret lives only inside `hpke`'s private key types (zeroized on drop, see
//! `cipher::PrivateKey`); every temporary copy made here is zeroized too. The type is
//! neither `Clone`, serializable, nor printable: its `Debug` shows the configuration only.

use std::fmt;

use hpke::rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::{Error, Kem, KeyConfig, SymmetricSuite, cipher::PrivateKey};

/// A gateway key: an HPKE key pair (X-Wing or X25519) and the [`KeyConfig`] that publishes
/// its public half.
pub struct GatewayKey {
    config: KeyConfig,
    secret: PrivateKey,
}

impl GatewayKey {
    /// Generates a fresh DHKEM(X25519) key pair from `rng`; see [`GatewayKey::generate_with`].
    pub fn generate(key_id: u8, suites: &[SymmetricSuite], rng: &mut impl CryptoRng) -> Self {
        Self::generate_with(Kem::X25519HkdfSha256, key_id, suites, rng)
    }

    /// Generates a fresh `kem` key pair from `rng` (`DeriveKeyPair` of 32 random bytes).
    pub fn generate_with(
        kem: Kem,
        key_id: u8,
        suites: &[SymmetricSuite],
        rng: &mut impl CryptoRng,
    ) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        Self::derive_with(kem, key_id, suites, ikm.as_ref())
    }

    /// Derives a DHKEM(X25519) key pair from input keying material (RFC 9180
    /// `DeriveKeyPair`); see [`GatewayKey::derive_with`].
    pub fn derive(key_id: u8, suites: &[SymmetricSuite], ikm: &[u8]) -> Self {
        Self::derive_with(Kem::X25519HkdfSha256, key_id, suites, ikm)
    }

    /// Derives a `kem` key pair from input keying material (`DeriveKeyPair`: RFC 9180 for
    /// X25519, draft-ietf-hpke-pq's SHAKE256 derivation for X-Wing).
    pub fn derive_with(kem: Kem, key_id: u8, suites: &[SymmetricSuite], ikm: &[u8]) -> Self {
        let (secret, public) = PrivateKey::derive(kem, ikm);
        Self {
            config: KeyConfig::from_public(key_id, kem, public, suites),
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
        Self::from_secret_bytes_with(Kem::X25519HkdfSha256, key_id, suites, secret)
    }

    /// Builds the key from a serialized `kem` private key (32 bytes for both KEMs; for
    /// X-Wing the seed `sk` of the draft). The caller remains responsible for zeroizing its
    /// own copy.
    pub fn from_secret_bytes_with(
        kem: Kem,
        key_id: u8,
        suites: &[SymmetricSuite],
        secret: &[u8],
    ) -> Result<Self, Error> {
        let (secret, public) = PrivateKey::from_bytes(kem, secret)?;
        Ok(Self {
            config: KeyConfig::from_public(key_id, kem, public, suites),
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

    /// The KEM.
    pub fn kem(&self) -> Kem {
        self.config.kem()
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
