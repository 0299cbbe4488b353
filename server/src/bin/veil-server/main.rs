//! `veil-server`: serve a pinned model over the OpenAI HTTP API.
//!
//! Run with: `cargo run --release -p veil-server -- serve --listen 127.0.0.1:8080 --tee simulated --allow-plaintext --no-auth`
//! (a local demo), or create an API key first with `veil-server keys create --name NAME`.

mod endorsements;
mod gpus;
mod keys;
mod serve;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use veil_engine::fetch;
use veil_engine::model::ModelSource;
use veil_server::confidential::{self, Tee, TeeOptions};

#[derive(Parser, Debug)]
#[command(
    name = "veil-server",
    version,
    about = "Confidential OpenAI-compatible inference server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify and load the model, then serve the API.
    ///
    /// Every /v1/* request (plain or encrypted) needs `Authorization: Bearer veil_sk_...` with
    /// an active key from the key database (see `keys create`), and that key's limits apply.
    /// The server refuses to start when the database has no active key, unless --no-auth.
    /// Core dumps are disabled at start. SIGTERM or Ctrl-C stops accepting connections, lets
    /// requests in flight finish within --shutdown-grace, and exits 0.
    Serve(Box<serve::ServeArgs>),
    /// Show which TEE backend this host can use and save an evidence bundle.
    ///
    /// REPORT_DATA is the Veil transcript over an empty key configuration (no gateway runs in
    /// this process), the nonce, and this binary's and the model's manifest. The file is an
    /// attestation that records the nonce, so `veil verify --evidence FILE` checks the binding.
    Evidence {
        /// Backend (`auto` detects; never picks `simulated`).
        #[arg(long, value_enum, default_value = "auto")]
        tee: TeeArg,
        #[command(flatten)]
        tee_options: TeeArgs,
        /// Client nonce (64 hex characters); random if absent.
        #[arg(long)]
        nonce: Option<String>,
        /// As for `serve --model`; the default model if absent.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where to write the evidence bundle (JSON).
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Create, list and revoke API keys (the database `serve` reads).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Prefetch and inspect the endorsements (AMD KDS, Intel PCS/PCCS) evidence travels with.
    Endorsements {
        #[command(subcommand)]
        command: endorsements::EndorsementsCommand,
    },
    /// Fetch and verify the default model into the cache; print its path.
    FetchModel,
    /// Print a model's manifest and its digest (what the attestation binds).
    Manifest {
        /// As for `serve --model`; the default model if absent.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct DbArg {
    /// Key database [default: $XDG_DATA_HOME/veil/keys.sqlite3, else
    /// ~/.local/share/veil/keys.sqlite3]; created (mode 0600) if absent.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

impl DbArg {
    fn path(self) -> anyhow::Result<PathBuf> {
        db_path(self.db)
    }
}

fn db_path(db: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match db {
        Some(p) => Ok(p),
        None => Ok(veil_server::keys::default_db_path()?),
    }
}

/// `--tee`: the command line's names for [`Tee`] (the library type carries no clap derive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TeeArg {
    /// Detect the hardware interface this machine has (never picks `simulated`).
    Auto,
    /// The kernel's configfs-tsm interface (SEV-SNP or TDX).
    Configfs,
    /// `/dev/sev-guest`.
    SevGuest,
    /// `/dev/tdx_guest` (TD reports only: quotes need configfs-tsm).
    TdxGuest,
    /// A software key: NO hardware protection; clients refuse it unless told `--allow-simulated`.
    Simulated,
}

impl From<TeeArg> for Tee {
    fn from(t: TeeArg) -> Self {
        match t {
            TeeArg::Auto => Self::Auto,
            TeeArg::Configfs => Self::Configfs,
            TeeArg::SevGuest => Self::SevGuest,
            TeeArg::TdxGuest => Self::TdxGuest,
            TeeArg::Simulated => Self::Simulated,
        }
    }
}

#[derive(clap::Args, Debug)]
struct TeeArgs {
    /// configfs-tsm report directory.
    #[arg(long, value_name = "DIR")]
    tsm_root: Option<PathBuf>,
    /// SEV-SNP certificates (VCEK/VLEK and chain, PEM or DER) when the host provides none.
    #[arg(long, value_name = "DIR")]
    snp_cert_dir: Option<PathBuf>,
    /// TDX collateral (dcap-qvl QuoteCollateralV3 JSON) for this platform.
    #[arg(long, value_name = "FILE")]
    tdx_collateral: Option<PathBuf>,
    #[command(flatten)]
    endorse: endorsements::EndorseArgs,
}

impl TeeArgs {
    /// The options for `tee`, with an endorsement fetcher unless disabled or simulated.
    fn options(&self, tee: Tee) -> anyhow::Result<TeeOptions> {
        Ok(self.options_with(self.endorse.endorser(tee)?))
    }

    fn options_with(
        &self,
        endorser: Option<std::sync::Arc<veil_server::endorsements::Endorser>>,
    ) -> TeeOptions {
        let opts = TeeOptions::new(
            self.tsm_root.clone(),
            self.snp_cert_dir.clone(),
            self.tdx_collateral.clone(),
        );
        match endorser {
            Some(e) => opts.with_endorser(e),
            None => opts,
        }
    }
}

fn source(model: Option<PathBuf>) -> anyhow::Result<ModelSource> {
    Ok(match model {
        Some(p) if !p.exists() => anyhow::bail!(
            "--model {}: no such file or directory (give a model directory with \
             manifest.json, or the default model's GGUF file)",
            p.display()
        ),
        Some(p) => ModelSource::from_path(&p)?,
        None => fetch::default_model(&mut |line| eprintln!("veil-server: {line}"))?,
    })
}

fn main() -> anyhow::Result<()> {
    // First: no core file may ever hold what this process handles (prompts, keys).
    let core_dumps = veil_server::core_dumps::disable();
    // Before any thread starts: candle's thread count, counted once (see veil-kernels).
    veil_kernels::settle_thread_count();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            core_dumps.log();
            serve::serve(*args)
        }
        Command::Evidence {
            tee,
            tee_options,
            nonce,
            model,
            output,
        } => {
            let tee = Tee::from(tee);
            let (attester, why) = confidential::attester(tee, &tee_options.options(tee)?)?;
            eprintln!("veil-server: backend {} ({why})", attester.name());
            let nonce: [u8; 32] = match nonce {
                Some(h) => hex::decode(h)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .context("--nonce must be 64 hex characters")?,
                None => rand::random(),
            };
            let source = source(model)?;
            let claims =
                confidential::manifest_claims(&source.manifest.id, source.manifest.digest())?;
            let rd = veil_attest::ReportData::new(&[], &nonce, &claims.digest())?;
            let evidence = attester.attest(&rd.0).context("producing evidence")?;
            let platform = evidence.platform();
            // The file records what was asked for (nonce, manifest, no gateway key), so
            // `veil verify --evidence FILE` checks that REPORT_DATA is that transcript.
            let bundle = veil_attest::Attestation::new(evidence, Vec::new(), claims.clone())
                .with_nonce(nonce);
            let json = serde_json::to_string(&bundle).context("serializing the bundle")?;
            std::fs::write(&output, json)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "veil-server: wrote {} evidence to {} (nonce {}, binary {}, model {})",
                platform,
                output.display(),
                hex::encode(nonce),
                hex::encode(claims.binary_sha256),
                hex::encode(claims.model_digest)
            );
            Ok(())
        }
        Command::Keys { command } => keys::keys(command),
        Command::Endorsements { command } => endorsements::endorsements(command),
        Command::FetchModel => {
            let source = fetch::default_model(&mut |line| eprintln!("veil-server: {line}"))?;
            let (weights, _) = source.manifest.weights()?;
            println!("{}", source.dir.join(&weights.name).display());
            Ok(())
        }
        Command::Manifest { model } => {
            let source = source(model)?;
            source.verify()?;
            println!("{}", serde_json::to_string_pretty(&source.manifest)?);
            println!("digest: {}", hex::encode(source.manifest.digest()));
            Ok(())
        }
    }
}
