//! One thread count for candle, settled once at start-up.
//!
//! candle asks `candle_core::utils::get_num_threads()` before every f32 matrix product (the
//! attention scores and values). Unless `RAYON_NUM_THREADS` is set, that call counts the
//! physical cores again, by reading `/proc/cpuinfo`: tens of reads of a kernel-formatted file
//! per generated token, several per cent of a decode step. [`settle_thread_count`] computes
//! the count once and writes it to `RAYON_NUM_THREADS` (and `CANDLE_NUM_THREADS`, so that
//! candle's quantized kernels and its f32 products agree), before any thread exists.

const RAYON: &str = "RAYON_NUM_THREADS";
const CANDLE: &str = "CANDLE_NUM_THREADS";

fn parse(v: Option<String>) -> Option<usize> {
    v.and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// Threads of this process, from `/proc/self/status` (`None` where it cannot be read).
fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Fixes candle's thread count in the environment: `CANDLE_NUM_THREADS` if set, else
/// `RAYON_NUM_THREADS` if set, else candle's own default (the physical cores), written to
/// both variables. Call it first thing in `main`; returns the count, or `None` (and changes
/// nothing) when the process already has more than one thread, since writing the
/// environment is only sound while no other thread can read it.
#[allow(unsafe_code)] // `std::env::set_var`, checked to run single-threaded
pub fn settle_thread_count() -> Option<usize> {
    if process_threads() != Some(1) {
        return None;
    }
    let n = parse(std::env::var(CANDLE).ok())
        .or_else(|| parse(std::env::var(RAYON).ok()))
        .unwrap_or_else(candle_core::utils::get_num_threads);
    let value = n.to_string();
    // SAFETY: this process has exactly one thread (checked above, and this function's caller
    // is that thread), so nothing can read the environment concurrently with these writes.
    unsafe {
        std::env::set_var(RAYON, &value);
        std::env::set_var(CANDLE, &value);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positive_counts_only() {
        assert_eq!(parse(Some("2".into())), Some(2));
        assert_eq!(parse(Some(" 3\n".into())), Some(3));
        assert_eq!(parse(Some("0".into())), None);
        assert_eq!(parse(Some("two".into())), None);
        assert_eq!(parse(None), None);
    }

    #[test]
    fn refuses_to_touch_the_environment_of_a_threaded_process() {
        // The test harness runs this on a worker thread: more than one thread exists.
        assert!(process_threads().is_some_and(|n| n > 1));
        assert_eq!(settle_thread_count(), None);
    }
}
