//! `veil policy`: write a verifier policy (the TOML `veil verify --policy` and `veil chat
//! --policy` read) from a signed release manifest, or, trusting on first use, from a
//! saved attestation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Subcommand};
use veil_attest::release::{SignedManifest, public_key_from_hex};
use veil_attest::{Attestation, Evidence, ManifestClaims, Platform, Policy, Verdict, verify};

use crate::verify::{now_or_clock, parse_nonce, read_capped};

const EXAMPLES: &str = "\
Examples:
  veil policy from-manifest release.json --pubkey release.pub -o policy.toml
  veil attest https://veil.example -o attestation.json      # prints the nonce
  veil policy from-evidence attestation.json --trust-on-first-use --nonce <hex> -o policy.toml
  veil verify https://veil.example --policy policy.toml

from-manifest verifies the release's Ed25519 signature under --pubkey (the publisher's key,
from `veil-repro keygen`) before writing anything; the policy pins the release's launch
measurements, server binary and model manifest.
from-evidence pins what one saved attestation shows (platform, measurements, binary, model):
the reference values come from the server itself, so the policy is only as good as that
first contact. The evidence must verify (signatures, certificates, no debug) first.

Exit status: 0 when the policy was written, 1 when the input was refused (nothing written),
2 on a usage or I/O error.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    source: PolicySource,
}

#[derive(Debug, Subcommand)]
enum PolicySource {
    /// From a signed release manifest (`veil-repro manifest`), verified under --pubkey first.
    #[command(after_help = EXAMPLES)]
    FromManifest(FromManifestArgs),
    /// Trust on first use: pin what a saved attestation (`veil attest -o FILE`) shows.
    #[command(after_help = EXAMPLES)]
    FromEvidence(FromEvidenceArgs),
}

#[derive(Debug, Args)]
struct FromManifestArgs {
    /// The release manifest (canonical JSON with its Ed25519 signature).
    #[arg(value_name = "RELEASE.json")]
    manifest: PathBuf,
    /// The publisher's Ed25519 public key: 64 hex characters, as `veil-repro keygen` writes it.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// Where to write the policy (TOML).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct FromEvidenceArgs {
    /// A saved attestation (`veil attest -o FILE`) or a bare evidence bundle.
    #[arg(value_name = "BUNDLE.json")]
    bundle: PathBuf,
    /// Required: take the reference values from the evidence itself (no independent source).
    #[arg(long, required = true)]
    trust_on_first_use: bool,
    /// The nonce the attestation was fetched with (printed by `veil attest`): also checks that
    /// the evidence binds the gateway key and the manifest before they are pinned.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Accept evidence from the simulated platform (software-signed, no hardware protection);
    /// the policy then pins the simulated measurement and sets `allow_simulated = true`.
    #[arg(long)]
    allow_simulated: bool,
    /// Accept an SEV-SNP TCB below AMD's minimum fixed TCB; the policy then says
    /// `allow_outdated_tcb = true` (a warning in every verdict) and pins the reported TCB as
    /// its minimum, so that nothing older is accepted.
    #[arg(long)]
    allow_outdated_tcb: bool,
    /// Time at which to judge the evidence (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Where to write the policy (TOML).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub(crate) fn run(args: &PolicyArgs) -> Result<ExitCode> {
    match &args.source {
        PolicySource::FromManifest(a) => from_manifest(a),
        PolicySource::FromEvidence(a) => from_evidence(a),
    }
}

/// Prints why the input was refused; nothing is written.
fn refuse(reason: &str) -> ExitCode {
    eprintln!("veil: rejected: {reason}; no policy written");
    ExitCode::from(1)
}

fn from_manifest(args: &FromManifestArgs) -> Result<ExitCode> {
    let key_text = std::fs::read_to_string(&args.pubkey)
        .with_context(|| format!("cannot read {}", args.pubkey.display()))?;
    let key = public_key_from_hex(&key_text)
        .with_context(|| format!("{} is not an Ed25519 public key", args.pubkey.display()))?;
    let file = read_capped(&args.manifest)?;
    let signed = match SignedManifest::verify(&file, &key) {
        Ok(s) => s,
        Err(e) => {
            return Ok(refuse(&format!(
                "{}: {e} (key {})",
                args.manifest.display(),
                hex::encode(key.to_bytes())
            )));
        }
    };
    let m = &signed.manifest;
    if m.reference_values.snp_measurements.is_empty() && m.reference_values.tdx.is_none() {
        return Ok(refuse(&format!(
            "{} names no launch measurement (SEV-SNP or TDX): a policy from it would accept \
             any launch image",
            args.manifest.display()
        )));
    }
    let text = format!(
        "# Release manifest {} (sha256 {}),\n# signature verified under Ed25519 key {}.\n{}",
        args.manifest
            .display()
            .to_string()
            .replace(['\n', '\r'], " "),
        hex::encode(signed.digest()?),
        hex::encode(key.to_bytes()),
        m.to_policy_toml()
    );
    write_policy(&args.output, &text)?;
    eprintln!(
        "veil: release {} verified; wrote {} ({} SEV-SNP measurement(s){}, binary {}, model {})",
        m.source_commit.escape_debug(),
        args.output.display(),
        m.reference_values.snp_measurements.len(),
        if m.reference_values.tdx.is_some() {
            ", TDX MRTD/RTMR1/RTMR2"
        } else {
            ""
        },
        m.binary_sha256,
        m.model_manifest_digest
    );
    Ok(ExitCode::SUCCESS)
}

const TOFU_WARNING: &str = "veil: warning: trust on first use: the reference values are taken \
from the evidence itself, not from an independent source; the policy is only as good as that \
first contact (if the server was already compromised, so is the policy)";

fn from_evidence(args: &FromEvidenceArgs) -> Result<ExitCode> {
    eprintln!("{TOFU_WARNING}");
    let bytes = read_capped(&args.bundle)?;
    let (evidence, attestation) = match Attestation::from_json(&bytes) {
        Ok(a) => (a.evidence.clone(), Some(a)),
        Err(_) => (
            Evidence::from_json(&bytes).with_context(|| format!("{}", args.bundle.display()))?,
            None,
        ),
    };
    if evidence.platform() == Platform::Simulated && !args.allow_simulated {
        return Ok(refuse(
            "the evidence is from the simulated platform (software-signed, no hardware \
             protection); pass --allow-simulated to pin it anyway",
        ));
    }
    let now = now_or_clock(args.now.as_deref())?;
    let policy = Policy::default()
        .allow_simulated(args.allow_simulated)
        .allow_outdated_tcb(args.allow_outdated_tcb);
    let nonce = args.nonce.as_deref().map(parse_nonce).transpose()?;
    let outcome = match (&attestation, &nonce) {
        (Some(a), Some(n)) => a.verify(&policy, n, now),
        (None, Some(_)) => {
            return Err(anyhow!(
                "--nonce needs a saved attestation (`veil attest -o FILE`), not a bare evidence bundle"
            ));
        }
        (_, None) => verify(&evidence, &policy, now),
    };
    let verdict = match outcome {
        Ok(v) => v,
        Err(e) => return Ok(refuse(&format!("{}: {e}", e.check()))),
    };
    let manifest = attestation.as_ref().map(|a| &a.manifest);
    match (manifest, &nonce) {
        (None, _) => eprintln!(
            "veil: warning: a bare evidence bundle has no manifest: binary and model are not pinned"
        ),
        (Some(_), None) => eprintln!(
            "veil: warning: without --nonce, the manifest (binary, model) is pinned as the file \
             states it: its binding into the evidence was not checked"
        ),
        (Some(_), Some(_)) => {}
    }
    let simulated_key = match &evidence {
        Evidence::Simulated(s) => Some(s.public_key.as_slice()),
        _ => None,
    };
    let text = pinned_policy(
        &verdict,
        manifest,
        simulated_key,
        args.allow_outdated_tcb,
        &args.bundle,
        now.to_rfc3339(),
    );
    write_policy(&args.output, &text)?;
    eprintln!(
        "veil: wrote {} pinning the {} evidence of {}",
        args.output.display(),
        verdict.platform,
        args.bundle.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The launch registers a TOFU policy pins: every one a `[[reference]]` can hold.
const PINNED_REGISTERS: [&str; 6] = ["measurement", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"];

/// A policy that accepts the platform, launch registers, processor product, server binary
/// and model this verdict and manifest show, with the strict defaults for the rest.
fn pinned_policy(
    verdict: &Verdict,
    manifest: Option<&ManifestClaims>,
    simulated_key: Option<&[u8]>,
    allow_outdated_tcb: bool,
    source: &Path,
    when: String,
) -> String {
    let mut out = format!(
        "# Trust on first use: reference values taken from the evidence in {}\n\
         # itself, verified at {when}. Only as good as that first contact.\n",
        source.display().to_string().replace(['\n', '\r'], " ")
    );
    if allow_outdated_tcb && verdict.platform == Platform::SevSnp {
        out.push_str("\nallow_outdated_tcb = true\n");
    }
    if verdict.platform == Platform::Simulated {
        out.push_str(
            "\n# SIMULATED platform (--allow-simulated): software-signed, NO hardware protection.\n\
             allow_simulated = true\n",
        );
    }
    out.push_str(&format!(
        "\n[[reference]]\nplatform = \"{}\"\n",
        verdict.platform
    ));
    for m in &verdict.measurements {
        if PINNED_REGISTERS.contains(&m.register) {
            out.push_str(&format!("{} = \"{}\"\n", m.register, hex::encode(&m.value)));
        }
    }
    if let Some(key) = simulated_key {
        // Simulated evidence carries its own key: without pinning it, anyone could sign the
        // pinned measurement with a key of their own.
        out.push_str(&format!("simulated_key = \"{}\"\n", hex::encode(key)));
    }
    if let (Platform::SevSnp, Some(product)) = (verdict.platform, &verdict.product) {
        out.push_str(&format!("\n[snp]\nproducts = [\"{product}\"]\n"));
    }
    if let (
        true,
        veil_attest::Tcb::Snp {
            bootloader,
            tee,
            snp,
            microcode,
            fmc,
        },
    ) = (allow_outdated_tcb, &verdict.tcb)
    {
        out.push_str(&format!(
            "\n# --allow-outdated-tcb: AMD's minimum TCB is NOT enforced; nothing older than\n\
             # the TCB seen at first use is accepted.\n[tcb]\nbootloader = {bootloader}\n\
             tee = {tee}\nsnp = {snp}\nmicrocode = {microcode}\n{}",
            fmc.map(|f| format!("fmc = {f}\n")).unwrap_or_default()
        ));
    }
    if let Some(m) = manifest {
        out.push_str(&format!(
            "\n[binary]\nsha256 = \"{}\"\n\n# model {}\n[model]\nsha256 = \"{}\"\n",
            hex::encode(m.binary_sha256),
            m.model_id.escape_debug(),
            hex::encode(m.model_digest)
        ));
    }
    out
}

/// Checks that `text` is a policy `veil verify` reads, then writes it next to `path` and
/// renames it into place, so a failure never leaves a partial policy behind.
fn write_policy(path: &Path, text: &str) -> Result<()> {
    Policy::from_toml(text).context("generated policy does not parse (a bug)")?;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
