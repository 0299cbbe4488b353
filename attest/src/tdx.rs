//! Intel TDX: the DCAP quote and its collateral through `dcap-qvl`, then what
//! dcap-qvl leaves to the relying party: TCB status policy, debug, measurements, REPORT_DATA.

pub mod pcs;

use dcap_qvl::quote::{Quote, Report, TDReport10};
use dcap_qvl::verify::QuoteVerifier;

use crate::evidence::MAX_QUOTE_LEN;
use crate::policy::check_exact;
use crate::verdict::{CheckName, Checks, Measurement, Tcb};
use crate::{Platform, Policy, TdxEvidence, UnixTime, Verdict, VerifyError};

/// TD_ATTRIBUTES.TUD bit 0: the TD is debuggable. Bits 4..6 are profiling features that also expose it.
const TUD_DEBUG: u8 = 0x01;
const TUD_PROFILING: u8 = 0x70;

/// Parses a quote's TD report (v4 or v5 quote). Never panics.
pub fn parse_td_report(quote: &[u8]) -> Result<TDReport10, VerifyError> {
    if quote.len() > MAX_QUOTE_LEN {
        return Err(VerifyError::Malformed(format!(
            "TDX quote is {} bytes, limit {MAX_QUOTE_LEN}",
            quote.len()
        )));
    }
    let q = Quote::parse(quote).map_err(|e| VerifyError::Malformed(format!("TDX quote: {e:#}")))?;
    // Quote generation services return fixed-size buffers, so real quotes end in zero
    // padding after the authentication data. Anything else there is unsigned: refuse it.
    let signed = q.signed_length();
    let auth_len = quote
        .get(signed..signed + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| VerifyError::Malformed("TDX quote: no authentication data".into()))?;
    let end = signed + 4 + auth_len;
    match quote.get(end..) {
        Some(tail) if tail.iter().any(|&b| b != 0) => {
            return Err(VerifyError::Malformed(format!(
                "TDX quote: {} unsigned non-zero bytes after the authentication data",
                tail.len()
            )));
        }
        Some(_) => {}
        None => {
            return Err(VerifyError::Malformed(
                "TDX quote: authentication data truncated".into(),
            ));
        }
    }
    td_report(&q.report)
}

fn td_report(r: &Report) -> Result<TDReport10, VerifyError> {
    match r {
        Report::TD10(r) => Ok(*r),
        Report::TD15(r) => Ok(r.base),
        Report::TD15Ex(r) => Ok(r.base.base),
        Report::SgxEnclave(_) => Err(VerifyError::Malformed(
            "an SGX quote, not a TDX quote".into(),
        )),
    }
}

/// Maps dcap-qvl's error text (it returns `anyhow`) onto the rule that failed.
fn classify(e: &impl std::fmt::Display, now: UnixTime) -> VerifyError {
    let msg = format!("{e:#}");
    let m = msg.to_ascii_lowercase();
    if m.contains("fmspc mismatch") {
        VerifyError::CollateralMismatch(msg)
    } else if m.contains("no matching tcb level") {
        VerifyError::TcbLevelNotFound(msg)
    } else if m.contains("tcb status is invalid: revoked") {
        VerifyError::TcbStatusRejected {
            status: "Revoked".into(),
            accepted: "never".into(),
        }
    } else if m.contains("certnotvalidyet") || m.contains("certexpired") {
        VerifyError::PckCertificateNotValid {
            now: now.to_rfc3339(),
            reason: msg,
        }
    } else if m.contains("expired") || m.contains("in the future") || m.contains("not yet valid") {
        VerifyError::CollateralNotValid {
            now: now.to_rfc3339(),
            reason: msg,
        }
    } else if m.contains("tcb_info")
        || m.contains("tcbinfo")
        || m.contains("qe_identity")
        || m.contains("qe identity")
    {
        VerifyError::CollateralInvalid(msg)
    } else if m.contains("certificate") || m.contains("crl") || m.contains("chain") {
        VerifyError::ChainSignature(msg)
    } else if m.contains("signature") || m.contains("hash mismatch") {
        VerifyError::SignatureInvalid(msg)
    } else {
        VerifyError::Quote(msg)
    }
}

pub(crate) fn verify(
    ev: &TdxEvidence,
    policy: &Policy,
    now: UnixTime,
    checks: &mut Checks,
) -> Result<Verdict, VerifyError> {
    let td = parse_td_report(&ev.quote)?;
    checks.pass(
        CheckName::Parse,
        format!("TDX quote, {} bytes", ev.quote.len()),
    );

    // Debug is judged by Veil (typed error, policy opt-in), so dcap-qvl is told to allow it.
    let verified = QuoteVerifier::new_prod()
        .allow_debug(true)
        .verify(&ev.quote, &ev.collateral, now.0)
        .map_err(|e| classify(&e, now))?;
    checks.pass(
        CheckName::CertChain,
        "PCK certificate chain to the pinned Intel SGX Root CA, CRLs checked",
    );
    checks.pass(
        CheckName::Signature,
        "quote signed by the attestation key, which the PCK-signed QE report binds",
    );
    let evaluation = check_tcb_evaluation(ev, policy)?;
    checks.pass(
        CheckName::Collateral,
        format!(
            "TCB info and QE identity signed by Intel, valid at {}{}",
            now.to_rfc3339(),
            evaluation
                .map(|n| format!(", tcbEvaluationDataNumber {n} (at least the minimum)"))
                .unwrap_or_default()
        ),
    );
    // dcap-qvl verified the same bytes we parsed; use its view of the report.
    let td_verified = td_report(&verified.report)?;
    if td_verified != td {
        return Err(VerifyError::Malformed(
            "quote parsed differently twice".into(),
        ));
    }

    let status = verified.status.clone();
    if !policy.tcb.tdx_status.iter().any(|s| s == &status) {
        return Err(VerifyError::TcbStatusRejected {
            status,
            accepted: policy.tcb.tdx_status.join(", "),
        });
    }
    let mut warnings = Vec::new();
    if !verified.advisory_ids.is_empty() {
        warnings.push(format!(
            "Intel advisories apply: {}",
            verified.advisory_ids.join(", ")
        ));
    }
    checks.pass(
        CheckName::Tcb,
        format!(
            "{status} (accepted){}",
            if verified.advisory_ids.is_empty() {
                String::new()
            } else {
                format!("; advisories {}", verified.advisory_ids.join(", "))
            }
        ),
    );

    check_td_attributes(td.td_attributes, policy, checks, &mut warnings)?;

    let pinned = policy.check_measurements(
        Platform::Tdx,
        &[
            ("mrtd", &td.mr_td),
            ("rtmr0", &td.rt_mr0),
            ("rtmr1", &td.rt_mr1),
            ("rtmr2", &td.rt_mr2),
            ("rtmr3", &td.rt_mr3),
        ],
    )?;
    check_exact(
        "mrconfigid",
        policy.tdx.mr_config_id.as_ref(),
        &td.mr_config_id,
    )?;
    check_exact("mrowner", policy.tdx.mr_owner.as_ref(), &td.mr_owner)?;
    if !pinned {
        warnings.push("no reference MRTD in the policy: any TD image accepted".to_owned());
    }
    checks.pass(
        CheckName::Measurement,
        format!(
            "mrtd {}{}",
            hex::encode(td.mr_td),
            if pinned {
                " matches a reference"
            } else {
                " (no reference value)"
            }
        ),
    );

    policy.check_report_data(&td.report_data, checks)?;

    let m = |register, v: &[u8; 48]| Measurement {
        register,
        value: v.to_vec(),
    };
    Ok(Verdict {
        platform: Platform::Tdx,
        product: None,
        measurements: vec![
            m("mrtd", &td.mr_td),
            m("rtmr0", &td.rt_mr0),
            m("rtmr1", &td.rt_mr1),
            m("rtmr2", &td.rt_mr2),
            m("rtmr3", &td.rt_mr3),
            m("mrconfigid", &td.mr_config_id),
            m("mrowner", &td.mr_owner),
            m("mrownerconfig", &td.mr_owner_config),
        ],
        report_data: td.report_data,
        tcb: Tcb::Tdx {
            status: verified.status,
            advisory_ids: verified.advisory_ids,
            tee_tcb_svn: hex::encode(td.tee_tcb_svn),
        },
        chip_id: (!verified.ppid.is_empty()).then(|| hex::encode(&verified.ppid)),
        warnings,
        gpus: Vec::new(),
    })
}

/// The policy's `min_tcb_evaluation_number` against the collateral's TCB info and QE
/// identity (run after dcap-qvl verified Intel's signatures over these very JSON texts).
/// Returns the lower of the two numbers when the policy sets a minimum.
fn check_tcb_evaluation(ev: &TdxEvidence, policy: &Policy) -> Result<Option<u32>, VerifyError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Evaluation {
        tcb_evaluation_data_number: u32,
    }
    let Some(min) = policy.tdx.min_tcb_evaluation_number else {
        return Ok(None);
    };
    let mut lowest = u32::MAX;
    for (which, json) in [
        ("TCB info", &ev.collateral.tcb_info),
        ("QE identity", &ev.collateral.qe_identity),
    ] {
        let got = serde_json::from_str::<Evaluation>(json)
            .map_err(|e| VerifyError::CollateralInvalid(format!("{which}: {e}")))?
            .tcb_evaluation_data_number;
        if got < min {
            return Err(VerifyError::CollateralTooOld { which, got, min });
        }
        lowest = lowest.min(got);
    }
    Ok(Some(lowest))
}

/// TD_ATTRIBUTES: a debuggable TD (or one with profiling features) exposes its memory to the host.
pub(crate) fn check_td_attributes(
    td_attributes: [u8; 8],
    policy: &Policy,
    checks: &mut Checks,
    warnings: &mut Vec<String>,
) -> Result<(), VerifyError> {
    let tud = td_attributes[0];
    if tud & (TUD_DEBUG | TUD_PROFILING) != 0 {
        if !policy.allow_debug {
            return Err(VerifyError::DebugGuestRejected);
        }
        warnings
            .push("TD is debuggable (allowed by policy): the host can read its memory".to_owned());
        checks.pass(
            CheckName::Debug,
            "TD_ATTRIBUTES.DEBUG set; allowed by policy",
        );
    } else {
        checks.pass(CheckName::Debug, "TD_ATTRIBUTES.DEBUG off");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBUG_QUOTE: &[u8] =
        include_bytes!("../tests/vectors/tdx/no-collateral/trustee_tdx_quote_4_v4_debug.dat");
    const QUOTE: &[u8] = include_bytes!("../tests/vectors/tdx/v4-b0c06f-phala/quote.bin");

    // The debug TD's quote has no collateral, so dcap-qvl cannot pass it; its real
    // TD_ATTRIBUTES exercise the rule directly.
    #[test]
    fn rejects_debug_td_by_default() {
        let td = parse_td_report(DEBUG_QUOTE).expect("parses");
        assert_eq!(td.td_attributes[0] & TUD_DEBUG, TUD_DEBUG);
        assert_eq!(
            check_td_attributes(
                td.td_attributes,
                &Policy::default(),
                &mut Checks::default(),
                &mut vec![]
            ),
            Err(VerifyError::DebugGuestRejected)
        );
        let mut warnings = vec![];
        check_td_attributes(
            td.td_attributes,
            &Policy::default().allow_debug(true),
            &mut Checks::default(),
            &mut warnings,
        )
        .expect("allowed");
        assert_eq!(warnings.len(), 1);
    }

    /// The real collateral of `v4-b0c06f-phala` is evaluation 17 (TCB info and QE identity).
    #[test]
    fn rejects_collateral_older_than_the_min_tcb_evaluation_number() {
        let ev = TdxEvidence::new(
            QUOTE.to_vec(),
            include_bytes!("../tests/vectors/tdx/v4-b0c06f-phala/collateral.json"),
        )
        .expect("collateral");
        let now = UnixTime(1_750_500_000); // 2025-06-21T10:00:00Z, inside its window
        let run = |min: Option<u32>| {
            let mut policy = Policy::default();
            policy.tdx.min_tcb_evaluation_number = min;
            let mut checks = Checks::default();
            verify(&ev, &policy, now, &mut checks).map(|_| checks.0)
        };
        let e = run(Some(18)).expect_err("evaluation 17 is below 18");
        assert_eq!(
            e,
            VerifyError::CollateralTooOld {
                which: "TCB info",
                got: 17,
                min: 18
            }
        );
        assert_eq!(e.check(), CheckName::Collateral);
        let checks = run(Some(17)).expect("17 meets 17");
        assert!(
            checks
                .iter()
                .any(|c| c.name == CheckName::Collateral && c.detail.contains("17")),
            "{checks:?}"
        );
        run(None).expect("no minimum by default");
        let p = Policy::from_toml("[tdx]\nmin_tcb_evaluation_number = 18\n").expect("policy");
        assert_eq!(p.tdx.min_tcb_evaluation_number, Some(18));
    }

    #[test]
    fn production_td_is_not_debug() {
        let td = parse_td_report(QUOTE).expect("parses");
        check_td_attributes(
            td.td_attributes,
            &Policy::default(),
            &mut Checks::default(),
            &mut vec![],
        )
        .expect("not debug");
    }
}
