//! Decode steps of the batched engine at 1, 4 and 8 sequences, without HTTP or sampling:
//! where concurrency does or does not pay. Prints per-step time and aggregate tokens/s at
//! each batch size, and the ratios to one sequence, measured in the same run.
//!
//! Run with: `cargo bench -p veil-engine --bench batch_decode` (`-- --steps N --batch B`:
//! only that batch size, for profiling; `-- --prefill N`: instead, a prompt of N tokens fed
//! in the engine's chunks, each chunk's time).

use std::time::Instant;

use anyhow::Context as _;
use veil_engine::model::LoadedModel;
use veil_engine::{KvCache, WeightFormat, argmax, argmax_rows};

const PROMPT: &str = "The history of the printing press begins";

fn main() -> anyhow::Result<()> {
    veil_kernels::settle_thread_count();
    let mut steps = 64usize;
    let mut only = None;
    let mut prefill = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => steps = args.next().context("--steps N")?.parse()?,
            "--batch" => only = Some(args.next().context("--batch B")?.parse::<usize>()?),
            "--prefill" => prefill = Some(args.next().context("--prefill N")?.parse::<usize>()?),
            "--bench" => {}
            other => anyhow::bail!("unexpected argument {other:?}"),
        }
    }
    let source = veil_engine::fetch::default_model(&mut |l| eprintln!("batch_decode: {l}"))?;
    let model = LoadedModel::from_verified(
        &source.verify()?,
        &candle_core::Device::Cpu,
        WeightFormat::Stored,
    )?;
    let llama = &model.llama;
    let prompt = model.tokenizer.encode(PROMPT)?;
    if let Some(n) = prefill {
        // Token ids cycling through the prompt's: the speed does not depend on which.
        let long: Vec<u32> = prompt.iter().copied().cycle().take(n).collect();
        let mut cache = llama.new_cache();
        let started = Instant::now();
        for (i, chunk) in long.chunks(veil_engine::PREFILL_CHUNK).enumerate() {
            let t = Instant::now();
            llama.forward(&[chunk], &mut [&mut cache])?;
            println!(
                "chunk {i} ({} tokens from position {}): {:.1} ms",
                chunk.len(),
                i * veil_engine::PREFILL_CHUNK,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "prefill of {n} tokens: {:.1} ms, {:.1} tok/s",
            secs * 1e3,
            n as f64 / secs
        );
        return Ok(());
    }
    let sizes: Vec<usize> = only.map_or_else(|| vec![1, 4, 8], |b| vec![b]);
    let mut per_size = Vec::new();
    for &b in &sizes {
        // Each sequence prefilled alone, then decoded together.
        let mut caches: Vec<KvCache> = (0..b).map(|_| llama.new_cache()).collect();
        let mut next = Vec::with_capacity(b);
        for c in &mut caches {
            let logits = llama.forward(&[&prompt], &mut [c])?;
            next.push(argmax(&logits.get(0)?)?);
        }
        let started = Instant::now();
        for _ in 0..steps {
            let tokens: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let tokens: Vec<&[u32]> = tokens.iter().map(|t| t.as_slice()).collect();
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            let logits = llama.forward(&tokens, &mut refs)?;
            next = argmax_rows(&logits)?;
        }
        let secs = started.elapsed().as_secs_f64();
        let tok_s = (b * steps) as f64 / secs;
        println!(
            "batch {b}: {:.2} ms/step, {tok_s:.1} tok/s aggregate",
            secs * 1e3 / steps as f64
        );
        per_size.push((b, tok_s));
    }
    if let Some(&(_, one)) = per_size.iter().find(|(b, _)| *b == 1) {
        for &(b, t) in &per_size {
            println!("aggregate at {b} / at 1: {:.2}", t / one);
        }
    }
    Ok(())
}
