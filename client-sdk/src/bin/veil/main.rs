//! `veil`: check what you talk to before you send it anything.

mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veil client: verify attestation evidence from AMD SEV-SNP and Intel TDX confidential VMs.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify attestation evidence (an SNP report, a TDX quote, or a saved evidence bundle).
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => match verify::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("veil: error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
