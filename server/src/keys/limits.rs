//! Per-key limits: tokens a minute, and requests at once.
//!
//! Tokens: a key with a rate of R tokens a minute has a usage level that drains continuously
//! at R a minute (a token bucket seen from the used side). A request is admitted when the
//! level, plus the prompt tokens of the key's requests in flight, plus its own prompt tokens,
//! is at most R. When it ends it is charged its real prompt and completion tokens (a stream:
//! when it ends, or when the client drops it, with the completion tokens sent so far).
//!
//! The completion is not reserved at admission: its length is unknown until it ends, and
//! reserving `max_tokens` (by default the whole context) would refuse most requests of small
//! keys. So a key can go over R by the completions of requests already running (at most
//! `max_concurrent` of them); that overshoot is charged, and delays its next requests. A
//! prompt larger than R can never be admitted. The level is stored after every charge, so a
//! restart does not reset it. One server per database: the levels of running requests live
//! in this process.
//!
//! Keys are independent: one key's level never delays another's requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{KeyId, KeyRecord, KeyStore};

/// A key's token budget, as the `x-ratelimit-*-tokens` headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    /// Tokens a minute.
    pub limit: u64,
    /// Tokens that may still be requested now.
    pub remaining: u64,
    /// Until the key's level is back to zero.
    pub reset: Duration,
}

/// Why a request was not admitted. The messages name counts only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimited {
    /// The key's token budget is spent for now.
    #[error(
        "rate limit reached for tokens per minute: limit {}, remaining {}, requested {requested}",
        budget.limit,
        budget.remaining
    )]
    Tokens {
        /// The key's budget.
        budget: TokenBudget,
        /// The request's prompt tokens.
        requested: u64,
        /// When enough will be left (an estimate while other requests of the key run).
        retry_after: Duration,
    },
    /// The prompt alone is larger than the key's rate: it can never be admitted.
    #[error(
        "request too large: {requested} prompt tokens, more than the limit of {} tokens per minute",
        budget.limit
    )]
    TooLarge {
        /// The key's budget.
        budget: TokenBudget,
        /// The request's prompt tokens.
        requested: u64,
    },
    /// The key already runs as many requests as it may.
    #[error("the key already runs {max} requests, its limit")]
    Concurrency {
        /// The key's limit.
        max: u32,
        /// The key's token budget, if it has a rate.
        budget: Option<TokenBudget>,
    },
}

#[derive(Debug, Default)]
struct Account {
    /// Charged tokens not yet drained, as of `at_ms`.
    level: f64,
    /// Unix milliseconds of `level`.
    at_ms: i64,
    /// Prompt tokens of admitted requests not yet charged.
    reserved: u64,
    /// Admitted requests not yet charged.
    active: u32,
    /// `level` was read from the store.
    loaded: bool,
}

impl Account {
    fn drained(&self, rate: u64, now_ms: i64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms).max(0) as f64;
        (self.level - rate as f64 * elapsed / 60_000.0).max(0.0)
    }

    fn budget(&self, rate: u64, now_ms: i64) -> TokenBudget {
        let used = self.drained(rate, now_ms) + self.reserved as f64;
        TokenBudget {
            limit: rate,
            remaining: (rate as f64 - used).max(0.0) as u64,
            reset: minutes_of(used, rate),
        }
    }
}

/// The time `tokens` take to drain at `rate` a minute, rounded up to a millisecond.
fn minutes_of(tokens: f64, rate: u64) -> Duration {
    Duration::from_millis((tokens.max(0.0) * 60_000.0 / rate as f64).ceil() as u64)
}

/// Admission and charging for every key, over a [`KeyStore`] that keeps the levels.
#[derive(Debug)]
pub struct Limiter {
    store: Arc<KeyStore>,
    accounts: Mutex<HashMap<KeyId, Account>>,
}

impl Limiter {
    /// A limiter whose levels start from, and are saved to, `store`.
    pub fn new(store: Arc<KeyStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            accounts: Mutex::new(HashMap::new()),
        })
    }

    /// The key store (authentication).
    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<KeyId, Account>> {
        // Updates are single assignments: a panic elsewhere leaves the map consistent.
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a request of `key` with `prompt_tokens`, or says why not and for how long.
    /// The [`Ticket`] charges the request when it ends.
    pub fn admit(
        self: &Arc<Self>,
        key: &KeyRecord,
        prompt_tokens: u64,
    ) -> Result<Ticket, RateLimited> {
        let rate = key.limits.tokens_per_minute.map(|r| r.get());
        if rate.is_some() {
            self.load(key.id);
        }
        let now = now_ms();
        let mut accounts = self.accounts();
        let account = accounts.entry(key.id).or_default();
        let budget = rate.map(|r| account.budget(r, now));
        if let Some(max) = key.limits.max_concurrent
            && account.active >= max.get()
        {
            return Err(RateLimited::Concurrency {
                max: max.get(),
                budget,
            });
        }
        if let (Some(rate), Some(budget)) = (rate, budget) {
            if prompt_tokens > rate {
                return Err(RateLimited::TooLarge {
                    budget,
                    requested: prompt_tokens,
                });
            }
            let used = account.drained(rate, now) + account.reserved as f64;
            let over = used + prompt_tokens as f64 - rate as f64;
            if over > 0.0 {
                return Err(RateLimited::Tokens {
                    budget,
                    requested: prompt_tokens,
                    retry_after: minutes_of(over, rate),
                });
            }
        }
        account.reserved += prompt_tokens;
        account.active += 1;
        Ok(Ticket {
            limiter: self.clone(),
            key: key.id,
            rate,
            prompt_tokens,
            completion_seen: 0,
            budget: rate.map(|r| account.budget(r, now)),
            open: true,
        })
    }

    /// Reads a key's level from the store the first time the key is seen.
    fn load(&self, id: KeyId) {
        if self.accounts().get(&id).is_some_and(|a| a.loaded) {
            return;
        }
        let stored = match self.store.usage(id) {
            Ok(s) => s,
            Err(e) => {
                // Start from zero rather than refuse every request of the key.
                tracing::warn!(key_id = %id, error = %e, "reading token usage failed");
                None
            }
        };
        let mut accounts = self.accounts();
        let account = accounts.entry(id).or_default();
        if !account.loaded {
            if let Some((level, at_ms)) = stored {
                account.level = level;
                account.at_ms = at_ms;
            }
            account.loaded = true;
        }
    }

    /// Ends an admitted request: frees its slot and, for a key with a rate, adds `tokens`.
    fn settle(&self, ticket: &Ticket, tokens: u64) {
        let now = now_ms();
        let saved = {
            let mut accounts = self.accounts();
            let account = accounts.entry(ticket.key).or_default();
            account.reserved = account.reserved.saturating_sub(ticket.prompt_tokens);
            account.active = account.active.saturating_sub(1);
            ticket.rate.map(|rate| {
                account.level = account.drained(rate, now) + tokens as f64;
                account.at_ms = now;
                account.level
            })
        };
        if let Some(level) = saved
            && let Err(e) = self.store.set_usage(ticket.key, level, now)
        {
            tracing::warn!(key_id = %ticket.key, error = %e, "saving token usage failed");
        }
    }
}

/// An admitted request. Charge it with [`Ticket::finish`]; [`Ticket::release`] frees it
/// without a charge (it never ran). Dropped (the client went away), it is charged its prompt
/// and the completion sent so far.
#[derive(Debug)]
pub struct Ticket {
    limiter: Arc<Limiter>,
    key: KeyId,
    rate: Option<u64>,
    prompt_tokens: u64,
    completion_seen: u64,
    budget: Option<TokenBudget>,
    open: bool,
}

impl Ticket {
    /// The key's budget just after admission (this prompt counted), if it has a rate.
    pub fn budget(&self) -> Option<TokenBudget> {
        self.budget
    }

    /// One more piece of completion text was sent (each holds at least one token).
    pub fn sent_text(&mut self) {
        self.completion_seen += 1;
    }

    /// The request ended: charges the engine's counts.
    pub fn finish(mut self, prompt_tokens: usize, completion_tokens: usize) {
        self.open = false;
        let total = prompt_tokens.saturating_add(completion_tokens);
        self.limiter
            .settle(&self, u64::try_from(total).unwrap_or(u64::MAX));
    }

    /// The request never ran (not queued, or the server failed): no charge.
    pub fn release(mut self) {
        self.open = false;
        self.limiter.settle(&self, 0);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.open = false;
            let tokens = self.prompt_tokens.saturating_add(self.completion_seen);
            self.limiter.settle(self, tokens);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU32, NonZeroU64};

    use super::*;
    use crate::keys::Limits;

    fn key(store: &KeyStore, name: &str, rate: Option<u64>, max: Option<u32>) -> KeyRecord {
        let limits = Limits {
            tokens_per_minute: rate.and_then(NonZeroU64::new),
            max_concurrent: max.and_then(NonZeroU32::new),
        };
        let (_, secret) = store
            .create(name, limits, &mut rand::rng())
            .expect("created");
        store.authenticate(secret.expose()).expect("authenticates")
    }

    #[test]
    fn level_drains_at_the_rate() {
        let a = Account {
            level: 60.0,
            at_ms: 1_000,
            ..Account::default()
        };
        assert_eq!(a.drained(60, 1_000), 60.0);
        assert_eq!(a.drained(60, 31_000), 30.0);
        assert_eq!(a.drained(60, 200_000), 0.0);
        let b = a.budget(60, 31_000);
        assert_eq!(
            b,
            TokenBudget {
                limit: 60,
                remaining: 30,
                reset: Duration::from_secs(30)
            }
        );
        assert_eq!(minutes_of(1.0, 60_000), Duration::from_millis(1));
    }

    #[test]
    fn over_budget_is_refused_with_the_wait_and_other_keys_are_not() {
        let store = Arc::new(KeyStore::in_memory().expect("store"));
        let a = key(&store, "a", Some(600), None);
        let b = key(&store, "b", Some(600), None);
        let limiter = Limiter::new(store);
        let t = limiter.admit(&a, 100).expect("admitted");
        assert_eq!(t.budget().map(|b| (b.limit, b.remaining)), Some((600, 500)));
        t.finish(100, 400);
        match limiter.admit(&a, 200) {
            Err(RateLimited::Tokens {
                budget,
                requested,
                retry_after,
            }) => {
                assert_eq!((budget.limit, requested), (600, 200));
                assert!(budget.remaining <= 101, "{budget:?}");
                // 100 tokens over at 10 tokens a second: about 10 s.
                assert!(
                    retry_after <= Duration::from_secs(10) && retry_after > Duration::from_secs(9),
                    "{retry_after:?}"
                );
            }
            other => panic!("expected a token refusal, got {other:?}"),
        }
        assert!(limiter.admit(&b, 500).is_ok(), "another key is unaffected");
        assert!(matches!(
            limiter.admit(&a, 601),
            Err(RateLimited::TooLarge { requested: 601, .. })
        ));
    }

    #[test]
    fn in_flight_prompts_count_and_release_frees_them() {
        let store = Arc::new(KeyStore::in_memory().expect("store"));
        let a = key(&store, "a", Some(100), None);
        let limiter = Limiter::new(store);
        let first = limiter.admit(&a, 60).expect("admitted");
        assert!(matches!(
            limiter.admit(&a, 60),
            Err(RateLimited::Tokens { .. })
        ));
        first.release();
        let again = limiter.admit(&a, 60).expect("admitted after release");
        drop(again); // charged 60 (the client went away)
        assert!(matches!(
            limiter.admit(&a, 60),
            Err(RateLimited::Tokens { .. })
        ));
    }

    #[test]
    fn concurrency_is_limited_per_key() {
        let store = Arc::new(KeyStore::in_memory().expect("store"));
        let a = key(&store, "a", None, Some(2));
        let b = key(&store, "b", None, Some(1));
        let limiter = Limiter::new(store);
        let one = limiter.admit(&a, 10).expect("1");
        let two = limiter.admit(&a, 10).expect("2");
        assert!(matches!(
            limiter.admit(&a, 10),
            Err(RateLimited::Concurrency {
                max: 2,
                budget: None
            })
        ));
        let other = limiter.admit(&b, 10).expect("another key");
        assert!(other.budget().is_none(), "no rate, no budget");
        one.finish(10, 5);
        let three = limiter.admit(&a, 10).expect("a slot is free again");
        drop((two, three, other));
    }

    #[test]
    fn unlimited_keys_are_never_refused() {
        let store = Arc::new(KeyStore::in_memory().expect("store"));
        let a = key(&store, "a", None, None);
        let limiter = Limiter::new(store);
        let tickets: Vec<_> = (0..100)
            .map(|_| limiter.admit(&a, 1_000_000).expect("admitted"))
            .collect();
        drop(tickets);
    }

    #[test]
    fn levels_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.sqlite3");
        let a = {
            let store = Arc::new(KeyStore::open(&path).expect("opens"));
            let a = key(&store, "a", Some(600), None);
            let limiter = Limiter::new(store);
            limiter.admit(&a, 300).expect("admitted").finish(300, 290);
            a
        };
        // 590 of 600 used, draining at 10 tokens a second.
        let limiter = Limiter::new(Arc::new(KeyStore::open(&path).expect("reopens")));
        assert!(matches!(
            limiter.admit(&a, 100),
            Err(RateLimited::Tokens { .. })
        ));
        let budget = limiter.admit(&a, 5).expect("small fits").budget();
        assert!(budget.is_some_and(|b| b.remaining < 100), "{budget:?}");
    }
}
