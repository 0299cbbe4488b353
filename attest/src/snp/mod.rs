//! AMD SEV-SNP: report, certificate chain to the pinned ARK, TCB binding and policy.

mod cert_table;
pub(crate) mod certs;
mod crl;
mod kds;
mod report;
pub mod tcb_floor;

pub use cert_table::{CertTableEntry, MAX_CERT_TABLE_LEN, parse_cert_table};
pub use certs::{CertRole, Product, split_certificates};
pub use crl::{Crl, MAX_CRL_LEN, parse_crl, read_crl};
pub use kds::{KdsQuery, kds_query};
pub use report::REPORT_LEN;

use crate::verdict::{CheckName, Checks, Measurement, Tcb};
use crate::{Platform, Policy, SnpEvidence, UnixTime, Verdict, VerifyError};
use report::SigningKey;
use sev::firmware::guest::GuestPolicy;
use sev::firmware::host::TcbVersion;

#[cfg(test)]
mod tests;

pub(crate) fn verify(
    ev: &SnpEvidence,
    policy: &Policy,
    now: UnixTime,
    checks: &mut Checks,
) -> Result<Verdict, VerifyError> {
    let report = report::parse(&ev.report)?;
    let r = &report.fields;
    checks.pass(
        CheckName::Parse,
        format!(
            "SNP report v{}, signed by {}",
            r.version,
            report.signing_key.as_str()
        ),
    );

    // The endorsement key the report names, and only that one.
    let (vek_der, other) = match report.signing_key {
        SigningKey::Vcek => (ev.certs.vcek.as_ref(), ev.certs.vlek.is_some()),
        SigningKey::Vlek => (ev.certs.vlek.as_ref(), ev.certs.vcek.is_some()),
    };
    let vek_der = match (vek_der, other) {
        (Some(d), _) => d,
        (None, true) => {
            return Err(VerifyError::SigningKeyMismatch {
                report: report.signing_key.as_str(),
                cert: match report.signing_key {
                    SigningKey::Vcek => "vlek",
                    SigningKey::Vlek => "vcek",
                },
            });
        }
        (None, false) => return Err(VerifyError::MissingCertificate(report.signing_key.as_str())),
    };
    let vek = certs::parse(vek_der)?;
    let vek_role = certs::role(&vek)?;
    match (report.signing_key, vek_role) {
        (SigningKey::Vcek, CertRole::Vcek) | (SigningKey::Vlek, CertRole::Vlek) => {}
        _ => {
            return Err(VerifyError::MalformedCertificate(format!(
                "the {} slot holds a certificate of another role",
                report.signing_key.as_str()
            )));
        }
    }

    // Product: from the certificate chain, cross-checked with the report's CPUID (v3+).
    let product = certs::issuer_product(&vek)?;
    if let (Some(fam), Some(model)) = (r.cpuid_fam_id, r.cpuid_mod_id) {
        match Product::from_cpuid(fam, model) {
            Some(p) if p == product => {}
            Some(p) => {
                return Err(VerifyError::ProductMismatch {
                    report: p.to_string(),
                    certs: product.to_string(),
                });
            }
            None => {
                return Err(VerifyError::UnknownProduct(format!(
                    "CPUID family {fam:#x} model {model:#x}"
                )));
            }
        }
    }
    if !policy.snp.products.is_empty() && !policy.snp.products.contains(&product) {
        return Err(VerifyError::ProductNotAllowed {
            got: product.to_string(),
            allowed: policy
                .snp
                .products
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    checks.pass(CheckName::Family, format!("{product}"));

    // Chain: ARK (pinned) -> ASK/ASVK -> VCEK/VLEK.
    let ark_der = product.ark_der()?;
    if ev.certs.ark.as_ref().is_some_and(|given| given != &ark_der) {
        return Err(VerifyError::UntrustedRoot {
            product: product.to_string(),
        });
    }
    let (ca_der, ca_name) = match report.signing_key {
        SigningKey::Vcek => match &ev.certs.ask {
            Some(d) => (d.clone(), "ask"),
            None => (product.ask_der()?, "ask"),
        },
        SigningKey::Vlek => match (&ev.certs.asvk, product.builtin_asvk()) {
            (Some(d), _) => (d.clone(), "asvk"),
            (None, Some(builtin)) => (builtin?, "asvk"),
            (None, None) => return Err(VerifyError::MissingCertificate("asvk")),
        },
    };
    let ark = certs::parse(&ark_der)?;
    let ca = certs::parse(&ca_der)?;
    let ca_ok = matches!(
        (report.signing_key, certs::role(&ca)?),
        (SigningKey::Vcek, CertRole::Ask(p)) | (SigningKey::Vlek, CertRole::Asvk(p)) if p == product
    );
    if !ca_ok {
        return Err(VerifyError::ChainSignature(format!(
            "the {ca_name} is not the {product} {} signing key",
            report.signing_key.as_str()
        )));
    }
    certs::check_ca_pair(&ark_der, &ca_der, ca_name)?;
    certs::check_signed_by(
        &ca_der,
        vek_der,
        &format!("{ca_name} -> {}", report.signing_key.as_str()),
    )?;
    checks.pass(
        CheckName::CertChain,
        format!(
            "{} -> {ca_name} -> pinned ARK-{product}",
            report.signing_key.as_str()
        ),
    );

    certs::check_validity(&vek, report.signing_key.as_str(), now)?;
    certs::check_validity(&ca, ca_name, now)?;
    certs::check_validity(&ark, "ark", now)?;
    let v = &vek.tbs_certificate.validity;
    checks.pass(
        CheckName::CertValidity,
        format!(
            "{} valid {} .. {} at {}",
            report.signing_key.as_str(),
            UnixTime(v.not_before.to_unix_duration().as_secs()).to_rfc3339(),
            UnixTime(v.not_after.to_unix_duration().as_secs()).to_rfc3339(),
            now.to_rfc3339()
        ),
    );

    // Revocation: AMD's ARK-signed CRL, where the evidence carries one.
    let revocation_warning = crl::check_chain(
        ev.certs.crl.as_deref(),
        policy.snp.require_crl,
        &ark,
        &[
            ("ark", &ark),
            (ca_name, &ca),
            (report.signing_key.as_str(), &vek),
        ],
        now,
        checks,
    )?;

    report.check_signature(
        vek.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )?;
    checks.pass(CheckName::Signature, "ECDSA P-384 over bytes 0x000..0x2A0");

    // The endorsement key is derived from the TCB: its certificate must name the reported TCB.
    let ext = certs::vek_extensions(&vek)?;
    let t = &r.reported_tcb;
    check_tcb_binding(&ext, t)?;
    let min = &policy.tcb;
    let mins = against(
        t,
        [min.bootloader, min.tee, min.snp, min.microcode, min.fmc],
    );
    for (component, got, min) in mins {
        if got < min {
            return Err(VerifyError::TcbBelowMinimum {
                component,
                got,
                min,
            });
        }
    }
    let cpuid = match (r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step) {
        (Some(f), Some(m), Some(s)) => Some((f, m, s)),
        _ => None,
    };
    let floor = tcb_floor::floor(product, cpuid);
    let floors = [
        floor.bootloader,
        floor.tee,
        floor.snp,
        floor.microcode,
        floor.fmc,
    ];
    let below_floor = against(t, floors)
        .into_iter()
        .find(|(_, got, floor)| got < floor);
    let floor_note = match (below_floor, policy.allow_outdated_tcb) {
        (Some((component, got, floor_value)), false) => {
            return Err(VerifyError::TcbBelowFloor {
                product: match cpuid {
                    Some((f, m, s)) => {
                        format!("{product} (family {f:#x} model {m:#x} stepping {s})")
                    }
                    None => format!("{product} (report names no stepping: strictest floor)"),
                },
                component,
                got,
                floor: floor_value,
                bulletin: tcb_floor::BULLETINS,
            });
        }
        (Some((component, got, floor_value)), true) => format!(
            "; {component} {got} is BELOW AMD's floor {floor_value} (allowed by allow_outdated_tcb)"
        ),
        (None, _) => format!(
            " and AMD's floor (microcode >= {}{})",
            floor.microcode,
            if floor.exact_stepping {
                ""
            } else {
                ", strictest stepping"
            }
        ),
    };
    checks.pass(
        CheckName::Tcb,
        format!(
            "reported_tcb bl={} tee={} snp={} ucode={}{} equals the {} extensions{}{floor_note}",
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode,
            t.fmc.map(|f| format!(" fmc={f}")).unwrap_or_default(),
            report.signing_key.as_str(),
            if mins.iter().any(|m| m.2 > 0) {
                " and meets the policy's minimum"
            } else {
                ""
            }
        ),
    );

    let mut warnings: Vec<String> = revocation_warning.into_iter().collect();
    let chip_masked = r.chip_id.iter().all(|&b| b == 0);
    check_chip_id(
        report.signing_key,
        &r.chip_id,
        ext.hw_id.as_deref(),
        checks,
        &mut warnings,
    )?;

    // Policy.
    check_guest_policy(r.policy, r.vmpl, policy, checks, &mut warnings)?;

    if policy.check_measurements(Platform::SevSnp, &[("measurement", &r.measurement)])? {
        checks.pass(
            CheckName::Measurement,
            format!("{} is a reference value", hex::encode(r.measurement)),
        );
    } else {
        warnings
            .push("no reference measurement in the policy: any launch image accepted".to_owned());
        checks.pass(
            CheckName::Measurement,
            format!("{} (no reference value)", hex::encode(r.measurement)),
        );
    }

    policy.check_report_data(&r.report_data, checks)?;

    Ok(Verdict {
        platform: Platform::SevSnp,
        product: Some(product.to_string()),
        measurements: vec![Measurement {
            register: "measurement",
            value: r.measurement.to_vec(),
        }],
        report_data: r.report_data,
        tcb: Tcb::Snp {
            bootloader: t.bootloader,
            tee: t.tee,
            snp: t.snp,
            microcode: t.microcode,
            fmc: t.fmc,
        },
        chip_id: (!chip_masked).then(|| hex::encode(r.chip_id)),
        warnings,
        gpus: Vec::new(),
    })
}

/// Each TCB component as (name, reported value, minimum), minimums in the order bootloader,
/// tee, snp, microcode, fmc. A report without FMC (before Turin) meets any FMC minimum.
fn against(t: &TcbVersion, min: [u8; 5]) -> [(&'static str, u8, u8); 5] {
    [
        ("bootloader", t.bootloader, min[0]),
        ("tee", t.tee, min[1]),
        ("snp", t.snp, min[2]),
        ("microcode", t.microcode, min[3]),
        ("fmc", t.fmc.unwrap_or(u8::MAX), min[4]),
    ]
}

/// The VCEK/VLEK certifies one TCB: every component it names must equal `reported_tcb`.
fn check_tcb_binding(ext: &certs::VekExtensions, t: &TcbVersion) -> Result<(), VerifyError> {
    let pairs: [(&'static str, Option<u8>, Option<u8>); 5] = [
        ("bootloader", ext.bootloader, Some(t.bootloader)),
        ("tee", ext.tee, Some(t.tee)),
        ("snp", ext.snp, Some(t.snp)),
        ("microcode", ext.microcode, Some(t.microcode)),
        ("fmc", ext.fmc, t.fmc),
    ];
    for (component, cert, rep) in pairs {
        match (cert, rep) {
            (Some(c), Some(rv)) if c != rv => {
                return Err(VerifyError::TcbMismatch {
                    component,
                    cert: c,
                    report: rv,
                });
            }
            (None, Some(_)) => {
                return Err(VerifyError::MalformedCertificate(format!(
                    "endorsement certificate lacks the {component} TCB extension"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A VCEK is issued for one chip: its hwID must be the report's CHIP_ID.
fn check_chip_id(
    signing_key: SigningKey,
    chip_id: &[u8; 64],
    hw_id: Option<&[u8]>,
    checks: &mut Checks,
    warnings: &mut Vec<String>,
) -> Result<(), VerifyError> {
    let masked = chip_id.iter().all(|&b| b == 0);
    match (signing_key, masked, hw_id) {
        (SigningKey::Vlek, _, _) => {
            checks.pass(CheckName::ChipId, "VLEK: no chip id (cloud-provider key)")
        }
        (SigningKey::Vcek, true, _) => {
            warnings.push(
                "chip id masked by the guest; the VCEK signature alone binds the chip".to_owned(),
            );
            checks.pass(CheckName::ChipId, "masked in report; not compared");
        }
        (SigningKey::Vcek, false, Some(hw)) => {
            // Turin VCEKs carry an 8-byte hwID (the chip id's first 8 bytes, the rest zero).
            let (head, tail) = chip_id.split_at(hw.len().min(64));
            if hw.is_empty() || hw.len() > 64 || hw != head || tail.iter().any(|&b| b != 0) {
                return Err(VerifyError::ChipIdMismatch);
            }
            checks.pass(CheckName::ChipId, "VCEK hwID equals CHIP_ID");
        }
        (SigningKey::Vcek, false, None) => {
            return Err(VerifyError::MalformedCertificate(
                "VCEK lacks the hwID extension".into(),
            ));
        }
    }
    Ok(())
}

/// The guest policy the owner launched with, and the VMPL the report came from.
fn check_guest_policy(
    guest: GuestPolicy,
    vmpl: u32,
    policy: &Policy,
    checks: &mut Checks,
    warnings: &mut Vec<String>,
) -> Result<(), VerifyError> {
    if guest.debug_allowed() {
        if !policy.allow_debug {
            return Err(VerifyError::DebugGuestRejected);
        }
        warnings.push(
            "guest is debuggable (allowed by policy): the host can read its memory".to_owned(),
        );
        checks.pass(CheckName::Debug, "DEBUG set; allowed by policy");
    } else {
        checks.pass(CheckName::Debug, "DEBUG off");
    }
    if guest.migrate_ma_allowed() {
        if !policy.snp.allow_migration_agent {
            return Err(VerifyError::MigrationAgentRejected);
        }
        warnings.push("guest allows a migration agent (allowed by policy)".to_owned());
        checks.pass(
            CheckName::MigrationAgent,
            "MIGRATE_MA set; allowed by policy",
        );
    } else {
        checks.pass(CheckName::MigrationAgent, "MIGRATE_MA off");
    }
    if let Some(max) = policy.snp.max_vmpl.filter(|&max| vmpl > max) {
        return Err(VerifyError::VmplRejected { got: vmpl, max });
    }
    checks.pass(CheckName::Vmpl, format!("VMPL {vmpl}"));
    Ok(())
}
