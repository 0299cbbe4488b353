//! Streams one answer from a Veil server through the verified, encrypted path.
//!
//! Run with:
//! ```sh
//! cargo run -p veil-client --example chat -- --url http://127.0.0.1:8080 --allow-simulated "Why is the sky blue?"
//! ```
//! On any verification or integrity failure it prints the failed check's name to stderr
//! and exits non-zero.

use std::io::Write as _;
use std::process::ExitCode;

use futures_util::StreamExt as _;
use veil_client::{ChatMessage, ChatRequest, Client, Error, Policy};

const USAGE: &str = "\
usage: chat --url URL [--policy FILE] [--allow-simulated] [--api-key KEY] [--max-tokens N] PROMPT

  --url URL          the Veil server
  --policy FILE      reference values (TOML); required for a hardware server
  --allow-simulated  accept the simulated platform (no hardware protection)
  --api-key KEY      API key of a server that requires one (default: $VEIL_API_KEY)
  --max-tokens N     tokens to generate at most (default: 256)";

struct Args {
    url: String,
    policy: Option<String>,
    allow_simulated: bool,
    api_key: Option<String>,
    max_tokens: u64,
    prompt: String,
}

/// The arguments, or `Ok(None)` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let (mut url, mut policy, mut allow_simulated, mut prompt) = (None, None, false, None);
    let mut api_key = std::env::var("VEIL_API_KEY").ok().filter(|k| !k.is_empty());
    let mut max_tokens = 256;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => return Ok(None),
            "--url" => url = it.next(),
            "--policy" => policy = it.next(),
            "--allow-simulated" => allow_simulated = true,
            "--api-key" => api_key = Some(it.next().ok_or("--api-key needs a KEY")?),
            "--max-tokens" => {
                max_tokens = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--max-tokens needs a number")?;
            }
            _ if prompt.is_none() && !a.starts_with("--") => prompt = Some(a),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    Ok(Some(Args {
        url: url.ok_or("--url URL is required")?,
        policy,
        allow_simulated,
        api_key,
        max_tokens,
        prompt: prompt.ok_or("a PROMPT is required")?,
    }))
}

async fn run(args: Args) -> Result<(), Error> {
    let policy = match &args.policy {
        Some(path) => Policy::from_toml(&std::fs::read_to_string(path).map_err(|e| {
            Error::Verification(veil_client::VerifyError::Policy(format!("{path}: {e}")))
        })?)?,
        None => Policy::default(),
    };
    let allow = policy.allow_simulated || args.allow_simulated;
    let mut client = Client::connect(&args.url, policy.allow_simulated(allow)).await?;
    if let Some(key) = args.api_key {
        client = client.with_api_key(key);
    }
    let attested = client.attested();
    eprintln!(
        "verified {} (model {})",
        attested.verdict.platform, attested.attestation.manifest.model_id
    );
    let mut req = ChatRequest::new(
        attested.attestation.manifest.model_id.clone(),
        vec![ChatMessage::user(args.prompt)],
    );
    req.sampling.max_tokens = Some(args.max_tokens);
    let mut stream = client.chat_stream(&req).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let _ = write!(out, "{}", chunk?.text().unwrap_or_default());
        let _ = out.flush();
    }
    let _ = writeln!(out);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{USAGE}\n\nchat: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", e.check());
            ExitCode::FAILURE
        }
    }
}
