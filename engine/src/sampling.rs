//! Sampling parameters and the seeded logits processor built from them.

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
