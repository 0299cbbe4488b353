//! `veil proxy`: a plain OpenAI-compatible endpoint on loopback for unmodified clients.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::serve::ListenerExt as _;
use clap::Args;
use veil_cli::proxy::{Upstream, router};

const EXAMPLES: &str = "\
Examples:
  veil proxy --upstream https://veil.example --policy policy.toml
  veil proxy --upstream http://127.0.0.1:8080 --allow-simulated --listen 127.0.0.1:8088

Then point any OpenAI client at it:
  OPENAI_BASE_URL=http://127.0.0.1:8088/v1 OPENAI_API_KEY=sk-... python app.py

Every request is sealed (Oblivious HTTP) to the key the server attested; nothing is
forwarded in the clear. Verification and integrity failures come back as OpenAI errors;
a stream cut or altered mid-way ends with an error event, never with `data: [DONE]`.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ProxyArgs {
    /// The Veil server.
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    #[command(flatten)]
    policy: crate::verify::ConnectPolicy,
    /// Allow listening on a non-loopback address (anyone who reaches it uses your proxy).
    #[arg(long)]
    allow_non_loopback: bool,
}

pub(crate) fn run(args: &ProxyArgs) -> Result<ExitCode> {
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        bail!(
            "refusing to listen on non-loopback {} (add --allow-non-loopback if you mean it)",
            args.listen
        );
    }
    let policy = args.policy.load()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The port first: a port already taken is found before the server is contacted.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let upstream = Arc::new(Upstream::new(args.upstream.clone(), policy));
        eprintln!("veil: attesting {} …", args.upstream);
        match upstream.client().await {
            Ok(c) => {
                let a = c.attested();
                eprintln!(
                    "veil: verified {} {} (model {})",
                    a.verdict.platform,
                    a.verdict
                        .measurements
                        .first()
                        .map(|m| hex::encode(&m.value))
                        .unwrap_or_default(),
                    crate::report::printable(&a.attestation.manifest.model_id)
                );
                for w in &a.verdict.warnings {
                    eprintln!("veil: warning: {}", crate::report::printable(w));
                }
            }
            // A URL that can never work is not worth waiting on.
            Err(e @ veil_client::Error::InvalidUrl(_)) => {
                return Ok(crate::report::connect_failed(&e));
            }
            Err(e) => eprintln!(
                "veil: attestation failed ({}: {}); requests will be refused until it succeeds",
                e.check(),
                crate::report::printable(&e.to_string())
            ),
        }
        eprintln!("veil: OpenAI-compatible endpoint on http://{addr}/v1");
        // Streamed answers are many small writes: without TCP_NODELAY, Nagle's algorithm
        // holds each one back until the client's (delayed) ACK of the previous, up to 40 ms.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                eprintln!("veil: cannot set TCP_NODELAY: {e}");
            }
        });
        axum::serve(listener, router(upstream)).await?;
        Ok(ExitCode::SUCCESS)
    })
}
