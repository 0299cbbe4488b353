//! The inference engine: one worker thread owns the model and runs every active
//! sequence, batching their decode steps, and the prompts of newly admitted requests, into
//! one forward pass each step (continuous batching); requests wait in a bounded queue.
//!
//! The handle ([`Engine`]) is cheap to clone. [`Engine::submit`] never blocks: it
//! answers [`SubmitError::QueueFull`] when the queue is full, which the API turns into
//! `429` with `Retry-After`. Each request gets its own unbounded event channel (bounded
//! in practice by `max_tokens`); when the receiver is dropped (the client went away) the
//! worker drops the sequence at its next step.

mod llama;
mod sampling;
mod text;
mod worker;

pub use llama::{KvCache, Llama, LlamaConfig, WeightFormat, argmax, argmax_rows};
pub use sampling::SamplingParams;
pub use text::{Delta, TextStream};
pub use worker::{PREFILL_CHUNK, Worker};

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::tokenizer::Tokenizer;

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

/// One generation request, already tokenized and validated.
#[derive(Debug)]
pub struct GenRequest {
    /// Request id, for logs.
    pub id: String,
    /// Prompt token ids (non-empty).
    pub prompt: Vec<u32>,
    /// How to pick tokens and when to stop.
    pub params: SamplingParams,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens`, or the context length.
    Length,
    /// The API's output filter withheld the rest of the completion (never set by the engine).
    ContentFilter,
}

impl FinishReason {
    /// The OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ContentFilter => "content_filter",
        }
    }
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (an end-of-generation token is not counted).
    pub completion_tokens: usize,
}

/// What the worker sends back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenEvent {
    /// More text (never splits a UTF-8 character; never empty).
    Text(String),
    /// The end: why, and the counts.
    Done(FinishReason, Usage),
    /// Generation failed (the message names no content).
    Failed(String),
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

pub(crate) struct Job {
    pub(crate) request: GenRequest,
    pub(crate) events: mpsc::UnboundedSender<GenEvent>,
}

/// Handle to the engine's queue.
#[derive(Debug, Clone)]
pub struct Engine {
    queue: mpsc::Sender<Job>,
    config: EngineConfig,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.request.id)
            .finish_non_exhaustive()
    }
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
        let worker = Worker::new(llama, tokenizer, rx, config.max_batch.max(1));
        (Self { queue: tx, config }, worker)
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn submit(
        &self,
        request: GenRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, SubmitError> {
        let (events, rx) = mpsc::unbounded_channel();
        self.queue
            .try_send(Job { request, events })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
            })?;
        Ok(rx)
    }

    /// The limits this engine runs with.
    pub fn config(&self) -> EngineConfig {
        self.config
    }
}
