//! How busy the engine is, for operators: requests waiting, sequences running, and how full
//! each forward pass was. Counts only: nothing here knows a prompt or a request id.
//!
//! The handle and the worker share one [`Counters`]; a [`LoadProbe`] reads it without
//! holding the queue open (the worker still stops when the last [`crate::Engine`] goes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shared between the handle, the worker and the probes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queued: AtomicUsize,
    running: AtomicUsize,
    passes: AtomicU64,
    pass_sequences: AtomicU64,
    pass_rows: AtomicU64,
}

impl Counters {
    /// A request entered the queue.
    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// The worker took a request from the queue.
    pub(crate) fn dequeued(&self) {
        // Never below zero, even if a probe raced a submit.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Sequences the worker holds now (decoding, or their prompt being fed).
    pub(crate) fn running(&self, n: usize) {
        self.running.store(n, Ordering::Relaxed);
    }

    /// One forward pass advanced `sequences` sequences with `rows` token rows in all.
    pub(crate) fn pass(&self, sequences: usize, rows: usize) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.pass_sequences
            .fetch_add(sequences as u64, Ordering::Relaxed);
        self.pass_rows.fetch_add(rows as u64, Ordering::Relaxed);
    }
}

/// A reading of the engine's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Load {
    /// Requests waiting in the queue for a batch slot.
    pub queued: usize,
    /// Sequences in the batch now.
    pub running: usize,
    /// The batch's size limit.
    pub max_batch: usize,
    /// The queue's size limit.
    pub queue_capacity: usize,
    /// Forward passes run so far.
    pub passes: u64,
    /// Sequences advanced, summed over every pass: divided by `passes`, the mean batch
    /// occupancy.
    pub pass_sequences: u64,
    /// Token rows computed, summed over every pass (a decode row is one token; a prompt
    /// chunk is its length).
    pub pass_rows: u64,
}

/// Reads the engine's [`Load`]; cheap to clone, and keeps no request queue open.
#[derive(Debug, Clone)]
pub struct LoadProbe {
    pub(crate) counters: Arc<Counters>,
    pub(crate) max_batch: usize,
    pub(crate) queue_capacity: usize,
}

impl LoadProbe {
    /// The load now.
    pub fn read(&self) -> Load {
        let c = &self.counters;
        Load {
            queued: c.queued.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            max_batch: self.max_batch,
            queue_capacity: self.queue_capacity,
            passes: c.passes.load(Ordering::Relaxed),
            pass_sequences: c.pass_sequences.load(Ordering::Relaxed),
            pass_rows: c.pass_rows.load(Ordering::Relaxed),
        }
    }
}
