//! A stable-toolchain stand-in for the cargo-fuzz targets of `fuzz/` (which need nightly and
//! libFuzzer): the same entry points (`fuzz/src/attest.rs`, included below) run over every
//! seed of `fuzz/seeds/<target>/` and over deterministic mutations of each (`fuzz/smoke.rs`),
//! and must never panic.
//!
//! `cargo test -p veil-attest --test attest fuzz_smoke -- --ignored regenerate_seeds` rewrites
//! `fuzz/seeds/` from `tests/vectors/` (see `fuzz/README.md`).

#[allow(
    unreachable_pub,
    reason = "the fuzz crate's public entry points, included as a private module"
)]
#[path = "../../../fuzz/src/attest.rs"]
mod harness;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the shared smoke driver; each crate's smoke test uses a subset"
)]
#[path = "../../../fuzz/smoke.rs"]
mod smoke;

use crate::common::crl as crl_root;

use std::path::Path;

use smoke::{seeds, seeds_dir};
use veil_attest::snp::split_certificates;
use veil_attest::{
    Evidence, Policy, SimulatedEvidence, SnpCerts, SnpEvidence, TdxEvidence, verify,
};

#[test]
fn snp_report_never_panics() {
    smoke::smoke("snp_report", harness::snp_report, &[]);
}

#[test]
fn tdx_quote_never_panics() {
    smoke::smoke("tdx_quote", harness::tdx_quote, &[]);
}

#[test]
fn snp_cert_table_never_panics() {
    smoke::smoke("snp_cert_table", harness::snp_cert_table, &[]);
}

#[test]
fn snp_crl_never_panics() {
    smoke::smoke("snp_crl", harness::snp_crl, &[]);
}

#[test]
fn gpu_report_never_panics() {
    smoke::smoke("gpu_report", harness::gpu_report, &[]);
}

#[test]
fn pcs_collateral_never_panics() {
    smoke::smoke("pcs_collateral", harness::pcs_collateral, &[]);
}

#[test]
fn evidence_bundle_never_panics() {
    smoke::smoke("evidence_bundle", harness::evidence_bundle, &[]);
}

/// The seeds and the harness's fixed inputs still reach past parsing: a stale seed, or a
/// `now` outside a certificate's validity, would leave the deep checks unfuzzed.
#[test]
fn seeds_and_fixed_inputs_verify() {
    let milan = SnpCerts::classify([harness::MILAN_VCEK.to_vec()]).expect("classify");
    let ev = Evidence::SevSnp(SnpEvidence::new(harness::MILAN_REPORT.to_vec(), milan));
    verify(
        &ev,
        &Policy::default().allow_outdated_tcb(true),
        harness::SNP_NOW,
    )
    .expect("SNP report and VCEK verify");
    let quote = vector("tdx/v4-b0c06f-phala/quote.bin");
    let ev = Evidence::Tdx(TdxEvidence::new(quote, harness::TDX_COLLATERAL).expect("collateral"));
    verify(&ev, &Policy::default(), harness::TDX_NOW).expect("TDX quote verifies");

    for (name, bytes) in seeds("snp_cert_table") {
        if name.ends_with(".table") {
            let certs = SnpCerts::from_cert_table(&bytes).expect(&name);
            assert!(certs.vcek.is_some() || certs.vlek.is_some(), "{name}");
        }
    }
    for (name, bytes) in seeds("snp_crl") {
        veil_attest::snp::read_crl(&bytes).expect(&name);
    }
    use veil_attest::tdx::pcs;
    for (name, bytes) in seeds("pcs_collateral") {
        if name.ends_with(".json") {
            let (json, sig) = pcs::signed_json(&bytes, &name).expect(&name);
            assert_eq!(sig.len(), 64, "{name}");
            pcs::dated(&json, &name).expect(&name);
        } else if name.starts_with("pck-crl") {
            let der = pcs::crl_der(bytes, &name).expect(&name);
            pcs::crl_window(&der, &name).expect(&name);
        } else {
            assert!(pcs::crl_distribution_point(&bytes).is_some(), "{name}");
        }
    }
    let genuine =
        veil_attest::nvidia::GpuEvidence::from_files(harness::GPU_REPORT_HEX, harness::GPU_CHAIN)
            .expect("GPU vectors");
    for (name, bytes) in seeds("gpu_report") {
        let mut ev = genuine.clone();
        if name.ends_with(".pem") {
            ev.certs = split_certificates(&bytes).expect(&name);
        } else {
            ev.report = bytes;
            if name.contains("580") {
                continue; // another GPU's report: the genuine chain is not its own
            }
        }
        let gpu = veil_attest::nvidia::GpuPolicy::default();
        veil_attest::nvidia::verify_gpu(&ev, &gpu, None, harness::SNP_NOW)
            .outcome
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, bytes) in seeds("evidence_bundle") {
        if name.ends_with(".json") {
            let ev = Evidence::from_json(&bytes).expect(&name);
            let now = match ev.platform() {
                veil_attest::Platform::Tdx => harness::TDX_NOW,
                _ => harness::SNP_NOW,
            };
            let policy = Policy::default()
                .allow_simulated(true)
                .allow_outdated_tcb(true);
            verify(&ev, &policy, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.ends_with(".toml") {
            Policy::from_toml(std::str::from_utf8(&bytes).expect("utf-8")).expect(&name);
        }
    }
}

fn vector(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn classify(files: &[&str]) -> SnpCerts {
    SnpCerts::classify(
        files
            .iter()
            .flat_map(|f| split_certificates(&vector(f)).expect(f)),
    )
    .expect("classify")
}

/// Rewrites `fuzz/seeds/` from the vectors. Run by hand when the vectors or formats change.
#[test]
#[ignore = "writes fuzz/seeds/; run explicitly"]
fn regenerate_seeds() {
    let root = seeds_dir();
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    };

    // Reports, copied as they are.
    for case in [
        "milan-v2-virtee",
        "milan-v2-gosevguest",
        "milan-v2-trustee",
        "milan-v3-azure",
        "genoa-v3-azure",
        "milan-v3-aws-vlek",
    ] {
        write(
            "snp_report",
            &format!("{case}.bin"),
            &vector(&format!("snp/{case}/report.bin")),
        );
    }

    // Quotes, copied as they are.
    for (name, path) in [
        ("v4-b0c06f-phala", "tdx/v4-b0c06f-phala/quote.bin"),
        ("v4-20a06f-near", "tdx/v4-20a06f-near/quote.bin"),
        ("v5-90c06f-gotdxguest", "tdx/v5-90c06f-gotdxguest/quote.bin"),
        (
            "v4-debug-trustee",
            "tdx/no-collateral/trustee_tdx_quote_4_v4_debug.dat",
        ),
    ] {
        write("tdx_quote", &format!("{name}.bin"), &vector(path));
    }

    // Certificate tables (derived with `to_cert_table`), and certificate files as they are
    // (`split_certificates` takes DER or PEM).
    let virtee = classify(&[
        "snp/milan-v2-virtee/vcek.der",
        "snp/milan-v2-virtee/ask_ark.pem",
    ]);
    let vlek = classify(&[
        "snp/milan-v3-aws-vlek/vlek.der",
        "snp/milan-v3-aws-vlek/asvk_ark.pem",
    ]);
    let genoa = classify(&["snp/genoa-v3-azure/vcek.pem"]);
    write(
        "snp_cert_table",
        "milan-v2-virtee-vcek-ask-ark.table",
        &virtee.to_cert_table(),
    );
    write(
        "snp_cert_table",
        "milan-v3-aws-vlek-ark.table",
        &vlek.to_cert_table(),
    );
    write(
        "snp_cert_table",
        "genoa-v3-azure-vcek.table",
        &genoa.to_cert_table(),
    );
    write(
        "snp_cert_table",
        "milan-v2-virtee-vcek.der",
        &vector("snp/milan-v2-virtee/vcek.der"),
    );
    write(
        "snp_cert_table",
        "milan-v2-azure-vcek-ask-ark.pem",
        &vector("snp/milan-v2-azure/vcek_ask_ark.pem"),
    );

    // Evidence bundles (derived with `to_json`) and a policy.
    let snp = Evidence::SevSnp(SnpEvidence::new(
        vector("snp/milan-v2-virtee/report.bin"),
        virtee,
    ));
    let snp_vlek = Evidence::SevSnp(SnpEvidence::new(
        vector("snp/milan-v3-aws-vlek/report.bin"),
        vlek,
    ));
    let tdx = Evidence::Tdx(
        TdxEvidence::new(
            vector("tdx/v4-b0c06f-phala/quote.bin"),
            &vector("tdx/v4-b0c06f-phala/collateral.json"),
        )
        .expect("collateral"),
    );
    let simulated = Evidence::Simulated(SimulatedEvidence::sign(&[7; 32], [0x11; 48], [0x22; 64]));
    for (name, ev) in [
        ("snp-milan-v2-virtee.json", snp),
        ("snp-milan-v3-aws-vlek.json", snp_vlek),
        ("tdx-v4-b0c06f-phala.json", tdx),
        ("simulated.json", simulated),
    ] {
        write("evidence_bundle", name, ev.to_json().as_bytes());
    }
    write("evidence_bundle", "policy.toml", POLICY_TOML.as_bytes());

    // A CRL signed by the test root (the real ARK's key is AMD's), listing the Milan ASK.
    let ask = crl_root::serial(
        &classify(&["snp/milan-v2-virtee/ask_ark.pem"])
            .ask
            .expect("ask"),
    );
    let crl =
        crl_root::TestRoot::new(veil_attest::snp::Product::Milan, 1).crl(&crl_root::CrlSpec {
            revoked: &[&ask],
            ..crl_root::CrlSpec::default()
        });
    write("snp_crl", "test-root-revokes-milan-ask.crl", &crl);
    let pem = pem::encode(&pem::Pem::new("X509 CRL", crl));
    write("snp_crl", "test-root-revokes-milan-ask.pem", pem.as_bytes());
    Policy::from_toml(POLICY_TOML).expect("policy seed parses");

    // GPU reports (hex-decoded) and a chain.
    for (name, file) in [
        ("hopper-550.bin", "nvidia/hopperAttestationReport.txt"),
        ("hopper-580.bin", "nvidia/hopper_coco_report1.txt"),
    ] {
        let raw = veil_attest::nvidia::spdm::decode_report_file(&vector(file)).expect(file);
        write("gpu_report", name, &raw);
    }
    write(
        "gpu_report",
        "hopper-550-chain.pem",
        &vector("nvidia/hopper_cert_chain_case1.txt"),
    );

    // PCS/PCCS answers rebuilt from a real collateral: the signed TCB info and QE identity
    // as the services send them, the PCK CRL as DER and as a PCCS's hex, the Intel root.
    let c: serde_json::Value =
        serde_json::from_slice(&vector("tdx/v4-20a06f-near/collateral.json")).expect("json");
    let field = |k: &str| c[k].as_str().expect(k).to_owned();
    let signed =
        |key: &str, body: &str, sig: &str| format!(r#"{{"{key}":{body},"signature":"{sig}"}}"#);
    write(
        "pcs_collateral",
        "tcb-info-20a06f.json",
        signed("tcbInfo", &field("tcb_info"), &field("tcb_info_signature")).as_bytes(),
    );
    write(
        "pcs_collateral",
        "qe-identity.json",
        signed(
            "enclaveIdentity",
            &field("qe_identity"),
            &field("qe_identity_signature"),
        )
        .as_bytes(),
    );
    let pck_crl = hex::decode(field("pck_crl")).expect("hex");
    write("pcs_collateral", "pck-crl.der", &pck_crl);
    write(
        "pcs_collateral",
        "pck-crl.hex",
        hex::encode(&pck_crl).as_bytes(),
    );
    let chain = pem::parse_many(field("qe_identity_issuer_chain")).expect("chain");
    write(
        "pcs_collateral",
        "intel-root-ca.der",
        chain.last().expect("root").contents(),
    );
}

const POLICY_TOML: &str = r#"allow_debug = false
allow_simulated = true
report_data = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[[reference]]
platform = "sev-snp"
measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"

[[reference]]
platform = "tdx"
mrtd = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
rtmr1 = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

[binary]
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[model]
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[tcb]
bootloader = 3
tee = 0
snp = 8
microcode = 115
tdx_status = ["UpToDate", "SWHardeningNeeded"]

[snp]
allow_migration_agent = false
max_vmpl = 0
products = ["Milan", "Genoa"]

[tdx]
mr_config_id = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
"#;
