//! Writes into one output from the tasks of a pool run, each to its own part.
//!
//! [`spread`](crate::spread::spread) calls a `Fn + Sync` closure from several threads, so the
//! closure cannot hold the `&mut` output. Two ways through, the only ones in the crate:
//!
//! - [`spread_chunks`]: the output split into fixed-size chunks, one per work item, each
//!   range of items handed the `&mut` slice of exactly its chunks. Safe to call: the unsafe
//!   argument is made here once (ranges from `spread` never overlap).
//! - [`DisjointMut`]: for outputs whose items write strided pieces (a column block of a
//!   row-major matrix), a shared handle whose one `unsafe` method, [`DisjointMut::write`],
//!   copies into a bounds-checked range; its single invariant, stated there, is that the
//!   ranges written during one run never overlap.
//!
//! A library (rayon's `par_chunks_mut`) would bring its own thread pool; the kernels run on
//! candle's, as candle's own operations do.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::Range;

/// An exclusively borrowed slice (of `T`, possibly not yet initialized) shared by the
/// tasks of a pool run, which write disjoint ranges of it.
#[derive(Debug)]
pub(crate) struct DisjointMut<'a, T> {
    ptr: *mut T,
    len: usize,
    /// The exclusive borrow: nothing else reads or writes the elements while this lives.
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a `DisjointMut` moves elements of type `T` to whichever thread writes them (as
// `&mut [T]` does, hence `T: Send`); sharing it lets threads write only through `write`,
// whose contract excludes two writes to one element.
unsafe impl<T: Send> Sync for DisjointMut<'_, T> {}
// SAFETY: as above; it holds nothing tied to a thread.
unsafe impl<T: Send> Send for DisjointMut<'_, T> {}

impl<'a, T: Copy> DisjointMut<'a, T> {
    /// Shares `s` for writes.
    pub(crate) fn new(s: &'a mut [T]) -> Self {
        Self {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// Shares `s` (e.g. a vector's spare capacity) for writes that initialize it. Its
    /// elements are only ever written, never read or borrowed, here.
    pub(crate) fn new_uninit(s: &'a mut [MaybeUninit<T>]) -> Self {
        Self {
            ptr: s.as_mut_ptr().cast::<T>(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// Elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `src` to elements `at..at + src.len()`.
    ///
    /// # Panics
    /// If the range is not inside the slice.
    ///
    /// # Safety
    /// No two calls on this `DisjointMut` write a common element (the ranges written during
    /// its life are disjoint), so no two threads ever write the same element.
    pub(crate) unsafe fn write(&self, at: usize, src: &[T]) {
        let end = at.checked_add(src.len());
        assert!(end.is_some_and(|e| e <= self.len), "write out of bounds");
        // SAFETY: at..at + src.len() is inside the borrowed slice (asserted), which nothing
        // else accesses while `self` lives; no other write touches these elements (the
        // caller's contract), and `src`, a shared borrow, cannot be inside the exclusively
        // borrowed slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) };
    }
}

/// Calls `f(items, part)` on candle's pool (through [`crate::spread::spread`]) for disjoint
/// ranges `items` covering `0..out.len().div_ceil(chunk)`, each item exactly once, where
/// `part` is `out[items.start * chunk..(items.end * chunk).min(out.len())]`: item `i`'s chunk
/// is `out[i * chunk..][..chunk]` (the last one shorter where `chunk` does not divide the
/// length).
pub(crate) fn spread_chunks<T: Send, F>(out: &mut [T], chunk: usize, f: F)
where
    F: Fn(Range<usize>, &mut [T]) + Sync,
{
    assert!(chunk > 0, "chunks of at least one element");
    let (ptr, len) = (SendPtr(out.as_mut_ptr()), out.len());
    crate::spread::spread(len.div_ceil(chunk), |items: Range<usize>| {
        let start = items.start * chunk;
        let end = (items.end * chunk).min(len);
        // SAFETY: start <= end <= len (items.start < items.end <= len.div_ceil(chunk)), so
        // the part is inside `out`, which is exclusively borrowed until `spread` returns.
        // `spread` hands out disjoint ranges of items (each item exactly once), so the parts
        // of two calls never overlap: each is the only reference to its elements.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(start), end - start) };
        f(items, part);
    });
}

/// Calls `f` on every element of `items`, the elements spread over candle's pool (the
/// calling thread takes part): per-sequence work of a step that is not a tensor operation,
/// such as the grammar masks of a batch's constrained sequences, run on the pool's threads,
/// which would otherwise wait for the next pass.
pub fn for_each_mut<T: Send, F>(items: &mut [T], f: F)
where
    F: Fn(&mut T) + Sync,
{
    spread_chunks(items, 1, |_, part| part.iter_mut().for_each(&f));
}

/// A vector of `n_items * per_item` elements, element `j` of item `i` being `f(i, j)`, the
/// items spread over candle's pool ([`spread_chunks`]); no element is first filled.
pub(crate) fn spread_collect<T: Send, F>(n_items: usize, per_item: usize, f: F) -> Vec<T>
where
    F: Fn(usize, usize) -> T + Sync,
{
    let len = n_items.checked_mul(per_item).expect("a vector that fits");
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    spread_chunks(
        &mut out.spare_capacity_mut()[..len],
        per_item,
        |items, part| {
            for (i, chunk) in items.zip(part.chunks_exact_mut(per_item)) {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    slot.write(f(i, j));
                }
            }
        },
    );
    // SAFETY: `spread_chunks` returned (a panic in `f` would have propagated), so it called
    // the closure for each of the n_items items, which wrote every element of its chunk:
    // all `len` elements are initialized.
    unsafe { out.set_len(len) };
    out
}

/// A raw pointer that [`spread_chunks`] shares with the pool's threads.
struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

// SAFETY: only `spread_chunks` uses it, to make disjoint `&mut` parts of a slice of `T:
// Send` on the pool's threads (see the SAFETY comment there).
unsafe impl<T: Send> Sync for SendPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn for_each_mut_visits_every_element_once() {
        for n in [0usize, 1, 2, 8, 9, 100] {
            let mut items: Vec<usize> = (0..n).collect();
            for_each_mut(&mut items, |x| *x = *x * 2 + 1);
            assert_eq!(items, (0..n).map(|i| i * 2 + 1).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    fn chunks_cover_the_slice_once_with_a_short_last_chunk() {
        for (len, chunk) in [
            (0usize, 3usize),
            (1, 1),
            (10, 3),
            (12, 3),
            (1000, 7),
            (5, 64),
        ] {
            let mut out = vec![0u32; len];
            let calls = AtomicUsize::new(0);
            spread_chunks(&mut out, chunk, |items, part| {
                calls.fetch_add(items.len(), Ordering::Relaxed);
                let want = (items.end * chunk).min(len) - items.start * chunk;
                assert_eq!(part.len(), want);
                for (i, x) in part.iter_mut().enumerate() {
                    *x += u32::try_from(items.start * chunk + i).expect("small") + 1;
                }
            });
            assert_eq!(calls.load(Ordering::Relaxed), len.div_ceil(chunk));
            assert!(
                out.iter().enumerate().all(|(i, &x)| x as usize == i + 1),
                "{len} in chunks of {chunk}"
            );
        }
    }

    #[test]
    fn collects_every_element_in_place() {
        for (n, per) in [(0usize, 4usize), (4, 0), (1, 1), (9, 3), (100, 17)] {
            let got = spread_collect(n, per, |i, j| (i, j));
            let want: Vec<_> = (0..n).flat_map(|i| (0..per).map(move |j| (i, j))).collect();
            assert_eq!(got, want, "{n} items of {per}");
        }
    }

    #[test]
    fn writes_land_where_asked_and_initialize_spare_capacity() {
        let mut out: Vec<u16> = Vec::with_capacity(64);
        let w = DisjointMut::new_uninit(&mut out.spare_capacity_mut()[..64]);
        assert_eq!(w.len(), 64);
        crate::spread::spread(16, |items| {
            for i in items {
                let v = u16::try_from(i).expect("small");
                // SAFETY: item i writes elements 4i..4i + 4 only.
                unsafe { w.write(4 * i, &[v; 4]) };
            }
        });
        // SAFETY: the 16 items wrote all 64 elements.
        unsafe { out.set_len(64) };
        assert!(out.iter().enumerate().all(|(i, &v)| v as usize == i / 4));
    }

    #[test]
    #[should_panic = "write out of bounds"]
    fn a_write_past_the_end_panics() {
        let mut out = [0u8; 4];
        let w = DisjointMut::new(&mut out);
        // SAFETY: the only write (it panics before writing).
        unsafe { w.write(2, &[1, 2, 3]) };
    }
}
