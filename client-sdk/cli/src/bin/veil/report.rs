//! What the commands print about a server: its strings made safe for a terminal, the TCB in
//! words, and one way of reporting a failed connection for every command.

use std::process::ExitCode;

use veil_attest::{Tcb, VerifyError};

/// A server-supplied string made safe for a terminal: control characters (ESC, CR, BEL,
/// C1 controls, ...) become `\u{..}` escapes, so a network attacker cannot move the cursor,
/// rewrite a REJECTED line or set the window title. Printable text is kept as is.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The platform's TCB as a person reads it (the JSON output keeps the structured form).
pub(crate) fn tcb_words(tcb: &Tcb) -> String {
    match tcb {
        Tcb::Snp {
            bootloader,
            tee,
            snp,
            microcode,
            fmc,
        } => {
            let fmc = fmc.map(|f| format!(", fmc {f}")).unwrap_or_default();
            format!("bootloader {bootloader}, tee {tee}, snp {snp}, microcode {microcode}{fmc}")
        }
        Tcb::Tdx {
            status,
            advisory_ids,
            tee_tcb_svn,
        } => {
            let advisories = if advisory_ids.is_empty() {
                "no advisories".to_owned()
            } else {
                format!("advisories {}", advisory_ids.join(", "))
            };
            printable(&format!(
                "{status} (tee_tcb_svn {tee_tcb_svn}, {advisories})"
            ))
        }
        Tcb::None => "none (the simulated platform has no hardware TCB)".to_owned(),
        other => printable(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// Reports a failed connect (`veil chat`, `veil proxy`) as `veil verify` reports the same
/// failure: an attestation that does not hold is exit 1, `veil: rejected: CHECK: ...`;
/// anything else (no server there, a bad URL, an HTTP refusal) is exit 2, `veil: error: ...`.
pub(crate) fn connect_failed(e: &veil_client::Error) -> ExitCode {
    if e.is_integrity_failure() {
        eprintln!(
            "veil: rejected: {}: {}",
            e.check(),
            printable(&e.to_string())
        );
        ExitCode::from(1)
    } else {
        eprintln!("veil: error: {}", printable(&e.to_string()));
        ExitCode::from(2)
    }
}

/// The exit status of a verdict: 0 when it holds; otherwise `veil: rejected: CHECK: ...` on
/// standard error and exit 1.
pub(crate) fn verdict_exit<T>(outcome: &Result<T, VerifyError>) -> ExitCode {
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "veil: rejected: {}: {}",
                e.check(),
                printable(&e.to_string())
            );
            ExitCode::from(1)
        }
    }
}
