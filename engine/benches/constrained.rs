//! What constrained decoding costs: aggregate tokens/s of the engine (worker, batching,
//! sampling; no HTTP) at 1 and 8 streams, unconstrained and with a JSON Schema, and the
//! ratio of the two, taken within each round (rounds interleave the four runs, so a drifting
//! VM moves both sides of a ratio together); the figures are medians over the rounds. Also
//! the first constraint's compilation (the vocabulary's token trie) and a later one.
//!
//! Both sides generate the same number of tokens greedily: the unconstrained streams ignore
//! end-of-generation tokens, the constrained ones follow a schema (an array of at least 400
//! short strings) that no stream can finish within the token count.
//!
//! Run with: `cargo bench -p veil-engine --bench constrained` (`-- --tokens N --rounds R`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use veil_engine::model::LoadedModel;
use veil_engine::{
    Engine, EngineConfig, GenEvent, GenRequest, OutputFormat, SamplingParams, WeightFormat,
};

const PROMPT: &str = "List the names of the cities you know.";

fn main() -> anyhow::Result<()> {
    veil_kernels::settle_thread_count();
    let (mut tokens, mut rounds) = (96usize, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tokens" => tokens = args.next().context("--tokens N")?.parse()?,
            "--rounds" => rounds = args.next().context("--rounds R")?.parse()?,
            "--bench" => {}
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let source = veil_engine::fetch::default_model(&mut |l| eprintln!("constrained: {l}"))?;
    let model = LoadedModel::from_verified(
        &source.verify()?,
        &candle_core::Device::Cpu,
        WeightFormat::Stored,
    )?;
    let prompt = model.tokenizer.encode(PROMPT)?;
    let (engine, worker) = Engine::new(
        Arc::new(model.llama),
        Arc::new(model.tokenizer),
        EngineConfig {
            max_batch: 8,
            queue_capacity: 64,
        },
    );
    worker.spawn()?;
    let format = OutputFormat::JsonSchema(json!({
        "type": "array",
        "items": {"type": "string", "maxLength": 16},
        "minItems": 400
    }));
    let t = Instant::now();
    engine.constraint(&format)?;
    let first = t.elapsed();
    let t = Instant::now();
    engine.constraint(&format)?;
    println!(
        "compile: first {:.1} ms (builds the token trie), then {:.2} ms",
        first.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    // Warm-up, not measured.
    run(&engine, &prompt, tokens, 1, None)?;

    let mut table: Vec<[f64; 4]> = Vec::new();
    for round in 0..rounds {
        let mut row = [0.0; 4];
        for (i, (streams, constrained)) in [(1, false), (1, true), (8, false), (8, true)]
            .into_iter()
            .enumerate()
        {
            let f = constrained.then_some(&format);
            row[i] = run(&engine, &prompt, tokens, streams, f)?;
        }
        println!(
            "round {round}: 1 stream {:.1} / {:.1} tok/s, 8 streams {:.1} / {:.1} tok/s (free / schema)",
            row[0], row[1], row[2], row[3]
        );
        table.push(row);
    }
    let med = |f: &dyn Fn(&[f64; 4]) -> f64| {
        let mut v: Vec<f64> = table.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (streams, free, schema) in [(1, 0, 1), (8, 2, 3)] {
        println!(
            "{streams} stream(s): {:.1} tok/s free, {:.1} tok/s with the schema, schema / free {:.3} (median of {rounds})",
            med(&|r| r[free]),
            med(&|r| r[schema]),
            med(&|r| r[schema] / r[free]),
        );
    }
    Ok(())
}

/// Aggregate tokens/s of `streams` greedy streams of `tokens` tokens each.
fn run(
    engine: &Engine,
    prompt: &[u32],
    tokens: usize,
    streams: usize,
    format: Option<&OutputFormat>,
) -> anyhow::Result<f64> {
    let requests = (0..streams)
        .map(|i| {
            Ok(GenRequest {
                id: format!("bench-{i}"),
                prompt: prompt.to_vec(),
                params: SamplingParams {
                    ignore_eos: format.is_none(),
                    ..SamplingParams::greedy(tokens)
                },
                constraint: format.map(|f| engine.constraint(f)).transpose()?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let receivers = engine.submit_all(requests)?;
    let mut generated = 0;
    let mut elapsed = Duration::ZERO;
    for mut rx in receivers {
        loop {
            match rx.blocking_recv().context("worker stopped")? {
                GenEvent::Done(_, usage) => {
                    generated += usage.completion_tokens;
                    break;
                }
                GenEvent::Failed(e) => bail!("generation failed: {e}"),
                _ => {}
            }
        }
        elapsed = started.elapsed();
    }
    if generated != tokens * streams {
        bail!("{generated} tokens, not {}", tokens * streams);
    }
    Ok(generated as f64 / elapsed.as_secs_f64())
}
