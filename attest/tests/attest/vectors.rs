//! Every case of `index.tsv` (real evidence from AMD and Intel machines) gives exactly its verdict.

use crate::common;

use sha2::{Digest, Sha256};
use veil_attest::{Evidence, Platform, Tcb, VerifyError, audit, verify};

#[test]
fn vector_files_match_their_checksums() {
    let sums = String::from_utf8(common::read("SHA256SUMS")).expect("utf-8");
    let mut n = 0;
    for line in sums.lines() {
        let (hash, path) = line.split_once("  ").expect("sha256sum format");
        let got = hex::encode(Sha256::digest(common::read(path)));
        assert_eq!(got, hash, "{path} changed");
        n += 1;
    }
    assert!(n >= 30, "only {n} files listed");
}

/// The exact rejection each negative case must produce.
fn expected_rejection(case: &str, e: &VerifyError) -> bool {
    use VerifyError as E;
    match case {
        "snp-milan-v2-virtee-not-yet-valid" => {
            matches!(e, E::CertificateNotValid { cert: "vcek", .. })
        }
        "snp-milan-v2-gosevguest-debug" => matches!(e, E::DebugGuestRejected),
        "snp-milan-v2-trustee-foreign-vcek-legacy" | "snp-milan-v2-trustee-foreign-vcek-new" => {
            matches!(e, E::ChainSignature(m) if m.contains("ask -> vcek"))
        }
        "snp-milan-v2-trustee-wrong-vcek" => matches!(e, E::SignatureInvalid(_)),
        "snp-genoa-report-milan-vcek" => {
            matches!(e, E::ProductMismatch { report, certs } if report == "Genoa" && certs == "Milan")
        }
        "snp-milan-v3-aws-vlek-expired" => matches!(e, E::CertificateNotValid { cert: "vlek", .. }),
        // AMD's floor (AMD-SB-3019): Milan with no stepping in a v2 report, and Milan B1.
        "snp-milan-v2-virtee" | "snp-milan-v2-trustee" | "snp-milan-v2-azure" => matches!(
            e,
            E::TcbBelowFloor { component: "microcode", got: 115, floor: 219, product, .. }
                if product.contains("no stepping")
        ),
        "snp-milan-v3-aws-vlek" => matches!(
            e,
            E::TcbBelowFloor { component: "microcode", got: 217, floor: 219, product, .. }
                if product.contains("stepping 1")
        ),
        "tdx-v4-b0c06f-phala-collateral-expired" => matches!(e, E::CollateralNotValid { .. }),
        // At this time the foreign collateral has also expired, which dcap-qvl checks first;
        // the FMSPC rule alone is pinned in tests/tamper.rs.
        "tdx-v4-wrong-fmspc" => matches!(e, E::CollateralNotValid { .. }),
        "tdx-v5-90c06f-outdated" => matches!(e, E::TcbLevelNotFound(_)),
        "tdx-v4-debug-td" => matches!(e, E::CollateralMismatch(_) | E::DebugGuestRejected),
        _ => false,
    }
}

#[test]
fn every_index_case_gives_its_expected_verdict() {
    let mut ok = 0;
    let mut rejected = 0;
    for case in common::cases() {
        let a = audit(&case.evidence(), &case.policy(), case.now());
        match (&a.outcome, case.expect_ok) {
            (Ok(v), true) => {
                ok += 1;
                assert!(
                    a.checks.iter().all(|c| c.ok),
                    "{}: {:?}",
                    case.name,
                    a.checks
                );
                match case.platform.as_str() {
                    "snp" => assert_eq!(v.platform, Platform::SevSnp),
                    _ => assert_eq!(v.platform, Platform::Tdx),
                }
            }
            (Err(e), false) => {
                rejected += 1;
                assert!(
                    expected_rejection(&case.name, e),
                    "{}: wrong rejection {e:?}",
                    case.name
                );
                let last = a.checks.last().expect("a failed check");
                assert!(
                    !last.ok && last.name == e.check(),
                    "{}: {last:?}",
                    case.name
                );
            }
            (Ok(_), false) => panic!("{}: accepted, must be rejected", case.name),
            (Err(e), true) => panic!("{}: rejected ({e}), must verify", case.name),
        }
    }
    assert_eq!((ok, rejected), (12, 15));
}

#[test]
fn verdicts_carry_the_documented_values() {
    // Golden values from the vectors' README.
    let v = verify(
        &common::case("snp-milan-v2-virtee").evidence(),
        &veil_attest::Policy::default().allow_outdated_tcb(true),
        common::case("snp-milan-v2-virtee").now(),
    )
    .expect("verifies");
    assert_eq!(
        hex::encode(&v.measurements[0].value),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(
        hex::encode(v.report_data),
        "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd"
    );
    assert_eq!(
        v.tcb,
        Tcb::Snp {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None
        }
    );
    assert_eq!(v.product.as_deref(), Some("Milan"));

    let c = common::case("snp-genoa-v3-azure");
    let v = verify(&c.evidence(), &Default::default(), c.now()).expect("verifies");
    assert_eq!(v.product.as_deref(), Some("Genoa"));
    assert_eq!(
        v.tcb,
        Tcb::Snp {
            bootloader: 10,
            tee: 0,
            snp: 23,
            microcode: 84,
            fmc: None
        }
    );

    let c = common::case("tdx-v5-90c06f-gotdxguest");
    let v = verify(&c.evidence(), &Default::default(), c.now()).expect("verifies");
    let mrtd = v
        .measurements
        .iter()
        .find(|m| m.register == "mrtd")
        .expect("mrtd");
    assert_eq!(
        hex::encode(&mrtd.value),
        "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876"
    );
    assert!(matches!(&v.tcb, Tcb::Tdx { status, .. } if status == "UpToDate"));
    assert_eq!(
        hex::encode(v.report_data),
        "945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a"
    );
}

#[test]
fn evidence_bundles_round_trip_through_json() {
    for case in common::cases() {
        let ev = case.evidence();
        let back = Evidence::from_json(ev.to_json().as_bytes()).expect("parses");
        let a = verify(&ev, &case.policy(), case.now()).map_err(|e| e.to_string());
        let b = verify(&back, &case.policy(), case.now()).map_err(|e| e.to_string());
        assert_eq!(a, b, "{}", case.name);
    }
}
