//! The inference engine: one worker thread owns the model and runs every active
//! sequence, batching their decode steps, and the prompts of newly admitted requests, into
//! one forward pass each step (continuous batching); requests wait in a bounded queue.
//!
//! The handle ([`Engine`]) is cheap to clone. [`Engine::submit`] never blocks: it
//! answers [`SubmitError::QueueFull`] when the queue is full, which the API turns into
//! `429` with `Retry-After`. Each request gets its own unbounded event channel (bounded
//! in practice by `max_tokens`); when the receiver is dropped (the client went away) the
//! worker drops the sequence at its next step.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use crate::error::Error;
use crate::grammar::{Constraint, Grammars, OutputFormat};
use crate::llama::Llama;
use crate::load::{Counters, LoadProbe};
use crate::request::{GenEvent, GenRequest};
use crate::tokenizer::Tokenizer;
use crate::worker::{Job, Worker};

/// Limits of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sequences decoded together in one batch (1 = one at a time).
    pub max_batch: usize,
    /// Requests that may wait for a free batch slot before new ones are refused.
    pub queue_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            queue_capacity: 64,
        }
    }
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full; try again later.
    #[error("the request queue is full")]
    QueueFull,
    /// The worker has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

/// Handle to the engine's queue.
#[derive(Debug, Clone)]
pub struct Engine {
    queue: mpsc::Sender<Job>,
    config: EngineConfig,
    counters: Arc<Counters>,
    tokenizer: Arc<Tokenizer>,
    /// The vocabulary's token trie for constrained decoding, built at the first request that
    /// asks for an output format (or the reason it cannot be built).
    grammars: Arc<OnceLock<Result<Grammars, String>>>,
}

impl Engine {
    /// Creates the queue and the worker that drains it. Run the worker with
    /// [`Worker::spawn`] (or [`Worker::run`] on a thread of your own).
    pub fn new(
        llama: Arc<Llama>,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
    ) -> (Self, Worker) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = Worker::new(
            llama,
            tokenizer.clone(),
            rx,
            config.max_batch.max(1),
            counters.clone(),
        );
        let engine = Self {
            queue: tx,
            config,
            counters,
            tokenizer,
            grammars: Arc::new(OnceLock::new()),
        };
        (engine, worker)
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn submit(
        &self,
        request: GenRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, SubmitError> {
        let (events, rx) = mpsc::unbounded_channel();
        // Counted before the send, so that the worker's take never comes first.
        self.counters.queued();
        self.queue.try_send(Job { request, events }).map_err(|e| {
            self.counters.dequeued();
            match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            }
        })?;
        Ok(rx)
    }

    /// A reader of the engine's load (queue depth, running sequences, batch occupancy),
    /// for metrics; it does not keep the worker alive.
    pub fn load_probe(&self) -> LoadProbe {
        LoadProbe {
            counters: self.counters.clone(),
            max_batch: self.config.max_batch.max(1),
            queue_capacity: self.config.queue_capacity.max(1),
        }
    }

    /// Queues several requests at once (the `n` choices of one API request): all of them,
    /// or none when the queue has no room for all ([`SubmitError::QueueFull`]).
    pub fn submit_all(
        &self,
        requests: Vec<GenRequest>,
    ) -> Result<Vec<mpsc::UnboundedReceiver<GenEvent>>, SubmitError> {
        let permits = self
            .queue
            .try_reserve_many(requests.len())
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => SubmitError::QueueFull,
                mpsc::error::TrySendError::Closed(()) => SubmitError::Stopped,
            })?;
        Ok(permits
            .zip(requests)
            .map(|(permit, request)| {
                let (events, rx) = mpsc::unbounded_channel();
                // Counted before the send, so that the worker's take never comes first.
                self.counters.queued();
                permit.send(Job { request, events });
                rx
            })
            .collect())
    }

    /// A constraint that keeps a sequence's answer in `format`, for
    /// [`GenRequest::constraint`]; [`Error::Grammar`] names what in a schema cannot be
    /// compiled. Compiling is CPU work (up to milliseconds for a large schema): call it off
    /// the async runtime's threads.
    pub fn constraint(&self, format: &OutputFormat) -> crate::Result<Constraint> {
        match self
            .grammars
            .get_or_init(|| Grammars::new(&self.tokenizer).map_err(|e| e.to_string()))
        {
            Ok(g) => g.compile(format),
            Err(e) => Err(Error::Grammar(e.clone())),
        }
    }

    /// The limits this engine runs with.
    pub fn config(&self) -> EngineConfig {
        self.config
    }
}
