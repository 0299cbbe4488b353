//! The worker loop: each step is one batched forward pass that advances every decoding
//! sequence by one token and, in the same pass, feeds prompts admitted from the queue
//! (their rows ride along with the decode rows, so the weights are read once for both).
//!
//! A prompt is fed in chunks of [`PREFILL_CHUNK`] positions, at most that many prompt rows a
//! step: a long prompt joining running streams delays each of their tokens by one chunk's
//! pass, not by the whole prompt's. The chunk boundaries are fixed positions of the
//! sequence (multiples of the chunk), never chosen by the load, so a sequence's result does
//! not depend on what else runs: a prompt up to one chunk long is one pass, as before; a
//! longer one gives what candle's `quantized_llama` gives fed those same pieces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_transformers::generation::LogitsProcessor;
use tokio::sync::mpsc;

use crate::grammar::Constraint;
use crate::llama::{KvCache, Llama, argmax_rows};
use crate::load::Counters;
use crate::request::{FinishReason, GenEvent, GenRequest, TokenLogprobs, Usage};
use crate::sampling::{LogitAdjust, token_logprobs};
use crate::text::{Delta, TextStream};
use crate::tokenizer::Tokenizer;
use constrained::{Prepared, prepared_rows, row_f32};
use feed::{Feed, feeds};

mod constrained;
mod feed;

/// A queued request and where its events go.
pub(crate) struct Job {
    pub(crate) request: GenRequest,
    pub(crate) events: mpsc::UnboundedSender<GenEvent>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.request.id)
            .finish_non_exhaustive()
    }
}

/// Owns the model and runs generation; see [`crate::Engine::new`].
pub struct Worker {
    llama: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// Positions of a prompt fed in one pass, and prompt rows in one step at most (the first
/// chunk waiting always goes).
pub const PREFILL_CHUNK: usize = 256;

struct Active {
    id: String,
    events: mpsc::UnboundedSender<GenEvent>,
    cache: KvCache,
    processor: LogitsProcessor,
    /// Penalties and biases applied to this sequence's logits before the processor.
    adjust: Option<LogitAdjust>,
    /// The grammar its answer follows: tokens it forbids are never picked.
    constraint: Option<Constraint>,
    /// Its pick may be checked against its grammar before any mask ([`constrained`]): no
    /// log probabilities, and greedy or sampled from the whole distribution (no top-p).
    check_first: bool,
    /// Greedy decoding with nothing to adjust or report: the pick is the batch's argmax
    /// (the processor's, computed for all rows at once).
    greedy: bool,
    /// The temperature sampled at (for log probabilities).
    temperature: f64,
    /// Alternatives to report with each token's log probability, if reported.
    logprobs: Option<usize>,
    text: TextStream,
    max_tokens: usize,
    ignore_eos: bool,
    /// The prompt while it is being fed (`cache.len()` of it so far); empty once decoding.
    prompt: Vec<u32>,
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
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            llama,
            tokenizer,
            queue,
            max_batch,
            counters,
        }
    }

    /// Runs the loop on a new thread named `veil-engine`.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("veil-engine".to_owned())
            .spawn(move || self.run())
    }

    /// Runs until every [`crate::Engine`] handle is dropped and the queue is empty.
    pub fn run(mut self) {
        let mut active: Vec<Active> = Vec::with_capacity(self.max_batch);
        loop {
            self.counters.running(active.len());
            if active.is_empty() {
                match self.queue.blocking_recv() {
                    Some(job) => active.extend(self.admit(job)),
                    None => return,
                }
            }
            while active.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(job) => active.extend(self.admit(job)),
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
            self.counters.running(active.len());
            if !active.is_empty() {
                self.step(&mut active);
            }
        }
    }

    /// A queued request made ready to join the next step (its prompt to be fed from it), or
    /// `None` if its client already left or its prompt cannot run (refused here, so that it
    /// fails alone rather than the step it would join).
    fn admit(&self, job: Job) -> Option<Active> {
        self.counters.dequeued();
        if job.events.is_closed() {
            return None;
        }
        let Job { request, events } = job;
        let prompt = request.prompt;
        let a = Active {
            id: request.id,
            events,
            cache: self.llama.new_cache(),
            processor: request.params.processor(),
            adjust: LogitAdjust::new(&request.params),
            greedy: request.params.is_greedy()
                && LogitAdjust::new(&request.params).is_none()
                && request.params.logprobs.is_none()
                && request.constraint.is_none(),
            constraint: request.constraint,
            check_first: request.params.logprobs.is_none()
                && (request.params.is_greedy() || request.params.top_p >= 1.0),
            temperature: request.params.temperature,
            logprobs: request.params.logprobs,
            text: TextStream::new(request.params.stop),
            max_tokens: request.params.max_tokens,
            ignore_eos: request.params.ignore_eos,
            usage: Usage {
                prompt_tokens: prompt.len(),
                completion_tokens: 0,
            },
            prompt,
            next: 0,
            started: Instant::now(),
            prefill: Duration::ZERO,
        };
        let cfg = self.llama.config();
        if a.prompt.is_empty()
            || a.prompt.len() > cfg.context_length
            || a.prompt.iter().any(|&t| t as usize >= cfg.vocab_size)
        {
            fail(
                &a,
                "prompt cannot run: empty, too long or outside the vocabulary",
            );
            return None;
        }
        Some(a)
    }

    /// One forward pass: the next token of every decoding sequence and the next chunk of
    /// the prompts being fed ([`feeds`]); then a token sampled for each sequence whose
    /// prompt is now whole.
    fn step(&self, active: &mut Vec<Active>) {
        let feeds = feeds(active.iter().map(|a| (a.cache.len(), a.prompt.len())));
        let tokens: Vec<Vec<u32>> = active
            .iter()
            .zip(&feeds)
            .filter_map(|(a, f)| match *f {
                Feed::Skip => None,
                Feed::Next => Some(vec![a.next]),
                Feed::Prompt(n) => Some(a.prompt[a.cache.len()..][..n].to_vec()),
            })
            .collect();
        let inputs: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        self.counters
            .pass(inputs.len(), inputs.iter().map(|t| t.len()).sum());
        let mut caches: Vec<&mut KvCache> = active
            .iter_mut()
            .zip(&feeds)
            .filter(|(_, f)| **f != Feed::Skip)
            .map(|(a, _)| &mut a.cache)
            .collect();
        let logits = match self.llama.forward(&inputs, &mut caches) {
            Ok(l) => l,
            Err(e) => return fail_all(active, &e.to_string()),
        };
        // Greedy picks for every row in one pass over the pool, where any sequence wants one.
        let greedy = active
            .iter()
            .zip(&feeds)
            .any(|(a, f)| a.greedy && *f != Feed::Skip);
        let picks = if greedy {
            match argmax_rows(&logits) {
                Ok(p) => Some(p),
                Err(e) => return fail_all(active, &e.to_string()),
            }
        } else {
            None
        };
        let picks = picks.as_deref();
        let mut prepared = prepared_rows(active, &feeds, &logits).into_iter();
        let (mut row, mut feed) = (0, feeds.iter());
        active.retain_mut(|a| {
            let f = feed.next().copied().unwrap_or(Feed::Skip);
            let prepared = prepared.next().flatten();
            if f == Feed::Skip {
                return true;
            }
            let r = row;
            row += 1;
            if let Feed::Prompt(_) = f {
                if a.cache.len() < a.prompt.len() {
                    return true;
                }
                // The prompt is whole: its first token is sampled now.
                a.prompt = Vec::new();
                a.prefill = a.started.elapsed();
            }
            self.sample_and_accept(a, &logits, picks, r, prepared)
        });
    }

    /// Samples sequence `a`'s token from row `row` of `logits` (a greedy sequence takes its
    /// row's entry of `picks`, a constrained one its `prepared` row) and handles it; returns
    /// whether the sequence goes on.
    fn sample_and_accept(
        &self,
        a: &mut Active,
        logits: &candle_core::Tensor,
        picks: Option<&[u32]>,
        row: usize,
        prepared: Option<crate::Result<Prepared>>,
    ) -> bool {
        if a.greedy
            && let Some(&t) = picks.and_then(|p| p.get(row))
        {
            return self.accept(a, t, None);
        }
        match sample_row(a, logits, row, prepared) {
            Ok((t, lp)) => self.accept(a, t, lp),
            Err(e) => {
                fail(a, &e.to_string());
                false
            }
        }
    }

    /// Handles a sampled token and its log probabilities (sent before its text; an
    /// end-of-generation token's are not sent); returns whether the sequence goes on.
    fn accept(&self, a: &mut Active, token: u32, logprobs: Option<TokenLogprobs>) -> bool {
        if self.tokenizer.is_end_of_generation(token) && !a.ignore_eos {
            let rest = a.text.finish();
            send_text(a, rest);
            self.finish(a, FinishReason::Stop);
            return false;
        }
        if let Some(lp) = logprobs {
            // A closed receiver is noticed (and the sequence dropped) at the next step.
            let _ = a.events.send(GenEvent::Logprobs(lp));
        }
        a.usage.completion_tokens += 1;
        if let Some(adjust) = &mut a.adjust {
            adjust.record(token);
        }
        if let Some(c) = &mut a.constraint
            && let Err(e) = c.advance(token)
        {
            fail(a, &e.to_string());
            return false;
        }
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

/// Samples `a`'s token from row `row` of `logits` after its biases and penalties, within
/// its grammar (a constrained sequence's row comes `prepared`, biased and masked as far as
/// its pick needs: [`constrained`]); with its log probabilities when it reports them (an
/// end-of-generation token's are dropped later).
fn sample_row(
    a: &mut Active,
    logits: &candle_core::Tensor,
    row: usize,
    prepared: Option<crate::Result<Prepared>>,
) -> crate::Result<(u32, Option<TokenLogprobs>)> {
    let v = match prepared {
        Some(Ok(Prepared::Picked(t))) => return Ok((t, None)),
        Some(Ok(Prepared::Row(v))) => v,
        Some(Err(e)) => return Err(e),
        None if a.adjust.is_none() && a.logprobs.is_none() && a.constraint.is_none() => {
            return Ok((a.processor.sample(&logits.get(row)?)?, None));
        }
        None => {
            let mut v = row_f32(logits, row)?;
            if let Some(c) = &mut a.constraint {
                c.mask(&mut v)?;
            }
            if let Some(adjust) = &a.adjust {
                adjust.apply(&mut v);
            }
            v
        }
    };
    let t = if a.temperature <= 0.0 {
        // The processor's argmax (the same pick), without a tensor of the row.
        veil_kernels::argmax(&v)
    } else {
        let n = v.len();
        let row = candle_core::Tensor::from_slice(&v, n, &candle_core::Device::Cpu)?;
        a.processor.sample(&row)?
    };
    let lp = a
        .logprobs
        .map(|top| token_logprobs(&v, a.temperature, t, top));
    Ok((t, lp))
}

fn send_text(a: &Active, text: String) {
    if !text.is_empty() {
        // A closed receiver is noticed (and the sequence dropped) at the next step.
        let _ = a.events.send(GenEvent::Text(text));
    }
}

/// Fails every sequence (a step's pass could not run) and drops them.
fn fail_all(active: &mut Vec<Active>, error: &str) {
    for a in active.drain(..) {
        fail(&a, error);
    }
}

fn fail(a: &Active, error: &str) {
    tracing::error!(request_id = %a.id, error, "generation failed");
    let _ = a
        .events
        .send(GenEvent::Failed("inference failed".to_owned()));
}
