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

struct Args {
    url: String,
    policy: Option<String>,
    allow_simulated: bool,
    prompt: String,
}

fn parse_args() -> Result<Args, String> {
    let (mut url, mut policy, mut allow_simulated, mut prompt) = (None, None, false, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => url = it.next(),
            "--policy" => policy = it.next(),
            "--allow-simulated" => allow_simulated = true,
            _ if prompt.is_none() && !a.starts_with("--") => prompt = Some(a),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url URL is required")?,
        policy,
        allow_simulated,
        prompt: prompt.ok_or("a PROMPT is required")?,
    })
}

async fn run(args: Args) -> Result<(), Error> {
    let policy = match &args.policy {
        Some(path) => Policy::from_toml(&std::fs::read_to_string(path).map_err(|e| {
            Error::Verification(veil_client::VerifyError::Policy(format!("{path}: {e}")))
        })?)?,
        None => Policy::default(),
    };
    let allow = policy.allow_simulated || args.allow_simulated;
    let client = Client::connect(&args.url, policy.allow_simulated(allow)).await?;
    let attested = client.attested();
    eprintln!(
        "verified {} (model {})",
        attested.verdict.platform, attested.attestation.manifest.model_id
    );
    let req = ChatRequest::new(
        attested.attestation.manifest.model_id.clone(),
        vec![ChatMessage::user(args.prompt)],
    );
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
        Ok(a) => a,
        Err(e) => {
            eprintln!("usage: chat --url URL [--policy FILE] [--allow-simulated] PROMPT\n{e}");
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
