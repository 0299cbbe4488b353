//! What the confidential path costs, against the real model on loopback, in one run:
//!
//! 1. **First-request overhead**: a fresh client's first encrypted request (fetch evidence
//!    with a new nonce, verify it against a policy, take the attested key configuration, seal,
//!    open) minus a fresh plain client's first request to the same route. Goal < 20 ms. The
//!    SDK seals to X-Wing; the same steps by hand (fetch, verify, seal to the attested
//!    configuration of one KEM, post, open) measure X-Wing against X25519.
//! 2. **Seal/open cost of a streamed completion** relative to generating it: the exact body
//!    frames of a plain 256-token SSE stream are sealed the way the gateway seals them (SSE
//!    padding, Binary HTTP indeterminate-length framing, chunked OHTTP) and opened the way
//!    the client opens them; that time over the stream's generation time. Goal ≤ 1 %.
//! 3. For scale, the same completion streamed through the encrypted path end to end, over
//!    the plain stream's time.
//!
//! The platform is `simulated` (Ed25519 evidence); verifying real SEV-SNP evidence costs
//! more — `cargo bench -p veil-attest --bench verify` measures that on captured reports.
//!
//! Run with: `cargo bench -p veil-server --bench e2e_overhead` (`-- --rounds N`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use veil_attest::Policy;
use veil_attest::attester::Simulated;
use veil_client::Client;
use veil_engine::model::LoadedModel;
use veil_engine::{EngineConfig, WeightFormat};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, GatewayKey, IndeterminateResponseEncoder, Kem,
    Padding, SymmetricSuite, os_rng,
};
use veil_server::api::{self, ApiConfig};
use veil_server::confidential::{self, Confidential, ConfidentialConfig, Tee, TeeOptions};
use veil_server::serve::app_state;

const PROMPT: &str = "The history of the printing press begins";
const STREAM_TOKENS: usize = 256;

fn main() -> anyhow::Result<()> {
    // Before any thread starts: candle's thread count, counted once (see veil-kernels).
    veil_kernels::settle_thread_count();
    let rounds = rounds_arg()?;
    let source = veil_engine::fetch::default_model(&mut |l| eprintln!("e2e_overhead: {l}"))?;
    let verified = source.verify()?;
    let model =
        LoadedModel::from_verified(&verified, &candle_core::Device::Cpu, WeightFormat::Stored)?;
    drop(verified);
    let model_id = model.manifest.id.clone();
    let claims = confidential::manifest_claims(&model_id, model.manifest.digest())?;
    let exe = std::fs::read(std::env::current_exe()?)?;
    let policy = Policy::from_toml(&format!(
        "allow_simulated = true\n\
         [[reference]]\nplatform = \"simulated\"\nmeasurement = \"{}\"\n\
         [binary]\nsha256 = \"{}\"\n[model]\nsha256 = \"{}\"\n",
        hex::encode(Simulated::measurement_of(&exe)),
        hex::encode(Sha256::digest(&exe)),
        hex::encode(model.manifest.digest()),
    ))?;
    let (state, worker) = app_state(
        model,
        EngineConfig::default(),
        ApiConfig {
            allow_plaintext: true,
            ..ApiConfig::default()
        },
    );
    worker.spawn()?;
    let state_drain = state.drain();
    let (attester, _) = confidential::attester(Tee::Simulated, &TeeOptions::new(None, None, None))?;
    let conf = Arc::new(Confidential::new(
        attester,
        claims,
        ConfidentialConfig::default(),
    ));
    veil_client::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = confidential::routes(conf, api::router(state));
        let drain = state_drain;
        // The server's own accept loop (TCP_NODELAY, limits), as `veil-server serve` runs it.
        tokio::spawn(veil_server::listen::serve(
            listener,
            app,
            veil_server::listen::ListenConfig::default(),
            std::future::pending(),
            drain,
        ));

        // Warm-up: first-use allocations on both paths, not measured.
        plain_models(&base).await?;
        sealed_models(&base, &policy).await?;

        for kem in Kem::ALL {
            sealed_models_kem(&base, &policy, kem).await?;
        }

        let mut plain = Vec::with_capacity(rounds);
        let mut sealed = Vec::with_capacity(rounds);
        let mut by_kem: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); Kem::ALL.len()];
        for _ in 0..rounds {
            plain.push(plain_models(&base).await?);
            sealed.push(sealed_models(&base, &policy).await?);
            for (times, kem) in by_kem.iter_mut().zip(Kem::ALL) {
                times.push(sealed_models_kem(&base, &policy, kem).await?);
            }
        }
        let plain_ms = median_ms(&mut plain);
        let sealed_ms = median_ms(&mut sealed);
        println!("first request, median of {rounds} fresh clients, GET /v1/models:");
        println!("  plain                                  {plain_ms:9.3} ms");
        println!("  attest + verify + key setup + sealed   {sealed_ms:9.3} ms (SDK: X-Wing)");
        println!(
            "  first-request overhead                 {:9.3} ms (goal < 20 ms)",
            sealed_ms - plain_ms
        );
        for (times, kem) in by_kem.iter_mut().zip(Kem::ALL) {
            let kem_ms = median_ms(times);
            println!(
                "  the same steps by hand, {:<7}        {kem_ms:9.3} ms, overhead {:.3} ms",
                kem.to_string(),
                kem_ms - plain_ms
            );
        }

        let (frames, tokens, gen_time) = plain_stream(&base, &model_id).await?;
        let crypto = seal_open_stream(&frames, 5)?;
        println!(
            "streamed completion: {tokens} tokens in {} SSE frames, generated in {:.1} ms",
            frames.len(),
            ms(gen_time)
        );
        println!(
            "  seal + open of those frames            {:9.3} ms = {:.4} % of generation (goal <= 1 %)",
            ms(crypto),
            100.0 * crypto.as_secs_f64() / gen_time.as_secs_f64()
        );
        let client = Client::connect(&base, policy.clone()).await?;
        let started = Instant::now();
        let text = encrypted_stream(&client, &model_id).await?;
        let enc_time = started.elapsed();
        println!(
            "  the same stream through the encrypted path: {:.1} ms, ratio encrypted/plain {:.3} ({} chars)",
            ms(enc_time),
            enc_time.as_secs_f64() / gen_time.as_secs_f64(),
            text.len()
        );
        anyhow::Ok(())
    })
}

fn rounds_arg() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut rounds = 30;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .context("--rounds needs a value")?
                    .parse()
                    .context("--rounds")?;
            }
            // cargo bench passes `--bench`.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(rounds.max(1))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort();
    ms(v[v.len() / 2])
}

/// A fresh HTTP client (new connection), one plain request.
async fn plain_models(base: &str) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http.get(format!("{base}/v1/models")).send().await?;
    if !resp.status().is_success() {
        bail!("plain /v1/models: {}", resp.status());
    }
    resp.bytes().await?;
    Ok(started.elapsed())
}

/// A fresh SDK client: attest with a new nonce, verify, then one sealed request.
async fn sealed_models(base: &str, policy: &Policy) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = Client::connect(base, policy.clone()).await?;
    let list = client.models().await?;
    let elapsed = started.elapsed();
    if list.data.is_empty() {
        bail!("no model listed");
    }
    Ok(elapsed)
}

/// The SDK's first-request steps by hand, sealing to the attested configuration of `kem`:
/// a fresh nonce, fetch and verify the evidence, seal, post on a fresh connection, open.
async fn sealed_models_kem(base: &str, policy: &Policy, kem: Kem) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let nonce = veil_client::fresh_nonce();
    let attestation = veil_client::fetch_attestation(base, &nonce).await?;
    let attested =
        veil_client::verify_attestation(attestation, policy, &nonce, veil_client::system_now()?)?;
    let config = attested
        .key_configs
        .iter()
        .find(|c| c.kem() == kem)
        .with_context(|| format!("no attested {kem} key"))?;
    let client = veil_protocol::Client::new(config.clone())?;
    let authority = base.trim_start_matches("http://");
    let message = veil_protocol::build_request(
        "GET",
        authority,
        "/v1/models",
        &[],
        b"",
        std::time::SystemTime::now(),
    );
    let (body, opener) = client.seal(&message, &mut os_rng())?;
    let resp = reqwest::Client::new()
        .post(format!("{base}/.well-known/ohttp-gateway"))
        .header("content-type", veil_protocol::MEDIA_TYPE_REQUEST)
        .body(body)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("sealed /v1/models ({kem}): {}", resp.status());
    }
    let sealed = resp.bytes().await?;
    let inner = veil_protocol::message::decode_message(&opener.open(&sealed)?)?;
    let elapsed = started.elapsed();
    if inner.control().status().map(|s| s.code()) != Some(200) {
        bail!("sealed /v1/models ({kem}): inner status not 200");
    }
    Ok(elapsed)
}

/// A plain streamed completion; its body frames as they arrived, the completion tokens, and
/// the time from sending to the last frame.
async fn plain_stream(base: &str, model: &str) -> anyhow::Result<(Vec<Vec<u8>>, u64, Duration)> {
    let body = serde_json::json!({
        "model": model, "prompt": PROMPT, "max_tokens": STREAM_TOKENS,
        "temperature": 0, "stream": true, "stream_options": {"include_usage": true},
    });
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("plain stream: {}", resp.status());
    }
    let mut frames = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(frame) = stream.next().await {
        frames.push(frame?.to_vec());
    }
    let elapsed = started.elapsed();
    let all = frames.concat();
    let tokens = String::from_utf8_lossy(&all)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["usage"]["completion_tokens"].as_u64())
        .next_back()
        .context("no usage in the stream")?;
    Ok((frames, tokens, elapsed))
}

/// The gateway's and the client's work on `frames`, best of `reps`: request setup, then
/// every frame SSE-padded, framed as indeterminate-length Binary HTTP content, sealed as a
/// chunk and opened.
fn seal_open_stream(frames: &[Vec<u8>], reps: usize) -> anyhow::Result<Duration> {
    let key = GatewayKey::generate(1, &SymmetricSuite::ALL, &mut os_rng());
    let padding = Padding::default();
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let started = Instant::now();
        let (mut req_sealer, mut req) = ChunkedRequestSealer::start(
            key.config(),
            SymmetricSuite::HKDF_SHA256_AES_256_GCM,
            &mut os_rng(),
        )?;
        req.extend(req_sealer.seal_final(b"request")?);
        let mut opener = req_sealer.response_opener()?;
        let mut gw = ChunkedRequestOpener::new(&key);
        gw.push(&req)?;
        gw.finish()?;
        let (mut sealer, nonce) = gw.response_sealer(&mut os_rng())?;
        opener.push(&nonce)?;
        let mut encoder = IndeterminateResponseEncoder::new();
        let head = encoder.head(200, &[(b"content-type", b"text/event-stream")])?;
        opener.push(&sealer.seal_chunk(&head)?)?;
        let mut opened = 0usize;
        for frame in frames {
            let mut piece = frame.clone();
            padding.pad_sse(&mut piece);
            let wire = sealer.seal_chunk(&encoder.content(&piece)?)?;
            opened += opener.push(&wire)?.len();
        }
        opened += opener
            .push(&sealer.seal_final(&encoder.finish(&[], 0)?)?)?
            .len();
        opener.finish()?;
        std::hint::black_box(opened);
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// The same completion through the verified, encrypted path; its text.
async fn encrypted_stream(client: &Client, model: &str) -> anyhow::Result<String> {
    let mut req = veil_client::CompletionRequest::new(model, PROMPT);
    req.sampling.max_tokens = Some(STREAM_TOKENS as u64);
    req.sampling.temperature = Some(0.0);
    let mut stream = client.complete_stream(&req).await?;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        if let Some(c) = chunk?.choices.first() {
            text.push_str(&c.text);
        }
    }
    Ok(text)
}
