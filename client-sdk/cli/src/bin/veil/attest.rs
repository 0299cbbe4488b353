//! `veil attest URL -o FILE`: save a server's attestation so anyone can re-check it later.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

const EXAMPLES: &str = "\
Examples:
  veil attest https://veil.example -o attestation.json
  veil verify --evidence attestation.json --nonce <the nonce printed> --policy policy.toml

The file is the server's answer as received (evidence bundle, key configuration, manifest).
`veil verify --evidence FILE` re-checks the evidence; with `--nonce` also the binding.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct AttestArgs {
    /// The server.
    #[arg(value_name = "URL")]
    url: String,
    /// Where to write the attestation (JSON).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Use this nonce (64 hex characters) instead of a fresh one.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
}

pub(crate) fn run(args: &AttestArgs) -> Result<ExitCode> {
    let nonce = match &args.nonce {
        Some(h) => <[u8; 32]>::try_from(hex::decode(h).context("--nonce is not hex")?)
            .map_err(|_| anyhow::anyhow!("--nonce must be 64 hex characters"))?,
        None => veil_client::fresh_nonce(),
    };
    eprintln!("veil: attesting {} …", args.url);
    let rt = tokio::runtime::Runtime::new()?;
    let a = rt.block_on(veil_client::fetch_attestation(&args.url, &nonce))?;
    std::fs::write(&args.output, serde_json::to_vec_pretty(&a)?)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!("nonce {}", hex::encode(nonce));
    eprintln!(
        "veil: saved the {} attestation to {} (not verified; run veil verify)",
        a.evidence.platform(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
