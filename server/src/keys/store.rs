//! The key database: one SQLite file with the keys (by hash) and each key's token usage.
//!
//! The file is created with mode 0600 in a 0700 directory. It holds no key: a key's SHA-256,
//! its name and limits, and its usage counter. `keys …` commands and a running server may use
//! it at once (SQLite's locking; a revocation takes effect on the next request).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension as _, Row, params};

use super::secret::{self, KeyHash, SecretKey};
use super::{AuthError, KeyId, KeyInfo, KeyRecord, KeySelector, KeyStoreError, Limits};

/// The schema this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    key_sha256 BLOB NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    tokens_per_minute INTEGER,
    max_concurrent INTEGER,
    revoked INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS usage (
    key_id INTEGER PRIMARY KEY REFERENCES api_keys(id),
    tokens REAL NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
";

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest key name.
const MAX_NAME_CHARS: usize = 64;

/// The key database.
pub struct KeyStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `$XDG_DATA_HOME/veil/keys.sqlite3`, else `~/.local/share/veil/keys.sqlite3`.
pub fn default_db_path() -> Result<PathBuf, KeyStoreError> {
    let var = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let data = var("XDG_DATA_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".local").join("share")))
        .ok_or(KeyStoreError::NoDefaultPath)?;
    Ok(data.join("veil").join("keys.sqlite3"))
}

impl KeyStore {
    /// Opens the database at `path`, creating it (mode 0600, parent directories 0700) and its
    /// tables if needed.
    pub fn open(path: &Path) -> Result<Self, KeyStoreError> {
        create_private_file(path)?;
        let conn = Connection::open(path)?;
        Self::init(conn, Some(path.to_owned()))
    }

    /// A database in memory (tests, or a server whose keys live only as long as it runs).
    pub fn in_memory() -> Result<Self, KeyStoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self, KeyStoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(KeyStoreError::NewerSchema(version));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file, if it is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // Every write is one statement: a panic elsewhere leaves the connection usable.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a key named `name` with `limits`, drawing it from `rng` (use the OS RNG).
    /// The returned [`SecretKey`] is the only copy: only its hash is stored.
    pub fn create<R: rand::CryptoRng + ?Sized>(
        &self,
        name: &str,
        limits: Limits,
        rng: &mut R,
    ) -> Result<(KeyId, SecretKey), KeyStoreError> {
        if !valid_name(name) {
            return Err(KeyStoreError::InvalidName);
        }
        let key = SecretKey::generate(rng);
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT INTO api_keys (name, key_sha256, created, tokens_per_minute, max_concurrent)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name,
                key.hash().0.as_slice(),
                unix_secs(),
                limits.tokens_per_minute.map(|n| clamp_i64(n.get())),
                limits.max_concurrent.map(|n| i64::from(n.get())),
            ],
        );
        match inserted {
            Ok(_) => Ok((KeyId(conn.last_insert_rowid()), key)),
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == ErrorCode::ConstraintViolation && msg.contains("api_keys.name") =>
            {
                Err(KeyStoreError::DuplicateName(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The caller a presented key belongs to. Malformed keys are refused without a lookup;
    /// the lookup is by hash, and the stored hash is compared in constant time.
    pub fn authenticate(&self, presented: &str) -> Result<KeyRecord, AuthError> {
        if !secret::well_formed(presented) {
            return Err(AuthError::Malformed);
        }
        let hash = KeyHash::of(presented);
        let found = self
            .conn()
            .query_row(
                "SELECT id, name, tokens_per_minute, max_concurrent, revoked, created, key_sha256
                 FROM api_keys WHERE key_sha256 = ?1",
                [hash.0.as_slice()],
                |r| {
                    let info = key_info(r)?;
                    let stored: Vec<u8> = r.get(6)?;
                    Ok((info, stored))
                },
            )
            .optional()
            .map_err(KeyStoreError::from)?;
        let Some((info, stored)) = found else {
            return Err(AuthError::Unknown);
        };
        if !hash.matches(&stored) {
            return Err(AuthError::Unknown);
        }
        if info.revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(KeyRecord {
            id: info.id,
            name: info.name,
            limits: info.limits,
        })
    }

    /// Revokes a key (at once, for a running server too). Revoking twice keeps the first time.
    pub fn revoke(&self, which: &KeySelector) -> Result<KeyInfo, KeyStoreError> {
        let conn = self.conn();
        let (clause, arg): (&str, rusqlite::types::Value) = match which {
            KeySelector::Id(id) => ("id = ?2", id.0.into()),
            KeySelector::Name(n) => ("name = ?2", n.clone().into()),
        };
        let changed = conn.execute(
            &format!("UPDATE api_keys SET revoked = COALESCE(revoked, ?1) WHERE {clause}"),
            params![unix_secs(), arg],
        )?;
        if changed == 0 {
            return Err(KeyStoreError::NotFound(match which {
                KeySelector::Id(id) => format!("with id {id}"),
                KeySelector::Name(n) => format!("named {n:?}"),
            }));
        }
        Ok(conn.query_row(
            &format!(
                "SELECT id, name, tokens_per_minute, max_concurrent, revoked, created
                 FROM api_keys WHERE {}",
                clause.replace("?2", "?1")
            ),
            [arg],
            key_info,
        )?)
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, tokens_per_minute, max_concurrent, revoked, created
             FROM api_keys ORDER BY id",
        )?;
        let rows = stmt.query_map([], key_info)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keys not revoked.
    pub fn active_keys(&self) -> Result<usize, KeyStoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM api_keys WHERE revoked IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// A key's stored usage: tokens not yet replenished, as of a Unix time in milliseconds.
    pub(crate) fn usage(&self, id: KeyId) -> Result<Option<(f64, i64)>, KeyStoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT tokens, updated_ms FROM usage WHERE key_id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Stores a key's usage.
    pub(crate) fn set_usage(
        &self,
        id: KeyId,
        tokens: f64,
        at_ms: i64,
    ) -> Result<(), KeyStoreError> {
        self.conn().execute(
            "INSERT INTO usage (key_id, tokens, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
            params![id.0, tokens, at_ms],
        )?;
        Ok(())
    }
}

/// Columns: id, name, tokens_per_minute, max_concurrent, revoked, created.
fn key_info(r: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    let rate: Option<i64> = r.get(2)?;
    let concurrent: Option<i64> = r.get(3)?;
    Ok(KeyInfo {
        id: KeyId(r.get(0)?),
        name: r.get(1)?,
        created: r.get(5)?,
        limits: Limits {
            tokens_per_minute: rate.and_then(|n| u64::try_from(n).ok()?.try_into().ok()),
            max_concurrent: concurrent.and_then(|n| u32::try_from(n).ok()?.try_into().ok()),
        },
        revoked: r.get(4)?,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.bytes().all(|b| b.is_ascii_digit())
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| clamp_i64(d.as_secs()))
}

/// Creates `path` (mode 0600) and its missing parent directories (mode 0700), if absent.
fn create_private_file(path: &Path) -> Result<(), KeyStoreError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| KeyStoreError::Io { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io(dir))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(name: &str, limits: Limits) -> (KeyStore, KeyId, SecretKey) {
        let store = KeyStore::in_memory().expect("store");
        let (id, key) = store
            .create(name, limits, &mut rand::rng())
            .expect("created");
        (store, id, key)
    }

    #[test]
    fn a_created_key_authenticates_until_revoked() {
        let limits = Limits {
            tokens_per_minute: Some(1000.try_into().expect("non-zero")),
            max_concurrent: None,
        };
        let (store, id, key) = store_with("ci", limits);
        let who = store.authenticate(key.expose()).expect("authenticates");
        assert_eq!((who.id, who.name.as_str(), who.limits), (id, "ci", limits));
        assert_eq!(store.active_keys().expect("count"), 1);
        let info = store
            .revoke(&KeySelector::Name("ci".into()))
            .expect("revoked");
        assert!(info.revoked.is_some());
        assert!(matches!(
            store.authenticate(key.expose()),
            Err(AuthError::Revoked)
        ));
        assert_eq!(store.active_keys().expect("count"), 0);
        // Revoking again keeps the first time; by id works too.
        let again = store.revoke(&KeySelector::Id(id)).expect("revoked");
        assert_eq!(again.revoked, info.revoked);
    }

    #[test]
    fn wrong_malformed_and_near_miss_keys_are_refused() {
        let (store, _, key) = store_with("a", Limits::default());
        let mut near = key.expose().to_owned();
        let last = near.pop().expect("non-empty");
        near.push(if last == 'a' { 'b' } else { 'a' });
        assert!(matches!(store.authenticate(&near), Err(AuthError::Unknown)));
        let other = SecretKey::generate(&mut rand::rng());
        assert!(matches!(
            store.authenticate(other.expose()),
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            store.authenticate("sk-anything"),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(store.authenticate(""), Err(AuthError::Malformed)));
    }

    #[test]
    fn names_are_unique_and_checked_and_selectors_parse() {
        let (store, _, _) = store_with("team-a", Limits::default());
        assert!(matches!(
            store.create("team-a", Limits::default(), &mut rand::rng()),
            Err(KeyStoreError::DuplicateName(_))
        ));
        for bad in ["", "123", "has space", "semi;colon", &"x".repeat(65)] {
            assert!(
                matches!(
                    store.create(bad, Limits::default(), &mut rand::rng()),
                    Err(KeyStoreError::InvalidName)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(KeySelector::parse("12"), KeySelector::Id(KeyId(12)));
        assert_eq!(KeySelector::parse("a12"), KeySelector::Name("a12".into()));
        assert_eq!(KeySelector::parse("+12"), KeySelector::Name("+12".into()));
        assert!(matches!(
            store.revoke(&KeySelector::Name("nobody".into())),
            Err(KeyStoreError::NotFound(_))
        ));
        assert!(matches!(
            store.revoke(&KeySelector::Id(KeyId(99))),
            Err(KeyStoreError::NotFound(_))
        ));
    }

    #[test]
    fn the_file_is_private_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("keys.sqlite3");
        let key = {
            let store = KeyStore::open(&path).expect("opens");
            store
                .create("k", Limits::default(), &mut rand::rng())
                .expect("created")
                .1
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode();
            assert_eq!(mode(&path) & 0o777, 0o600);
            assert_eq!(mode(path.parent().expect("parent")) & 0o777, 0o700);
        }
        let store = KeyStore::open(&path).expect("reopens");
        assert!(store.authenticate(key.expose()).is_ok());
        let listed = store.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].created > 1_700_000_000);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.sqlite3");
        drop(KeyStore::open(&path).expect("opens"));
        Connection::open(&path)
            .expect("raw")
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        assert!(matches!(
            KeyStore::open(&path),
            Err(KeyStoreError::NewerSchema(v)) if v == SCHEMA_VERSION + 1
        ));
    }
}
