//! `veil verify gpu`: an NVIDIA GPU's SPDM measurement report and certificate chain, checked
//! by `veil_attest::nvidia::verify_gpu`; exit status and JSON as for the other platforms.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde_json::json;
use veil_attest::UnixTime;
use veil_attest::nvidia::{GpuAudit, GpuEvidence, spdm, verify_gpu};

use super::{VerifyArgs, load_policy, now_or_clock, parse_nonce, printable, read_capped};

pub(super) fn run(
    args: &VerifyArgs,
    report: &Path,
    certs: &Path,
    nonce: Option<&str>,
) -> Result<ExitCode> {
    let gpu_policy = load_policy(args)?.gpu.unwrap_or_default();
    let now = now_or_clock(args.now.as_deref())?;
    let nonce = nonce.map(parse_nonce).transpose()?;
    let ev = GpuEvidence::from_files(&read_capped(report)?, &read_capped(certs)?)
        .with_context(|| format!("{} / {}", report.display(), certs.display()))?;
    let audit = verify_gpu(&ev, &gpu_policy, nonce.as_ref(), now);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&ev, &audit, now))?
        );
    } else {
        print_table(&ev, &audit, now);
    }
    Ok(crate::report::verdict_exit(&audit.outcome))
}

/// The verdict, and what the report claims even when it is rejected (marked unverified).
fn to_json(ev: &GpuEvidence, a: &GpuAudit, now: UnixTime) -> serde_json::Value {
    let parsed = spdm::parse(&ev.report).ok();
    let v = a.outcome.as_ref().ok();
    json!({
        "ok": a.outcome.is_ok(),
        "platform": "nvidia-gpu",
        "now": now.to_rfc3339(),
        "gpu": v.map(|v| v.gpu.clone()),
        "driver_version": parsed.as_ref().and_then(spdm::SpdmReport::driver_version),
        "vbios_version": parsed.as_ref().and_then(spdm::SpdmReport::vbios_version),
        "nonce": parsed.as_ref().map(|p| hex::encode(p.nonce)),
        "fwid": parsed.as_ref().and_then(|p| p.fwid()).map(hex::encode),
        "measurement_indices": parsed.as_ref().map(|p| p.blocks.iter().map(|b| b.index).collect::<Vec<_>>()),
        "measurements": parsed.as_ref().map(|p| p.blocks.iter().map(|b| (b.index.to_string(), json!(hex::encode(&b.value)))).collect::<serde_json::Map<_, _>>()),
        "pinned_indices": v.map(|v| v.pinned_indices.clone()),
        "certificates": v.map(|v| v.certificates.clone()),
        "verified": a.outcome.is_ok(),
        "warnings": v.map(|v| v.warnings.clone()).unwrap_or_default(),
        "error": a.outcome.as_ref().err().map(ToString::to_string),
        "checks": a.checks,
    })
}

fn print_table(ev: &GpuEvidence, a: &GpuAudit, now: UnixTime) {
    let verdict = if a.outcome.is_ok() {
        "ACCEPTED"
    } else {
        "REJECTED"
    };
    println!("{verdict}  platform nvidia-gpu  at {}", now.to_rfc3339());
    if let Ok(v) = &a.outcome {
        println!("  {:<14} {}", "gpu", printable(&v.gpu));
        println!(
            "  {:<14} {}",
            "driver",
            v.driver_version.as_deref().map_or("none".into(), printable)
        );
        println!(
            "  {:<14} {}",
            "vbios",
            v.vbios_version.as_deref().map_or("none".into(), printable)
        );
        println!("  {:<14} {}", "fwid", hex::encode(&v.fwid));
        println!("  {:<14} {}", "nonce", hex::encode(v.nonce));
        let indices: Vec<String> = v.measurements.iter().map(|m| m.index.to_string()).collect();
        println!("  {:<14} {}", "measurements", indices.join(" "));
        for w in &v.warnings {
            println!("  warning: {}", printable(w));
        }
    } else if let Ok(p) = spdm::parse(&ev.report) {
        println!(
            "  claims (unverified): driver {}, VBIOS {}, {} measurements",
            p.driver_version()
                .as_deref()
                .map_or("none".into(), printable),
            p.vbios_version().unwrap_or_else(|| "none".into()),
            p.blocks.len()
        );
    }
    println!();
    println!("  {:<16} {:<6} DETAIL", "CHECK", "RESULT");
    for c in &a.checks {
        println!(
            "  {:<16} {:<6} {}",
            c.name.as_str(),
            if c.ok { "ok" } else { "FAIL" },
            printable(&c.detail)
        );
    }
}
