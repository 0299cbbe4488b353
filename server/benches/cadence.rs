//! What the streaming cadence costs (issue #23 item 4): a 256-token answer streamed through
//! the encrypted gateway one sealed chunk per token (`--stream-cadence-ms 0`) and on the
//! default 50 ms cadence, with padded chunks. Measures, per answer: bytes on the wire (every
//! sealed byte of the response body), sealed chunks, and the time from the request to the
//! first token's text reaching the client, each over the per-token shape.
//!
//! The answer is synthetic (an inner app sending 256 OpenAI-shaped SSE chunks, one every
//! `--gap-ms`, default 10 ms ≈ the default model's decode speed on 2 cores), so that both
//! shapes see the same token timing; the gateway, sealing and opening are the real ones.
//!
//! Run with: `cargo bench -p veil-server --bench cadence` (`-- --rounds N --gap-ms G`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, header};
use axum::routing::post;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use veil_attest::ManifestClaims;
use veil_attest::attester::Simulated;
use veil_protocol::{Client, KeyConfig, MEDIA_TYPE_CHUNKED_REQUEST, build_request, os_rng};
use veil_server::confidential::{self, Confidential, ConfidentialConfig};

const TOKENS: usize = 256;

/// The inner app: `TOKENS` chat completion chunks, one every `gap`, then `[DONE]`.
fn answer(gap: Duration) -> Router {
    Router::new().route(
        "/v1/chat/completions",
        post(move || async move {
            let s = futures_util::stream::unfold(0, move |i| async move {
                if i > TOKENS {
                    return None;
                }
                if i == TOKENS {
                    let done = Bytes::from_static(b"data: [DONE]\n\n");
                    return Some((Ok::<_, std::convert::Infallible>(done), i + 1));
                }
                tokio::time::sleep(gap).await;
                let event = format!(
                    "data: {{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"chat.completion.chunk\",\
                     \"created\":1764720000,\"model\":\"smollm2-135m-instruct-q4_1\",\"choices\":\
                     [{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"
                );
                Some((Ok(Bytes::from(event)), i + 1))
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(s),
            )
        }),
    )
}

#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    wire_bytes: usize,
    chunks: usize,
    first_token: Duration,
    total: Duration,
}

/// One streamed answer through a gateway with `cadence`.
async fn stream_once(cadence: Duration, gap: Duration) -> anyhow::Result<Shape> {
    let mut config = ConfidentialConfig::default();
    config.stream_cadence = cadence;
    let conf = Arc::new(Confidential::new(
        Arc::new(Simulated::new([9; 32], [7; 48])),
        ManifestClaims::new([1; 32], [2; 32], "bench".into()),
        config,
    ));
    let app = confidential::routes(Arc::clone(&conf), answer(gap));
    let configs = KeyConfig::decode_list(&conf.attested_key_configs())?;
    let client = Client::new(KeyConfig::select(&configs)?.clone())?;
    let message = build_request(
        "POST",
        "veil",
        "/v1/chat/completions",
        &[],
        b"{}",
        SystemTime::now(),
    );
    let (body, mut opener) = client.seal_chunked(&message, &mut os_rng())?;
    let req = Request::post("/.well-known/ohttp-gateway")
        .header(header::CONTENT_TYPE, MEDIA_TYPE_CHUNKED_REQUEST)
        .body(Body::from(body))?;
    let started = Instant::now();
    let resp = app.oneshot(req).await?;
    let mut body = resp.into_body();
    let mut shape = Shape::default();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        shape.wire_bytes += data.len();
        let opened = opener.push(&data)?;
        if !opened.is_empty() {
            shape.chunks += 1;
        }
        if first.is_none() && opened.windows(6).any(|w| w == b"data: ") {
            first = Some(started.elapsed());
        }
    }
    opener.finish().context("the final chunk")?;
    shape.chunks += 1;
    shape.total = started.elapsed();
    shape.first_token = first.context("no token arrived")?;
    Ok(shape)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut rounds = 5usize;
    let mut gap_ms = 10u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            "--gap-ms" => gap_ms = args.next().context("--gap-ms G")?.parse()?,
            "--bench" => {}
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let gap = Duration::from_millis(gap_ms);
    let plain_bytes: usize = (0..TOKENS)
        .map(|i| {
            format!(
                "data: {{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"chat.completion.chunk\",\
                 \"created\":1764720000,\"model\":\"smollm2-135m-instruct-q4_1\",\"choices\":\
                 [{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"
            )
            .len()
        })
        .sum::<usize>()
        + "data: [DONE]\n\n".len();
    let (mut per_token, mut cadenced) = (Vec::new(), Vec::new());
    // Alternated, so that drift on a shared machine hits both alike.
    for _ in 0..rounds {
        per_token.push(stream_once(Duration::ZERO, gap).await?);
        cadenced.push(stream_once(Duration::from_millis(50), gap).await?);
    }
    println!(
        "{TOKENS}-token answer, one token every {gap_ms} ms, {rounds} rounds alternated (medians); \
         plaintext SSE {plain_bytes} B"
    );
    println!(
        "| shape | wire bytes | over plaintext | sealed chunks | first token ms | whole answer ms |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, s: &[Shape]| {
        let bytes = median(s.iter().map(|x| x.wire_bytes as f64).collect());
        (
            format!(
                "| {name} | {bytes:.0} | {:.2}x | {:.0} | {:.1} | {:.0} |",
                bytes / plain_bytes as f64,
                median(s.iter().map(|x| x.chunks as f64).collect()),
                median(
                    s.iter()
                        .map(|x| x.first_token.as_secs_f64() * 1e3)
                        .collect()
                ),
                median(s.iter().map(|x| x.total.as_secs_f64() * 1e3).collect()),
            ),
            bytes,
            median(
                s.iter()
                    .map(|x| x.first_token.as_secs_f64() * 1e3)
                    .collect(),
            ),
        )
    };
    let (a, a_bytes, a_first) = row("per token (cadence 0)", &per_token);
    let (b, b_bytes, b_first) = row("50 ms cadence, padded", &cadenced);
    println!("{a}\n{b}");
    println!(
        "cadence over per token: bytes {:.2}x, first token +{:.1} ms",
        b_bytes / a_bytes,
        b_first - a_first
    );
    Ok(())
}
