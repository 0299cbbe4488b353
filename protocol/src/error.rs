//! The one error type of this crate: every way an encapsulated message can be refused.
//!
//! No variant carries plaintext, key material or secrets; the few that carry data
//! carry identifiers and lengths only.

/// Why a message could not be encapsulated, decapsulated or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed encoding of what was expected.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A length field or a message exceeds the limit set before allocating.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The request names a key identifier that this gateway does not hold (unknown or retired).
    #[error("unknown key id {0}")]
    UnknownKeyId(u8),
    /// The KEM is not one implemented (X-Wing, DHKEM(X25519, HKDF-SHA256)), or not the KEM of
    /// the key the request is addressed to.
    #[error("unsupported KEM 0x{0:04x}")]
    UnsupportedKem(u16),
    /// The KDF/AEAD pair is not implemented or not offered by the key configuration.
    #[error("unsupported symmetric suite: KDF 0x{kdf:04x}, AEAD 0x{aead:04x}")]
    UnsupportedSuite {
        /// HPKE KDF identifier.
        kdf: u16,
        /// HPKE AEAD identifier.
        aead: u16,
    },
    /// A key configuration offers no symmetric suite this implementation supports.
    #[error("key configuration offers no supported symmetric suite")]
    NoCommonSuite,
    /// The public key in a key configuration is not a valid public key of its KEM.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// HPKE decapsulation failed (for X25519: the shared secret is all zero; X-Wing never
    /// fails here: a wrong `enc` yields a wrong key, caught as [`Error::Authentication`]).
    #[error("HPKE decapsulation failed")]
    Decapsulation,
    /// A sealed request or response failed authentication: it was altered, or sealed
    /// under another key, context or nonce.
    #[error("authentication failed: message altered or not for this context")]
    Authentication,
    /// A chunk failed authentication: it was altered, reordered, replaced, or its
    /// final/non-final marking was changed.
    #[error("chunk {index} failed authentication: altered, reordered or mis-marked")]
    ChunkAuthentication {
        /// Zero-based position of the chunk in the stream.
        index: u64,
    },
    /// A non-final chunk decrypted to zero bytes, which the chunked format forbids.
    #[error("non-final chunk {index} is empty")]
    EmptyChunk {
        /// Zero-based position of the chunk in the stream.
        index: u64,
    },
    /// The stream ended before its authenticated final chunk: the message is truncated.
    #[error("truncated: the stream ended without its authenticated final chunk")]
    Truncated,
    /// Input arrived after the message was complete, or after a previous error.
    #[error("input after the end of the message or after an error")]
    UnexpectedInput,
    /// The chunk counter would exceed what the AEAD nonce or HPKE sequence allows.
    #[error("too many chunks for one message")]
    TooManyChunks,
    /// A sealing operation failed (HPKE message limit or AEAD input limit).
    #[error("sealing failed")]
    Seal,
    /// The gateway already accepted a request with this encapsulated key under this key id.
    #[error("replayed request: encapsulated key already accepted under key id {key_id}")]
    Replay {
        /// The key identifier the replay was addressed to.
        key_id: u8,
    },
    /// The replay cache of this key is full of unexpired entries; the request is refused
    /// rather than accepted unchecked.
    #[error("replay cache for key id {key_id} is full")]
    ReplayCacheFull {
        /// The key identifier whose cache is full.
        key_id: u8,
    },
    /// The inner request carries no `Date` field, so its freshness cannot be checked.
    #[error("inner request has no Date field")]
    MissingDate,
    /// The inner request's `Date` is not an IMF-fixdate.
    #[error("inner request Date is not an HTTP date")]
    InvalidDate,
    /// The inner request's `Date` is outside the accepted window around `now`.
    #[error("inner request Date is {skew_secs} s from now, outside the window of {window_secs} s")]
    StaleDate {
        /// Signed distance of the request's Date from `now`, in seconds (negative: in the past).
        skew_secs: i64,
        /// The accepted distance either side of `now`, in seconds.
        window_secs: u64,
    },
    /// The Binary HTTP message could not be encoded or parsed.
    #[error("binary HTTP: {0}")]
    BinaryHttp(&'static str),
    /// Padding after a Binary HTTP message contains a non-zero byte (RFC 9292 §3.8).
    #[error("binary HTTP padding contains a non-zero byte")]
    NonZeroPadding,
    /// A request or response in the wrong state for this call (for example, a response
    /// sealer used after its final chunk).
    #[error("operation not valid in this state: {0}")]
    InvalidState(&'static str),
}

impl From<bhttp::Error> for Error {
    fn from(e: bhttp::Error) -> Self {
        // Map to static descriptions: bhttp's own messages can quote field bytes.
        Error::BinaryHttp(match e {
            bhttp::Error::Truncated => "truncated message",
            bhttp::Error::InvalidMode => "invalid framing indicator",
            bhttp::Error::InvalidStatus => "invalid status code",
            bhttp::Error::ExpectedRequest => "expected a request",
            bhttp::Error::ExpectedResponse => "expected a response",
            bhttp::Error::ConnectUnsupported => "CONNECT is not supported",
            bhttp::Error::UpgradeUnsupported => "Upgrade is not supported",
            bhttp::Error::CharacterEncoding(_) => "invalid UTF-8",
            bhttp::Error::IntRange(_) => "integer out of range",
            _ => "invalid message",
        })
    }
}
