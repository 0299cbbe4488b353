//! A stable-toolchain stand-in for the cargo-fuzz targets of `fuzz/` (which need nightly and
//! libFuzzer): the same four entry points (`fuzz/src/lib.rs`, included below) run over every
//! seed of `fuzz/seeds/<target>/` and over deterministic mutations of each, and must never panic.
//!
//! `cargo test -p veil-attest --test fuzz_smoke -- --ignored regenerate_seeds` rewrites
//! `fuzz/seeds/` from `tests/vectors/` (see `fuzz/README.md`).

#[allow(
    unreachable_pub,
    reason = "the fuzz crate's public entry points, included as a private module"
)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use veil_attest::snp::split_certificates;
use veil_attest::{
    Evidence, Policy, SimulatedEvidence, SnpCerts, SnpEvidence, TdxEvidence, verify,
};

const MUTATIONS_PER_SEED: usize = 2_000;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

/// The seed files of one target, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds_dir().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8]) -> Self {
        // FNV-1a of the seed name: every seed gets its own, stable, sequence.
        let h = seed.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(h | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Values that tend to find edge cases in lengths, offsets and counts.
const INTERESTING_U32: [u32; 8] = [0, 1, 24, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// One to four byte-level mutations: bit flips, byte and 32-bit overwrites, inserts,
/// deletes, truncation and duplication of a chunk.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0x00, 0x01, 0x30, 0x7f, 0x80, 0xff, rng.byte()][rng.below(7)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let x = match rng.below(3) {
                    0 => INTERESTING_U32[rng.below(INTERESTING_U32.len())],
                    1 => len as u32,
                    _ => rng.next() as u32,
                };
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                v.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                v.drain(at..end);
            }
            5 => v.truncate(rng.below(len + 1)),
            6 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = v[at..end].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, chunk);
            }
            _ => {}
        }
    }
    v
}

/// Runs `entry` on each seed of `target` and on its mutations; fails naming the first input
/// that panicked, after saving it under `CARGO_TARGET_TMPDIR`.
fn smoke(target: &str, entry: fn(&[u8])) {
    let mut runs = 0;
    for (name, seed) in seeds(target) {
        let mut rng = Rng::new(format!("{target}/{name}").as_bytes());
        for i in 0..=MUTATIONS_PER_SEED {
            let input = if i == 0 {
                seed.clone()
            } else {
                mutate(&mut rng, &seed)
            };
            if catch_unwind(AssertUnwindSafe(|| entry(&input))).is_err() {
                let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("fuzz_smoke-{target}-{name}-{i}.bin"));
                let _ = std::fs::write(&saved, &input);
                panic!(
                    "{target}: mutation {i} of seed {name} panicked; input saved to {}",
                    saved.display()
                );
            }
            runs += 1;
        }
    }
    eprintln!("{target}: {runs} inputs, no panic");
}

#[test]
fn snp_report_never_panics() {
    smoke("snp_report", harness::snp_report);
}

#[test]
fn tdx_quote_never_panics() {
    smoke("tdx_quote", harness::tdx_quote);
}

#[test]
fn snp_cert_table_never_panics() {
    smoke("snp_cert_table", harness::snp_cert_table);
}

#[test]
fn evidence_bundle_never_panics() {
    smoke("evidence_bundle", harness::evidence_bundle);
}

/// The seeds and the harness's fixed inputs still reach past parsing: a stale seed, or a
/// `now` outside a certificate's validity, would leave the deep checks unfuzzed.
#[test]
fn seeds_and_fixed_inputs_verify() {
    let milan = SnpCerts::classify([harness::MILAN_VCEK.to_vec()]).expect("classify");
    let ev = Evidence::SevSnp(SnpEvidence::new(harness::MILAN_REPORT.to_vec(), milan));
    verify(&ev, &Policy::default(), harness::SNP_NOW).expect("SNP report and VCEK verify");
    let quote = vector("tdx/v4-b0c06f-phala/quote.bin");
    let ev = Evidence::Tdx(TdxEvidence::new(quote, harness::TDX_COLLATERAL).expect("collateral"));
    verify(&ev, &Policy::default(), harness::TDX_NOW).expect("TDX quote verifies");

    for (name, bytes) in seeds("snp_cert_table") {
        if name.ends_with(".table") {
            let certs = SnpCerts::from_cert_table(&bytes).expect(&name);
            assert!(certs.vcek.is_some() || certs.vlek.is_some(), "{name}");
        }
    }
    for (name, bytes) in seeds("evidence_bundle") {
        if name.ends_with(".json") {
            let ev = Evidence::from_json(&bytes).expect(&name);
            let now = match ev.platform() {
                veil_attest::Platform::Tdx => harness::TDX_NOW,
                _ => harness::SNP_NOW,
            };
            let policy = Policy::default().allow_simulated(true);
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
    Policy::from_toml(POLICY_TOML).expect("policy seed parses");
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
