//! The worker loop: admit queued requests (prefill), then advance every active
//! sequence by one token per step in a single batched forward pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_transformers::generation::LogitsProcessor;
use tokio::sync::mpsc;

use super::llama::{KvCache, Llama};
use super::text::{Delta, TextStream};
use super::{FinishReason, GenEvent, Job, Usage};
use crate::tokenizer::Tokenizer;

/// Owns the model and runs generation; see [`super::Engine::new`].
pub struct Worker {
    llama: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

struct Active {
    id: String,
    events: mpsc::UnboundedSender<GenEvent>,
    cache: KvCache,
    processor: LogitsProcessor,
    text: TextStream,
    max_tokens: usize,
    ignore_eos: bool,
    next: u32,
    usage: Usage,
    started: Instant,
    prefill: Duration,
}

impl Worker {
    pub(super) fn new(
        llama: Arc<Llama>,
        tokenizer: Arc<Tokenizer>,
        queue: mpsc::Receiver<Job>,
        max_batch: usize,
    ) -> Self {
        Self {
            llama,
            tokenizer,
            queue,
            max_batch,
        }
    }

    /// Runs the loop on a new thread named `veil-engine`.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("veil-engine".to_owned())
            .spawn(move || self.run())
    }

    /// Runs until every [`super::Engine`] handle is dropped and the queue is empty.
    pub fn run(mut self) {
        let mut active: Vec<Active> = Vec::with_capacity(self.max_batch);
        loop {
            if active.is_empty() {
                match self.queue.blocking_recv() {
                    Some(job) => self.admit(job, &mut active),
                    None => return,
                }
            }
            while active.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(job) => self.admit(job, &mut active),
                    Err(_) => break,
                }
            }
            active.retain(|a| {
                let gone = a.events.is_closed();
                if gone {
                    tracing::info!(
                        request_id = %a.id,
                        completion_tokens = a.usage.completion_tokens,
                        "client went away; generation cancelled"
                    );
                }
                !gone
            });
            if !active.is_empty() {
                self.step(&mut active);
            }
        }
    }

    fn admit(&self, job: Job, active: &mut Vec<Active>) {
        if job.events.is_closed() {
            return;
        }
        let Job { request, events } = job;
        let started = Instant::now();
        let mut cache = self.llama.new_cache();
        let logits = self
            .llama
            .forward(&[&request.prompt], &mut [&mut cache])
            .and_then(|l| Ok(l.get(0)?));
        let mut a = Active {
            id: request.id,
            events,
            cache,
            processor: request.params.processor(),
            text: TextStream::new(request.params.stop),
            max_tokens: request.params.max_tokens,
            ignore_eos: request.params.ignore_eos,
            next: 0,
            usage: Usage {
                prompt_tokens: request.prompt.len(),
                completion_tokens: 0,
            },
            started,
            prefill: Duration::ZERO,
        };
        let token = logits.and_then(|l| Ok(a.processor.sample(&l)?));
        a.prefill = started.elapsed();
        match token {
            Ok(t) => {
                if self.accept(&mut a, t) {
                    active.push(a);
                }
            }
            Err(e) => fail(&a, &e.to_string()),
        }
    }

    fn step(&self, active: &mut Vec<Active>) {
        let tokens: Vec<[u32; 1]> = active.iter().map(|a| [a.next]).collect();
        let inputs: Vec<&[u32]> = tokens.iter().map(|t| t.as_slice()).collect();
        let mut caches: Vec<&mut KvCache> = active.iter_mut().map(|a| &mut a.cache).collect();
        let logits = match self.llama.forward(&inputs, &mut caches) {
            Ok(l) => l,
            Err(e) => {
                for a in active.drain(..) {
                    fail(&a, &e.to_string());
                }
                return;
            }
        };
        let mut i = 0;
        active.retain_mut(|a| {
            let row = i;
            i += 1;
            match logits.get(row).and_then(|l| a.processor.sample(&l)) {
                Ok(t) => self.accept(a, t),
                Err(e) => {
                    fail(a, &e.to_string());
                    false
                }
            }
        });
    }

    /// Handles a sampled token; returns whether the sequence goes on.
    fn accept(&self, a: &mut Active, token: u32) -> bool {
        if self.tokenizer.is_end_of_generation(token) && !a.ignore_eos {
            let rest = a.text.finish();
            send_text(a, rest);
            self.finish(a, FinishReason::Stop);
            return false;
        }
        a.usage.completion_tokens += 1;
        match a.text.push(self.tokenizer.token_bytes(token)) {
            Delta::Stopped(text) => {
                send_text(a, text);
                self.finish(a, FinishReason::Stop);
                false
            }
            Delta::Text(text) => {
                send_text(a, text);
                let context = self.llama.config().context_length;
                if a.usage.completion_tokens >= a.max_tokens || a.cache.len() + 1 > context {
                    let rest = a.text.finish();
                    send_text(a, rest);
                    self.finish(a, FinishReason::Length);
                    false
                } else {
                    a.next = token;
                    true
                }
            }
        }
    }

    fn finish(&self, a: &Active, reason: FinishReason) {
        let total = a.started.elapsed();
        let decode = total.saturating_sub(a.prefill);
        let decode_tok_s = if decode.is_zero() {
            0.0
        } else {
            a.usage.completion_tokens.saturating_sub(1) as f64 / decode.as_secs_f64()
        };
        tracing::info!(
            request_id = %a.id,
            prompt_tokens = a.usage.prompt_tokens,
            completion_tokens = a.usage.completion_tokens,
            finish_reason = reason.as_str(),
            prefill_ms = a.prefill.as_millis() as u64,
            total_ms = total.as_millis() as u64,
            decode_tok_s = format!("{decode_tok_s:.1}"),
            "generation done"
        );
        // A closed receiver means the client left; nothing to do.
        let _ = a.events.send(GenEvent::Done(reason, a.usage));
    }
}

fn send_text(a: &Active, text: String) {
    if !text.is_empty() {
        // A closed receiver is noticed (and the sequence dropped) at the next step.
        let _ = a.events.send(GenEvent::Text(text));
    }
}

fn fail(a: &Active, error: &str) {
    tracing::error!(request_id = %a.id, error, "generation failed");
    let _ = a
        .events
        .send(GenEvent::Failed("inference failed".to_owned()));
}
