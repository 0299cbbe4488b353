//! Loads the real vectors of `tests/vectors/` and the cases of `index.tsv`.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "shared by several test binaries, each uses a part"
)]

pub mod crl;

use std::path::{Path, PathBuf};

use veil_attest::nvidia::GpuEvidence;
use veil_attest::{
    Evidence, Policy, SnpCerts, SnpEvidence, TdxEvidence, UnixTime, snp::split_certificates,
};

pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One line of `index.tsv`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub platform: String,
    pub expect_ok: bool,
    pub now: String,
    pub flags: Vec<String>,
    pub inputs: Vec<(String, String)>,
}

pub fn cases() -> Vec<Case> {
    let out = index("index.tsv");
    assert!(out.len() >= 20, "index.tsv has {} cases", out.len());
    out
}

/// The NVIDIA GPU cases (`nvidia/index.tsv`, same format).
pub fn gpu_cases() -> Vec<Case> {
    let out = index("nvidia/index.tsv");
    assert!(out.len() >= 8, "nvidia/index.tsv has {} cases", out.len());
    out
}

fn index(rel: &str) -> Vec<Case> {
    let text = String::from_utf8(read(rel)).expect("utf-8");
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.starts_with("case\t") || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() >= 6, "bad index line: {line}");
        out.push(Case {
            name: f[0].to_owned(),
            platform: f[1].to_owned(),
            expect_ok: match f[2] {
                "ok" => true,
                "reject" => false,
                other => panic!("bad expect {other}"),
            },
            now: f[3].to_owned(),
            flags: if f[4] == "-" {
                vec![]
            } else {
                f[4].split(' ').map(str::to_owned).collect()
            },
            inputs: f[5]
                .split(' ')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("key=path");
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        });
    }
    out
}

impl Case {
    pub fn input(&self, key: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn evidence(&self) -> Evidence {
        match self.platform.as_str() {
            "snp" => {
                let report = read(self.input("report").expect("report"));
                let ders = self
                    .inputs
                    .iter()
                    .filter(|(k, _)| k == "cert")
                    .flat_map(|(_, p)| split_certificates(&read(p)).expect("certs"));
                Evidence::SevSnp(SnpEvidence::new(
                    report,
                    SnpCerts::classify(ders).expect("classify"),
                ))
            }
            "tdx" => Evidence::Tdx(
                TdxEvidence::new(
                    read(self.input("quote").expect("quote")),
                    &read(self.input("collateral").expect("collateral")),
                )
                .expect("collateral"),
            ),
            p => panic!("platform {p}"),
        }
    }

    pub fn policy(&self) -> Policy {
        let mut p = Policy::default();
        for f in &self.flags {
            match f.as_str() {
                "--allow-debug" => p = p.allow_debug(true),
                "--allow-outdated-tcb" => p = p.allow_outdated_tcb(true),
                other => panic!("unknown flag {other}"),
            }
        }
        p
    }

    /// A GPU case's evidence, and the nonce it expects.
    pub fn gpu_evidence(&self) -> (GpuEvidence, Option<[u8; 32]>) {
        let ev = GpuEvidence::from_files(
            &read(self.input("report").expect("report")),
            &read(self.input("certs").expect("certs")),
        )
        .expect("GPU evidence files");
        let nonce = self.input("nonce").map(|h| {
            <[u8; 32]>::try_from(hex::decode(h).expect("hex").as_slice()).expect("32 bytes")
        });
        (ev, nonce)
    }

    pub fn now(&self) -> UnixTime {
        UnixTime::parse_rfc3339(&self.now).expect("now")
    }
}

/// An SNP case's evidence, by case name.
pub fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// A GPU case, by name.
pub fn case_gpu(name: &str) -> Case {
    gpu_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}
