//! What constrained decoding costs: aggregate tokens/s of the engine (worker, batching,
//! sampling; no HTTP) at 1 and 8 streams, unconstrained and with a JSON Schema, and the
//! ratio of the two, taken within each round (rounds interleave the runs, so a drifting
//! VM moves both sides of a ratio together); the figures are medians over the rounds. Also
//! the first constraint's compilation (the vocabulary's token trie) and a later one.
//!
//! Both sides generate the same number of tokens greedily: the unconstrained streams ignore
//! end-of-generation tokens, the constrained ones follow a schema that no stream can finish
//! within the token count (an array of at least 400 strings). Two schemas: strings of any
//! length (llguidance masks string content from precomputed slices, its fast path) and
//! strings of at most 16 characters (a length no slice covers: the mask walks the whole
//! token trie at each step inside a string, the slow path). The picks are greedy, so each
//! step checks the unmasked pick first and masks only when the grammar refuses it
//! (`worker/constrained.rs`); `veil-bench` also measures sampled requests, served.
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
    let schema =
        |items| OutputFormat::JsonSchema(json!({"type": "array", "items": items, "minItems": 400}));
    let formats = [
        ("any-length strings", schema(json!({"type": "string"}))),
        (
            "strings of at most 16",
            schema(json!({"type": "string", "maxLength": 16})),
        ),
    ];
    let t = Instant::now();
    engine.constraint(&formats[0].1)?;
    let first = t.elapsed();
    let t = Instant::now();
    engine.constraint(&formats[1].1)?;
    println!(
        "compile: first {:.1} ms (builds the token trie), then {:.2} ms",
        first.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    // Warm-up, not measured.
    run(&engine, &prompt, tokens, 1, None)?;

    // Per round: for 1 then 8 streams, free then each schema.
    let runs: Vec<(usize, Option<usize>)> = [1, 8]
        .into_iter()
        .flat_map(|n| [(n, None), (n, Some(0)), (n, Some(1))])
        .collect();
    let mut table: Vec<Vec<f64>> = Vec::new();
    for round in 0..rounds {
        let mut row = Vec::with_capacity(runs.len());
        for &(streams, f) in &runs {
            row.push(run(
                &engine,
                &prompt,
                tokens,
                streams,
                f.map(|i| &formats[i].1),
            )?);
        }
        let shown: Vec<String> = row.iter().map(|t| format!("{t:.1}")).collect();
        println!(
            "round {round} (tok/s, 1 then 8 streams: free, any, ≤16): {}",
            shown.join(" / ")
        );
        table.push(row);
    }
    let med = |f: &dyn Fn(&[f64]) -> f64| {
        let mut v: Vec<f64> = table.iter().map(|r| f(r)).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (k, &(streams, f)) in runs.iter().enumerate() {
        let Some(i) = f else { continue };
        let free = runs
            .iter()
            .position(|&(n, g)| n == streams && g.is_none())
            .context("a free run")?;
        println!(
            "{streams} stream(s), {}: {:.1} tok/s vs {:.1} free, schema / free {:.3} (median of {rounds})",
            formats[i].0,
            med(&|r| r[k]),
            med(&|r| r[free]),
            med(&|r| r[k] / r[free]),
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
