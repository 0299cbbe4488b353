//! `veil-server`: serve a pinned model over the OpenAI HTTP API.
//!
//! Run with: `cargo run --release -p veil-server -- serve --listen 127.0.0.1:8080 --tee simulated --allow-plaintext`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use veil_server::api::{self, ApiConfig};
use veil_server::confidential::{self, Confidential, ConfidentialConfig, Tee, TeeOptions};
use veil_server::engine::{EngineConfig, WeightFormat};
use veil_server::fetch;
use veil_server::model::{LoadedModel, ModelSource};
use veil_server::serve::app_state;

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
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A model directory with manifest.json, or the default model's GGUF file.
        /// Without it, the default model is fetched (pinned, cached) on first run.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Trusted-execution backend that produces evidence (`simulated`: NO hardware protection).
        #[arg(long, value_enum, default_value = "auto")]
        tee: Tee,
        #[command(flatten)]
        tee_options: TeeArgs,
        /// Serve unencrypted requests (development and tests only).
        #[arg(long)]
        allow_plaintext: bool,
        /// Sequences decoded together.
        #[arg(long, default_value_t = EngineConfig::default().max_batch)]
        max_batch: usize,
        /// Requests that may wait before new ones get 429.
        #[arg(long, default_value_t = EngineConfig::default().queue_capacity)]
        queue: usize,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = ApiConfig::default().max_body_bytes)]
        max_body_bytes: usize,
        /// How matrix weights are kept in memory: `stored` (default: answers bit-identical to
        /// candle's reference on the verified weights) or `q8_0` (re-encoded at load, several
        /// times faster on x86 CPUs, but answers may differ slightly).
        #[arg(long, value_enum, default_value = "stored")]
        weights: WeightFormat,
    },
    /// Show which TEE backend this host can use and save an evidence bundle.
    ///
    /// REPORT_DATA is the Veil transcript over an empty key configuration (no gateway runs in
    /// this process), the nonce, and this binary's and the model's manifest.
    Evidence {
        /// Backend (`auto` detects; never picks `simulated`).
        #[arg(long, value_enum, default_value = "auto")]
        tee: Tee,
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
}

impl TeeArgs {
    fn options(&self) -> TeeOptions {
        TeeOptions::new(
            self.tsm_root.clone(),
            self.snp_cert_dir.clone(),
            self.tdx_collateral.clone(),
        )
    }
}

fn source(model: Option<PathBuf>) -> anyhow::Result<ModelSource> {
    Ok(match model {
        Some(p) => ModelSource::from_path(&p)?,
        None => fetch::default_model(&mut |line| eprintln!("veil-server: {line}"))?,
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            model,
            tee,
            tee_options,
            allow_plaintext,
            max_batch,
            queue,
            max_body_bytes,
            weights,
        } => {
            let (attester, why) = confidential::attester(tee, &tee_options.options()).context(
                "choosing the TEE backend (use --tee simulated for a demo without hardware)",
            )?;
            if tee == Tee::Simulated {
                tracing::warn!(
                    "TEE platform is SIMULATED: no hardware protection, evidence is software-signed"
                );
            }
            tracing::info!(backend = attester.name(), reason = %why, "attestation backend");
            let source = source(model)?;
            let started = Instant::now();
            eprintln!(
                "veil-server: verifying and loading {} ...",
                source.manifest.id
            );
            let device = veil_server::serve::device()?;
            tracing::info!(device = ?device, "compute device");
            let verified = source.verify().context("verifying the model")?;
            let model = LoadedModel::from_verified(&verified, &device, weights)
                .context("loading the model")?;
            drop(verified);
            let digest = hex::encode(model.manifest.digest());
            tracing::info!(
                model = %model.manifest.id,
                manifest_digest = %digest,
                load_ms = started.elapsed().as_millis() as u64,
                "model verified and loaded"
            );
            let engine = EngineConfig {
                max_batch,
                queue_capacity: queue,
            };
            let api_config = ApiConfig {
                allow_plaintext,
                max_body_bytes,
            };
            if allow_plaintext {
                tracing::warn!("plaintext requests ALLOWED (--allow-plaintext)");
            }
            let claims = confidential::manifest_claims(&model.manifest.id, model.manifest.digest())
                .context("hashing the server binary")?;
            tracing::info!(binary_sha256 = %hex::encode(claims.binary_sha256), "server manifest");
            let (state, worker) = app_state(model, engine, api_config);
            worker.spawn().context("starting the engine thread")?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let addr = listener.local_addr()?;
                tracing::info!(%addr, "listening");
                eprintln!("veil-server: listening on http://{addr}");
                let conf = Arc::new(Confidential::new(
                    attester,
                    claims,
                    ConfidentialConfig::default(),
                ));
                tokio::spawn(conf.clone().run_rotation());
                axum::serve(listener, confidential::routes(conf, api::router(state)))
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                anyhow::Ok(())
            })
        }
        Command::Evidence {
            tee,
            tee_options,
            nonce,
            model,
            output,
        } => {
            let (attester, why) = confidential::attester(tee, &tee_options.options())?;
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
            let rd = veil_attest::ReportData::new(&[], &nonce, &claims.server_manifest().digest())?;
            let evidence = attester.attest(&rd.0).context("producing evidence")?;
            std::fs::write(&output, evidence.to_json())
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "veil-server: wrote {} evidence to {} (nonce {}, binary {}, model {})",
                evidence.platform(),
                output.display(),
                hex::encode(nonce),
                hex::encode(claims.binary_sha256),
                hex::encode(claims.model_digest)
            );
            Ok(())
        }
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
