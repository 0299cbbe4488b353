//! The fuzz entry points of `veil-attest`, one per parser of untrusted bytes.
//!
//! Shared by the cargo-fuzz targets (`fuzz_targets/*.rs`, nightly + libFuzzer) and by
//! the stable smoke test `attest/tests/attest/fuzz_smoke.rs`, which includes this file as a
//! module with `#[path]` (so the fuzz crate stays out of the main workspace). It must
//! therefore depend on nothing but `std` and `veil-attest`.
//!
//! Every function must return normally for every input: a panic is a bug. Results are
//! deliberately ignored; only panics, aborts, hangs and sanitizer reports count.

use std::sync::OnceLock;

use veil_attest::nvidia::{GpuEvidence, GpuPolicy, spdm, verify_gpu};
use veil_attest::snp::{
    Product, REPORT_LEN, parse_cert_table, parse_crl, read_crl, split_certificates,
};
use veil_attest::tdx::parse_td_report;
use veil_attest::{
    Evidence, Platform, Policy, SnpCerts, SnpEvidence, TdxEvidence, UnixTime, verify,
};

/// A genuine Milan VCEK (valid 2023-04-03 .. 2030-04-03), so mutated reports get past the
/// certificate stage to the chain, validity, signature and TCB checks.
pub const MILAN_VCEK: &[u8] =
    include_bytes!("../../attest/tests/vectors/snp/milan-v2-virtee/vcek.der");
/// The report that `MILAN_VCEK` signed (v2, VCEK).
pub const MILAN_REPORT: &[u8] =
    include_bytes!("../../attest/tests/vectors/snp/milan-v2-virtee/report.bin");
/// A report signed by a VLEK (v3, AWS), for certificate tables that carry a VLEK.
pub const VLEK_REPORT: &[u8] =
    include_bytes!("../../attest/tests/vectors/snp/milan-v3-aws-vlek/report.bin");
/// Genuine PCS collateral for the FMSPC b0c06f (valid 2025-06 .. 2025-07-19).
pub const TDX_COLLATERAL: &[u8] =
    include_bytes!("../../attest/tests/vectors/tdx/v4-b0c06f-phala/collateral.json");

/// A genuine NVIDIA Hopper chain (PEM, leaf first; valid 2022-03-01 .. 9999-12-31).
pub const GPU_CHAIN: &[u8] =
    include_bytes!("../../attest/tests/vectors/nvidia/hopper_cert_chain_case1.txt");
/// The report (hex text) that `GPU_CHAIN`'s leaf signed.
pub const GPU_REPORT_HEX: &[u8] =
    include_bytes!("../../attest/tests/vectors/nvidia/hopperAttestationReport.txt");

/// 2025-11-24T16:00:00Z: inside the validity of every SNP certificate vector.
pub const SNP_NOW: UnixTime = UnixTime(1_764_000_000);
/// 2025-06-21T10:00:00Z: inside the validity window of `TDX_COLLATERAL`.
pub const TDX_NOW: UnixTime = UnixTime(1_750_500_000);

/// The vectors' Milan report is below AMD's TCB floor (2022 firmware): the fuzzer accepts
/// its TCB so that inputs reach the checks after `tcb`.
fn snp_policy() -> Policy {
    Policy::default().allow_outdated_tcb(true)
}

fn milan_certs() -> &'static SnpCerts {
    static CERTS: OnceLock<SnpCerts> = OnceLock::new();
    CERTS.get_or_init(|| {
        SnpCerts::classify([MILAN_VCEK.to_vec()]).expect("the Milan VCEK vector classifies")
    })
}

fn tdx_evidence(quote: &[u8]) -> TdxEvidence {
    // Parsing the 16 KiB collateral once, not per input, keeps the executions fast.
    static EVIDENCE: OnceLock<TdxEvidence> = OnceLock::new();
    let mut ev = EVIDENCE
        .get_or_init(|| {
            TdxEvidence::new(Vec::new(), TDX_COLLATERAL).expect("the TDX collateral vector parses")
        })
        .clone();
    ev.quote = quote.to_vec();
    ev
}

/// Verifies certificates taken from untrusted bytes against a genuine report.
fn verify_snp_certs(certs: SnpCerts) {
    let report = if certs.vlek.is_some() {
        VLEK_REPORT
    } else {
        MILAN_REPORT
    };
    let ev = Evidence::SevSnp(SnpEvidence::new(report.to_vec(), certs));
    let _ = verify(&ev, &snp_policy(), SNP_NOW);
}

/// `snp_report`: the bytes as an SEV-SNP attestation report.
pub fn snp_report(data: &[u8]) {
    let ev = Evidence::SevSnp(SnpEvidence::new(data.to_vec(), SnpCerts::default()));
    let _ = verify(&ev, &snp_policy(), SNP_NOW);
    if let Some(report) = data.get(..REPORT_LEN) {
        let ev = Evidence::SevSnp(SnpEvidence::new(report.to_vec(), milan_certs().clone()));
        let _ = verify(&ev, &snp_policy(), SNP_NOW);
    }
}

/// `tdx_quote`: the bytes as a TDX DCAP quote, parsed alone and verified with genuine collateral.
pub fn tdx_quote(data: &[u8]) {
    let _ = parse_td_report(data);
    let _ = verify(
        &Evidence::Tdx(tdx_evidence(data)),
        &Policy::default(),
        TDX_NOW,
    );
}

/// `snp_cert_table`: the bytes as an SEV-SNP certificate table (from the host) and as a
/// certificate file (DER or PEM); certificates found are verified against a genuine report.
pub fn snp_cert_table(data: &[u8]) {
    let _ = parse_cert_table(data);
    if let Ok(certs) = SnpCerts::from_cert_table(data) {
        verify_snp_certs(certs);
    }
    if let Ok(ders) = split_certificates(data)
        && let Ok(certs) = SnpCerts::classify(ders)
    {
        verify_snp_certs(certs);
    }
}

/// `snp_crl`: the bytes as AMD's CRL (DER, or a PEM file), checked against the pinned
/// Milan ARK and a genuine chain, and carried by genuine evidence.
pub fn snp_crl(data: &[u8]) {
    static ARK: OnceLock<Vec<u8>> = OnceLock::new();
    let ark = ARK.get_or_init(|| Product::Milan.ark_der().expect("the pinned Milan ARK"));
    let _ = read_crl(data);
    if let Ok(crl) = parse_crl(data) {
        let _ = (crl.this_update(), crl.next_update(), crl.len());
        let _ = crl.verify(ark, SNP_NOW);
        let _ = crl.check_not_revoked(ark, "ark");
        let _ = crl.check_not_revoked(MILAN_VCEK, "vcek");
    }
    let mut certs = milan_certs().clone();
    certs.crl = Some(data.to_vec());
    verify_snp_certs(certs);
}

/// `evidence_bundle`: the bytes as a JSON evidence bundle, and as a TOML policy.
pub fn evidence_bundle(data: &[u8]) {
    if let Ok(ev) = Evidence::from_json(data) {
        let now = match ev.platform() {
            Platform::Tdx => TDX_NOW,
            _ => SNP_NOW,
        };
        let _ = verify(&ev, &snp_policy().allow_simulated(true), now);
    }
    let _ = Policy::from_toml(&String::from_utf8_lossy(data));
}

/// `gpu_report`: the bytes as an NVIDIA GPU attestation report (raw or hex text) verified
/// with a genuine chain, and as a certificate chain (PEM or DER) for a genuine report.
pub fn gpu_report(data: &[u8]) {
    static GENUINE: OnceLock<GpuEvidence> = OnceLock::new();
    let genuine = GENUINE.get_or_init(|| {
        GpuEvidence::from_files(GPU_REPORT_HEX, GPU_CHAIN).expect("the GPU vectors parse")
    });
    let _ = spdm::parse(data);
    if let Ok(report) = spdm::decode_report_file(data) {
        let mut ev = genuine.clone();
        ev.report = report;
        let _ = verify_gpu(&ev, &GpuPolicy::default(), None, SNP_NOW);
    }
    if let Ok(certs) = split_certificates(data) {
        let mut ev = genuine.clone();
        ev.certs = certs;
        let _ = verify_gpu(&ev, &GpuPolicy::default(), None, SNP_NOW);
    }
}

/// `pcs_collateral`: the bytes as an answer of Intel's PCS or a PCCS: signed TCB info or
/// QE identity JSON and its dates, a CRL body in DER, PEM or hex and its window, a
/// certificate's CRL distribution point.
pub fn pcs_collateral(data: &[u8]) {
    use veil_attest::tdx::pcs::{crl_der, crl_distribution_point, crl_window, dated, signed_json};
    if let Ok((json, _)) = signed_json(data, "TCB info") {
        let _ = dated(&json, "TCB info");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dated(text, "QE identity");
    }
    if let Ok(der) = crl_der(data.to_vec(), "CRL") {
        let _ = crl_window(&der, "CRL");
    }
    let _ = crl_distribution_point(data);
}
