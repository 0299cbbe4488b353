//! `logit_bias`, `presence_penalty` and `frequency_penalty` change what the engine generates,
//! on the real model (the arithmetic itself is unit-tested in `src/sampling.rs`).

use std::sync::Arc;

use crate::common;

use veil_engine::{Engine, EngineConfig, GenEvent, GenRequest, SamplingParams, TokenLogprobs};

struct Run {
    engine: Engine,
    tokenizer: Arc<veil_engine::tokenizer::Tokenizer>,
}

impl Run {
    fn start() -> Self {
        let model = common::load();
        let tokenizer = Arc::new(model.tokenizer);
        let (engine, worker) = Engine::new(
            Arc::new(model.llama),
            tokenizer.clone(),
            EngineConfig::default(),
        );
        worker.spawn().expect("worker");
        Self { engine, tokenizer }
    }

    fn text(&self, prompt: &str, params: SamplingParams) -> String {
        self.run(prompt, params).0
    }

    /// The text, the log probabilities reported and the completion's token count.
    fn run(&self, prompt: &str, params: SamplingParams) -> (String, Vec<TokenLogprobs>, usize) {
        let prompt = self.tokenizer.encode(prompt).expect("encodes");
        let mut rx = self
            .engine
            .submit(GenRequest {
                id: "t".to_owned(),
                prompt,
                params,
                constraint: None,
            })
            .expect("queued");
        let (mut text, mut lps) = (String::new(), Vec::new());
        loop {
            match rx.blocking_recv().expect("event") {
                GenEvent::Text(t) => text.push_str(&t),
                GenEvent::Logprobs(lp) => lps.push(lp),
                GenEvent::Done(_, usage) => return (text, lps, usage.completion_tokens),
                GenEvent::Failed(e) => panic!("failed: {e}"),
            }
        }
    }
}

#[test]
fn logit_bias_forces_and_forbids_tokens() {
    let run = Run::start();
    let prompt = "The capital of France is";
    let greedy = run.text(prompt, SamplingParams::greedy(12));
    assert!(greedy.contains("Paris"), "{greedy:?}");

    // +100 on one token: greedy decoding picks nothing else.
    let paris = *run
        .tokenizer
        .encode(" Paris")
        .expect("encodes")
        .last()
        .expect("a token");
    let forced = run.text(
        prompt,
        SamplingParams {
            logit_bias: vec![(paris, 100.0)],
            ..SamplingParams::greedy(5)
        },
    );
    let word = String::from_utf8_lossy(run.tokenizer.token_bytes(paris)).into_owned();
    assert_eq!(forced, word.repeat(5));

    // -100 on the tokens that spell Paris: the greedy completion cannot be the same.
    let ids: Vec<u32> = [" Paris", "Paris"]
        .iter()
        .flat_map(|w| run.tokenizer.encode(w).expect("encodes"))
        .collect();
    let forbidden = run.text(
        prompt,
        SamplingParams {
            logit_bias: ids.iter().map(|&t| (t, -100.0)).collect(),
            ..SamplingParams::greedy(12)
        },
    );
    assert_ne!(forbidden, greedy);
}

#[test]
fn penalties_break_a_repetition() {
    let run = Run::start();
    let prompt = "1, 2, 1, 2, 1, 2, 1, 2, 1, 2,";
    let params = |presence: f32, frequency: f32| SamplingParams {
        presence_penalty: presence,
        frequency_penalty: frequency,
        ignore_eos: true,
        ..SamplingParams::greedy(24)
    };
    let plain = run.text(prompt, params(0.0, 0.0));
    // The model continues the pattern, repeating its tokens over and over.
    assert!(plain.matches(',').count() >= 8, "{plain:?}");
    let penalized = run.text(prompt, params(2.0, 2.0));
    assert_ne!(penalized, plain);
    assert!(
        penalized.matches(',').count() < plain.matches(',').count(),
        "{penalized:?} against {plain:?}"
    );
}

#[test]
fn logprobs_report_every_token_without_changing_the_answer() {
    let run = Run::start();
    let prompt = "The capital of France is";
    // Greedy: the token picked is the most likely one, and the first of the alternatives.
    let plain = run.text(prompt, SamplingParams::greedy(8));
    let (text, lps, tokens) = run.run(
        prompt,
        SamplingParams {
            logprobs: Some(5),
            ..SamplingParams::greedy(8)
        },
    );
    assert_eq!(text, plain);
    assert_eq!(lps.len(), tokens);
    for lp in &lps {
        assert_eq!(lp.top.len(), 5);
        assert_eq!(lp.top[0], (lp.token, lp.logprob));
        assert!(lp.logprob <= 0.0 && lp.top.iter().all(|&(_, l)| l <= 0.0));
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    // Sampled with a seed and penalties: the same draws with and without the report, and
    // the token drawn has the log probability reported in its top list when it is there.
    let sampled = |logprobs| SamplingParams {
        temperature: 0.8,
        seed: 11,
        presence_penalty: 0.5,
        logprobs,
        ignore_eos: true,
        ..SamplingParams::greedy(16)
    };
    let plain = run.text(prompt, sampled(None));
    let (text, lps, tokens) = run.run(prompt, sampled(Some(20)));
    assert_eq!(text, plain);
    assert_eq!(lps.len(), tokens);
    for lp in &lps {
        assert_eq!(lp.top.len(), 20);
        assert!(
            lp.logprob <= 0.0 && lp.logprob >= lp.top[19].1
                || lp.top.iter().all(|&(t, _)| t != lp.token)
        );
        if let Some(&(_, l)) = lp.top.iter().find(|&&(t, _)| t == lp.token) {
            assert_eq!(l, lp.logprob);
        }
    }
}
