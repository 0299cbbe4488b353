//! `veil`: check what you talk to before you send it anything.

mod attest;
mod chat;
mod policy;
mod proxy;
mod report;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veil client: verify attestation evidence from AMD SEV-SNP and Intel TDX confidential VMs,
/// and talk to a verified server through Oblivious HTTP sealed to its attested key.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a live server (URL), a saved attestation or evidence bundle, or an SNP report / TDX quote.
    Verify(verify::VerifyArgs),
    /// Save a server's attestation to a file for later, offline re-checking.
    Attest(attest::AttestArgs),
    /// Serve a plain OpenAI-compatible endpoint on loopback that forwards only sealed requests.
    Proxy(proxy::ProxyArgs),
    /// Chat interactively with a verified server.
    Chat(chat::ChatArgs),
    /// Write a policy from a signed release manifest, or (trust on first use) from evidence.
    Policy(policy::PolicyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Attest(args) => attest::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Policy(args) => policy::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veil: error: {}", report::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
