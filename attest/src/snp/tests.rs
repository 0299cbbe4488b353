//! Rules whose negative case cannot be produced by tampering with signed evidence
//! (any change breaks the signature first), tested on real certificates and reports.

use super::*;

const VCEK: &[u8] = include_bytes!("../../tests/vectors/snp/milan-v2-virtee/vcek.der");
const REPORT: &[u8] = include_bytes!("../../tests/vectors/snp/milan-v2-virtee/report.bin");

fn real() -> (
    certs::VekExtensions,
    sev::firmware::guest::AttestationReport,
) {
    let ext = certs::vek_extensions(&certs::parse(VCEK).expect("vcek")).expect("extensions");
    (ext, report::parse(REPORT).expect("report").fields)
}

#[test]
fn real_vcek_extensions_match_the_real_report() {
    let (ext, r) = real();
    assert_eq!(
        (ext.bootloader, ext.tee, ext.snp, ext.microcode, ext.fmc),
        (Some(3), Some(0), Some(8), Some(115), None)
    );
    check_tcb_binding(&ext, &r.reported_tcb).expect("binding holds");
    check_chip_id(
        SigningKey::Vcek,
        &r.chip_id,
        ext.hw_id.as_deref(),
        &mut Checks::default(),
        &mut vec![],
    )
    .expect("chip id holds");
}

#[test]
fn rejects_vcek_whose_tcb_extension_disagrees_with_the_report() {
    let (ext, r) = real();
    let mut t = r.reported_tcb;
    t.microcode = 116;
    assert_eq!(
        check_tcb_binding(&ext, &t),
        Err(VerifyError::TcbMismatch {
            component: "microcode",
            cert: 115,
            report: 116
        })
    );
    let mut t = r.reported_tcb;
    t.bootloader = 2;
    assert!(matches!(
        check_tcb_binding(&ext, &t),
        Err(VerifyError::TcbMismatch {
            component: "bootloader",
            ..
        })
    ));
    let mut t = r.reported_tcb;
    t.snp = 9;
    assert!(matches!(
        check_tcb_binding(&ext, &t),
        Err(VerifyError::TcbMismatch {
            component: "snp",
            ..
        })
    ));
}

#[test]
fn rejects_vcek_missing_a_tcb_extension() {
    let (mut ext, r) = real();
    ext.tee = None;
    assert!(
        matches!(check_tcb_binding(&ext, &r.reported_tcb), Err(VerifyError::MalformedCertificate(m)) if m.contains("tee"))
    );
}

#[test]
fn rejects_vcek_of_another_chip_by_hwid() {
    let (ext, r) = real();
    let mut chip = r.chip_id;
    chip[5] ^= 1;
    assert_eq!(
        check_chip_id(
            SigningKey::Vcek,
            &chip,
            ext.hw_id.as_deref(),
            &mut Checks::default(),
            &mut vec![]
        ),
        Err(VerifyError::ChipIdMismatch)
    );
}

#[test]
fn masked_chip_id_is_a_warning_not_a_mismatch() {
    let (ext, _) = real();
    let mut warnings = vec![];
    check_chip_id(
        SigningKey::Vcek,
        &[0; 64],
        ext.hw_id.as_deref(),
        &mut Checks::default(),
        &mut warnings,
    )
    .expect("masked chip id accepted");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn rejects_migration_agent_by_default() {
    let guest = GuestPolicy::from(0x30000 | 1 << 18);
    assert_eq!(
        check_guest_policy(
            guest,
            0,
            &Policy::default(),
            &mut Checks::default(),
            &mut vec![]
        ),
        Err(VerifyError::MigrationAgentRejected)
    );
    let mut p = Policy::default();
    p.snp.allow_migration_agent = true;
    check_guest_policy(guest, 0, &p, &mut Checks::default(), &mut vec![]).expect("allowed");
}

#[test]
fn rejects_debug_guest_by_default() {
    let guest = GuestPolicy::from(0x30000 | 1 << 19);
    assert_eq!(
        check_guest_policy(
            guest,
            0,
            &Policy::default(),
            &mut Checks::default(),
            &mut vec![]
        ),
        Err(VerifyError::DebugGuestRejected)
    );
}
