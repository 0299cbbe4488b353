//! `veil-repro`: rebuild, pack, measure, sign and verify a Veil release.

mod cli;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    cli::run(cli::Cli::parse())
}
