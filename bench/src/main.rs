//! `veil-bench`: raw candle generation speed vs. the server's streamed speed, and
//! aggregate throughput at 1, 4 and 8 concurrent streams, with each level's time to first
//! token (mean and worst over its streams, from request to the first text chunk).
//!
//! The stream counts are measured in interleaved rounds (1, 4, 8, 1, 4, 8, ...) and each
//! figure is the median over the rounds; the ratio of a level to one stream is taken within
//! each round, then its median. On a shared VM whose speed drifts by ±15 % over seconds,
//! a ratio of two levels measured at different times says little.
//!
//! Then a long prompt joins four running streams: its time to first token, and the running
//! streams' longest wait between two text chunks while it is fed (the prompt is fed in
//! chunks, so the streams keep going).
//!
//! Last, what structured outputs cost: 1 and 8 streams with and without a JSON Schema,
//! greedy and sampled, interleaved ([`constrained`]).
//!
//! Run with: `cargo run --release -p veil-bench -- --model PATH [--tokens N] [--rounds R] [--json]`
//! (without `--model`, the default model is fetched into the cache).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use candle_core::Device;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use clap::Parser;
use futures_util::StreamExt;
use veil_engine::fetch;
use veil_engine::model::{LoadedModel, ModelSource};
use veil_engine::{EngineConfig, WeightFormat};
use veil_server::api::{self, ApiConfig};
use veil_server::serve::app_state;

mod constrained;

use constrained::Ask;

#[derive(Parser, Debug)]
#[command(
    name = "veil-bench",
    about = "Generation throughput: raw candle loop vs. veil-server"
)]
struct Args {
    /// Model directory with manifest.json, or the default model's GGUF.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokens generated per stream.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Weight format of the server's engine (the raw loop always uses the stored format).
    #[arg(long, value_enum, default_value = "stored")]
    weights: Weights,
    /// Rounds of the 1/4/8-stream measurement (figures are medians over them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Copies of a 30-token paragraph in the long prompt that joins running streams.
    #[arg(long, default_value_t = 64)]
    long_prompt_copies: usize,
}

/// `--weights`, as `veil-server serve` names the [`WeightFormat`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Weights {
    /// As stored in the file.
    Stored,
    /// Q4_1 matrices re-encoded as Q8_0 at load.
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::Stored => Self::Stored,
            Weights::Q8_0 => Self::Q8_0,
        }
    }
}

/// Aggregate tokens per second at one stream count, and each stream's time to first token.
type Level = (f64, Vec<Duration>);

const PROMPT: &str = "The history of the printing press begins";

fn main() -> anyhow::Result<()> {
    // Before any thread starts: candle's thread count, counted once (see veil-kernels).
    veil_kernels::settle_thread_count();
    // reqwest is built without a default TLS provider where the workspace's client (which
    // brings ring) is built alongside; loopback HTTP needs none, but the client insists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.tokens < 2 {
        bail!("--tokens must be at least 2");
    }
    let source = match &args.model {
        Some(p) => ModelSource::from_path(p)?,
        None => fetch::default_model(&mut |l| eprintln!("veil-bench: {l}"))?,
    };
    let weights = source.verify()?;
    // candle's reference loop (`quantized_llama`) reads GGUF only; a safetensors model is
    // measured through the server alone.
    let raw = match weights.kind {
        veil_engine::model::FileKind::Gguf => {
            Some(raw_candle(&weights, args.tokens, &veil_engine::device()?)?)
        }
        _ => None,
    };
    let model = LoadedModel::from_verified(&weights, &veil_engine::device()?, args.weights.into())?;
    drop(weights);
    let (state, worker) = app_state(
        model,
        EngineConfig {
            max_batch: 8,
            queue_capacity: 64,
        },
        ApiConfig {
            allow_plaintext: true,
            ..ApiConfig::default()
        },
    );
    worker.spawn()?;
    let model_id = state.model_id().to_owned();
    let drain = state.drain();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (server, concurrent, long, costs) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // The server's own accept loop (TCP_NODELAY, limits), as `veil-server serve` runs it.
        tokio::spawn(veil_server::listen::serve(
            listener,
            api::router(state),
            veil_server::listen::ListenConfig::default(),
            std::future::pending(),
            drain,
        ));
        let url = Arc::new(format!("http://{addr}/v1/completions"));
        let client = reqwest::Client::new();
        // Warm-up (first-call allocations), not measured.
        stream_once(&client, &url, &model_id, 8, Ask::FREE).await?;
        let (single, _) = aggregate(&client, &url, &model_id, args.tokens, 1, Ask::FREE).await?;
        let mut rounds = Vec::new();
        for _ in 0..args.rounds {
            let mut round = Vec::new();
            for n in STREAMS {
                round.push(aggregate(&client, &url, &model_id, args.tokens, n, Ask::FREE).await?);
            }
            rounds.push(round);
        }
        let concurrent = levels(&rounds);
        let long = long_prompt_joins(&client, &url, &model_id, args.long_prompt_copies).await?;
        let costs =
            constrained::measure(&client, &url, &model_id, args.tokens, args.rounds).await?;
        anyhow::Ok((single, concurrent, long, costs))
    })?;
    let ratio = raw.map(|raw| server / raw);
    if args.json {
        let by_streams = |f: &dyn Fn(&Summary) -> serde_json::Value| {
            STREAMS
                .iter()
                .zip(&concurrent)
                .map(|(n, r)| (n.to_string(), f(r)))
                .collect::<serde_json::Map<String, serde_json::Value>>()
        };
        println!(
            "{}",
            serde_json::json!({
                "tokens": args.tokens,
                "weights": format!("{:?}", args.weights),
                "raw_tok_s": raw.map(round),
                "server_tok_s": round(server),
                "ratio": ratio.map(|r| (r * 1000.0).round() / 1000.0),
                "rounds": args.rounds,
                "concurrent_tok_s": by_streams(&|r| round(r.tok_s).into()),
                "concurrent_over_one_stream": by_streams(&|r| ((r.over_one * 100.0).round() / 100.0).into()),
                "concurrent_tok_s_each_round": by_streams(&|r| r.each.iter().map(|&t| round(t)).collect()),
                "ttft_ms_mean": by_streams(&|r| round(r.ttft_mean_ms).into()),
                "ttft_ms_max": by_streams(&|r| round(r.ttft_max_ms).into()),
                "long_prompt": {
                    "prompt_tokens": long.prompt_tokens,
                    "ttft_ms": round(long.ttft.as_secs_f64() * 1e3),
                    "running_streams": LONG_PROMPT_STREAMS,
                    "running_worst_gap_ms": round(long.worst_gap.as_secs_f64() * 1e3),
                },
                "constrained": costs.iter().map(constrained::Cost::json).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("tokens per stream:           {}", args.tokens);
        println!("server weight format:        {:?}", args.weights);
        match raw {
            Some(raw) => println!("raw candle loop:             {raw:.1} tok/s"),
            None => println!("raw candle loop:             n/a (GGUF only)"),
        }
        println!("server, streamed over HTTP:  {server:.1} tok/s");
        if let Some(ratio) = ratio {
            println!("ratio server/raw:            {ratio:.3}");
        }
        println!("medians over {} round(s):", args.rounds);
        for (n, r) in STREAMS.iter().zip(&concurrent) {
            println!(
                "aggregate at {n} stream(s):    {:.1} tok/s ({:.2}x one stream), time to first token {:.1} ms mean, {:.1} ms worst",
                r.tok_s, r.over_one, r.ttft_mean_ms, r.ttft_max_ms
            );
        }
        println!(
            "a {}-token prompt joining {LONG_PROMPT_STREAMS} streams: time to first token {:.1} ms; \
             the streams' longest wait between chunks {:.1} ms",
            long.prompt_tokens,
            long.ttft.as_secs_f64() * 1e3,
            long.worst_gap.as_secs_f64() * 1e3
        );
        println!("structured outputs (an array of strings of at most 16 characters), medians:");
        for c in &costs {
            println!("{}", c.line());
        }
    }
    Ok(())
}

/// Stream counts measured, in the order of each round.
const STREAMS: [usize; 3] = [1, 4, 8];

/// One stream count over all rounds.
struct Summary {
    /// Median aggregate tokens per second.
    tok_s: f64,
    /// Each round's aggregate tokens per second.
    each: Vec<f64>,
    /// Median over rounds of (this level / one stream in the same round).
    over_one: f64,
    /// Medians over rounds of the mean and of the worst time to first token.
    ttft_mean_ms: f64,
    ttft_max_ms: f64,
}

/// Per stream count, its medians over `rounds` (each round: one [`Level`] per [`STREAMS`]).
fn levels(rounds: &[Vec<Level>]) -> Vec<Summary> {
    (0..STREAMS.len())
        .map(|i| {
            let each: Vec<f64> = rounds.iter().map(|r| r[i].0).collect();
            Summary {
                tok_s: median(each.clone()),
                over_one: median(rounds.iter().map(|r| r[i].0 / r[0].0).collect()),
                ttft_mean_ms: median(rounds.iter().map(|r| mean_ms(&r[i].1)).collect()),
                ttft_max_ms: median(rounds.iter().map(|r| max_ms(&r[i].1)).collect()),
                each,
            }
        })
        .collect()
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mean_ms(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / d.len().max(1) as f64
}

fn max_ms(d: &[Duration]) -> f64 {
    d.iter().max().map_or(0.0, |m| m.as_secs_f64() * 1e3)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// candle's own quantized llama and greedy loop: prefill the prompt, then one token per
/// forward, `tokens` tokens in all; tokens per second over the whole loop.
fn raw_candle(
    weights: &veil_engine::model::VerifiedWeights,
    tokens: usize,
    device: &Device,
) -> anyhow::Result<f64> {
    let (content, mut reader) = weights.gguf()?;
    let tokenizer = veil_engine::tokenizer::Tokenizer::from_gguf(&content)?;
    let mut model = ModelWeights::from_gguf(content, &mut reader, device)?;
    let prompt = tokenizer.encode(PROMPT)?;
    let mut run = |n: usize| -> anyhow::Result<f64> {
        model.clear_kv_cache();
        let mut sampler = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
        let start = Instant::now();
        let input = candle_core::Tensor::new(prompt.as_slice(), device)?.unsqueeze(0)?;
        let logits = model.forward(&input, 0)?.squeeze(0)?;
        let mut next = sampler.sample(&logits)?;
        for i in 1..n {
            let input = candle_core::Tensor::new(&[next], device)?.unsqueeze(0)?;
            let logits = model.forward(&input, prompt.len() + i - 1)?.squeeze(0)?;
            next = sampler.sample(&logits)?;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    run(8)?; // warm-up
    run(tokens)
}

/// Completion tokens of one streamed completion of exactly `tokens` tokens, and the time from
/// sending the request to its first text chunk.
async fn stream_once(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    tokens: usize,
    ask: Ask,
) -> anyhow::Result<(usize, Duration)> {
    let (usage, first, _) = stream_prompt(client, url, model, PROMPT, tokens, ask).await?;
    if usage.completion_tokens != tokens {
        bail!(
            "a stream ended after {} of {tokens} tokens",
            usage.completion_tokens
        );
    }
    Ok((usage.completion_tokens, first))
}

/// Token counts of a streamed completion.
struct StreamUsage {
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// One streamed completion of exactly `tokens` tokens of `prompt`: its usage, the time from
/// sending the request to its first text chunk, and the longest time between two reads that
/// brought text after that.
async fn stream_prompt(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    prompt: &str,
    tokens: usize,
    ask: Ask,
) -> anyhow::Result<(StreamUsage, Duration, Duration)> {
    let sent = Instant::now();
    let body = ask.body(model, prompt, tokens);
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await
        .context("request")?;
    if !res.status().is_success() {
        bail!("server answered {}", res.status());
    }
    let mut stream = res.bytes_stream();
    let mut buf = Vec::new();
    let mut first = None;
    let (mut last, mut worst_gap) = (None::<Instant>, Duration::ZERO);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        buf.extend_from_slice(&chunk);
        if has_text_chunk(&chunk) {
            let now = Instant::now();
            if let Some(l) = last {
                worst_gap = worst_gap.max(now - l);
            }
            last = Some(now);
        }
        if first.is_none() && has_text_chunk(&buf) {
            first = Some(sent.elapsed());
        }
    }
    let text = String::from_utf8_lossy(&buf);
    if !text.contains("data: [DONE]") {
        bail!("stream ended without [DONE]");
    }
    let usage = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| {
            let u = v.get("usage")?;
            let count = |k: &str| usize::try_from(u.get(k)?.as_u64()?).ok();
            Some(StreamUsage {
                prompt_tokens: count("prompt_tokens")?,
                completion_tokens: count("completion_tokens")?,
            })
        })
        .context("no usage chunk")?;
    Ok((usage, first.context("no text chunk")?, worst_gap))
}

/// Streams running when the long prompt joins.
const LONG_PROMPT_STREAMS: usize = 4;

/// What a long prompt joining running streams costs them.
struct LongPrompt {
    prompt_tokens: usize,
    /// The long prompt's time to first token.
    ttft: Duration,
    /// The running streams' longest wait between two text chunks.
    worst_gap: Duration,
}

/// [`LONG_PROMPT_STREAMS`] streams of 128 tokens start; once they are decoding, a prompt of
/// `copies` paragraphs joins (one token asked).
async fn long_prompt_joins(
    client: &reqwest::Client,
    url: &Arc<String>,
    model: &str,
    copies: usize,
) -> anyhow::Result<LongPrompt> {
    const PARAGRAPH: &str = "The printing press changed how ideas travelled. Before it, every \
                             book was copied by hand, and a library of a few hundred volumes \
                             was a fortune. ";
    let mut tasks = Vec::new();
    for _ in 0..LONG_PROMPT_STREAMS {
        let (client, url, model) = (client.clone(), url.clone(), model.to_owned());
        tasks.push(tokio::spawn(async move {
            stream_prompt(&client, &url, &model, PROMPT, 128, Ask::FREE).await
        }));
    }
    // Well into their decoding (a few dozen tokens at this machine's speed).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (usage, ttft, _) =
        stream_prompt(client, url, model, &PARAGRAPH.repeat(copies), 1, Ask::FREE).await?;
    let mut worst_gap = Duration::ZERO;
    for t in tasks {
        let (u, _, gap) = t.await??;
        if u.completion_tokens != 128 {
            bail!("a running stream ended early");
        }
        worst_gap = worst_gap.max(gap);
    }
    Ok(LongPrompt {
        prompt_tokens: usage.prompt_tokens,
        ttft,
        worst_gap,
    })
}

/// Whether an SSE chunk with non-empty completion text has arrived.
fn has_text_chunk(buf: &[u8]) -> bool {
    String::from_utf8_lossy(buf)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .any(|v| {
            v["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
}

/// Aggregate tokens per second of `streams` concurrent completions, and each one's time to
/// first token.
async fn aggregate(
    client: &reqwest::Client,
    url: &Arc<String>,
    model: &str,
    tokens: usize,
    streams: usize,
    ask: Ask,
) -> anyhow::Result<Level> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, url, model) = (client.clone(), url.clone(), model.to_owned());
        tasks.push(tokio::spawn(async move {
            stream_once(&client, &url, &model, tokens, ask).await
        }));
    }
    let mut total = 0;
    let mut ttft = Vec::with_capacity(streams);
    for t in tasks {
        let (n, first) = t.await??;
        total += n;
        ttft.push(first);
    }
    Ok((total as f64 / start.elapsed().as_secs_f64(), ttft))
}
