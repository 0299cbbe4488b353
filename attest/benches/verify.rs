//! Verification latency per platform on real evidence (goal: SNP < 5 ms, TDX < 10 ms, one core).
//!
//! Run with `cargo bench -p veil-attest --bench verify`.

use criterion::{Criterion, criterion_group, criterion_main};
use veil_attest::{
    Evidence, Policy, SimulatedEvidence, SnpCerts, SnpEvidence, TdxEvidence, UnixTime, verify,
};

const SNP_REPORT: &[u8] = include_bytes!("../tests/vectors/snp/milan-v2-virtee/report.bin");
const SNP_VCEK: &[u8] = include_bytes!("../tests/vectors/snp/milan-v2-virtee/vcek.der");
const TDX_QUOTE: &[u8] = include_bytes!("../tests/vectors/tdx/v4-b0c06f-phala/quote.bin");
const TDX_COLLATERAL: &[u8] =
    include_bytes!("../tests/vectors/tdx/v4-b0c06f-phala/collateral.json");

fn bench(c: &mut Criterion) {
    let snp = Evidence::SevSnp(SnpEvidence::new(
        SNP_REPORT.to_vec(),
        SnpCerts::classify([SNP_VCEK.to_vec()]).expect("vcek"),
    ));
    let snp_now = UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time");
    let policy = Policy::default();
    verify(&snp, &policy, snp_now).expect("snp verifies");
    c.bench_function("verify/sev-snp milan v2 (VCEK, built-in ASK/ARK)", |b| {
        b.iter(|| verify(&snp, &policy, snp_now))
    });

    let tdx =
        Evidence::Tdx(TdxEvidence::new(TDX_QUOTE.to_vec(), TDX_COLLATERAL).expect("collateral"));
    let tdx_now = UnixTime(1_750_500_000);
    verify(&tdx, &policy, tdx_now).expect("tdx verifies");
    c.bench_function("verify/tdx v4 (quote + collateral)", |b| {
        b.iter(|| verify(&tdx, &policy, tdx_now))
    });

    let bundle = tdx.to_json();
    c.bench_function("parse/tdx evidence bundle (JSON)", |b| {
        b.iter(|| Evidence::from_json(bundle.as_bytes()))
    });

    let sim = Evidence::Simulated(SimulatedEvidence::sign(&[1; 32], [2; 48], [3; 64]));
    let sim_policy = Policy::default().allow_simulated(true);
    c.bench_function("verify/simulated", |b| {
        b.iter(|| verify(&sim, &sim_policy, snp_now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
