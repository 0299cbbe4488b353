//! Replay protection (RFC 9458 §6.5): a bounded cache of accepted `enc` values per key,
//! and a window on the inner request's `Date`. Both are sans-IO: `now` is passed in.
//!
//! An entry needs to live only until a replay of it would fail the `Date` check anyway
//! ([`DateWindow::expiry`]: its `Date` plus the window, plus the second the whole-second
//! comparison rounds away), so the cache is bounded by request rate × window. When
//! it is full of live entries it refuses new requests rather than forgetting old ones.
//!
//! Entries are the SHA-256 of `enc`, not `enc` itself: an X-Wing `enc` is 1120 bytes, which
//! would make a full cache of 2^16 entries 73 MB per key; a 32-byte digest keeps it at 2 MB
//! whatever the KEM, and a collision would need a SHA-256 collision.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2_next::{Digest, Sha256};

use crate::Error;

/// The accepted distance between a request's `Date` and `now`, either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    window: Duration,
}

impl Default for DateWindow {
    /// Two minutes either side.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
        }
    }
}

fn signed_secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    }
}

impl DateWindow {
    /// A window of `window` either side of `now`.
    pub fn new(window: Duration) -> Self {
        Self { window }
    }

    /// The window's half-width.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The first instant from which a request dated `date` fails [`check`](Self::check) for
    /// good: `date` + window + 1 s, because the check compares whole seconds (a request
    /// dated `D` still passes at `D + window + 0.9 s`). A replay-cache entry must live
    /// until then, or a replay in that last second would pass both checks.
    pub fn expiry(&self, date: SystemTime) -> SystemTime {
        date + self.window + Duration::from_secs(1)
    }

    /// Checks that `date` lies within the window around `now`.
    pub fn check(&self, date: SystemTime, now: SystemTime) -> Result<(), Error> {
        let skew = signed_secs(date) - signed_secs(now);
        let window_secs = self.window.as_secs();
        if skew.unsigned_abs() > u128::from(window_secs) {
            return Err(Error::StaleDate {
                skew_secs: i64::try_from(skew).unwrap_or(if skew < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                }),
                window_secs,
            });
        }
        Ok(())
    }
}

/// The `enc` values accepted under one key, each kept until it expires.
#[derive(Debug)]
pub struct ReplayCache {
    key_id: u8,
    capacity: usize,
    seen: HashMap<[u8; 32], SystemTime>,
}

fn entry(enc: &[u8]) -> [u8; 32] {
    Sha256::digest(enc).into()
}

impl ReplayCache {
    /// An empty cache for key `key_id` holding at most `capacity` live entries.
    pub fn new(key_id: u8, capacity: usize) -> Self {
        Self {
            key_id,
            capacity,
            seen: HashMap::new(),
        }
    }

    /// Fails with [`Error::Replay`] if `enc` was already accepted (and has not expired).
    pub fn check(&self, enc: &[u8], now: SystemTime) -> Result<(), Error> {
        self.check_entry(&entry(enc), now)
    }

    fn check_entry(&self, entry: &[u8; 32], now: SystemTime) -> Result<(), Error> {
        match self.seen.get(entry) {
            Some(&expires) if expires > now => Err(Error::Replay {
                key_id: self.key_id,
            }),
            _ => Ok(()),
        }
    }

    /// Checks `enc` and records it until `expires`. Fails with [`Error::Replay`] on a
    /// repeat, or [`Error::ReplayCacheFull`] when no room can be made by dropping expired
    /// entries.
    pub fn insert(
        &mut self,
        enc: &[u8],
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<(), Error> {
        let enc = entry(enc);
        self.check_entry(&enc, now)?;
        if self.seen.len() >= self.capacity && !self.seen.contains_key(&enc) {
            self.seen.retain(|_, &mut e| e > now);
            if self.seen.len() >= self.capacity {
                return Err(Error::ReplayCacheFull {
                    key_id: self.key_id,
                });
            }
        }
        self.seen.insert(enc, expires);
        Ok(())
    }

    /// Number of entries held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rejects_date_outside_window() {
        let w = DateWindow::new(Duration::from_secs(60));
        let now = t(1_000_000);
        assert!(w.check(t(1_000_060), now).is_ok());
        assert!(w.check(t(999_940), now).is_ok());
        assert_eq!(
            w.check(t(999_939), now),
            Err(Error::StaleDate {
                skew_secs: -61,
                window_secs: 60
            })
        );
        assert!(matches!(
            w.check(t(1_000_061), now),
            Err(Error::StaleDate { skew_secs: 61, .. })
        ));
    }

    #[test]
    fn expiry_is_the_first_instant_the_date_check_fails() {
        let w = DateWindow::new(Duration::from_secs(60));
        let date = t(1_000_000);
        let last_ok = t(1_000_060) + Duration::from_millis(999);
        assert!(w.check(date, last_ok).is_ok());
        assert!(w.expiry(date) > last_ok);
        assert!(w.check(date, w.expiry(date)).is_err());
    }

    #[test]
    fn rejects_replayed_enc_until_it_expires() {
        let mut c = ReplayCache::new(7, 4);
        c.insert(&[1; 32], t(200), t(100)).expect("first use");
        assert_eq!(
            c.insert(&[1; 32], t(300), t(150)),
            Err(Error::Replay { key_id: 7 })
        );
        // After expiry a replay would fail the Date check; the cache may forget it.
        assert!(c.insert(&[1; 32], t(400), t(201)).is_ok());
    }

    #[test]
    fn full_cache_refuses_rather_than_forgets() {
        let mut c = ReplayCache::new(3, 2);
        c.insert(&[1; 32], t(200), t(100)).expect("1");
        c.insert(&[2; 32], t(200), t(100)).expect("2");
        assert_eq!(
            c.insert(&[3; 32], t(200), t(100)),
            Err(Error::ReplayCacheFull { key_id: 3 })
        );
        // Still remembers both.
        assert!(c.check(&[1; 32], t(150)).is_err());
        // Once entries expire, room is made.
        c.insert(&[3; 32], t(400), t(250))
            .expect("room after expiry");
        assert_eq!(c.len(), 1);
    }
}
