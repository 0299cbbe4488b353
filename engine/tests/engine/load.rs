//! The load probe counts what the worker did: requests queued, sequences running, and the
//! sequences and rows of each forward pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use veil_engine::{Engine, EngineConfig, GenEvent, GenRequest, SamplingParams};

use crate::common;

#[test]
fn the_load_probe_counts_queue_batch_and_passes() {
    let model = common::load();
    let tokenizer = Arc::new(model.tokenizer);
    let (engine, worker) = Engine::new(
        Arc::new(model.llama),
        tokenizer.clone(),
        EngineConfig {
            max_batch: 2,
            queue_capacity: 8,
        },
    );
    let probe = engine.load_probe();
    let idle = probe.read();
    assert_eq!((idle.queued, idle.running, idle.passes), (0, 0, 0));
    assert_eq!((idle.max_batch, idle.queue_capacity), (2, 8));
    let prompts = [
        "The capital of France is",
        "One, two, three,",
        "Water boils at",
    ];
    let receivers: Vec<_> = prompts
        .iter()
        .map(|p| {
            let prompt = tokenizer.encode(p).expect("encodes");
            let params = SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(6)
            };
            engine
                .submit(GenRequest {
                    id: "load".to_owned(),
                    prompt,
                    params,
                    constraint: None,
                })
                .expect("queued")
        })
        .collect();
    assert_eq!(
        probe.read().queued,
        3,
        "three requests wait before the worker runs"
    );
    worker.spawn().expect("worker");
    for mut rx in receivers {
        loop {
            match rx.blocking_recv().expect("event") {
                GenEvent::Text(_) | GenEvent::Logprobs(_) => {}
                GenEvent::Done(_, usage) => {
                    assert_eq!(usage.completion_tokens, 6);
                    break;
                }
                GenEvent::Failed(e) => panic!("failed: {e}"),
            }
        }
    }
    // The worker records the empty batch when it comes back to wait for work.
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.read().running != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = probe.read();
    assert_eq!((done.queued, done.running), (0, 0), "{done:?}");
    // Two run together for 6 passes (one prompt pass, five decode passes), then the third
    // alone for 6 more: 12 passes advancing 18 sequence-steps; rows add the prompts' tokens.
    assert_eq!(done.passes, 12, "{done:?}");
    assert_eq!(done.pass_sequences, 18, "{done:?}");
    let prompt_tokens: usize = prompts
        .iter()
        .map(|p| tokenizer.encode(p).expect("encodes").len())
        .sum();
    assert_eq!(done.pass_rows as usize, 15 + prompt_tokens, "{done:?}");
}
