//! `veil-server serve`: its flags, its API key policy, and the run: load, listen, shut down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use veil_engine::model::{
    DEFAULT_MODEL_ID, LoadedModel, MAX_MANIFEST_LEN, ModelManifest, ModelSource,
};
use veil_engine::{EngineConfig, WeightFormat};
use veil_server::api::{self, ApiConfig, Auth, DenyList, OutputFilter};
use veil_server::confidential::{self, AddressBudget, Confidential, ConfidentialConfig, Tee};
use veil_server::keys::{KeyStore, Limiter};
use veil_server::listen::{self, ListenConfig};
use veil_server::serve::app_state_with_auth;

use crate::{TeeArg, TeeArgs, db_path, source};

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on: HOST:PORT, the host an IP address or a name
    /// (`localhost:8080`; a name binds the first of its addresses that is free).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    listen: String,
    /// A model directory with manifest.json, or the default model's GGUF file.
    /// Without it, the default model is fetched (pinned, cached) on first run.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Run as the server of a measured VM image (`veil-repro image` sets this): FILE is the
    /// model manifest baked into the image's initrd. Only the model it pins is served (the
    /// files in --model DIR are verified against it; any other model is refused), and the
    /// attestation says `measured_image: true`.
    #[arg(long, value_name = "FILE", requires = "model")]
    image_model_manifest: Option<PathBuf>,
    /// Trusted-execution backend that produces evidence (`simulated`: NO hardware protection).
    #[arg(long, value_enum, default_value = "auto")]
    tee: TeeArg,
    #[command(flatten)]
    tee_options: TeeArgs,
    /// GPUs whose evidence joins every attestation, bound to the same transcript.
    #[arg(long, value_enum, default_value = "none")]
    gpus: crate::gpus::GpuArg,
    /// Serve unencrypted requests (development and tests only).
    #[arg(long)]
    allow_plaintext: bool,
    /// Key database [default: $XDG_DATA_HOME/veil/keys.sqlite3, else
    /// ~/.local/share/veil/keys.sqlite3]. It must exist and hold an active key.
    #[arg(long, value_name = "PATH", conflicts_with = "no_auth")]
    db: Option<PathBuf>,
    /// Serve /v1/* WITHOUT API keys or limits: anyone who reaches the server may use it
    /// (local demos only).
    #[arg(long)]
    no_auth: bool,
    /// Sequences decoded together.
    #[arg(long, default_value_t = EngineConfig::default().max_batch)]
    max_batch: usize,
    /// Requests that may wait before new ones get 429.
    #[arg(long, default_value_t = EngineConfig::default().queue_capacity)]
    queue: usize,
    /// How matrix weights are kept in memory: `stored` (default: answers bit-identical to
    /// candle's reference on the verified weights, computed by Veil's own AVX2/AVX-512
    /// kernels on x86 CPUs) or `q8_0` (Q4_1 re-encoded as Q8_0 at load, kept for
    /// comparison: answers may differ slightly).
    #[arg(long, value_enum, default_value = "stored")]
    weights: Weights,
    /// A streamed answer leaves the encrypted gateway as one padded chunk per this many
    /// milliseconds (empty ticks included), so the wire shows its duration but not its token
    /// count or token timing. 0: one chunk per token (the shape leaks).
    #[arg(long, value_name = "MS", default_value_t = 50)]
    stream_cadence_ms: u64,
    /// Attestation requests one client address (IPv4, or IPv6 /64) may make: BURST at once,
    /// then PER_MINUTE a minute; more get 429 with Retry-After. `0/0` turns the budget off
    /// (behind a proxy that hides client addresses, where every client shares its address).
    #[arg(long, value_name = "BURST/PER_MINUTE", default_value = "16/60", value_parser = parse_address_budget)]
    attestation_per_address: AddressBudget,
    /// Serve operator metrics (OpenMetrics text: requests, refusals, tokens, latencies; no
    /// content) at http://HOST:PORT/metrics, on a listener of their own. Off unless given;
    /// given without a value, 127.0.0.1:9464.
    #[arg(
        long,
        value_name = "HOST:PORT",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:9464"
    )]
    metrics_listen: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

/// The nice value of the runtime's threads (the engine's stay at the process's): Linux
/// weighs a nice-5 thread at about a third of a nice-0 one when both want the CPU.
const NETWORK_NICE: i32 = 5;

/// `BURST/PER_MINUTE` for `--attestation-per-address`.
fn parse_address_budget(s: &str) -> Result<AddressBudget, String> {
    let (burst, rate) = s
        .split_once('/')
        .ok_or("expected BURST/PER_MINUTE, e.g. 16/60")?;
    let burst: u32 = burst
        .parse()
        .map_err(|_| format!("burst {burst:?} is not a number"))?;
    let rate: u32 = rate
        .parse()
        .map_err(|_| format!("rate {rate:?} is not a number"))?;
    if (burst == 0) != (rate == 0) {
        return Err("give both as 0 to turn the budget off, or both above 0".into());
    }
    Ok(AddressBudget::new(burst, rate))
}

/// `--weights`: the command line's names for [`WeightFormat`] (no clap derive on the
/// library type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Weights {
    /// As stored in the file: logits bit-identical to candle's `quantized_llama`.
    Stored,
    /// Q4_1 matrices re-encoded as Q8_0 at load: completions may differ slightly.
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::Stored => Self::Stored,
            Weights::Q8_0 => Self::Q8_0,
        }
    }
}

/// Input limits, slow-client timeouts and shutdown.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = ApiConfig::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most messages in one chat request (400 above).
    #[arg(long, default_value_t = ApiConfig::default().max_messages)]
    max_messages: usize,
    /// Most tokens one request may generate: a larger max_tokens gets 400; a chat request
    /// without max_tokens generates up to this many.
    #[arg(long, value_name = "TOKENS", default_value_t = ApiConfig::default().max_tokens_limit)]
    max_tokens_limit: usize,
    /// Seconds a client has to send a whole request head; also how long an idle keep-alive
    /// connection is kept. Slower clients are disconnected.
    #[arg(long, value_name = "SECS", default_value_t = ListenConfig::default().header_read_timeout.as_secs_f64())]
    header_read_timeout: f64,
    /// Seconds a client has to send a whole request body after its head (408 after).
    #[arg(long, value_name = "SECS", default_value_t = ListenConfig::default().body_read_timeout.as_secs_f64())]
    body_read_timeout: f64,
    /// Largest request head in bytes, request line included (431 above).
    #[arg(long, default_value_t = ListenConfig::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Most header fields in one request (431 above).
    #[arg(long, default_value_t = ListenConfig::default().max_headers)]
    max_headers: usize,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = ListenConfig::default().max_connections)]
    max_connections: usize,
    /// On SIGTERM or Ctrl-C: seconds in-flight requests and streams get to finish before the
    /// rest are ended (a stream with an error event); then the server exits 0.
    #[arg(long, value_name = "SECS", default_value_t = ListenConfig::default().shutdown_grace.as_secs_f64())]
    shutdown_grace: f64,
}

/// The output filter: off unless a deny word or list is given.
#[derive(clap::Args, Debug)]
struct FilterArgs {
    /// Withhold this word or phrase from completions, in any case, also inside longer
    /// words (repeatable). A completion ends before it with finish_reason "content_filter".
    #[arg(long, value_name = "WORD")]
    deny_word: Vec<String>,
    /// As --deny-word, for every line of FILE (blank lines are skipped).
    #[arg(long, value_name = "FILE")]
    deny_list: Option<PathBuf>,
}

fn seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} must be a positive number of seconds"))
}

impl LimitArgs {
    fn listen_config(&self) -> anyhow::Result<ListenConfig> {
        let counts = [
            self.max_body_bytes,
            self.max_messages,
            self.max_tokens_limit,
            self.max_header_bytes,
            self.max_headers,
            self.max_connections,
        ];
        if counts.contains(&0) {
            bail!(
                "--max-body-bytes, --max-messages, --max-tokens-limit, --max-header-bytes, \
                 --max-headers and --max-connections must be positive"
            );
        }
        Ok(ListenConfig {
            header_read_timeout: seconds("header-read-timeout", self.header_read_timeout)?,
            body_read_timeout: seconds("body-read-timeout", self.body_read_timeout)?,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_connections: self.max_connections,
            shutdown_grace: seconds("shutdown-grace", self.shutdown_grace)?,
        })
    }
}

impl FilterArgs {
    fn output_filter(self) -> anyhow::Result<Option<Arc<dyn OutputFilter>>> {
        let mut entries = self.deny_word;
        if let Some(path) = &self.deny_list {
            entries.extend(DenyList::read_entries(path)?);
        } else if entries.is_empty() {
            return Ok(None);
        }
        let list = DenyList::new(entries)?;
        // The entries are operator data, but a log is no place for them: only the count.
        tracing::info!(entries = list.len(), "output filter: deny list");
        Ok(Some(Arc::new(list)))
    }
}

/// The model of a measured image: the files in `dir`, pinned by the manifest baked into the
/// image (`pinned`), not by anything in `dir`.
fn image_source(pinned: &Path, dir: &Path) -> anyhow::Result<ModelSource> {
    let len = std::fs::metadata(pinned)
        .with_context(|| format!("reading the image's model manifest {}", pinned.display()))?
        .len();
    if len > MAX_MANIFEST_LEN as u64 {
        bail!(
            "{} is larger than a model manifest may be",
            pinned.display()
        );
    }
    let bytes = std::fs::read(pinned)
        .with_context(|| format!("reading the image's model manifest {}", pinned.display()))?;
    let manifest = ModelManifest::from_json(&bytes)
        .with_context(|| format!("the image's model manifest {}", pinned.display()))?;
    if !dir.is_dir() {
        bail!("--model {}: not a directory", dir.display());
    }
    tracing::info!(
        model = %manifest.id,
        manifest_digest = %hex::encode(manifest.digest()),
        "measured image: serving only the model its manifest pins"
    );
    Ok(ModelSource {
        dir: dir.to_owned(),
        manifest,
    })
}

/// The API key policy of `serve`: checked before anything slow starts.
fn serve_auth(db: Option<PathBuf>, no_auth: bool) -> anyhow::Result<Auth> {
    if no_auth {
        tracing::warn!(
            "authentication DISABLED (--no-auth): anyone who reaches the server may use it"
        );
        return Ok(Auth::Disabled);
    }
    let path = db_path(db)?;
    let hint = |path: &Path| {
        format!(
            "create a key with `veil-server keys create --name NAME --db {}`, or pass --no-auth \
             (local demos only)",
            path.display()
        )
    };
    if !path.exists() {
        bail!("no key database at {}: {}", path.display(), hint(&path));
    }
    let store = KeyStore::open(&path)
        .with_context(|| format!("opening the key database {}", path.display()))?;
    let active = store.active_keys()?;
    if active == 0 {
        bail!("no active API key in {}: {}", path.display(), hint(&path));
    }
    tracing::info!(db = %path.display(), active_keys = active, "API keys required");
    Ok(Auth::ApiKeys(Limiter::new(Arc::new(store))))
}

/// Binds `--listen` (an address or a host name, with a port); the listener is handed to the
/// runtime once the model is loaded.
fn bind(listen: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen).with_context(|| {
        format!("--listen {listen}: cannot listen there (HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080)")
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Watches SIGTERM and SIGINT (Ctrl-C) from now on; the future resolves on either. Called
/// before the server says it listens, so that no signal after that is missed.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    })
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let auth = serve_auth(args.db, args.no_auth)?;
    let stream_cadence_ms = args.stream_cadence_ms;
    let attestation_per_address = args.attestation_per_address;
    let listen_config = args.limits.listen_config()?;
    let output_filter = args.filter.output_filter()?;
    let tee = Tee::from(args.tee);
    let (attester, why) = confidential::attester(tee, &args.tee_options.options(tee)?)
        .context("choosing the TEE backend (use --tee simulated for a demo without hardware)")?;
    if tee == Tee::Simulated {
        tracing::warn!(
            "TEE platform is SIMULATED: no hardware protection, evidence is software-signed"
        );
    }
    tracing::info!(backend = attester.name(), reason = %why, "attestation backend");
    // A backend that cannot attest is found now, not by the first client: configfs-tsm's
    // report directory exists as soon as the `tsm` module is in, with or without a TEE
    // driver behind it (in a VM image the server then exits and the VM powers off).
    attester.attest(&[0u8; 64]).with_context(|| {
        format!(
            "choosing the TEE backend: {} ({why}) cannot produce evidence",
            attester.name()
        )
    })?;
    let gpus = crate::gpus::source(args.gpus)?;
    // The port before the model: a port already taken is found in a moment, not after
    // the model is fetched, verified and loaded. Connections wait until the server is up.
    let listener = bind(&args.listen)?;
    let metrics_listener = args
        .metrics_listen
        .as_deref()
        .map(|addr| {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("--metrics-listen {addr}: cannot listen there"))?;
            l.set_nonblocking(true)?;
            anyhow::Ok(l)
        })
        .transpose()?;
    let measured_image = args.image_model_manifest.is_some();
    let source = match (&args.image_model_manifest, args.model) {
        (Some(pinned), Some(dir)) => image_source(pinned, &dir)?,
        (_, model) => source(model)?,
    };
    let started = Instant::now();
    eprintln!(
        "veil-server: verifying and loading {} ...",
        source.manifest.id
    );
    if source.manifest.id == DEFAULT_MODEL_ID {
        eprintln!(
            "veil-server: note: {DEFAULT_MODEL_ID} is a 135M-parameter demo model; its answers \
             are often wrong. For real use serve a bigger one: --model DIR (a directory whose \
             manifest.json pins a Llama GGUF or safetensors model; see the README)."
        );
    }
    let device = veil_engine::device()?;
    tracing::info!(device = ?device, "compute device");
    let verified = source.verify().context("verifying the model")?;
    let model = LoadedModel::from_verified(&verified, &device, args.weights.into())
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
        max_batch: args.max_batch,
        queue_capacity: args.queue,
    };
    let api_config = ApiConfig {
        allow_plaintext: args.allow_plaintext,
        max_body_bytes: args.limits.max_body_bytes,
        max_messages: args.limits.max_messages,
        max_tokens_limit: args.limits.max_tokens_limit,
        output_filter,
    };
    if args.allow_plaintext {
        tracing::warn!("plaintext requests ALLOWED (--allow-plaintext)");
    }
    let claims = confidential::manifest_claims(&model.manifest.id, model.manifest.digest())
        .context("hashing the server binary")?
        .in_measured_image(measured_image);
    tracing::info!(
        binary_sha256 = %hex::encode(claims.binary_sha256),
        measured_image,
        "server manifest"
    );
    let (state, worker) = app_state_with_auth(model, engine, api_config, auth);
    worker.spawn().context("starting the engine thread")?;
    state
        .prepare_constraints()
        .context("starting the grammar thread")?;
    // The network side (HTTP, opening and sealing requests, attestation) runs at a lower
    // CPU priority than the engine: anyone can send sealed requests, and a flood of them must
    // slow its own decryption, not the generation of answers already admitted.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            let _ = rustix::process::setpriority_process(None, NETWORK_NICE);
        })
        .build()?;
    rt.block_on(async move {
        let shutdown = shutdown_signal()?;
        if let Some(l) = metrics_listener {
            let l = tokio::net::TcpListener::from_std(l)?;
            let addr = l.local_addr()?;
            eprintln!("veil-server: metrics on http://{addr}/metrics");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, veil_server::metrics::router()).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening");
        eprintln!("veil-server: listening on http://{addr}");
        let mut conf_config = ConfidentialConfig::default();
        conf_config.stream_cadence = Duration::from_millis(stream_cadence_ms);
        conf_config.attestation_per_address = attestation_per_address;
        if !attestation_per_address.is_on() {
            tracing::warn!("--attestation-per-address 0/0: no per-address attestation budget");
        }
        let mut conf = Confidential::new(attester, claims, conf_config);
        if let Some(gpus) = gpus {
            conf = conf.with_gpus(gpus);
        }
        let conf = Arc::new(conf);
        tokio::spawn(conf.clone().run_rotation());
        let drain = state.drain();
        let app = confidential::routes(conf, api::router(state));
        let stopped = listen::serve(listener, app, listen_config, shutdown, drain).await?;
        tracing::info!(?stopped, "stopped");
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attestation_budget_flag_is_parsed_or_refused_with_a_reason() {
        assert_eq!(
            parse_address_budget("16/60"),
            Ok(AddressBudget::new(16, 60))
        );
        assert!(!parse_address_budget("0/0").expect("off").is_on());
        for (bad, says) in [
            ("16", "BURST/PER_MINUTE"),
            ("x/60", "burst"),
            ("16/-1", "rate"),
            ("5/0", "both"),
            ("0/5", "both"),
        ] {
            let e = parse_address_budget(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
