//! Sampling parameters, the seeded logits processor built from them, and the penalties and
//! biases applied to the logits before it.

use std::collections::HashMap;

use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::request::TokenLogprobs;

/// How to pick each token, and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Softmax temperature; `0` is greedy (argmax).
    pub temperature: f64,
    /// Nucleus sampling mass; `1` samples from the whole distribution.
    pub top_p: f64,
    /// RNG seed; the same seed and prompt give the same completion.
    pub seed: u64,
    /// Strings that end the completion (not included in it).
    pub stop: Vec<String>,
    /// Generate past end-of-generation tokens, up to `max_tokens` (benchmarks).
    pub ignore_eos: bool,
    /// Subtracted once from the logit of every token already generated (OpenAI's
    /// `presence_penalty`, -2 to 2).
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated (OpenAI's
    /// `frequency_penalty`, -2 to 2).
    pub frequency_penalty: f32,
    /// Added to the logits of these token ids (OpenAI's `logit_bias`, -100 to 100).
    pub logit_bias: Vec<(u32, f32)>,
    /// Report each generated token's log probability and this many of the most likely
    /// alternatives ([`crate::GenEvent::Logprobs`]); `None` reports nothing.
    pub logprobs: Option<usize>,
}

impl SamplingParams {
    /// Greedy decoding of up to `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            ignore_eos: false,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            logprobs: None,
        }
    }

    /// Whether these parameters decode greedily (the processor is candle's argmax).
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// The candle logits processor for these parameters.
    pub fn processor(&self) -> LogitsProcessor {
        let sampling = if self.is_greedy() {
            Sampling::ArgMax
        } else if self.top_p < 1.0 {
            Sampling::TopP {
                p: self.top_p,
                temperature: self.temperature,
            }
        } else {
            Sampling::All {
                temperature: self.temperature,
            }
        };
        LogitsProcessor::from_sampling(self.seed, sampling)
    }
}

/// What `presence_penalty`, `frequency_penalty` and `logit_bias` do to one sequence's logits
/// before the processor (temperature and top-p) sees them, as OpenAI documents it:
/// `logit[t] += bias[t] - frequency * count[t] - presence * (count[t] > 0)`, where
/// `count[t]` is how often `t` was generated so far in this completion (prompt tokens do not
/// count, as in OpenAI's API and vLLM).
#[derive(Debug, Clone)]
pub(crate) struct LogitAdjust {
    presence: f32,
    frequency: f32,
    bias: Vec<(u32, f32)>,
    counts: HashMap<u32, u32>,
}

impl LogitAdjust {
    /// The adjustment `params` ask for, or `None` when they ask for none (so the batch's
    /// greedy fast path stays open to this sequence).
    pub(crate) fn new(params: &SamplingParams) -> Option<Self> {
        let bias: Vec<(u32, f32)> = params
            .logit_bias
            .iter()
            .copied()
            .filter(|&(_, b)| b != 0.0)
            .collect();
        if params.presence_penalty == 0.0 && params.frequency_penalty == 0.0 && bias.is_empty() {
            return None;
        }
        Some(Self {
            presence: params.presence_penalty,
            frequency: params.frequency_penalty,
            bias,
            counts: HashMap::new(),
        })
    }

    /// Applies the biases and penalties to one row of logits (ids past its end are ignored).
    pub(crate) fn apply(&self, logits: &mut [f32]) {
        for &(t, b) in &self.bias {
            if let Some(l) = logits.get_mut(t as usize) {
                *l += b;
            }
        }
        for (&t, &n) in &self.counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= self.frequency * n as f32 + self.presence;
            }
        }
    }

    /// Counts a generated token.
    pub(crate) fn record(&mut self, token: u32) {
        *self.counts.entry(token).or_default() += 1;
    }
}

/// The log-softmax of the logits a token was sampled from: `logits` (after the biases and
/// penalties) divided by the temperature (a greedy pick, temperature 0, divides by 1), over
/// the whole vocabulary (top-p does not truncate it). Returns `token`'s entry and the `top`
/// most likely tokens, most likely first (ties by token id), leaving out tokens a grammar
/// forbids.
pub(crate) fn token_logprobs(
    logits: &[f32],
    temperature: f64,
    token: u32,
    top: usize,
) -> TokenLogprobs {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| ((l as f64 - max) / t).exp()).sum();
    let log_sum = sum.ln();
    // At most 0: the largest logit contributes exp(0) = 1 to the sum.
    let lp = |l: f32| (((l as f64 - max) / t - log_sum) as f32).min(0.0);
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let by_rank = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let top = top.min(ids.len());
    if top > 0 && top < ids.len() {
        ids.select_nth_unstable_by(top - 1, by_rank);
    }
    ids.truncate(top);
    ids.sort_by(by_rank);
    TokenLogprobs {
        token,
        logprob: logits
            .get(token as usize)
            .map_or(f32::NEG_INFINITY, |&l| lp(l)),
        // A token a grammar masked out (`-inf`) is no alternative.
        top: ids
            .into_iter()
            .filter(|&i| logits[i as usize].is_finite())
            .map(|i| (i, lp(logits[i as usize])))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_parameters_adjust_nothing() {
        let mut p = SamplingParams::greedy(4);
        assert!(LogitAdjust::new(&p).is_none());
        p.logit_bias = vec![(3, 0.0)];
        assert!(LogitAdjust::new(&p).is_none());
    }

    #[test]
    fn biases_and_penalties_follow_openais_formula() {
        let p = SamplingParams {
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            logit_bias: vec![(1, 10.0), (2, -100.0), (99, 5.0)],
            ..SamplingParams::greedy(4)
        };
        let mut a = LogitAdjust::new(&p).expect("adjusts");
        a.record(0);
        a.record(0);
        a.record(3);
        let mut logits = vec![1.0_f32; 4];
        a.apply(&mut logits);
        // 0: generated twice: 1 - (0.25 * 2 + 0.5); 1: +10; 2: -100; 3: once: 1 - 0.75.
        assert_eq!(logits, [0.0, 11.0, -99.0, 0.25]);
    }

    #[test]
    fn logprobs_are_the_log_softmax_at_the_temperature() {
        let logits = [1.0_f32, 3.0, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let lp = token_logprobs(&logits, 0.0, 2, 3);
        assert!((lp.logprob as f64 - (2.0 - z.ln())).abs() < 1e-6);
        // Most likely first, ties by id; the two 3.0s are the top.
        let ids: Vec<u32> = lp.top.iter().map(|&(t, _)| t).collect();
        assert_eq!(ids, [1, 3, 2]);
        assert!(lp.top.iter().all(|&(_, l)| l <= 0.0));
        let total: f64 = logits
            .iter()
            .enumerate()
            .map(|(i, _)| (token_logprobs(&logits, 0.5, i as u32, 0).logprob as f64).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5, "{total}");
        // Temperature 0.5 sharpens: the top token gains.
        let hot = token_logprobs(&logits, 0.5, 1, 0).logprob;
        assert!(hot > token_logprobs(&logits, 1.0, 1, 0).logprob);
        assert!(token_logprobs(&logits, 1.0, 0, 0).top.is_empty());
        assert_eq!(token_logprobs(&logits, 1.0, 0, 50).top.len(), 4);
    }
}
