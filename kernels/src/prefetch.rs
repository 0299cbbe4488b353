//! Software prefetch ahead of a kernel's loads: at several activation rows the quantized
//! kernels otherwise spend about a third of their time waiting on weight loads (seen with
//! `perf annotate` at eight sequences), and decode attention on each head's cache rows.

/// Items (weight blocks) ahead of the one in use that are requested from memory early.
const AHEAD: usize = 8;

/// Asks for the bytes of the item [`AHEAD`] items after `item` (in the same array, or past
/// its end) into the first-level cache.
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn ahead<T>(item: &T) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let at = std::ptr::from_ref(item).wrapping_add(AHEAD).cast::<i8>();
    for line in (0..size_of::<T>()).step_by(64) {
        // A prefetch is a hint: it never faults and reads nothing into the program, so an
        // address past the end of the array is harmless (`wrapping_add`: no pointer
        // arithmetic out of bounds).
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line));
    }
}

/// Asks for every cache line of `s` (which may be empty) into the first-level cache.
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn slice<T>(s: &[T]) {
    lines::<{ std::arch::x86_64::_MM_HINT_T0 }, T>(s);
}

/// Asks for every cache line of `s` (which may be empty) into the second-level cache.
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn slice_l2<T>(s: &[T]) {
    lines::<{ std::arch::x86_64::_MM_HINT_T1 }, T>(s);
}

/// Every cache line of `s`, with prefetch hint `HINT`.
#[target_feature(enable = "sse")]
#[inline]
fn lines<const HINT: i32, T>(s: &[T]) {
    let at = s.as_ptr().cast::<i8>();
    for line in (0..size_of_val(s)).step_by(64) {
        // A hint, as in `ahead`: every address is inside `s`.
        std::arch::x86_64::_mm_prefetch::<HINT>(at.wrapping_add(line));
    }
}
