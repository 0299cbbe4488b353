//! `veil verify`: evidence from files, the verdict as a table or one JSON object.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use veil_attest::{
    Audit, Evidence, MAX_BUNDLE_LEN, Policy, SnpCerts, SnpEvidence, TdxEvidence, UnixTime, audit,
    snp::split_certificates,
};

const EXAMPLES: &str = "\
Examples:
  veil verify snp --report report.bin --cert vcek.der
  veil verify snp --report report.bin --cert vcek.pem --cert ask_ark.pem --now 2026-11-25T00:00:00Z
  veil verify tdx --quote quote.bin --collateral collateral.json --policy policy.toml --json
  veil verify --evidence bundle.json --allow-simulated

Exit status: 0 when every check holds, 1 when the evidence is rejected, 2 on a usage or I/O error.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct VerifyArgs {
    #[command(subcommand)]
    source: Option<Source>,
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
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
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
    })
}

fn load_policy(args: &VerifyArgs) -> Result<Policy> {
    let policy = match &args.policy {
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
    let (debug, simulated) = (
        policy.allow_debug || args.allow_debug,
        policy.allow_simulated || args.allow_simulated,
    );
    Ok(policy.allow_debug(debug).allow_simulated(simulated))
}

fn now(args: &VerifyArgs) -> Result<UnixTime> {
    match &args.now {
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

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let evidence = load_evidence(args)?;
    let policy = load_policy(args)?;
    let now = now(args)?;
    let result = audit(&evidence, &policy, now);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&evidence, &result, now))?
        );
    } else {
        print_table(&evidence, &result, now);
    }
    Ok(match &result.outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veil: rejected: {}: {e}", e.check());
            ExitCode::from(1)
        }
    })
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
        println!(
            "  {:<12} {}",
            "tcb",
            serde_json::to_string(&v.tcb).unwrap_or_default()
        );
        for w in &v.warnings {
            println!("  {} {w}", paint(false, "warning:"));
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
            c.detail
        );
    }
}
