//! Sampling parameters, the seeded logits processor built from them, and the penalties and
//! biases applied to the logits before it.

use std::collections::HashMap;

use candle_transformers::generation::{LogitsProcessor, Sampling};

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
}
