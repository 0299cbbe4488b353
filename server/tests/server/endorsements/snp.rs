//! SEV-SNP: the VCEK and its chain from a fake KDS.

use std::time::Instant;

use veil_attest::attester::{AttestError, Attester as _, EndorsementSource as _};
use veil_attest::snp::Product;
use veil_attest::{Evidence, Policy, UnixTime, verify};

use super::fake::{Chip, Fake, Mode, kds_for};
use super::{TestClock, attester, endorser, vector};

const NOW: &str = "2026-11-25T00:00:00Z";

/// The report and the chip KDS knows it by, read from the report's bytes (chip id at
/// 0x1A0, reported TCB at 0x180: boot loader, TEE, 4 reserved, SNP, microcode).
fn chip(dir: &str, product: Product) -> (Vec<u8>, Chip) {
    let report = vector(&format!("snp/{dir}/report.bin"));
    let t = &report[0x180..0x188];
    let vcek = vector(&format!("snp/{dir}/vcek.pem"));
    let chip = Chip {
        product,
        hwid: hex::encode(&report[0x1A0..0x1E0]),
        query: format!(
            "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            t[0], t[1], t[6], t[7]
        ),
        vcek_der: pem::parse(&vcek).expect("pem").into_contents(),
        chain_of: product,
        crl: None,
    };
    (report, chip)
}

fn no_pccs() -> &'static str {
    "http://127.0.0.1:9"
}

#[test]
fn bundles_from_the_fake_kds_verify_offline() {
    for (dir, product) in [
        ("milan-v3-azure", Product::Milan),
        ("genoa-v3-azure", Product::Genoa),
    ] {
        let (report, chip) = chip(dir, product);
        let kds = kds_for(chip.clone());
        let cache = tempfile::tempdir().expect("cache");
        let e = endorser(cache.path(), &kds.url, no_pccs(), TestClock::at(NOW));
        let (a, _tree) = attester("sev_guest", report, e.clone());
        let ev = a.attest(&[0; 64]).expect("evidence");
        let Evidence::SevSnp(snp) = &ev else {
            panic!("{dir}: not SNP")
        };
        assert_eq!(snp.certs.vcek.as_ref(), Some(&chip.vcek_der), "{dir}");
        assert_eq!(snp.certs.ark, Some(product.ark_der().expect("ark")));
        assert!(snp.certs.crl.is_none(), "the fake KDS has no CRL");
        let now = UnixTime::parse_rfc3339(NOW).expect("now");
        verify(&ev, &Policy::default(), now).unwrap_or_else(|e| panic!("{dir}: {e}"));
        super::veil_accepts_until_expiry(&ev, NOW, dir);

        // The exact KDS paths, then the cache: a second bundle asks KDS nothing.
        let hits = kds.shared.hits.lock().expect("hits").clone();
        assert_eq!(
            hits,
            [
                format!("/vcek/v1/{product}/{}?{}", chip.hwid, chip.query),
                format!("/vcek/v1/{product}/cert_chain"),
                format!("/vcek/v1/{product}/crl"),
            ],
            "{dir}"
        );
        a.attest(&[1; 64]).expect("second");
        assert_eq!(kds.shared.count(), 3);
        // A fresh process finds the set on disk.
        let again = endorser(
            cache.path(),
            "http://127.0.0.1:9",
            no_pccs(),
            TestClock::at(NOW),
        );
        let certs = again.snp_certs(&vector(&format!("snp/{dir}/report.bin")));
        assert_eq!(certs.expect("from disk").vcek, Some(chip.vcek_der));
    }
}

fn fetch_with(mode: Mode, tweak: impl FnOnce(&mut Chip)) -> (Result<(), AttestError>, Fake) {
    let (report, mut chip) = chip("milan-v3-azure", Product::Milan);
    tweak(&mut chip);
    let kds = kds_for(chip);
    kds.shared.set(mode);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(cache.path(), &kds.url, no_pccs(), TestClock::at(NOW));
    let r = e.snp_certs(&report).map(|_| ());
    assert!(
        !std::fs::read_dir(cache.path()).is_ok_and(|mut d| d.next().is_some()),
        "nothing cached after a failure"
    );
    (r, kds)
}

fn refused(r: Result<(), AttestError>, what: &str) -> String {
    match r {
        Err(AttestError::Endorsements(m)) => m,
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_chain_that_is_not_the_pinned_root_is_refused() {
    let (r, _) = fetch_with(Mode::Normal, |c| c.chain_of = Product::Genoa);
    let m = refused(r, "Genoa chain for a Milan chip");
    assert!(m.contains("ARK") || m.contains("certificates"), "{m}");
}

#[test]
fn a_vcek_of_another_chip_is_not_asked_for() {
    // KDS answers 404 for a hwid/TCB it does not know: here, a fake that knows another TCB.
    let (r, kds) = fetch_with(Mode::Normal, |c| {
        c.query = c.query.replace("blSPL=", "blSPL=9")
    });
    let m = refused(r, "unknown TCB");
    assert!(m.contains("HTTP 404"), "{m}");
    assert_eq!(kds.shared.count(), 1, "a 404 is not retried");
}

#[test]
fn truncated_and_oversized_answers_are_refused() {
    let (r, _) = fetch_with(Mode::Truncated, |_| {});
    let m = refused(r, "truncated");
    assert!(m.contains("invalid endorsements"), "{m}");
    let (r, _) = fetch_with(Mode::Oversized, |_| {});
    let m = refused(r, "oversized");
    assert!(m.contains("larger than"), "{m}");
}

#[test]
fn a_failing_kds_is_retried_then_reported() {
    let (r, kds) = fetch_with(Mode::Fail, |_| {});
    let m = refused(r, "500");
    assert!(m.contains("HTTP 500"), "{m}");
    assert_eq!(kds.shared.count(), 2, "two attempts");
}

#[test]
fn a_slow_kds_times_out() {
    let started = Instant::now();
    let (r, _) = fetch_with(Mode::Slow, |_| {});
    let m = refused(r, "slow");
    assert!(m.contains("timed out"), "{m}");
    assert!(started.elapsed().as_secs() < 3, "{:?}", started.elapsed());
}

#[test]
fn a_vlek_is_never_fetched() {
    let (_, chip) = chip("milan-v3-azure", Product::Milan);
    let kds = kds_for(chip);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(cache.path(), &kds.url, no_pccs(), TestClock::at(NOW));
    let r = e.snp_certs(&vector("snp/milan-v3-aws-vlek/report.bin"));
    assert!(
        matches!(r, Err(AttestError::NoCertificates("VLEK"))),
        "{r:?}"
    );
    assert_eq!(kds.shared.count(), 0);
}

#[test]
fn a_new_reported_tcb_is_a_new_fetch_not_the_cached_vcek() {
    let (report, chip) = chip("milan-v3-azure", Product::Milan);
    let kds = kds_for(chip);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(cache.path(), &kds.url, no_pccs(), TestClock::at(NOW));
    e.snp_certs(&report).expect("first TCB");
    assert_eq!(kds.shared.count(), 3);
    // After a firmware update the report names another TCB: its VCEK is another one, which
    // this KDS does not have, and the cached VCEK (for the old TCB) is not handed out.
    let mut updated = report.clone();
    updated[0x186] += 1;
    let r = e.snp_certs(&updated);
    let m = refused(r.map(|_| ()), "new TCB");
    assert!(m.contains("HTTP 404"), "{m}");
    let asked = kds.shared.hits.lock().expect("hits").clone();
    assert!(
        asked[3].starts_with("404 ") && asked[3].contains(&format!("snpSPL={}", updated[0x186])),
        "{asked:?}"
    );
}

#[test]
fn a_crl_the_pinned_ark_did_not_sign_is_dropped() {
    // A CRL in ARK-Milan's name signed by a test key (the fuzz corpus's): KDS's answer, but
    // not AMD's signature. The evidence goes without it, and still verifies.
    let crl = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/snp_crl/test-root-revokes-milan-ask.crl"
    ))
    .expect("crl");
    let (report, mut chip) = chip("milan-v3-azure", Product::Milan);
    chip.crl = Some(crl);
    let kds = kds_for(chip);
    let cache = tempfile::tempdir().expect("cache");
    let e = endorser(cache.path(), &kds.url, no_pccs(), TestClock::at(NOW));
    let certs = e.snp_certs(&report).expect("certificates");
    assert!(certs.crl.is_none());
    assert_eq!(kds.shared.count(), 3, "the CRL was fetched");
    let ev = Evidence::SevSnp(veil_attest::SnpEvidence::new(report, certs));
    let now = UnixTime::parse_rfc3339(NOW).expect("now");
    verify(&ev, &Policy::default(), now).expect("verifies without a CRL");
    let listed = e.cache().list().expect("list");
    let entry = listed[0].as_ref().expect("entry");
    assert!(
        !entry.sources.iter().any(|s| s.ends_with("/crl")),
        "{:?}",
        entry.sources
    );
}
