//! Key configurations (RFC 9458 §3) and their list format `application/ohttp-keys` (RFC 9540).

use crate::{
    Error, SymmetricSuite,
    suite::{Aead, Kdf, Kem},
    varint::Cursor,
};

/// The most symmetric suites a decoded key configuration may list (the 16-bit length allows
/// 16383; nobody needs more than a handful).
pub const MAX_SUITES: usize = 64;

/// The most key configurations an `application/ohttp-keys` list may hold when decoded.
pub const MAX_CONFIGS: usize = 64;

/// The public half of a gateway key: what clients encrypt to, and the exact bytes
/// ([`KeyConfig::encode`]) that attestation binds into REPORT_DATA.
///
/// Decoding keeps symmetric suites it does not implement (so re-encoding gives the same
/// bytes); [`KeyConfig::suites`] lists only the implemented ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    key_id: u8,
    kem: Kem,
    /// Exactly `kem.public_key_len()` bytes.
    public_key: Vec<u8>,
    /// Raw (KDF id, AEAD id) pairs, in the configuration's order.
    symmetric: Vec<(u16, u16)>,
}

impl KeyConfig {
    /// A configuration for a `kem` public key offering `suites` (in preference order).
    /// Fails with [`Error::InvalidPublicKey`] if the key is not `kem`'s length.
    pub fn new(
        key_id: u8,
        kem: Kem,
        public_key: &[u8],
        suites: &[SymmetricSuite],
    ) -> Result<Self, Error> {
        if public_key.len() != kem.public_key_len() {
            return Err(Error::InvalidPublicKey);
        }
        Ok(Self::from_public(key_id, kem, public_key.to_vec(), suites))
    }

    /// A configuration for a public key `hpke` serialized (so of the KEM's length).
    pub(crate) fn from_public(
        key_id: u8,
        kem: Kem,
        public_key: Vec<u8>,
        suites: &[SymmetricSuite],
    ) -> Self {
        debug_assert_eq!(public_key.len(), kem.public_key_len());
        Self {
            key_id,
            kem,
            public_key,
            symmetric: suites.iter().map(|s| (s.kdf.id(), s.aead.id())).collect(),
        }
    }

    /// The key identifier, unique among the gateway's live keys.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The HPKE KEM identifier (0x647A for X-Wing, 0x0020 for DHKEM(X25519)).
    pub fn kem_id(&self) -> u16 {
        self.kem.id()
    }

    /// The HPKE KEM.
    pub fn kem(&self) -> Kem {
        self.kem
    }

    /// The gateway's public key `pkR` (`Npk` bytes of the KEM).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The offered symmetric suites this implementation supports, in the configuration's order.
    pub fn suites(&self) -> impl Iterator<Item = SymmetricSuite> + '_ {
        self.symmetric.iter().filter_map(|&(kdf, aead)| {
            Some(SymmetricSuite {
                kdf: Kdf::from_id(kdf)?,
                aead: Aead::from_id(aead)?,
            })
        })
    }

    /// Whether the configuration offers `suite`.
    pub fn offers(&self, suite: SymmetricSuite) -> bool {
        self.symmetric.contains(&(suite.kdf.id(), suite.aead.id()))
    }

    /// The first offered suite this implementation supports.
    pub fn preferred_suite(&self) -> Result<SymmetricSuite, Error> {
        self.suites().next().ok_or(Error::NoCommonSuite)
    }

    /// Encodes the configuration (RFC 9458 §3.1): the exact bytes attestation binds.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 2 + self.public_key.len() + 2 + 4 * self.symmetric.len());
        out.push(self.key_id);
        out.extend_from_slice(&self.kem.id().to_be_bytes());
        out.extend_from_slice(&self.public_key);
        // At most MAX_SUITES entries are ever held, so the length fits 16 bits.
        let len = (4 * self.symmetric.len()).min(usize::from(u16::MAX)) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        for (kdf, aead) in &self.symmetric {
            out.extend_from_slice(&kdf.to_be_bytes());
            out.extend_from_slice(&aead.to_be_bytes());
        }
        out
    }

    /// Decodes exactly one configuration; trailing bytes are an error. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut cur = Cursor::new(bytes);
        let config = Self::read(&mut cur)?;
        if !cur.is_empty() {
            return Err(Error::Malformed("key configuration: trailing bytes"));
        }
        Ok(config)
    }

    fn read(cur: &mut Cursor<'_>) -> Result<Self, Error> {
        let key_id = cur.u8("key configuration: key id")?;
        let kem_id = cur.u16("key configuration: KEM id")?;
        let kem = Kem::from_id(kem_id).ok_or(Error::UnsupportedKem(kem_id))?;
        let public_key = cur
            .bytes(kem.public_key_len(), "key configuration: public key")?
            .to_vec();
        let len = usize::from(cur.u16("key configuration: algorithms length")?);
        if len < 4 || len % 4 != 0 {
            return Err(Error::Malformed("key configuration: algorithms length"));
        }
        if len / 4 > MAX_SUITES {
            return Err(Error::TooLarge {
                what: "symmetric algorithm list",
                len: len as u64 / 4,
                max: MAX_SUITES as u64,
            });
        }
        let mut algs = Cursor::new(cur.bytes(len, "key configuration: algorithms")?);
        let mut symmetric = Vec::with_capacity(len / 4);
        while !algs.is_empty() {
            let kdf = algs.u16("key configuration: KDF id")?;
            let aead = algs.u16("key configuration: AEAD id")?;
            symmetric.push((kdf, aead));
        }
        Ok(Self {
            key_id,
            kem,
            public_key,
            symmetric,
        })
    }

    /// Encodes a list as `application/ohttp-keys` (RFC 9540 §3): each configuration
    /// prefixed by its 16-bit length.
    pub fn encode_list(configs: &[KeyConfig]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in configs {
            let enc = c.encode();
            out.extend_from_slice(&(enc.len() as u16).to_be_bytes());
            out.extend_from_slice(&enc);
        }
        out
    }

    /// Decodes an `application/ohttp-keys` list. Configurations with a KEM this
    /// implementation does not support are skipped (RFC 9458 §3.2); any other defect is an
    /// error. Never panics.
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        let mut cur = Cursor::new(bytes);
        let mut out = Vec::new();
        let mut seen = 0usize;
        while !cur.is_empty() {
            seen += 1;
            if seen > MAX_CONFIGS {
                return Err(Error::TooLarge {
                    what: "key configuration list",
                    len: seen as u64,
                    max: MAX_CONFIGS as u64,
                });
            }
            let len = usize::from(cur.u16("key configuration list: length")?);
            let item = cur.bytes(len, "key configuration list: entry")?;
            match Self::decode(item) {
                Ok(c) => out.push(c),
                Err(Error::UnsupportedKem(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The configuration a client encrypts to among `configs`: the first one of the most
    /// preferred KEM ([`Kem::ALL`]: X-Wing before X25519) that offers a symmetric suite this
    /// implementation supports. Fails with [`Error::NoCommonSuite`] when none is usable.
    pub fn select(configs: &[KeyConfig]) -> Result<&KeyConfig, Error> {
        Kem::ALL
            .iter()
            .find_map(|&kem| {
                configs
                    .iter()
                    .find(|c| c.kem == kem && c.preferred_suite().is_ok())
            })
            .ok_or(Error::NoCommonSuite)
    }
}
