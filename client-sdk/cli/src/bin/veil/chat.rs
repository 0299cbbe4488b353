//! `veil chat URL`: an interactive chat through the verified, encrypted path.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use futures_util::StreamExt as _;
use veil_client::{ChatMessage, ChatRequest, Client, Error};

const EXAMPLES: &str = "\
Examples:
  veil chat https://veil.example --policy policy.toml
  veil chat http://127.0.0.1:8080 --allow-simulated --model SmolLM2-135M-Instruct-Q4_1
  VEIL_API_KEY=veil_sk_... veil chat https://veil.example --policy policy.toml

Type a message and press Enter; an empty line or end of input (Ctrl-D) quits.
Exit status: 0 at the end of the chat, 1 when the server's attestation is rejected or an
answer fails its integrity check, 2 on a usage or connection error.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ChatArgs {
    /// The Veil server.
    #[arg(value_name = "URL")]
    url: String,
    /// Model id (default: the attested manifest's model).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    policy: crate::verify::ConnectPolicy,
    /// Tokens to generate per answer at most.
    #[arg(long, default_value_t = 256)]
    max_tokens: u64,
    /// API key for a server that requires one (`veil-server keys create`); sent inside the
    /// encryption only.
    #[arg(long, env = "VEIL_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
}

pub(crate) fn run(args: &ChatArgs) -> Result<ExitCode> {
    let policy = args.policy.load()?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let dim = |s: String| {
        if color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s
        }
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        eprintln!("{}", dim(format!("attesting {} …", args.url)));
        let client = match Client::connect(&args.url, policy).await {
            Ok(c) => c,
            Err(e) => return Ok(crate::report::connect_failed(&e)),
        };
        let client = match &args.api_key {
            Some(key) => client.with_api_key(key.clone()),
            None => client,
        };
        let a = client.attested();
        let m = a.verdict.measurements.first();
        eprintln!(
            "{}",
            dim(format!(
                "verified: platform {}  {} {}\nmodel {} (digest {}), key exchange {}",
                a.verdict.platform,
                m.map_or("measurement", |m| m.register),
                m.map(|m| hex::encode(&m.value)).unwrap_or_default(),
                crate::report::printable(&a.attestation.manifest.model_id),
                hex::encode(a.attestation.manifest.model_digest),
                a.key_config.kem()
            ))
        );
        for w in &a.verdict.warnings {
            eprintln!("warning: {}", crate::report::printable(w));
        }
        let model = args
            .model
            .clone()
            .unwrap_or_else(|| a.attestation.manifest.model_id.clone());
        let mut history: Vec<ChatMessage> = Vec::new();
        let stdin = std::io::stdin();
        loop {
            eprint!("{}", if color { "\x1b[1m> \x1b[0m" } else { "> " });
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            history.push(ChatMessage::user(line.trim_end()));
            let mut req = ChatRequest::new(model.clone(), history.clone());
            req.sampling.max_tokens = Some(args.max_tokens);
            let mut answer = String::new();
            let mut stream = match client.chat_stream(&req).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("veil: error: {}", crate::report::printable(&e.to_string()));
                    if matches!(e, Error::Api { status: 401, .. }) && args.api_key.is_none() {
                        eprintln!(
                            "veil: the server requires an API key: --api-key or VEIL_API_KEY"
                        );
                    }
                    history.pop();
                    continue;
                }
            };
            let mut out = std::io::stdout();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        let t = c.text().unwrap_or_default();
                        answer.push_str(t);
                        write!(out, "{t}")?;
                        out.flush()?;
                    }
                    Err(e) => {
                        eprintln!(
                            "\nveil: error: {}",
                            crate::report::printable(&e.to_string())
                        );
                        if e.is_integrity_failure() {
                            return Ok(ExitCode::from(1));
                        }
                        break;
                    }
                }
            }
            writeln!(out)?;
            history.push(ChatMessage::new("assistant", answer));
        }
    })
}
