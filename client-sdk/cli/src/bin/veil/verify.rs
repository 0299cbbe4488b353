//! `veil verify`: evidence from files, the verdict as a table or one JSON object.

mod gpu;

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::report::{printable, tcb_words};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use veil_attest::{
    Attestation, Audit, Check, CheckName, Evidence, MAX_BUNDLE_LEN, Policy, SnpCerts, SnpEvidence,
    TdxEvidence, UnixTime, VerifyError, audit, snp::read_crl, snp::split_certificates,
};

const EXAMPLES: &str = "\
Examples:
  veil verify https://veil.example --policy policy.toml
  veil verify http://127.0.0.1:8080 --allow-simulated --json
  veil verify --evidence attestation.json --nonce 00..(64 hex)..00 --allow-simulated
  veil verify snp --report report.bin --cert vcek.der
  veil verify snp --report report.bin --cert vcek.pem --cert ask_ark.pem --now 2026-11-25T00:00:00Z
  veil verify snp --report report.bin --cert vcek.der --crl milan.crl --policy policy.toml
  veil verify tdx --quote quote.bin --collateral collateral.json --policy policy.toml --json
  veil verify --evidence bundle.json --allow-simulated
  veil verify gpu --report report.hex --certs chain.pem --nonce 93..(64 hex)..cb --json

Exit status: 0 when every check holds, 1 when the evidence is rejected, 2 on a usage or I/O error.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct VerifyArgs {
    #[command(subcommand)]
    source: Option<Source>,
    /// A live server to attest (its `/v1/attestation`), with a fresh nonce.
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// The 32-byte nonce (64 hex characters): for a live server instead of a fresh one; for
    /// a saved attestation (`veil attest` output), the nonce it was fetched with.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// A saved evidence bundle (JSON), as `veil attest` writes it.
    #[arg(long, value_name = "BUNDLE.json")]
    evidence: Option<PathBuf>,
    /// Time at which to judge the evidence (RFC 3339); default: now.
    #[arg(long, global = true, value_name = "RFC3339")]
    now: Option<String>,
    /// Policy of reference values (TOML, or JSON if the name ends in .json).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Accept a debuggable guest (its host can read its memory).
    #[arg(long, global = true)]
    allow_debug: bool,
    /// Accept software-signed evidence from the simulated platform (no hardware protection).
    #[arg(long, global = true)]
    allow_simulated: bool,
    /// Accept an SEV-SNP TCB below AMD's minimum fixed TCB (reported as a warning).
    #[arg(long, global = true)]
    allow_outdated_tcb: bool,
    /// AMD's ARK-signed CRL for SEV-SNP evidence (DER as the KDS serves it, or PEM),
    /// checked in place of any CRL the evidence carries.
    #[arg(long, global = true, value_name = "FILE")]
    crl: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Source {
    /// An AMD SEV-SNP attestation report and its certificates.
    #[command(after_help = EXAMPLES)]
    Snp {
        /// The 1184-byte attestation report.
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// VCEK/VLEK, ASK/ASVK, ARK: PEM or DER, any order, a PEM file may hold several.
        /// Pinned AMD roots are used for what is not given.
        #[arg(long = "cert", value_name = "FILE")]
        certs: Vec<PathBuf>,
    },
    /// An Intel TDX DCAP quote and its collateral.
    #[command(after_help = EXAMPLES)]
    Tdx {
        /// The quote (v4 or v5).
        #[arg(long, value_name = "FILE")]
        quote: PathBuf,
        /// PCS collateral as dcap-qvl QuoteCollateralV3 JSON.
        #[arg(long, value_name = "FILE")]
        collateral: PathBuf,
    },
    /// An NVIDIA GPU's SPDM measurement report and certificate chain (confidential computing).
    #[command(after_help = EXAMPLES)]
    Gpu {
        /// The SPDM GET_MEASUREMENTS request + response: hex text or raw bytes.
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// The certificate chain, PEM, leaf first (the pinned NVIDIA root may be left out).
        #[arg(long, value_name = "FILE")]
        certs: PathBuf,
        /// The nonce the report must answer (64 hex characters); without it the nonce is
        /// not checked (a warning: the report may be a replay).
        #[arg(long, value_name = "HEX")]
        nonce: Option<String>,
    },
}

pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_BUNDLE_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() > MAX_BUNDLE_LEN {
        bail!("{} is larger than {MAX_BUNDLE_LEN} bytes", path.display());
    }
    Ok(buf)
}

fn load_evidence(args: &VerifyArgs) -> Result<Evidence> {
    Ok(match (&args.source, &args.evidence) {
        (None, Some(path)) if args.nonce.is_none() => {
            let bytes = read_capped(path)?;
            // A saved attestation (`veil attest`) or a bare evidence bundle.
            match Attestation::from_json(&bytes) {
                Ok(a) => a.evidence,
                Err(_) => {
                    Evidence::from_json(&bytes).with_context(|| format!("{}", path.display()))?
                }
            }
        }
        (Some(_), Some(_)) => bail!("give either --evidence or a platform (snp/tdx), not both"),
        (None, None) => bail!(
            "nothing to verify: give --evidence FILE, or `snp`/`tdx` with their files (see --help)"
        ),
        (None, Some(path)) => Evidence::from_json(&read_capped(path)?)
            .with_context(|| format!("{}", path.display()))?,
        (Some(Source::Snp { report, certs }), None) => {
            let mut ders = Vec::new();
            for c in certs {
                ders.extend(
                    split_certificates(&read_capped(c)?)
                        .with_context(|| format!("{}", c.display()))?,
                );
            }
            Evidence::SevSnp(SnpEvidence::new(
                read_capped(report)?,
                SnpCerts::classify(ders)?,
            ))
        }
        (Some(Source::Tdx { quote, collateral }), None) => Evidence::Tdx(TdxEvidence::new(
            read_capped(quote)?,
            &read_capped(collateral)?,
        )?),
        (Some(Source::Gpu { .. }), None) => bail!("GPU evidence is verified by `veil verify gpu`"),
    })
}

/// The bound gateway keys, e.g. `gateway keys 1 (X-Wing), 2 (X25519)`.
fn bound_keys(configs: &[veil_protocol::KeyConfig]) -> String {
    let keys: Vec<String> = configs
        .iter()
        .map(|c| format!("{} ({})", c.key_id(), c.kem()))
        .collect();
    match keys.len() {
        0 => "no usable gateway key".to_owned(),
        1 => format!("gateway key {}", keys[0]),
        _ => format!("gateway keys {}", keys.join(", ")),
    }
}

/// The loosening flags every command that judges evidence shares (each one an explicit,
/// loudly named opt-in).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Loosen {
    pub(crate) allow_simulated: bool,
    pub(crate) allow_outdated_tcb: bool,
    pub(crate) accept_any_measurement: bool,
}

pub(crate) fn load_policy_file(path: Option<&Path>, loosen: Loosen) -> Result<Policy> {
    let policy = match path {
        None => Policy::default(),
        Some(path) => {
            let text = String::from_utf8(read_capped(path)?).context("policy is not UTF-8")?;
            if path.extension().is_some_and(|e| e == "json") {
                Policy::from_json(&text)?
            } else {
                Policy::from_toml(&text)?
            }
        }
    };
    let simulated = policy.allow_simulated || loosen.allow_simulated;
    let outdated = policy.allow_outdated_tcb || loosen.allow_outdated_tcb;
    let any = policy.accept_any_measurement || loosen.accept_any_measurement;
    Ok(policy
        .allow_simulated(simulated)
        .allow_outdated_tcb(outdated)
        .accept_any_measurement(any))
}

/// The policy options of the commands that send prompts (`proxy`, `chat`).
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectPolicy {
    /// Policy of reference values (required unless --allow-simulated).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Accept the simulated platform (no hardware protection). Without --policy, only the
    /// simulated platform: a hardware server is refused as unpinned.
    #[arg(long)]
    allow_simulated: bool,
    /// Accept an SEV-SNP TCB below AMD's minimum fixed TCB (a warning on every connect).
    #[arg(long)]
    allow_outdated_tcb: bool,
    /// Accept a policy that leaves launch registers unpinned (a warning on every connect).
    #[arg(long)]
    accept_any_measurement: bool,
    /// Refuse a server that offers no post-quantum key exchange (X-Wing); without it X-Wing
    /// is still chosen whenever offered (policy key `require_post_quantum`).
    #[arg(long)]
    require_pq: bool,
}

impl ConnectPolicy {
    /// Loads the policy and refuses one that pins nothing, before any network traffic.
    pub(crate) fn load(&self) -> Result<Policy> {
        if self.policy.is_none() && !self.allow_simulated {
            bail!("a policy is required (--policy FILE), unless --allow-simulated");
        }
        let policy = load_policy_file(
            self.policy.as_deref(),
            Loosen {
                allow_simulated: self.allow_simulated,
                allow_outdated_tcb: self.allow_outdated_tcb,
                accept_any_measurement: self.accept_any_measurement,
            },
        )?;
        let pq = policy.require_post_quantum || self.require_pq;
        let policy = policy.require_post_quantum(pq);
        if let Err(e) = policy.check_pinned() {
            bail!("{}: {e}", e.check());
        }
        if policy.accept_any_measurement {
            eprintln!(
                "veil: warning: --accept-any-measurement: any launch image is accepted where \
                 the policy pins none"
            );
        }
        Ok(policy)
    }
}

fn load_policy(args: &VerifyArgs) -> Result<Policy> {
    let policy = load_policy_file(
        args.policy.as_deref(),
        Loosen {
            allow_simulated: args.allow_simulated,
            allow_outdated_tcb: args.allow_outdated_tcb,
            accept_any_measurement: false,
        },
    )?;
    let debug = policy.allow_debug || args.allow_debug;
    Ok(policy.allow_debug(debug))
}

/// `--now` if given (RFC 3339), else the system clock.
pub(crate) fn now_or_clock(now: Option<&str>) -> Result<UnixTime> {
    match now {
        Some(s) => Ok(UnixTime::parse_rfc3339(s)?),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("system clock before 1970")?
                .as_secs();
            Ok(UnixTime(secs))
        }
    }
}

pub(crate) fn parse_nonce(hex_str: &str) -> Result<[u8; 32]> {
    let v = hex::decode(hex_str).context("--nonce is not hex")?;
    <[u8; 32]>::try_from(v)
        .map_err(|_| anyhow::anyhow!("--nonce must be 32 bytes (64 hex characters)"))
}

/// A saved or live attestation: the evidence, then the binding of key, nonce and manifest.
fn audit_attestation(a: &Attestation, policy: &Policy, nonce: &[u8; 32], now: UnixTime) -> Audit {
    // The CPU evidence first (REPORT_DATA also binds any GPU evidence); `a.verify` below
    // then checks the GPUs against `[gpu]`.
    let mut cpu_policy = policy.clone();
    cpu_policy.gpu = None;
    let mut result = match a.expected_report_data(nonce) {
        Ok(rd) => audit(&a.evidence, &cpu_policy.expect_report_data(rd.0), now),
        Err(e) => audit(&a.evidence, &cpu_policy, now).fail(e),
    };
    if result.outcome.is_ok() {
        // An evidence file (`veil-server evidence`) binds no gateway key: empty is allowed.
        let key = if a.key_config.is_empty() {
            Ok(None)
        } else {
            veil_protocol::KeyConfig::decode_list(&a.key_config).map(Some)
        };
        let verified = a.verify(policy, nonce, now);
        let gpu_verdict = verified
            .as_ref()
            .ok()
            .map(|v| (v.gpus.clone(), v.warnings.clone()));
        match (verified, key) {
            (Err(e), _) => result = result.fail(e),
            (Ok(_), Err(e)) => {
                result = result.fail(VerifyError::Malformed(format!("key configuration: {e}")));
            }
            (Ok(_), Ok(k)) => result.checks.push(Check {
                name: CheckName::Manifest,
                ok: true,
                detail: format!(
                    "binary {} model {} ({}){}; {} bound with the nonce",
                    hex::encode(a.manifest.binary_sha256),
                    hex::encode(a.manifest.model_digest),
                    printable(&a.manifest.model_id),
                    if a.manifest.measured_image {
                        ", from a measured image"
                    } else {
                        ", NOT from a measured image"
                    },
                    match k {
                        Some(k) => bound_keys(&k),
                        None => "no gateway key (an evidence file)".to_owned(),
                    }
                ),
            }),
        }
        if let (Ok(v), Some((gpus, warnings))) = (&mut result.outcome, gpu_verdict) {
            for (i, g) in gpus.iter().enumerate() {
                result.checks.push(Check {
                    name: CheckName::Gpu,
                    ok: true,
                    detail: format!(
                        "gpu {i}: {} driver {} VBIOS {}, {} measurements ({} pinned), bound",
                        printable(&g.gpu),
                        printable(g.driver_version.as_deref().unwrap_or("none")),
                        printable(g.vbios_version.as_deref().unwrap_or("none")),
                        g.measurements.len(),
                        g.pinned_indices.len()
                    ),
                });
            }
            v.gpus = gpus;
            v.warnings = warnings;
        }
    }
    result
}

trait Fail {
    fn fail(self, e: VerifyError) -> Self;
}

impl Fail for Audit {
    fn fail(mut self, e: VerifyError) -> Self {
        self.checks.push(Check {
            name: e.check(),
            ok: false,
            detail: e.to_string(),
        });
        self.outcome = Err(e);
        self
    }
}

fn attestation_source(args: &VerifyArgs) -> Result<Option<(Attestation, [u8; 32])>> {
    if let Some(url) = &args.url {
        if args.source.is_some() || args.evidence.is_some() {
            bail!("give either a URL, --evidence or a platform (snp/tdx)");
        }
        let nonce = match &args.nonce {
            Some(h) => parse_nonce(h)?,
            None => veil_client::fresh_nonce(),
        };
        eprintln!("veil: attesting {url} …");
        let rt = tokio::runtime::Runtime::new()?;
        let a = rt.block_on(veil_client::fetch_attestation(url, &nonce))?;
        return Ok(Some((a, nonce)));
    }
    if let (Some(path), Some(h), None) = (&args.evidence, &args.nonce, &args.source) {
        let a = Attestation::from_json(&read_capped(path)?)
            .with_context(|| format!("{} is not a saved attestation", path.display()))?;
        return Ok(Some((a, parse_nonce(h)?)));
    }
    // A file that records the nonce it was requested with (`veil-server evidence`): its
    // REPORT_DATA must be the transcript over that nonce and its manifest.
    if let (Some(path), None, None) = (&args.evidence, &args.nonce, &args.source)
        && let Ok(a) = Attestation::from_json(&read_capped(path)?)
        && let Some(nonce) = a.nonce
    {
        return Ok(Some((a, nonce)));
    }
    Ok(None)
}

/// Puts the `--crl` file into SEV-SNP evidence (replacing a CRL it carries).
fn add_crl(evidence: &mut Evidence, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let Evidence::SevSnp(ev) = evidence else {
        bail!(
            "--crl is for SEV-SNP evidence; this is {}",
            evidence.platform()
        );
    };
    ev.certs.crl =
        Some(read_crl(&read_capped(path)?).with_context(|| format!("{}", path.display()))?);
    Ok(())
}

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    if let Some(Source::Gpu {
        report,
        certs,
        nonce,
    }) = &args.source
    {
        if args.url.is_some() || args.evidence.is_some() || args.nonce.is_some() {
            bail!("`veil verify gpu` takes --report, --certs and its own --nonce only");
        }
        return gpu::run(args, report, certs, nonce.as_deref());
    }
    let policy = load_policy(args)?;
    let now = now_or_clock(args.now.as_deref())?;
    let (evidence, result, attested) = match attestation_source(args)? {
        Some((mut a, nonce)) => {
            add_crl(&mut a.evidence, args.crl.as_deref())?;
            let result = audit_attestation(&a, &policy, &nonce, now);
            (a.evidence.clone(), result, Some((a, nonce)))
        }
        None => {
            let mut evidence = load_evidence(args)?;
            add_crl(&mut evidence, args.crl.as_deref())?;
            let result = audit(&evidence, &policy, now);
            (evidence, result, None)
        }
    };
    if args.json {
        let mut v = to_json(&evidence, &result, now);
        if let (Some((a, nonce)), Some(obj)) = (&attested, v.as_object_mut()) {
            obj.insert("manifest".into(), serde_json::to_value(&a.manifest)?);
            obj.insert("nonce".into(), json!(hex::encode(nonce)));
            obj.insert("key_config".into(), json!(hex::encode(&a.key_config)));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_table(&evidence, &result, now);
        if let Some((a, nonce)) = &attested {
            println!();
            println!("  {:<12} {}", "model", printable(&a.manifest.model_id));
            println!(
                "  {:<12} {}",
                "binary",
                hex::encode(a.manifest.binary_sha256)
            );
            println!(
                "  {:<12} {}",
                "model_digest",
                hex::encode(a.manifest.model_digest)
            );
            println!(
                "  {:<12} {}",
                "image",
                if a.manifest.measured_image {
                    "measured (the server runs from the initrd the launch measurement covers)"
                } else {
                    "NOT measured (the server runs outside a measured image: binary and model \
                     are its own claims)"
                }
            );
            println!("  {:<12} {}", "key_config", hex::encode(&a.key_config));
            println!("  {:<12} {}", "nonce", hex::encode(nonce));
        }
    }
    Ok(crate::report::verdict_exit(&result.outcome))
}

fn to_json(evidence: &Evidence, a: &Audit, now: UnixTime) -> serde_json::Value {
    let v = a.outcome.as_ref().ok();
    json!({
        "ok": a.outcome.is_ok(),
        "platform": evidence.platform(),
        "simulated": evidence.platform() == veil_attest::Platform::Simulated,
        "now": now.to_rfc3339(),
        "product": v.and_then(|v| v.product.clone()),
        "measurement": v.and_then(|v| v.measurements.first()).map(|m| hex::encode(&m.value)),
        "measurements": v.map(|v| v.measurements.iter().map(|m| (m.register.to_owned(), json!(hex::encode(&m.value)))).collect::<serde_json::Map<_, _>>()),
        "report_data": v.map(|v| hex::encode(v.report_data)),
        "tcb": v.map(|v| &v.tcb),
        "chip_id": v.and_then(|v| v.chip_id.clone()),
        "gpus": v.map(|v| &v.gpus),
        "warnings": v.map(|v| v.warnings.clone()).unwrap_or_default(),
        "error": a.outcome.as_ref().err().map(ToString::to_string),
        "checks": a.checks,
    })
}

fn print_table(evidence: &Evidence, a: &Audit, now: UnixTime) {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |ok: bool, s: &str| match (color, ok) {
        (false, _) => s.to_owned(),
        (true, true) => format!("\x1b[32m{s}\x1b[0m"),
        (true, false) => format!("\x1b[1;31m{s}\x1b[0m"),
    };
    let verdict = if a.outcome.is_ok() {
        "ACCEPTED"
    } else {
        "REJECTED"
    };
    println!(
        "{}  platform {}  at {}",
        paint(a.outcome.is_ok(), verdict),
        evidence.platform(),
        now.to_rfc3339()
    );
    if let Ok(v) = &a.outcome {
        if let Some(p) = &v.product {
            println!("  product      {p}");
        }
        for m in &v.measurements {
            println!("  {:<12} {}", m.register, hex::encode(&m.value));
        }
        println!("  {:<12} {}", "report_data", hex::encode(v.report_data));
        println!("  {:<12} {}", "tcb", tcb_words(&v.tcb));
        for w in &v.warnings {
            println!("  {} {}", paint(false, "warning:"), printable(w));
        }
    }
    println!();
    println!("  {:<16} {:<6} DETAIL", "CHECK", "RESULT");
    for c in &a.checks {
        let r = if c.ok { "ok" } else { "FAIL" };
        println!(
            "  {:<16} {} {}",
            c.name.as_str(),
            paint(c.ok, &format!("{r:<6}")),
            printable(&c.detail)
        );
    }
}
