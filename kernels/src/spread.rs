//! Work spread over candle's thread pool in ranges that shrink as the work runs out.
//!
//! candle's `execute_chunked` hands out ranges of a fixed size, an eighth of each thread's
//! share. A pass ends when its last range does, so the other threads wait, on average,
//! half a range: at eight sequences a Q4_1 product's range is 5–20 µs of work, the output
//! product's about 300 µs, and a decode step runs some 270 passes. A profile of
//! `batch_decode --batch 8` had the pool thread spinning at that barrier for about a
//! quarter of its samples, the engine thread meanwhile finishing its last range.
//!
//! [`spread`] uses guided self-scheduling instead: each grab takes the remaining items
//! divided by twice the thread count (at least one), so the first ranges are large (few
//! grabs) and the last are single items (a short tail).

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Set while this thread runs a range of a [`spread`]: a nested call runs inline (the
    /// pool takes one job at a time; waiting for it from inside a job would never end).
    static IN_SPREAD: Cell<bool> = const { Cell::new(false) };
}

/// Calls `f` on disjoint ranges covering `0..n_items`, each item exactly once, on candle's
/// barrier pool (the calling thread takes part), and returns when all are done (a panic in
/// `f` propagates). [`crate::disjoint`]'s soundness rests on this contract.
pub(crate) fn spread<F: Fn(Range<usize>) + Sync>(n_items: usize, f: F) {
    if n_items == 0 {
        return;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    if threads == 1 || n_items == 1 || IN_SPREAD.get() {
        f(0..n_items);
        return;
    }
    let next = AtomicUsize::new(0);
    pool.execute(|_| {
        let was = IN_SPREAD.replace(true);
        let mut start = next.load(Ordering::Relaxed);
        while start < n_items {
            let take = grab(n_items - start, threads);
            match next.compare_exchange_weak(
                start,
                start + take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    f(start..start + take);
                    start = next.load(Ordering::Relaxed);
                }
                Err(now) => start = now,
            }
        }
        IN_SPREAD.set(was);
    });
}

/// Items one grab takes when `remaining` are left for `threads` threads.
fn grab(remaining: usize, threads: usize) -> usize {
    (remaining / (2 * threads)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_item_runs_exactly_once() {
        for n in [0usize, 1, 2, 3, 7, 64, 1000, 12_288] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            spread(n, |range| {
                for i in range {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                "{n} items"
            );
        }
    }

    #[test]
    fn ranges_shrink_to_single_items_at_the_end() {
        // Grabs one after another, as two threads taking turns would make them.
        let (mut left, mut sizes) = (1000usize, Vec::new());
        while left > 0 {
            let take = grab(left, 2);
            sizes.push(take);
            left -= take;
        }
        assert_eq!(sizes[0], 250);
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        assert_eq!(sizes[sizes.len() - 4..], [1, 1, 1, 1]);
        assert!(sizes.len() < 40, "{} grabs", sizes.len());
        // On the pool (however many threads this test process has), the ranges tile the
        // items in order.
        let ranges = Mutex::new(Vec::new());
        spread(1000, |r| ranges.lock().expect("not poisoned").push(r));
        let mut ranges = ranges.into_inner().expect("not poisoned");
        ranges.sort_by_key(|r| r.start);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(1000));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn a_nested_spread_runs_inline() {
        let total = AtomicUsize::new(0);
        spread(8, |outer| {
            for _ in outer {
                spread(4, |inner| {
                    total.fetch_add(inner.len(), Ordering::Relaxed);
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 32);
    }
}
