//! SEV-SNP revocation (check `revocation`): AMD's ARK-signed CRL, verified against the
//! issuer at a pinned `now`, refusing listed ASK/ASVK/ARK serials; `require_crl`.
//!
//! No CRL the pinned ARK signed is in the vectors, so the CRL rules are tested with a test
//! root in ARK-Milan's name (`common/crl.rs`) through `Crl::verify`/`check_not_revoked`, and
//! through `verify` on real evidence for what the pinned ARK decides (a CRL it did not sign,
//! no CRL, `require_crl`).

use crate::common::crl as crl_root;

use crl_root::{CrlSpec, NOW, TestRoot, serial};
use veil_attest::snp::{Product, parse_crl, read_crl};
use veil_attest::{
    CheckName, Evidence, Policy, SnpCerts, SnpEvidence, UnixTime, VerifyError, audit, verify,
};

const MILAN_ASK_ARK: &[u8] = include_bytes!("../vectors/snp/milan-v2-virtee/ask_ark.pem");
const MILAN_VCEK: &[u8] = include_bytes!("../vectors/snp/milan-v2-virtee/vcek.der");
const MILAN_REPORT: &[u8] = include_bytes!("../vectors/snp/milan-v2-virtee/report.bin");
const ASVK_ARK: &[u8] = include_bytes!("../vectors/snp/milan-v3-aws-vlek/asvk_ark.pem");

fn now() -> UnixTime {
    UnixTime(NOW)
}

fn root() -> &'static TestRoot {
    static ROOT: std::sync::OnceLock<TestRoot> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| TestRoot::new(Product::Milan, 1))
}

fn milan_ask() -> Vec<u8> {
    veil_attest::snp::split_certificates(MILAN_ASK_ARK).expect("pem")[0].clone()
}

fn milan_asvk() -> Vec<u8> {
    veil_attest::snp::split_certificates(ASVK_ARK).expect("pem")[0].clone()
}

/// Verifies `crl` as issued by the test root, then checks the real Milan ARK/ASK/ASVK/VCEK.
fn check(crl: &[u8], now: UnixTime) -> Result<(), VerifyError> {
    let crl = parse_crl(crl)?;
    crl.verify(&root().ark_der(), now)?;
    crl.check_not_revoked(&root().ark_der(), "ark")?;
    crl.check_not_revoked(&milan_ask(), "ask")?;
    crl.check_not_revoked(&milan_asvk(), "asvk")?;
    crl.check_not_revoked(MILAN_VCEK, "vcek")
}

fn milan_evidence(crl: Option<Vec<u8>>) -> Evidence {
    let mut certs = SnpCerts::classify([MILAN_VCEK.to_vec()]).expect("classify");
    certs.crl = crl;
    Evidence::SevSnp(SnpEvidence::new(MILAN_REPORT.to_vec(), certs))
}

fn require_crl() -> Policy {
    Policy::from_toml("[snp]\nrequire_crl = true\n").expect("policy")
}

#[test]
fn crl_signed_by_the_root_and_current_verifies() {
    let other: &[u8] = &[0x7f, 0x01];
    let crl = root().crl(&CrlSpec {
        revoked: &[other],
        ..CrlSpec::default()
    });
    check(&crl, now()).expect("a current CRL listing none of the chain");
    let parsed = parse_crl(&crl).expect("parses");
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed.next_update(), Some(UnixTime(NOW + 4 * 86_400)));
    // Its window is inclusive at both ends.
    check(&crl, parsed.this_update()).expect("at thisUpdate");
    check(&crl, UnixTime(NOW + 4 * 86_400)).expect("at nextUpdate");
}

#[test]
fn rejects_a_revoked_ask() {
    let ask = serial(&milan_ask());
    assert_eq!(ask, [0x01, 0x00, 0x01]);
    let crl = root().crl(&CrlSpec {
        revoked: &[&ask],
        ..CrlSpec::default()
    });
    let e = check(&crl, now()).expect_err("the Milan ASK is listed");
    assert_eq!(
        e,
        VerifyError::CertificateRevoked {
            cert: "ask",
            serial: "010001".into(),
            revoked_at: UnixTime(NOW - 4 * 86_400).to_rfc3339(),
        }
    );
    assert_eq!(e.check(), CheckName::Revocation);
    assert_eq!(e.check().as_str(), "revocation");
}

#[test]
fn rejects_a_revoked_asvk_and_a_revoked_ark() {
    let asvk = serial(&milan_asvk());
    let crl = root().crl(&CrlSpec {
        revoked: &[&asvk],
        ..CrlSpec::default()
    });
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CertificateRevoked { cert: "asvk", .. })
    ));
    let ark = serial(&root().ark_der());
    let crl = root().crl(&CrlSpec {
        revoked: &[&ark],
        ..CrlSpec::default()
    });
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CertificateRevoked { cert: "ark", .. })
    ));
}

/// Every VCEK is issued with serial 0 by the ASK, not the ARK: the ARK's CRL cannot name
/// one VCEK, and an entry 0 there is about a certificate the ARK issued.
#[test]
fn an_ark_crl_entry_does_not_reach_a_vcek_issued_by_the_ask() {
    assert_eq!(serial(MILAN_VCEK), [0]);
    let zero: &[u8] = &[0];
    let crl = root().crl(&CrlSpec {
        revoked: &[zero],
        ..CrlSpec::default()
    });
    check(&crl, now()).expect("out of the CRL's scope");
}

#[test]
fn rejects_a_crl_with_a_bad_signature() {
    let mut crl = root().crl(&CrlSpec::default());
    let last = crl.len() - 1;
    crl[last] ^= 1;
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CrlSignature(m)) if m.contains("does not verify")
    ));
    // One byte of the signed part (inside thisUpdate's digits) changed.
    let mut crl = root().crl(&CrlSpec::default());
    let at = crl
        .windows(2)
        .position(|w| w == [0x17, 0x0d])
        .expect("UTCTime")
        + 4;
    crl[at] ^= 1;
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CrlSignature(_) | VerifyError::MalformedCrl(_))
    ));
    // Signed by another key under the same name.
    let crl = TestRoot::new(Product::Milan, 2).crl(&CrlSpec::default());
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CrlSignature(m)) if m.contains("does not verify")
    ));
}

#[test]
fn rejects_a_crl_of_another_issuer() {
    let crl = TestRoot::new(Product::Genoa, 1).crl(&CrlSpec::default());
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CrlSignature(m)) if m.contains("ARK-Genoa")
    ));
}

#[test]
fn rejects_an_expired_crl() {
    let crl = root().crl(&CrlSpec::default());
    let e = check(&crl, UnixTime(NOW + 4 * 86_400 + 1)).expect_err("after nextUpdate");
    assert!(matches!(e, VerifyError::CrlNotValid { .. }), "{e}");
    assert_eq!(e.check(), CheckName::Revocation);
}

#[test]
fn rejects_a_crl_not_yet_valid() {
    let crl = root().crl(&CrlSpec::default());
    let e = check(&crl, UnixTime(NOW - 3 * 86_400 - 1)).expect_err("before thisUpdate");
    assert!(matches!(e, VerifyError::CrlNotValid { .. }), "{e}");
}

#[test]
fn rejects_a_crl_without_next_update() {
    let crl = root().crl(&CrlSpec {
        next_update: None,
        ..CrlSpec::default()
    });
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::CrlNotValid { next_update, .. }) if next_update == "none"
    ));
}

#[test]
fn rejects_a_crl_with_a_critical_extension() {
    let crl = root().crl(&CrlSpec {
        critical_extension: true,
        ..CrlSpec::default()
    });
    assert!(matches!(
        check(&crl, now()),
        Err(VerifyError::MalformedCrl(m)) if m.contains("2.5.29.28")
    ));
}

#[test]
fn rejects_malformed_and_oversized_crls() {
    for bytes in [&b""[..], b"\x30\x03\x02\x01\x01", b"not a CRL"] {
        assert!(matches!(
            parse_crl(bytes),
            Err(VerifyError::MalformedCrl(_))
        ));
    }
    let mut crl = root().crl(&CrlSpec::default());
    crl.push(0);
    assert!(matches!(parse_crl(&crl), Err(VerifyError::MalformedCrl(_))));
    let huge = vec![0x30; veil_attest::snp::MAX_CRL_LEN + 1];
    assert!(matches!(parse_crl(&huge), Err(VerifyError::MalformedCrl(m)) if m.contains("limit")));
}

#[test]
fn reads_a_crl_file_in_der_or_pem() {
    let der = root().crl(&CrlSpec::default());
    assert_eq!(read_crl(&der).expect("DER"), der);
    let pem = pem::encode(&pem::Pem::new("X509 CRL", der.clone()));
    assert_eq!(read_crl(pem.as_bytes()).expect("PEM"), der);
    let cert = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    assert!(matches!(
        read_crl(cert.as_bytes()),
        Err(VerifyError::MalformedCrl(_))
    ));
}

// Through `verify`, on real evidence: what the pinned ARK decides.

#[test]
fn without_a_crl_revocation_is_not_checked_and_the_verdict_says_so() {
    // The captured Milan report is below AMD's TCB floor (2022 firmware): accepted explicitly,
    // since revocation is what this test is about.
    let p = Policy::default().allow_outdated_tcb(true);
    let a = audit(&milan_evidence(None), &p, now());
    let verdict = a.outcome.expect("verifies without a CRL by default");
    assert!(
        verdict
            .warnings
            .iter()
            .any(|w| w.starts_with("revocation not checked")),
        "{:?}",
        verdict.warnings
    );
    let c = a
        .checks
        .iter()
        .find(|c| c.name == CheckName::Revocation)
        .expect("revocation check recorded");
    assert!(c.ok && c.detail.contains("not checked"), "{c:?}");
}

#[test]
fn require_crl_refuses_evidence_without_one() {
    let a = audit(&milan_evidence(None), &require_crl(), now());
    assert_eq!(a.outcome.expect_err("no CRL"), VerifyError::CrlMissing);
    let last = a.checks.last().expect("checks");
    assert_eq!((last.name, last.ok), (CheckName::Revocation, false));
}

#[test]
fn a_crl_the_pinned_ark_did_not_sign_is_refused() {
    // ARK-Milan's name, the test key: the pinned ARK's key does not verify it.
    let crl = root().crl(&CrlSpec::default());
    for policy in [Policy::default(), require_crl()] {
        let e = verify(&milan_evidence(Some(crl.clone())), &policy, now())
            .expect_err("not signed by AMD");
        assert!(
            matches!(&e, VerifyError::CrlSignature(m) if m.contains("does not verify")),
            "{e}"
        );
        assert_eq!(e.check(), CheckName::Revocation);
    }
    let e = verify(
        &milan_evidence(Some(b"junk".to_vec())),
        &Policy::default(),
        now(),
    )
    .expect_err("malformed");
    assert!(matches!(e, VerifyError::MalformedCrl(_)), "{e}");
}

#[test]
fn the_crl_travels_in_the_certificate_table_and_the_bundle() {
    let crl = root().crl(&CrlSpec::default());
    let Evidence::SevSnp(ev) = milan_evidence(Some(crl.clone())) else {
        unreachable!()
    };
    let table = ev.certs.to_cert_table();
    let back = SnpCerts::from_cert_table(&table).expect("table parses");
    assert_eq!(back, ev.certs);
    assert_eq!(back.crl.as_deref(), Some(&crl[..]));

    let json = Evidence::SevSnp(ev).to_json();
    assert!(json.contains("\"crl\""));
    let Evidence::SevSnp(again) = Evidence::from_json(json.as_bytes()).expect("bundle") else {
        unreachable!()
    };
    assert_eq!(again.certs.crl, Some(crl));
}

#[test]
fn policy_key_require_crl_defaults_off() {
    assert!(!Policy::default().snp.require_crl);
    assert!(require_crl().snp.require_crl);
}
