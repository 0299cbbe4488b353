//! The tamper matrix: real evidence, one thing changed, the exact rejection.

use crate::common;

use veil_attest::{
    Evidence, MAX_BUNDLE_LEN, Platform, Policy, Reference, SimulatedEvidence, SnpCerts,
    SnpEvidence, TdxEvidence, UnixTime, VerifyError, snp::Product, snp::split_certificates, verify,
};

const NOW: &str = "2026-11-25T00:00:00Z";

fn now() -> UnixTime {
    UnixTime::parse_rfc3339(NOW).expect("now")
}

fn snp(dir: &str) -> SnpEvidence {
    let report = common::read(&format!("snp/{dir}/report.bin"));
    let cert = ["vcek.der", "vcek.pem"]
        .iter()
        .map(|f| format!("snp/{dir}/{f}"))
        .find(|p| common::vectors().join(p).exists())
        .expect("vcek");
    SnpEvidence::new(
        report,
        SnpCerts::classify(split_certificates(&common::read(&cert)).expect("certs"))
            .expect("classify"),
    )
}

/// Most SNP vectors are Milan reports from 2022 firmware, below AMD's TCB floor: the tamper
/// matrix is about authenticity and policy rules, so it accepts their TCB explicitly
/// (the floor itself: `tcb_floor_*` below and `tests/vectors.rs`).
fn old_tcb() -> Policy {
    Policy::default().allow_outdated_tcb(true)
}

fn check_snp(ev: &SnpEvidence, policy: &Policy, now: UnixTime) -> Result<(), VerifyError> {
    verify(&Evidence::SevSnp(ev.clone()), policy, now).map(|_| ())
}

fn with_report(ev: &SnpEvidence, f: impl FnOnce(&mut Vec<u8>)) -> SnpEvidence {
    let mut e = ev.clone();
    f(&mut e.report);
    e
}

/// (name, offset, length) of each field of the signed part (0x000..0x2A0) of a v2/v3 report.
const SIGNED_FIELDS: &[(&str, usize, usize)] = &[
    ("version", 0x00, 4),
    ("guest_svn", 0x04, 4),
    ("policy", 0x08, 8),
    ("family_id", 0x10, 16),
    ("image_id", 0x20, 16),
    ("vmpl", 0x30, 4),
    ("signature_algo", 0x34, 4),
    ("current_tcb", 0x38, 8),
    ("platform_info", 0x40, 8),
    ("key_info", 0x48, 4),
    ("reserved_4c", 0x4C, 4),
    ("report_data", 0x50, 64),
    ("measurement", 0x90, 48),
    ("host_data", 0xC0, 32),
    ("id_key_digest", 0xE0, 48),
    ("author_key_digest", 0x110, 48),
    ("report_id", 0x140, 32),
    ("report_id_ma", 0x160, 32),
    ("reported_tcb", 0x180, 8),
    ("cpuid_and_reserved", 0x188, 24),
    ("chip_id", 0x1A0, 64),
    ("committed_tcb", 0x1E0, 8),
    ("current_version", 0x1E8, 4),
    ("committed_version", 0x1EC, 4),
    ("launch_tcb", 0x1F0, 8),
    ("reserved_tail", 0x1F8, 0xA8),
];

#[test]
fn rejects_every_single_byte_change_in_every_signed_field() {
    let mut count = 0;
    for dir in ["milan-v2-virtee", "milan-v3-azure", "genoa-v3-azure"] {
        let ev = snp(dir);
        check_snp(&ev, &old_tcb(), now()).expect("untampered verifies");
        for &(field, off, len) in SIGNED_FIELDS {
            for at in [off, off + len / 2, off + len - 1] {
                for mask in [0x01u8, 0x80] {
                    let t = with_report(&ev, |r| r[at] ^= mask);
                    let e = check_snp(&t, &old_tcb(), now()).expect_err(field);
                    // Header fields may fail to parse or name another key; everything else
                    // must fail exactly on the signature.
                    // Reserved fields must be zero (`sev` refuses them as malformed).
                    let header = matches!(
                        field,
                        "version"
                            | "signature_algo"
                            | "key_info"
                            | "cpuid_and_reserved"
                            | "reserved_4c"
                            | "reserved_tail"
                    ) || field.starts_with("committed_version")
                        || field == "current_version";
                    let ok = matches!(e, VerifyError::SignatureInvalid(_))
                        || header
                            && matches!(
                                e,
                                VerifyError::Malformed(_)
                                    | VerifyError::SigningKeyMismatch { .. }
                                    | VerifyError::MissingCertificate(_)
                                    | VerifyError::ProductMismatch { .. }
                                    | VerifyError::UnknownProduct(_)
                            );
                    assert!(ok, "{dir} {field}@{at:#x}^{mask:#x}: {e:?}");
                    count += 1;
                }
            }
        }
        // And every other byte of the signed range, one bit each.
        for at in 0..0x2A0 {
            let t = with_report(&ev, |r| r[at] ^= 0x04);
            assert!(
                check_snp(&t, &old_tcb(), now()).is_err(),
                "{dir} byte {at:#x} accepted"
            );
            count += 1;
        }
    }
    assert!(count > 2000, "{count}");
}

#[test]
fn rejects_changed_signature() {
    let ev = snp("milan-v2-virtee");
    for at in [0x2A0, 0x2A0 + 47, 0x2A0 + 72, 0x2A0 + 72 + 47] {
        let t = with_report(&ev, |r| r[at] ^= 1);
        assert!(
            matches!(
                check_snp(&t, &old_tcb(), now()),
                Err(VerifyError::SignatureInvalid(_))
            ),
            "{at:#x}"
        );
    }
    // Non-zero padding above the 48-byte scalar.
    let t = with_report(&ev, |r| r[0x2A0 + 60] = 1);
    assert!(
        matches!(check_snp(&t, &old_tcb(), now()), Err(VerifyError::SignatureInvalid(m)) if m.contains("out of range"))
    );
    // An all-zero signature (what MASK_CHIP_KEY produces).
    let t = with_report(&ev, |r| r[0x2A0..0x2A0 + 144].fill(0));
    assert!(matches!(
        check_snp(&t, &old_tcb(), now()),
        Err(VerifyError::SignatureInvalid(_))
    ));
}

#[test]
fn rejects_unsigned_report() {
    let ev = snp("milan-v2-virtee");
    let t = with_report(&ev, |r| r[0x48] = 7 << 2);
    assert!(
        matches!(check_snp(&t, &old_tcb(), now()), Err(VerifyError::SignatureInvalid(m)) if m.contains("unsigned"))
    );
    let t = with_report(&ev, |r| r[0x48] = 1 << 1);
    assert!(
        matches!(check_snp(&t, &old_tcb(), now()), Err(VerifyError::SignatureInvalid(m)) if m.contains("MASK_CHIP_KEY"))
    );
}

#[test]
fn v2_report_with_masked_chip_id_parses_and_reaches_the_signature_check() {
    // A v2 report whose chip id is masked must not be refused as malformed: here the
    // zeroing breaks the signature, proving parsing went through to the signature check.
    let ev = snp("milan-v2-virtee");
    let t = with_report(&ev, |r| r[0x1A0..0x1E0].fill(0));
    assert!(matches!(
        check_snp(&t, &old_tcb(), now()),
        Err(VerifyError::SignatureInvalid(_))
    ));
}

#[test]
fn rejects_truncated_and_over_long_reports() {
    let ev = snp("milan-v2-virtee");
    for len in [0, 1, 0x2A0, 1183, 1185, 4096] {
        let t = with_report(&ev, |r| r.resize(len, 0));
        assert!(
            matches!(
                check_snp(&t, &old_tcb(), now()),
                Err(VerifyError::Malformed(_))
            ),
            "{len}"
        );
    }
    let t = with_report(&ev, |r| r[0] = 1);
    assert!(
        matches!(check_snp(&t, &old_tcb(), now()), Err(VerifyError::Malformed(m)) if m.contains("version 1"))
    );
}

#[test]
fn rejects_foreign_root_and_wrong_intermediates() {
    let base = snp("milan-v2-virtee");
    let milan_chain =
        split_certificates(&common::read("snp/milan-v2-virtee/ask_ark.pem")).expect("pem");
    let (milan_ask, milan_ark) = (milan_chain[0].clone(), milan_chain[1].clone());
    assert_eq!(
        milan_ark,
        Product::Milan.ark_der().expect("pinned"),
        "vector ARK is AMD's Milan ARK"
    );

    // A Genoa ARK offered as the root of a Milan chain.
    let mut e = base.clone();
    e.certs.ark = Some(Product::Genoa.ark_der().expect("genoa ark"));
    assert_eq!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::UntrustedRoot {
            product: "Milan".into()
        })
    );

    // The genuine ARK with one byte of its signature changed is no longer the pinned root.
    let mut ark = milan_ark.clone();
    let n = ark.len();
    ark[n - 10] ^= 1;
    let mut e = base.clone();
    e.certs.ark = Some(ark);
    assert!(matches!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::UntrustedRoot { .. })
    ));

    // A Genoa ASK for a Milan VCEK.
    let mut e = base.clone();
    e.certs.ask = Some(Product::Genoa.ask_der().expect("genoa ask"));
    assert!(
        matches!(check_snp(&e, &old_tcb(), now()), Err(VerifyError::ChainSignature(m)) if m.contains("not the Milan"))
    );

    // The Milan ASK with its signature changed: the ARK no longer signs it.
    let mut ask = milan_ask.clone();
    let n = ask.len();
    ask[n - 10] ^= 1;
    let mut e = base.clone();
    e.certs.ask = Some(ask);
    assert!(
        matches!(check_snp(&e, &old_tcb(), now()), Err(VerifyError::ChainSignature(m)) if m.contains("ark -> ask"))
    );

    // The correct explicit chain still verifies.
    let mut e = base.clone();
    e.certs.ask = Some(milan_ask);
    e.certs.ark = Some(milan_ark);
    check_snp(&e, &old_tcb(), now()).expect("explicit chain");
}

#[test]
fn rejects_swapped_endorsement_keys() {
    // VCEK of another chip.
    let mut e = snp("milan-v2-trustee");
    e.certs = snp("milan-v2-virtee").certs;
    assert!(matches!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::SignatureInvalid(_))
    ));
    // No VCEK at all.
    let mut e = snp("milan-v2-virtee");
    e.certs.vcek = None;
    assert_eq!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::MissingCertificate("vcek"))
    );
    // A VLEK where the report says VCEK.
    let mut e = snp("milan-v2-virtee");
    e.certs.vlek = e.certs.vcek.take();
    assert!(matches!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::SigningKeyMismatch { report: "vcek", .. })
    ));
    // A VCEK certificate in the ASK slot.
    let mut e = snp("milan-v2-virtee");
    e.certs.ask = e.certs.vcek.clone();
    assert!(matches!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::ChainSignature(_))
    ));
    // A truncated VCEK.
    let mut e = snp("milan-v2-virtee");
    if let Some(v) = e.certs.vcek.as_mut() {
        v.truncate(v.len() / 2);
    }
    assert!(matches!(
        check_snp(&e, &old_tcb(), now()),
        Err(VerifyError::MalformedCertificate(_))
    ));
}

#[test]
fn rejects_vlek_report_with_a_vcek() {
    let vlek = {
        let c = common::case("snp-milan-v3-aws-vlek");
        match c.evidence() {
            Evidence::SevSnp(e) => (e, c.now()),
            _ => unreachable!(),
        }
    };
    check_snp(&vlek.0, &old_tcb(), vlek.1).expect("verifies");
    let mut e = vlek.0.clone();
    e.certs.vcek = e.certs.vlek.take();
    // Classification is by subject, so a VLEK in the VCEK slot is caught as the wrong role.
    assert!(matches!(
        check_snp(&e, &old_tcb(), vlek.1),
        Err(VerifyError::SigningKeyMismatch { report: "vlek", .. })
    ));
    // The ASVK is built in for Milan: the VLEK alone verifies.
    let mut e = vlek.0.clone();
    e.certs.asvk = None;
    e.certs.ark = None;
    check_snp(&e, &old_tcb(), vlek.1).expect("built-in ASVK");
    // VMPL: this report is from VMPL 1.
    let mut p = old_tcb();
    p.snp.max_vmpl = Some(0);
    assert_eq!(
        check_snp(&vlek.0, &p, vlek.1),
        Err(VerifyError::VmplRejected { got: 1, max: 0 })
    );
}

#[test]
fn rejects_outside_certificate_validity() {
    let ev = snp("milan-v2-virtee");
    let after = UnixTime::parse_rfc3339("2030-04-03T19:23:44Z").expect("t");
    assert!(matches!(
        check_snp(&ev, &old_tcb(), after),
        Err(VerifyError::CertificateNotValid { cert: "vcek", .. })
    ));
    let last_second = UnixTime::parse_rfc3339("2030-04-03T19:23:43Z").expect("t");
    check_snp(&ev, &old_tcb(), last_second).expect("valid through notAfter");
    let before = UnixTime::parse_rfc3339("2023-04-03T19:23:42Z").expect("t");
    assert!(matches!(
        check_snp(&ev, &old_tcb(), before),
        Err(VerifyError::CertificateNotValid { cert: "vcek", .. })
    ));
    let far = UnixTime::parse_rfc3339("2050-01-01T00:00:00Z").expect("t");
    assert!(matches!(
        check_snp(&ev, &old_tcb(), far),
        Err(VerifyError::CertificateNotValid { .. })
    ));
}

#[test]
fn rejects_what_the_policy_does_not_allow() {
    let ev = snp("milan-v2-virtee");
    let mut m = [0u8; 48];
    m.copy_from_slice(&ev.report[0x90..0xC0]);
    check_snp(&ev, &old_tcb().with_reference(Reference::snp(m)), now())
        .expect("reference measurement");
    let mut wrong = m;
    wrong[0] ^= 1;
    assert!(matches!(
        check_snp(&ev, &old_tcb().with_reference(Reference::snp(wrong)), now()),
        Err(VerifyError::MeasurementMismatch {
            register: "measurement",
            ..
        })
    ));

    let mut rd = [0u8; 64];
    rd.copy_from_slice(&ev.report[0x50..0x90]);
    check_snp(&ev, &old_tcb().expect_report_data(rd), now()).expect("expected report data");
    rd[63] ^= 1;
    assert!(matches!(
        check_snp(&ev, &old_tcb().expect_report_data(rd), now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));

    assert_eq!(
        check_snp(&ev, &old_tcb().snp_min_tcb(3, 0, 9, 0), now()),
        Err(VerifyError::TcbBelowMinimum {
            component: "snp",
            got: 8,
            min: 9
        })
    );
    check_snp(&ev, &old_tcb().snp_min_tcb(3, 0, 8, 115), now()).expect("meets minimum");

    let p = Policy::from_toml("[snp]\nproducts = [\"Genoa\"]").expect("policy");
    assert!(matches!(
        check_snp(&ev, &p, now()),
        Err(VerifyError::ProductNotAllowed { .. })
    ));
    let p = Policy::from_toml(&format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"{}\"",
        "00".repeat(48)
    ))
    .expect("policy");
    assert_eq!(
        check_snp(&ev, &p, now()),
        Err(VerifyError::PlatformNotAllowed("sev-snp"))
    );
    assert!(matches!(
        Policy::from_toml("allow_debugg = true"),
        Err(VerifyError::Policy(_))
    ));
    assert!(matches!(
        Policy::from_toml("[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"abcd\""),
        Err(VerifyError::Policy(_))
    ));
}

#[test]
fn tcb_floor_refuses_old_firmware_unless_allowed_and_the_policy_only_raises_it() {
    // Milan v2 (2022 firmware, microcode 115): below AMD's floor by default, named.
    let old = snp("milan-v2-virtee");
    let e = check_snp(&old, &Policy::default(), now()).expect_err("below the floor");
    assert!(
        matches!(&e, VerifyError::TcbBelowFloor { component: "microcode", got: 115, floor: 219, bulletin, .. } if bulletin.contains("AMD-SB-3019")),
        "{e:?}"
    );
    assert_eq!(e.check().as_str(), "tcb");
    assert!(e.to_string().contains("--allow-outdated-tcb"), "{e}");
    // A policy's [tcb] cannot lower the floor: only allow_outdated_tcb does.
    let low = Policy::from_toml(
        "[tcb]
microcode = 100",
    )
    .expect("policy");
    assert!(matches!(
        check_snp(&old, &low, now()),
        Err(VerifyError::TcbBelowFloor { .. })
    ));
    let v = verify(&Evidence::SevSnp(old.clone()), &old_tcb(), now()).expect("allowed");
    assert!(
        v.warnings.iter().any(|w| w.contains("allow_outdated_tcb")),
        "{:?}",
        v.warnings
    );
    // With allow_outdated_tcb the policy's own minimums still hold.
    assert!(matches!(
        check_snp(&old, &old_tcb().snp_min_tcb(0, 0, 0, 200), now()),
        Err(VerifyError::TcbBelowMinimum {
            component: "microcode",
            got: 115,
            min: 200
        })
    ));

    // Current Milan B1 (microcode 219) and Genoa B1 (84) meet their steppings' floors exactly.
    for dir in ["milan-v3-azure", "genoa-v3-azure"] {
        let ev = snp(dir);
        let audit = veil_attest::audit(&Evidence::SevSnp(ev.clone()), &Policy::default(), now());
        let v = audit.outcome.expect(dir);
        assert!(v.warnings.iter().all(|w| !w.contains("allow_outdated_tcb")));
        let tcb = audit
            .checks
            .iter()
            .find(|c| c.name.as_str() == "tcb")
            .expect("tcb check");
        assert!(tcb.detail.contains("AMD's floor"), "{}", tcb.detail);
        // ...and a [tcb] above the report raises it.
        assert!(matches!(
            check_snp(&ev, &Policy::default().snp_min_tcb(0, 0, 0, 255), now()),
            Err(VerifyError::TcbBelowMinimum {
                component: "microcode",
                ..
            })
        ));
    }
}

#[test]
fn simulated_evidence_must_carry_the_pinned_key() {
    let m = [7u8; 48];
    let ours = Evidence::Simulated(SimulatedEvidence::sign(&[1; 32], m, [0; 64]));
    let theirs = Evidence::Simulated(SimulatedEvidence::sign(&[2; 32], m, [0; 64]));
    let key = match &ours {
        Evidence::Simulated(s) => hex::encode(&s.public_key),
        _ => unreachable!(),
    };
    let p = Policy::from_toml(&format!(
        "allow_simulated = true\n[[reference]]\nplatform = \"simulated\"\nmeasurement = \"{}\"\n\
         simulated_key = \"{key}\"\n",
        hex::encode(m)
    ))
    .expect("policy");
    verify(&ours, &p, now()).expect("pinned key");
    assert!(matches!(
        verify(&theirs, &p, now()),
        Err(VerifyError::SignatureInvalid(msg)) if msg.contains("the policy pins")
    ));
    assert!(matches!(
        Policy::from_toml(&format!(
            "[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"{}\"\nsimulated_key = \"{key}\"\n",
            hex::encode(m)
        )),
        Err(VerifyError::Policy(msg)) if msg.contains("simulated_key")
    ));
}

// ---- TDX ----

fn tdx(case: &str) -> (TdxEvidence, UnixTime) {
    let c = common::case(case);
    match c.evidence() {
        Evidence::Tdx(e) => (e, c.now()),
        _ => unreachable!(),
    }
}

fn check_tdx(ev: &TdxEvidence, policy: &Policy, now: UnixTime) -> Result<(), VerifyError> {
    verify(&Evidence::Tdx(ev.clone()), policy, now).map(|_| ())
}

#[test]
fn tdx_rejects_single_byte_changes_in_header_and_td_report() {
    let (ev, now) = tdx("tdx-v4-b0c06f-phala");
    check_tdx(&ev, &Policy::default(), now).expect("verifies");
    // Header (48 bytes) and TD report body (584 bytes) are signed by the attestation key.
    let mut n = 0;
    for at in (0..48 + 584).step_by(7).chain([48 + 520, 48 + 583]) {
        let mut t = ev.clone();
        t.quote[at] ^= 0x10;
        let e = check_tdx(&t, &Policy::default(), now).expect_err("tampered");
        assert!(
            matches!(
                e,
                VerifyError::SignatureInvalid(_)
                    | VerifyError::Malformed(_)
                    | VerifyError::Quote(_)
            ),
            "byte {at}: {e:?}"
        );
        n += 1;
    }
    assert!(n > 80);
    // The quote signature itself.
    let mut t = ev.clone();
    t.quote[48 + 584 + 4 + 10] ^= 1;
    assert!(matches!(
        check_tdx(&t, &Policy::default(), now),
        Err(VerifyError::SignatureInvalid(_))
    ));
}

#[test]
fn tdx_rejects_tampered_collateral() {
    let (ev, now) = tdx("tdx-v4-b0c06f-phala");
    let mut t = ev.clone();
    t.collateral.tcb_info = t.collateral.tcb_info.replacen("UpToDate", "UpToDatE", 1);
    assert!(matches!(
        check_tdx(&t, &Policy::default(), now),
        Err(VerifyError::CollateralInvalid(_))
    ));
    let mut t = ev.clone();
    t.collateral.qe_identity = t
        .collateral
        .qe_identity
        .replacen("\"version\"", "\"Version\"", 1);
    assert!(check_tdx(&t, &Policy::default(), now).is_err());
    let mut t = ev.clone();
    t.collateral.tcb_info_signature[3] ^= 1;
    assert!(matches!(
        check_tdx(&t, &Policy::default(), now),
        Err(VerifyError::CollateralInvalid(_))
    ));
}

#[test]
fn tdx_rejects_collateral_of_another_platform() {
    // The phala quote (FMSPC B0C06F) with the near collateral (20A06F), at a time inside the
    // near collateral's window and the phala PCK chain's validity, isolates the FMSPC rule.
    let (near, now) = tdx("tdx-v4-20a06f-near");
    let (phala, _) = tdx("tdx-v4-b0c06f-phala");
    let mut t = near;
    t.quote = phala.quote;
    let r = check_tdx(&t, &Policy::default(), now);
    assert!(
        matches!(&r, Err(VerifyError::CollateralMismatch(m)) if m.contains("Fmspc")),
        "{r:?}"
    );
}

#[test]
fn tdx_rejects_outside_the_collateral_window() {
    let (ev, _) = tdx("tdx-v4-b0c06f-phala");
    let before = UnixTime(1_750_329_147 - 1);
    assert!(matches!(
        check_tdx(&ev, &Policy::default(), before),
        Err(VerifyError::CollateralNotValid { .. })
    ));
    check_tdx(&ev, &Policy::default(), UnixTime(1_750_329_147)).expect("first valid second");
    let after = UnixTime(1_752_919_234 + 1);
    assert!(matches!(
        check_tdx(&ev, &Policy::default(), after),
        Err(VerifyError::CollateralNotValid { .. })
    ));
}

#[test]
fn tdx_rejects_what_the_policy_does_not_allow() {
    let (ev, now) = tdx("tdx-v5-90c06f-gotdxguest");
    let mrtd: [u8; 48] = hex::decode(
        "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876",
    )
    .expect("hex")
    .try_into()
    .expect("48");
    check_tdx(
        &ev,
        &Policy::default().with_reference(Reference::tdx_mrtd(mrtd)),
        now,
    )
    .expect("reference MRTD");
    let mut wrong = mrtd;
    wrong[47] ^= 1;
    assert!(matches!(
        check_tdx(
            &ev,
            &Policy::default().with_reference(Reference::tdx_mrtd(wrong)),
            now
        ),
        Err(VerifyError::MeasurementMismatch {
            register: "mrtd",
            ..
        })
    ));
    let p = Policy::from_toml(&format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"{}\"\nrtmr1 = \"{}\"",
        hex::encode(mrtd),
        "11".repeat(48)
    ))
    .expect("policy");
    assert!(matches!(
        check_tdx(&ev, &p, now),
        Err(VerifyError::MeasurementMismatch {
            register: "rtmr1",
            ..
        })
    ));
    let p =
        Policy::from_toml(&format!("[tdx]\nmr_owner = \"{}\"", "11".repeat(48))).expect("policy");
    assert!(matches!(
        check_tdx(&ev, &p, now),
        Err(VerifyError::MeasurementMismatch {
            register: "mrowner",
            ..
        })
    ));
    assert!(matches!(
        check_tdx(&ev, &Policy::default().expect_report_data([0; 64]), now),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    assert_eq!(
        check_tdx(
            &ev,
            &Policy::default().tdx_accepted_tcb_status(["SWHardeningNeeded"]),
            now
        ),
        Err(VerifyError::TcbStatusRejected {
            status: "UpToDate".into(),
            accepted: "SWHardeningNeeded".into()
        })
    );
    let p = Policy::from_toml(&format!(
        "[[reference]]\nplatform = \"sev-snp\"\nmeasurement = \"{}\"",
        "00".repeat(48)
    ))
    .expect("policy");
    assert_eq!(
        check_tdx(&ev, &p, now),
        Err(VerifyError::PlatformNotAllowed("tdx"))
    );
}

#[test]
fn tdx_rejects_truncated_and_over_long_quotes() {
    let (ev, now) = tdx("tdx-v4-b0c06f-phala");
    // v4 quotes end at 4936 bytes; the rest of the 5006 is zero padding.
    for len in [0, 47, 48 + 100, 632, 636, ev.quote.len() / 2, 4935] {
        let mut t = ev.clone();
        t.quote.truncate(len);
        let e = check_tdx(&t, &Policy::default(), now).expect_err(&format!("truncated to {len}"));
        assert!(
            matches!(
                e,
                VerifyError::Malformed(_) | VerifyError::Quote(_) | VerifyError::ChainSignature(_)
            ),
            "{len}: {e:?}"
        );
    }
    let mut t = ev.clone();
    t.quote.truncate(4936);
    check_tdx(&t, &Policy::default(), now).expect("without its zero padding");
    let mut t = ev.clone();
    t.quote[5000] = 1;
    assert!(
        matches!(check_tdx(&t, &Policy::default(), now), Err(VerifyError::Malformed(m)) if m.contains("unsigned"))
    );
    let mut t = ev.clone();
    t.quote.resize(veil_attest::MAX_QUOTE_LEN + 1, 0);
    assert!(
        matches!(check_tdx(&t, &Policy::default(), now), Err(VerifyError::Malformed(m)) if m.contains("limit"))
    );
}

// ---- Simulated and bundles ----

#[test]
fn simulated_evidence_is_rejected_unless_allowed_and_then_marked() {
    let ev = Evidence::Simulated(SimulatedEvidence::sign(&[9; 32], [3; 48], [4; 64]));
    assert_eq!(
        verify(&ev, &Policy::default(), now()),
        Err(VerifyError::SimulatedRejected)
    );
    let v = verify(&ev, &Policy::default().allow_simulated(true), now()).expect("allowed");
    assert_eq!(v.platform, Platform::Simulated);
    assert!(v.warnings.iter().any(|w| w.contains("SIMULATED")));
}

#[test]
fn simulated_evidence_rejects_changed_claims_and_signature() {
    let p = Policy::default().allow_simulated(true);
    let good = SimulatedEvidence::sign(&[9; 32], [3; 48], [4; 64]);
    for field in 0..4 {
        let mut t = good.clone();
        match field {
            0 => t.measurement[0] ^= 1,
            1 => t.report_data[63] ^= 1,
            2 => t.signature[0] ^= 1,
            _ => t.public_key = SimulatedEvidence::sign(&[8; 32], [3; 48], [4; 64]).public_key,
        }
        assert!(
            matches!(
                verify(&Evidence::Simulated(t), &p, now()),
                Err(VerifyError::SignatureInvalid(_))
            ),
            "field {field}"
        );
    }
    let mut t = good.clone();
    t.measurement.pop();
    assert!(matches!(
        verify(&Evidence::Simulated(t), &p, now()),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        verify(
            &Evidence::Simulated(good),
            &p.expect_report_data([0; 64]),
            now()
        ),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn rejects_malformed_and_over_long_bundles() {
    assert!(matches!(
        Evidence::from_json(b""),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        Evidence::from_json(br#"{"platform":"sgx"}"#),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        Evidence::from_json(br#"{"platform":"sev-snp","report":"!!"}"#),
        Err(VerifyError::Malformed(_))
    ));
    let big = vec![b' '; MAX_BUNDLE_LEN + 1];
    assert!(
        matches!(Evidence::from_json(&big), Err(VerifyError::Malformed(m)) if m.contains("limit"))
    );
}

#[test]
fn certificate_table_round_trips_and_rejects_bad_offsets() {
    let ev = snp("milan-v2-virtee");
    let table = ev.certs.to_cert_table();
    assert_eq!(SnpCerts::from_cert_table(&table).expect("parses"), ev.certs);
    let mut t = table.clone();
    t[16] = 0xFF; // first entry's offset far past the end
    t[17] = 0xFF;
    assert!(matches!(
        SnpCerts::from_cert_table(&t),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        SnpCerts::from_cert_table(&table[..30]),
        Err(VerifyError::Malformed(_))
    ));
    let e = SnpEvidence::new(
        ev.report.clone(),
        SnpCerts::from_cert_table(&table).expect("parses"),
    );
    check_snp(&e, &old_tcb(), now()).expect("verifies from a table");
}

#[test]
fn evidence_must_match_one_reference_of_its_platform() {
    let ev = snp("milan-v2-virtee");
    let m: [u8; 48] = ev.report[0x90..0xC0].try_into().expect("48");
    let mut other = m;
    other[10] ^= 0xFF;
    let two = old_tcb()
        .with_reference(Reference::snp(other))
        .with_reference(Reference::snp(m));
    check_snp(&ev, &two, now()).expect("the second reference matches");
    let err = check_snp(&ev, &old_tcb().with_reference(Reference::snp(other)), now())
        .expect_err("no match");
    assert!(
        matches!(&err, VerifyError::MeasurementMismatch { register: "measurement", expected, got }
            if expected == &hex::encode(other) && got == &hex::encode(m)),
        "{err:?}"
    );
    // A TDX reference alone does not admit SNP evidence.
    assert_eq!(
        check_snp(
            &ev,
            &Policy::default().with_reference(Reference::tdx_mrtd(m)),
            now()
        ),
        Err(VerifyError::PlatformNotAllowed("sev-snp"))
    );
    // The simulated platform is pinned like hardware.
    let sim = Evidence::Simulated(SimulatedEvidence::sign(&[1; 32], m, [0; 64]));
    let p = Policy::default().allow_simulated(true);
    verify(
        &sim,
        &p.clone().with_reference(Reference::simulated(m)),
        now(),
    )
    .expect("pinned");
    assert!(matches!(
        verify(&sim, &p.with_reference(Reference::simulated(other)), now()),
        Err(VerifyError::MeasurementMismatch { .. })
    ));
}
