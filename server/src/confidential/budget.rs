//! The per-address attestation budget: each client address may ask for evidence `burst`
//! times at once and then `per_minute` times a minute (a token bucket), so that a few
//! looping clients cannot fill the attestation queue that everyone else waits in.
//!
//! An address is its IPv4 address, or the /64 prefix of an IPv6 address (one host usually
//! owns a whole /64). The table is bounded ([`MAX_ADDRESSES`]): when it is full, buckets that
//! have refilled completely (their clients are idle) are dropped, in a sweep at most once a
//! second; if none has, new
//! addresses share one overflow bucket, so a flood of fresh addresses limits itself and
//! not the addresses already known.
//!
//! Sans-IO: the time comes in as an argument. Written here rather than taken from a rate
//! limiting crate: it is forty lines, and the keyed limiters on crates.io bring a concurrent
//! map and a clock of their own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most.
pub const MAX_ADDRESSES: usize = 16_384;

/// How much evidence one address may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressBudget {
    /// Requests an idle address may make at once.
    pub burst: u32,
    /// Requests a minute after the burst is spent. Zero turns the budget off.
    pub per_minute: u32,
}

impl Default for AddressBudget {
    /// 16 at once, then one a second: far more than a client attesting after connecting and
    /// after each key rotation needs.
    fn default() -> Self {
        Self {
            burst: 16,
            per_minute: 60,
        }
    }
}

impl AddressBudget {
    /// A budget of `burst` at once and `per_minute` a minute (zero: no budget).
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self { burst, per_minute }
    }

    /// Whether the budget limits anything.
    pub fn is_on(&self) -> bool {
        self.per_minute > 0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of the addresses seen.
#[derive(Debug)]
pub(crate) struct Budgets {
    budget: AddressBudget,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
    /// The last sweep of idle addresses: at most one a second, so that newcomers to a full
    /// table cost O(1) amortised.
    swept: Option<Instant>,
}

/// The key of `ip`: IPv4 (or IPv4-mapped IPv6) as is, IPv6 by its /64 prefix.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Budgets {
    pub(crate) fn new(budget: AddressBudget) -> Self {
        Self {
            budget,
            table: Mutex::new(Table::default()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.budget.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.budget.burst.max(1)));
        b.at = now;
    }

    /// Takes one request from `ip`'s budget at `now`; `Err(wait)` when it is spent, with
    /// the time until the next request is allowed.
    pub(crate) fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.budget.is_on() {
            return Ok(());
        }
        let full = Bucket {
            tokens: f64::from(self.budget.burst.max(1)),
            at: now,
        };
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let k = key(ip);
        let sweep_due = t
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if !t.buckets.contains_key(&k) && t.buckets.len() >= MAX_ADDRESSES && sweep_due {
            t.swept = Some(now);
            let burst = f64::from(self.budget.burst.max(1));
            let mut idle = Vec::new();
            for (addr, b) in &t.buckets {
                let mut b = *b;
                self.refill(&mut b, now);
                if b.tokens >= burst {
                    idle.push(*addr);
                }
            }
            for addr in idle {
                t.buckets.remove(&addr);
            }
        }
        let bucket = if t.buckets.len() < MAX_ADDRESSES || t.buckets.contains_key(&k) {
            t.buckets.entry(k).or_insert(full)
        } else {
            t.overflow.get_or_insert(full)
        };
        let mut b = *bucket;
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let rate = f64::from(self.budget.per_minute) / 60.0;
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        };
        *bucket = b;
        result
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
    }

    #[test]
    fn an_address_gets_its_burst_then_its_rate() {
        let b = Budgets::new(AddressBudget::new(3, 60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take(v4(1), t0), Ok(()));
        }
        let wait = b.take(v4(1), t0).expect_err("burst spent");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // Another address is not affected.
        assert_eq!(b.take(v4(2), t0), Ok(()));
        // One a second comes back.
        assert_eq!(b.take(v4(1), t0 + Duration::from_secs(1)), Ok(()));
        assert!(b.take(v4(1), t0 + Duration::from_secs(1)).is_err());
        // Idle long enough, the whole burst is back, never more.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..3 {
            assert_eq!(b.take(v4(1), later), Ok(()));
        }
        assert!(b.take(v4(1), later).is_err());
    }

    #[test]
    fn an_ipv6_client_is_one_address_per_64_prefix() {
        let b = Budgets::new(AddressBudget::new(2, 60));
        let t0 = Instant::now();
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_64: Ipv6Addr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(b.take(a.into(), t0), Ok(()));
        assert_eq!(b.take(same_64.into(), t0), Ok(()));
        assert!(b.take(a.into(), t0).is_err(), "the /64 shares one budget");
        assert_eq!(b.take(other_64.into(), t0), Ok(()));
        // An IPv4-mapped address is its IPv4 address.
        let mapped: Ipv6Addr = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped();
        assert_eq!(b.take(mapped.into(), t0), Ok(()));
        assert_eq!(b.take(v4(7), t0), Ok(()));
        assert!(b.take(v4(7), t0).is_err());
    }

    #[test]
    fn a_full_table_drops_idle_addresses_and_shares_an_overflow_bucket() {
        let b = Budgets::new(AddressBudget::new(1, 60));
        let t0 = Instant::now();
        let many = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        for i in 0..MAX_ADDRESSES {
            assert_eq!(b.take(many(i), t0), Ok(()));
        }
        assert_eq!(b.tracked(), MAX_ADDRESSES);
        // Every tracked address is busy: newcomers share one bucket.
        let (x, y) = (v4(1), v4(2));
        assert_eq!(b.take(x, t0), Ok(()));
        assert!(b.take(y, t0).is_err(), "the overflow bucket is shared");
        assert_eq!(b.tracked(), MAX_ADDRESSES, "memory stays bounded");
        // A known address keeps its own budget meanwhile.
        assert!(b.take(many(5), t0).is_err());
        // Once the tracked addresses have refilled, they make room.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(b.take(y, later), Ok(()));
        assert!(b.tracked() < MAX_ADDRESSES);
    }

    #[test]
    fn a_zero_rate_turns_the_budget_off() {
        let b = Budgets::new(AddressBudget::new(1, 0));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.take(v4(1), t0), Ok(()));
        }
    }
}
