//! HPKE algorithm identifiers (RFC 9180 §7) and the symmetric suites Veil offers.

use std::fmt;

/// HPKE KEM identifier for DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;

/// HPKE KEM identifier for X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem;
/// the HPKE binding of draft-ietf-hpke-pq).
pub const KEM_XWING: u16 = 0x647a;

/// Length in bytes of an X25519 public key and of the encapsulated key `enc`.
pub const X25519_KEY_LEN: usize = 32;

/// An HPKE KEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kem {
    /// X-Wing (0x647A): ML-KEM-768 and X25519 combined, so a request stays confidential
    /// unless both are broken (in particular against a future quantum computer that
    /// breaks X25519). Public key 1216 bytes, `enc` 1120 bytes.
    XWing,
    /// DHKEM(X25519, HKDF-SHA256) (0x0020): public key and `enc` 32 bytes each.
    X25519HkdfSha256,
}

impl Kem {
    /// Every KEM Veil implements, in order of preference (post-quantum first).
    pub const ALL: [Self; 2] = [Self::XWing, Self::X25519HkdfSha256];

    /// The IANA identifier.
    pub fn id(self) -> u16 {
        match self {
            Kem::XWing => KEM_XWING,
            Kem::X25519HkdfSha256 => KEM_X25519_HKDF_SHA256,
        }
    }

    /// The KEM for an IANA identifier, if implemented.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            KEM_XWING => Some(Kem::XWing),
            KEM_X25519_HKDF_SHA256 => Some(Kem::X25519HkdfSha256),
            _ => None,
        }
    }

    /// `Npk`: length of a serialized public key.
    pub fn public_key_len(self) -> usize {
        match self {
            Kem::XWing => 1216,
            Kem::X25519HkdfSha256 => X25519_KEY_LEN,
        }
    }

    /// `Nenc`: length of the encapsulated key.
    pub fn enc_len(self) -> usize {
        match self {
            Kem::XWing => 1120,
            Kem::X25519HkdfSha256 => X25519_KEY_LEN,
        }
    }

    /// Whether the KEM resists an attacker with a quantum computer (X-Wing: ML-KEM-768).
    pub fn is_post_quantum(self) -> bool {
        matches!(self, Kem::XWing)
    }
}

impl fmt::Display for Kem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kem::XWing => "X-Wing",
            Kem::X25519HkdfSha256 => "X25519",
        })
    }
}

/// An HPKE KDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kdf {
    /// HKDF-SHA256 (0x0001).
    HkdfSha256,
}

impl Kdf {
    /// The IANA identifier.
    pub fn id(self) -> u16 {
        match self {
            Kdf::HkdfSha256 => 0x0001,
        }
    }

    /// The KDF for an IANA identifier, if implemented.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Kdf::HkdfSha256),
            _ => None,
        }
    }
}

/// An HPKE AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM (0x0001).
    Aes128Gcm,
    /// AES-256-GCM (0x0002).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (0x0003).
    ChaCha20Poly1305,
}

impl Aead {
    /// The IANA identifier.
    pub fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    /// The AEAD for an IANA identifier, if implemented (the export-only AEAD is not).
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Aead::Aes128Gcm),
            0x0002 => Some(Aead::Aes256Gcm),
            0x0003 => Some(Aead::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// `Nk`: key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// `Nn`: nonce length in bytes.
    pub fn nonce_len(self) -> usize {
        12
    }

    /// Authentication tag length in bytes (what sealing adds to each message or chunk).
    pub fn tag_len(self) -> usize {
        16
    }

    /// Length of the response nonce: `max(Nn, Nk)` (RFC 9458 §4.4).
    pub fn response_nonce_len(self) -> usize {
        self.key_len().max(self.nonce_len())
    }
}

/// A KDF and AEAD pair, one entry of a key configuration's symmetric algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SymmetricSuite {
    /// The KDF.
    pub kdf: Kdf,
    /// The AEAD.
    pub aead: Aead,
}

impl SymmetricSuite {
    /// HKDF-SHA256 with AES-256-GCM: Veil's first choice.
    pub const HKDF_SHA256_AES_256_GCM: Self = Self {
        kdf: Kdf::HkdfSha256,
        aead: Aead::Aes256Gcm,
    };
    /// HKDF-SHA256 with AES-128-GCM: what RFC 9458's example and most OHTTP deployments use.
    pub const HKDF_SHA256_AES_128_GCM: Self = Self {
        kdf: Kdf::HkdfSha256,
        aead: Aead::Aes128Gcm,
    };
    /// HKDF-SHA256 with ChaCha20-Poly1305.
    pub const HKDF_SHA256_CHACHA20_POLY1305: Self = Self {
        kdf: Kdf::HkdfSha256,
        aead: Aead::ChaCha20Poly1305,
    };

    /// Every suite Veil offers, in order of preference.
    pub const ALL: [Self; 3] = [
        Self::HKDF_SHA256_AES_256_GCM,
        Self::HKDF_SHA256_AES_128_GCM,
        Self::HKDF_SHA256_CHACHA20_POLY1305,
    ];
}

impl fmt::Display for SymmetricSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}+{:?}", self.kdf, self.aead)
    }
}
