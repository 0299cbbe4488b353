//! `logit_bias`, `presence_penalty` and `frequency_penalty` change what the engine generates,
//! on the real model (the arithmetic itself is unit-tested in `src/sampling.rs`).

use std::sync::Arc;

use crate::common;

use veil_engine::{Engine, EngineConfig, GenRequest, SamplingParams};

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
        let prompt = self.tokenizer.encode(prompt).expect("encodes");
        let mut rx = self
            .engine
            .submit(GenRequest {
                id: "t".to_owned(),
                prompt,
                params,
            })
            .expect("queued");
        crate::llama::collect_text(&mut rx)
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
