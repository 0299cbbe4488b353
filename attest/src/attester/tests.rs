//! Every backend against a fake configfs-tsm tree filled with real captured evidence.

use std::sync::Arc;

use super::*;
use crate::snp::split_certificates;
use crate::{Policy, ReportData, ServerManifest, SnpCerts, UnixTime, VerifyError, verify};

const SNP_REPORT: &[u8] = include_bytes!("../../tests/vectors/snp/milan-v2-virtee/report.bin");
const SNP_VCEK: &[u8] = include_bytes!("../../tests/vectors/snp/milan-v2-virtee/vcek.der");
const TDX_QUOTE: &[u8] = include_bytes!("../../tests/vectors/tdx/v4-b0c06f-phala/quote.bin");
const TDX_COLLATERAL: &[u8] =
    include_bytes!("../../tests/vectors/tdx/v4-b0c06f-phala/collateral.json");

fn snp_now() -> UnixTime {
    UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time")
}

fn vcek_table() -> Vec<u8> {
    SnpCerts::classify(split_certificates(SNP_VCEK).expect("der"))
        .expect("classify")
        .to_cert_table()
}

fn report_data() -> [u8; 64] {
    let manifest = ServerManifest {
        binary_sha256: [1; 32],
        model_digest: [2; 32],
    };
    ReportData::new(b"key-config", &[7; 32], &manifest.digest())
        .expect("rd")
        .0
}

struct Tree {
    dir: tempfile::TempDir,
    fake: Arc<FakeTsm>,
}

impl Tree {
    fn new(cfg: FakeTsmConfig) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            fake: Arc::new(FakeTsm::new(cfg)),
        }
    }

    fn attester(&self, endorsements: Endorsements) -> ConfigfsTsm {
        ConfigfsTsm::with_fs(self.dir.path().to_owned(), endorsements, self.fake.clone())
    }

    fn is_empty(&self) -> bool {
        std::fs::read_dir(self.dir.path())
            .expect("read_dir")
            .next()
            .is_none()
    }
}

#[test]
fn configfs_snp_produces_verifiable_evidence_and_cleans_up() {
    let tree = Tree::new(FakeTsmConfig::new(
        Some("sev_guest"),
        SNP_REPORT.to_vec(),
        vcek_table(),
    ));
    let rd = report_data();
    let ev = tree
        .attester(Endorsements::default())
        .attest(&rd)
        .expect("evidence");
    assert_eq!(
        tree.fake.inblobs(),
        vec![rd.to_vec()],
        "exactly our 64 bytes reach the kernel"
    );
    assert!(tree.is_empty(), "entry removed");
    let v = verify(&ev, &old_tcb(), snp_now()).expect("the captured report verifies");
    assert_eq!(v.platform, Platform::SevSnp);
    // The fake returns a captured report, whose REPORT_DATA is not ours: the binding check names it.
    assert!(matches!(
        verify(&ev, &old_tcb().expect_report_data(rd), snp_now()),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn configfs_snp_without_host_certificates_uses_the_cert_dir_or_says_what_is_missing() {
    let tree = Tree::new(FakeTsmConfig::new(
        Some("sev_guest"),
        SNP_REPORT.to_vec(),
        Vec::new(),
    ));
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("no certs");
    assert!(matches!(err, AttestError::NoCertificates(_)), "{err}");
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::write(certs.path().join("vcek.der"), SNP_VCEK).expect("write");
    let e = Endorsements::new(Some(certs.path().to_owned()), None);
    let ev = tree.attester(e).attest(&report_data()).expect("evidence");
    verify(&ev, &old_tcb(), snp_now()).expect("verifies with cached VCEK");
}

#[test]
fn configfs_tdx_produces_verifiable_evidence_with_configured_collateral() {
    let tree = Tree::new(FakeTsmConfig::new(
        Some("tdx_guest"),
        TDX_QUOTE.to_vec(),
        Vec::new(),
    ));
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("no collateral");
    assert!(matches!(err, AttestError::NoCollateral));
    let dir = tempfile::tempdir().expect("tempdir");
    let col = dir.path().join("collateral.json");
    std::fs::write(&col, TDX_COLLATERAL).expect("write");
    let ev = tree
        .attester(Endorsements::new(None, Some(col)))
        .attest(&report_data())
        .expect("evidence");
    let v = verify(&ev, &Policy::default(), UnixTime(1_750_500_000)).expect("verifies");
    assert_eq!(v.platform, Platform::Tdx);
    assert!(tree.is_empty());
}

#[test]
fn configfs_retries_a_racing_writer_then_gives_up() {
    let mut cfg = FakeTsmConfig::new(Some("sev_guest"), SNP_REPORT.to_vec(), vcek_table());
    cfg.races = 1;
    let tree = Tree::new(cfg);
    tree.attester(Endorsements::default())
        .attest(&report_data())
        .expect("second attempt wins");
    assert_eq!(tree.fake.entries().len(), 2);

    let mut cfg = FakeTsmConfig::new(Some("sev_guest"), SNP_REPORT.to_vec(), vcek_table());
    cfg.races = 10;
    let tree = Tree::new(cfg);
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("raced");
    assert!(
        matches!(
            err,
            AttestError::Raced {
                attempts: 3,
                before: 0,
                after: 2
            }
        ),
        "{err}"
    );
    assert!(tree.is_empty());
}

#[test]
fn configfs_names_a_missing_provider() {
    let tree = Tree::new(FakeTsmConfig::new(None, SNP_REPORT.to_vec(), Vec::new()));
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("no provider");
    assert!(matches!(err, AttestError::NoProvider(_)), "{err}");
    assert!(tree.is_empty());
    let tree = Tree::new(FakeTsmConfig::new(
        Some("arm_cca"),
        vec![0; 100],
        Vec::new(),
    ));
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("unknown");
    assert!(matches!(err, AttestError::UnknownProvider(p) if p == "arm_cca"));
}

#[test]
fn configfs_refuses_a_short_inblob_write() {
    let mut cfg = FakeTsmConfig::new(Some("sev_guest"), SNP_REPORT.to_vec(), vcek_table());
    cfg.short_write = Some(32);
    let tree = Tree::new(cfg);
    let err = tree
        .attester(Endorsements::default())
        .attest(&report_data())
        .expect_err("short");
    assert!(
        matches!(err, AttestError::ShortInblob { written: 32 }),
        "{err}"
    );
}

#[test]
fn configfs_refuses_short_and_oversized_output() {
    for (provider, out) in [
        ("sev_guest", SNP_REPORT[..1000].to_vec()),
        ("sev_guest", [SNP_REPORT, &[0]].concat()),
        ("tdx_guest", TDX_QUOTE[..600].to_vec()),
        ("tdx_guest", vec![1; crate::MAX_QUOTE_LEN + 10]),
    ] {
        let tree = Tree::new(FakeTsmConfig::new(Some(provider), out, vcek_table()));
        let err = tree
            .attester(Endorsements::default())
            .attest(&report_data())
            .expect_err("size");
        assert!(
            matches!(err, AttestError::OutputSize { .. }),
            "{provider}: {err}"
        );
    }
}

#[test]
fn configfs_names_a_root_that_does_not_exist() {
    let a = ConfigfsTsm::new("/nonexistent/tsm/report".into(), Endorsements::default());
    assert!(matches!(
        a.attest(&report_data()),
        Err(AttestError::NotMounted(_))
    ));
}

#[test]
fn simulated_evidence_binds_key_nonce_and_manifest() {
    let manifest = ServerManifest {
        binary_sha256: [1; 32],
        model_digest: [2; 32],
    }
    .digest();
    let key_config = b"\x01\x00\x20public-key-bytes-of-the-gateway..";
    let nonce = [9u8; 32];
    let rd = ReportData::new(key_config, &nonce, &manifest).expect("rd");
    let sim = Simulated::new([5; 32], Simulated::measurement_of(b"server binary"));
    let ev = sim.attest(&rd.0).expect("evidence");
    assert!(ev.to_json().contains("\"platform\": \"simulated\""));

    let allow = Policy::default().allow_simulated(true);
    let v = verify(&ev, &allow.clone().expect_report_data(rd.0), UnixTime(0)).expect("bound");
    assert_eq!(v.platform, Platform::Simulated);
    assert_eq!(
        verify(&ev, &Policy::default(), UnixTime(0)),
        Err(VerifyError::SimulatedRejected)
    );

    let mut other_nonce = nonce;
    other_nonce[0] ^= 1;
    let rd2 = ReportData::new(key_config, &other_nonce, &manifest).expect("rd");
    assert!(matches!(
        verify(&ev, &allow.clone().expect_report_data(rd2.0), UnixTime(0)),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    let mut other_key = key_config.to_vec();
    other_key[5] ^= 1;
    let rd3 = ReportData::new(&other_key, &nonce, &manifest).expect("rd");
    assert!(matches!(
        verify(&ev, &allow.expect_report_data(rd3.0), UnixTime(0)),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    assert!(
        !format!("{sim:?}").contains(&hex::encode([5u8; 32])),
        "no secret in Debug"
    );
}

#[test]
fn detect_prefers_configfs_then_devices_and_never_picks_simulated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let mut cfg = DetectConfig {
        tsm_root: p.join("tsm"),
        sev_device: p.join("sev-guest"),
        tdx_device: p.join("tdx_guest"),
        endorsements: Endorsements::default(),
    };
    let err = detect(&cfg).expect_err("nothing here");
    assert!(matches!(err, AttestError::NoTee(_)) && err.to_string().contains("simulated"));

    std::fs::write(&cfg.tdx_device, b"").expect("touch");
    let d = detect(&cfg).expect("tdx");
    assert_eq!(d.attester.name(), "tdx-guest");
    assert!(
        matches!(d.attester.attest(&[0; 64]), Err(AttestError::QuoteUnavailable(m)) if m.contains("configfs"))
    );

    std::fs::write(&cfg.sev_device, b"").expect("touch");
    assert_eq!(detect(&cfg).expect("sev").attester.name(), "sev-guest");

    std::fs::create_dir(&cfg.tsm_root).expect("mkdir");
    let d = detect(&cfg).expect("configfs");
    assert_eq!(d.attester.name(), "configfs-tsm");
    assert!(d.why.contains("configfs-tsm"));
    cfg.tsm_root = p.join("absent");
    assert_eq!(detect(&cfg).expect("sev").attester.name(), "sev-guest");
}

/// The captured Milan report is from 2022 firmware, below AMD's floor: these tests are about
/// the attester, so they accept its TCB explicitly.
fn old_tcb() -> Policy {
    Policy::default().allow_outdated_tcb(true)
}
