//! The worker loop: each step is one batched forward pass that advances every active
//! sequence by one token and, in the same pass, prefills the requests admitted from the
//! queue since the last step (their prompts' rows ride along with the decode rows, so the
//! weights are read once for both, and running streams do not wait for a separate prefill).

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_transformers::generation::LogitsProcessor;
use tokio::sync::mpsc;

use super::llama::{KvCache, Llama, argmax_rows};
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
    /// Greedy decoding: the pick is the batch's argmax (the processor's, computed for all
    /// rows at once).
    greedy: bool,
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
            let mut admitted = Vec::new();
            if active.is_empty() {
                match self.queue.blocking_recv() {
                    Some(job) => admitted.extend(self.admit(job)),
                    None => return,
                }
            }
            while active.len() + admitted.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(job) => admitted.extend(self.admit(job)),
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
            if !active.is_empty() || !admitted.is_empty() {
                self.step(&mut active, admitted);
            }
        }
    }

    /// A queued request made ready to join the next step (its prompt to be prefilled in
    /// it), or `None` if its client already left or its prompt cannot run (refused here, so
    /// that it fails alone rather than the step it would join).
    fn admit(&self, job: Job) -> Option<(Active, Vec<u32>)> {
        if job.events.is_closed() {
            return None;
        }
        let Job { request, events } = job;
        let a = Active {
            id: request.id,
            events,
            cache: self.llama.new_cache(),
            processor: request.params.processor(),
            greedy: request.params.is_greedy(),
            text: TextStream::new(request.params.stop),
            max_tokens: request.params.max_tokens,
            ignore_eos: request.params.ignore_eos,
            next: 0,
            usage: Usage {
                prompt_tokens: request.prompt.len(),
                completion_tokens: 0,
            },
            started: Instant::now(),
            prefill: Duration::ZERO,
        };
        let cfg = self.llama.config();
        let prompt = request.prompt;
        if prompt.is_empty()
            || prompt.len() > cfg.context_length
            || prompt.iter().any(|&t| t as usize >= cfg.vocab_size)
        {
            fail(
                &a,
                "prompt cannot run: empty, too long or outside the vocabulary",
            );
            return None;
        }
        Some((a, prompt))
    }

    /// One forward pass: the next token of every active sequence and the prompt of every
    /// admitted one; then a token sampled for each.
    fn step(&self, active: &mut Vec<Active>, admitted: Vec<(Active, Vec<u32>)>) {
        let decoding = active.len();
        let nexts: Vec<[u32; 1]> = active.iter().map(|a| [a.next]).collect();
        let mut inputs: Vec<&[u32]> = nexts.iter().map(|t| t.as_slice()).collect();
        let (mut new, prompts): (Vec<Active>, Vec<Vec<u32>>) = admitted.into_iter().unzip();
        inputs.extend(prompts.iter().map(Vec::as_slice));
        let mut caches: Vec<&mut KvCache> = active
            .iter_mut()
            .chain(new.iter_mut())
            .map(|a| &mut a.cache)
            .collect();
        let logits = match self.llama.forward(&inputs, &mut caches) {
            Ok(l) => l,
            Err(e) => return fail_all(active, new, &e.to_string()),
        };
        // Greedy picks for every row in one pass over the pool, where any sequence wants one.
        let picks = if active.iter().chain(&new).any(|a| a.greedy) {
            match argmax_rows(&logits) {
                Ok(p) => Some(p),
                Err(e) => return fail_all(active, new, &e.to_string()),
            }
        } else {
            None
        };
        let picks = picks.as_deref();
        let mut row = 0;
        active.retain_mut(|a| {
            let r = row;
            row += 1;
            self.sample_and_accept(a, &logits, picks, r)
        });
        for (n, mut a) in new.into_iter().enumerate() {
            // The prompt's pass is done: its first token is sampled now.
            a.prefill = a.started.elapsed();
            if self.sample_and_accept(&mut a, &logits, picks, decoding + n) {
                active.push(a);
            }
        }
    }

    /// Samples sequence `a`'s token from row `row` of `logits` (a greedy sequence takes its
    /// row's entry of `picks`) and handles it; returns whether the sequence goes on.
    fn sample_and_accept(
        &self,
        a: &mut Active,
        logits: &candle_core::Tensor,
        picks: Option<&[u32]>,
        row: usize,
    ) -> bool {
        if a.greedy
            && let Some(&t) = picks.and_then(|p| p.get(row))
        {
            return self.accept(a, t);
        }
        match logits.get(row).and_then(|l| a.processor.sample(&l)) {
            Ok(t) => self.accept(a, t),
            Err(e) => {
                fail(a, &e.to_string());
                false
            }
        }
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

/// Fails every sequence of a step (its pass could not run) and drops them.
fn fail_all(active: &mut Vec<Active>, new: Vec<Active>, error: &str) {
    for a in active.drain(..).chain(new) {
        fail(&a, error);
    }
}

fn fail(a: &Active, error: &str) {
    tracing::error!(request_id = %a.id, error, "generation failed");
    let _ = a
        .events
        .send(GenEvent::Failed("inference failed".to_owned()));
}
