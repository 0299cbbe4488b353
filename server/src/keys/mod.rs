//! API keys: who may call `/v1/*`, and how many tokens a minute each caller may use.
//!
//! - [`SecretKey`]: `veil_sk_` and 43 base62 characters from the OS RNG, shown once at
//!   creation; only its SHA-256 ([`KeyHash`]) is stored.
//! - [`KeyStore`]: the SQLite database of keys and their token usage (`veil-server keys …`
//!   and `serve --db` open the same file).
//! - [`Limiter`]: per-key token rate and concurrency. A request is admitted before it is
//!   queued and charged its real prompt and completion tokens when it ends.
//!
//! Nothing here logs or returns a key, a hash, a prompt or a completion.

mod limits;
mod secret;
mod store;

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;

pub use limits::{Limiter, RateLimited, Ticket, TokenBudget};
pub use secret::{KEY_PREFIX, KEY_RANDOM_CHARS, KeyHash, SecretKey};
pub use store::{KeyStore, default_db_path};

/// A key's public id (shown by `keys list`, accepted by `keys revoke`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub i64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a key may use. `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Prompt plus completion tokens per minute.
    pub tokens_per_minute: Option<NonZeroU64>,
    /// Requests (streamed or not) generating at once.
    pub max_concurrent: Option<NonZeroU32>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's id.
    pub id: KeyId,
    /// Its name.
    pub name: String,
    /// Its limits.
    pub limits: Limits,
}

/// A key as `keys list` shows it: never the key nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// Its name.
    pub name: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// Its limits.
    pub limits: Limits,
    /// When it was revoked (Unix seconds), if it was.
    pub revoked: Option<i64>,
}

/// A key named by id (all digits) or by name, as `keys revoke` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySelector {
    /// By id.
    Id(KeyId),
    /// By name.
    Name(String),
}

impl KeySelector {
    /// Digits are an id (names are never all digits), anything else a name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<i64>() {
            Ok(id) if s.bytes().all(|b| b.is_ascii_digit()) => Self::Id(KeyId(id)),
            _ => Self::Name(s.to_owned()),
        }
    }
}

/// Why the key store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The database could not be opened, read or written.
    #[error("key database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file or its directory could not be created.
    #[error("key database {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database was written by a newer veil-server.
    #[error("key database schema version {0} is newer than this server understands")]
    NewerSchema(i64),
    /// A key with this name exists (revoked keys keep their names).
    #[error("a key named {0:?} already exists")]
    DuplicateName(String),
    /// Names are 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not all digits.
    #[error("key names are 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-', not all digits")]
    InvalidName,
    /// No such key.
    #[error("no key {0}")]
    NotFound(String),
    /// No default location: neither `XDG_DATA_HOME` nor `HOME` is set.
    #[error("no default key database location (set HOME or XDG_DATA_HOME, or pass --db)")]
    NoDefaultPath,
}

/// Why a request was not authenticated. The messages never contain the presented key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("no API key (expected the header Authorization: Bearer veil_sk_…)")]
    Missing,
    /// Not the shape of a Veil key.
    #[error("the API key is not a Veil key (veil_sk_…)")]
    Malformed,
    /// No such key.
    #[error("incorrect API key")]
    Unknown,
    /// The key was revoked.
    #[error("the API key has been revoked")]
    Revoked,
    /// The store failed (the request is refused).
    #[error(transparent)]
    Store(#[from] KeyStoreError),
}
