//! Replay protection (RFC 9458 §6.5): a window on the inner request's `Date` and, per key,
//! a bounded record of the `enc` values accepted. Both are sans-IO: `now` is passed in.
//!
//! The record is kept in buckets, one per `Date` second. A replay carries the same `Date`
//! as the original (the `Date` is inside the sealed message), so a request is looked up in
//! its own second's bucket only; a bucket is dropped whole once every request it could
//! catch would fail the `Date` check anyway ([`DateWindow::expiry`]). Insert, lookup and
//! expiry cost O(1) amortised, and memory is bounded by
//! (`past` + `future` + 1 s) × the per-second capacity.
//!
//! The record can be filled but not used to lock clients out. Anyone can seal a request to
//! the public key (API keys are checked only after opening), so a flood is expected:
//! - a full bucket refuses only requests dated in its second, never all traffic;
//! - the future side of the window is short (10 s by default), and requests dated ahead of
//!   `now` may take only a quarter of a second's room: a flood dated in the future cannot
//!   fill the seconds that clients with correct clocks will use when they arrive;
//! - the caller holds the record's lock only for the lookup and insert, never across
//!   decryption ([`crate::Gateway`]).
//!
//! Entries are the SHA-256 of `enc`, not `enc` itself: an X-Wing `enc` is 1120 bytes; a
//! 32-byte digest keeps the record small whatever the KEM, and a collision would need a
//! SHA-256 collision.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2_next::{Digest, Sha256};

use crate::Error;

/// The accepted distance between a request's `Date` and `now`: `past` behind, `future`
/// ahead (a client clock running fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    past: Duration,
    future: Duration,
}

impl Default for DateWindow {
    /// Two minutes behind (requests in flight, slow clocks), ten seconds ahead.
    fn default() -> Self {
        Self::new(Duration::from_secs(120)).with_future(Duration::from_secs(10))
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
        Self {
            past: window,
            future: window,
        }
    }

    /// The same window behind `now`, and `future` ahead of it.
    pub fn with_future(self, future: Duration) -> Self {
        Self { future, ..self }
    }

    /// How far behind `now` a `Date` may be.
    pub fn past(&self) -> Duration {
        self.past
    }

    /// How far ahead of `now` a `Date` may be.
    pub fn future(&self) -> Duration {
        self.future
    }

    /// The first instant from which a request dated `date` fails [`check`](Self::check) for
    /// good: `date` + past + 1 s, because the check compares whole seconds (a request
    /// dated `D` still passes at `D + past + 0.9 s`). A replay record must be kept until
    /// then, or a replay in that last second would pass both checks.
    pub fn expiry(&self, date: SystemTime) -> SystemTime {
        date + self.past + Duration::from_secs(1)
    }

    /// Checks that `date` lies within the window around `now`.
    pub fn check(&self, date: SystemTime, now: SystemTime) -> Result<(), Error> {
        let skew = signed_secs(date) - signed_secs(now);
        let window_secs = if skew < 0 { self.past } else { self.future }.as_secs();
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

/// The `enc` values accepted in one `Date` second.
#[derive(Debug, Default)]
struct Bucket {
    seen: HashSet<[u8; 32]>,
    /// How many of them arrived before their second (dated in the future).
    early: usize,
}

/// The `enc` values accepted under one key, by `Date` second, each kept until a replay of
/// it would fail the `Date` check.
#[derive(Debug)]
pub struct ReplayCache {
    key_id: u8,
    window: DateWindow,
    per_second: usize,
    buckets: BTreeMap<i128, Bucket>,
}

fn entry(enc: &[u8]) -> [u8; 32] {
    Sha256::digest(enc).into()
}

impl ReplayCache {
    /// An empty record for key `key_id` under `window`, accepting at most `per_second`
    /// requests dated in any one second (and a quarter of that again, at least one, for
    /// requests that arrive before their second).
    pub fn new(key_id: u8, window: DateWindow, per_second: usize) -> Self {
        Self {
            key_id,
            window,
            per_second,
            buckets: BTreeMap::new(),
        }
    }

    fn early_room(&self) -> usize {
        (self.per_second / 4).max(1)
    }

    /// Records `enc`, sent with `date` (which the caller has checked against the window),
    /// at `now`. Fails with [`Error::Replay`] if it was accepted before, or with
    /// [`Error::ReplayCacheFull`] when `date`'s second has no room left (for requests dated
    /// ahead of `now`: when their quarter is used).
    pub fn insert(&mut self, enc: &[u8], date: SystemTime, now: SystemTime) -> Result<(), Error> {
        self.expire(now);
        let early = signed_secs(date) > signed_secs(now);
        let early_room = self.early_room();
        let per_second = self.per_second;
        let key_id = self.key_id;
        let bucket = self.buckets.entry(signed_secs(date)).or_default();
        let enc = entry(enc);
        if bucket.seen.contains(&enc) {
            return Err(Error::Replay { key_id });
        }
        let present = bucket.seen.len() - bucket.early;
        let full = if early {
            bucket.early >= early_room
        } else {
            present >= per_second
        };
        if full {
            return Err(Error::ReplayCacheFull { key_id });
        }
        bucket.seen.insert(enc);
        if early {
            bucket.early += 1;
        }
        Ok(())
    }

    /// Drops the buckets whose requests would all fail the `Date` check at `now`.
    fn expire(&mut self, now: SystemTime) {
        let now = signed_secs(now);
        let keep = i128::from(self.window.past.as_secs()) + 1;
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() + keep > now {
                break;
            }
            entry.remove();
        }
    }

    /// Number of entries held (not yet expired at the last insert).
    pub fn len(&self) -> usize {
        self.buckets.values().map(|b| b.seen.len()).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.buckets.values().all(|b| b.seen.is_empty())
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
    fn the_default_window_allows_ten_seconds_ahead_and_two_minutes_behind() {
        let w = DateWindow::default();
        let now = t(1_000_000);
        assert!(w.check(t(1_000_010), now).is_ok());
        assert_eq!(
            w.check(t(1_000_011), now),
            Err(Error::StaleDate {
                skew_secs: 11,
                window_secs: 10
            })
        );
        assert!(w.check(t(999_880), now).is_ok());
        assert!(matches!(
            w.check(t(999_879), now),
            Err(Error::StaleDate {
                skew_secs: -121,
                window_secs: 120
            })
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

    fn cache(per_second: usize) -> ReplayCache {
        ReplayCache::new(7, DateWindow::new(Duration::from_secs(60)), per_second)
    }

    #[test]
    fn rejects_a_replay_until_its_date_leaves_the_window() {
        let mut c = cache(4);
        c.insert(&[1; 32], t(100), t(100)).expect("first use");
        assert_eq!(
            c.insert(&[1; 32], t(100), t(160)),
            Err(Error::Replay { key_id: 7 })
        );
        // At 161 a request dated 100 fails the Date check; its second is dropped whole.
        c.insert(&[2; 32], t(161), t(161)).expect("another");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_second_refuses_only_its_own_requests() {
        let mut c = cache(2);
        c.insert(&[1; 32], t(100), t(100)).expect("1");
        c.insert(&[2; 32], t(100), t(100)).expect("2");
        assert_eq!(
            c.insert(&[3; 32], t(100), t(100)),
            Err(Error::ReplayCacheFull { key_id: 7 })
        );
        // Still remembers both, and the next second has room.
        assert_eq!(
            c.insert(&[1; 32], t(100), t(101)),
            Err(Error::Replay { key_id: 7 })
        );
        c.insert(&[3; 32], t(101), t(101)).expect("next second");
    }

    #[test]
    fn a_flood_dated_ahead_leaves_the_room_of_clients_that_arrive_on_time() {
        let mut c = cache(8);
        // Sealed at 100, dated 105: two of the eight (a quarter) are accepted early.
        let accepted = (0..1000u32)
            .filter(|i| c.insert(&i.to_le_bytes(), t(105), t(100)).is_ok())
            .count();
        assert_eq!(accepted, 2);
        // At 105 the clients dated 105 still have the whole second's room.
        for i in 0..8u32 {
            c.insert(&(10_000 + i).to_le_bytes(), t(105), t(105))
                .expect("on time");
        }
        assert!(c.insert(&[9; 32], t(105), t(105)).is_err());
    }

    #[test]
    fn memory_is_bounded_by_the_window_and_the_rate() {
        let mut c = cache(3);
        for now in 1_000..1_300u64 {
            for i in 0..10u64 {
                let _ = c.insert(&(now * 100 + i).to_le_bytes(), t(now), t(now));
            }
        }
        // 61 seconds' buckets (past 60 s plus the current one), 3 entries each.
        assert!(c.len() <= 61 * 3, "{}", c.len());
    }
}
