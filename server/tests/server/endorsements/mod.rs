//! Endorsements fetched from a fake AMD KDS and a fake Intel PCCS serving the vectors' real
//! certificates and collateral: the bundles verify offline at the vectors' times; and the
//! refresh and failure cases (expired collateral, a failing then recovering service, a wrong
//! FMSPC, cut, oversized and slow answers).

mod cli;
mod fake;
mod snp;
mod tdx;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use veil_attest::UnixTime;
use veil_attest::attester::{ConfigfsTsm, Endorsements, FakeTsm, FakeTsmConfig};
use veil_server::endorsements::{Clock, EndorsementConfig, Endorser, Limits};

/// A clock the test moves.
#[derive(Debug)]
pub(crate) struct TestClock(AtomicU64);

impl TestClock {
    pub(crate) fn at(rfc3339: &str) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(
            UnixTime::parse_rfc3339(rfc3339).expect("time").0,
        )))
    }

    pub(crate) fn set(&self, t: u64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `veil verify --evidence FILE --now NOW --json` on `evidence`, by the `veil` binary from
/// this test's target directory (`cargo test --workspace` builds it), as a client would
/// check a bundle it saved.
pub(crate) fn veil_verify(evidence: &veil_attest::Evidence, now: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/veil
    let veil = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory")
        .join("veil");
    assert!(
        veil.exists(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build -p veil-cli`)",
        veil.display()
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec(evidence).expect("JSON")).expect("write");
    std::process::Command::new(veil)
        .args(["verify", "--evidence"])
        .arg(&file)
        .args(["--now", now, "--json"])
        .output()
        .expect("run veil")
}

/// The `veil` binary accepts the saved bundle `evidence` at `now`, and refuses it once the
/// endorsements in it have expired.
pub(crate) fn veil_accepts_until_expiry(evidence: &veil_attest::Evidence, now: &str, case: &str) {
    let out = veil_verify(evidence, now);
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verdict(&out)["ok"], true, "{case}");
    let late = veil_verify(evidence, "2045-01-01T00:00:00Z");
    assert_eq!(late.status.code(), Some(1), "{case}");
    assert_eq!(verdict(&late)["ok"], false, "{case}");
}

/// The verdict `veil verify --json` printed, checked to say `ok` as its exit status does.
pub(crate) fn verdict(out: &std::process::Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], out.status.success(), "{v}");
    v
}

pub(crate) fn vector(path: &str) -> Vec<u8> {
    std::fs::read(vector_path(path)).expect("vector")
}

pub(crate) fn vector_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../attest/tests/vectors")
        .join(path)
}

fn config(dir: &std::path::Path, kds: &str, pccs: &str) -> EndorsementConfig {
    let mut cfg = EndorsementConfig::new(dir.to_owned());
    cfg.kds_url = kds.to_owned();
    cfg.pccs_url = pccs.to_owned();
    let mut limits = Limits::default();
    limits.timeout = Duration::from_millis(400);
    limits.attempts = 2;
    limits.backoff = Duration::from_millis(10);
    cfg.limits = limits;
    cfg.refresh_every = None;
    cfg.retry_after_failure = Duration::from_secs(60);
    cfg
}

/// An endorser on the fakes with short timeouts, no background refresher (requests refresh
/// what is due), a cache in `dir`.
pub(crate) fn endorser(
    dir: &std::path::Path,
    kds: &str,
    pccs: &str,
    clock: Arc<TestClock>,
) -> Arc<Endorser> {
    Endorser::new(config(dir, kds, pccs), clock).expect("endorser")
}

/// As [`endorser`], with a background refresher (whose thread does not wake during a test:
/// the test calls `refresh_due` for it).
pub(crate) fn endorser_with_refresher(
    dir: &std::path::Path,
    kds: &str,
    pccs: &str,
    clock: Arc<TestClock>,
) -> Arc<Endorser> {
    let mut cfg = config(dir, kds, pccs);
    cfg.refresh_every = Some(Duration::from_secs(24 * 3600));
    Endorser::new(cfg, clock).expect("endorser")
}

/// A configfs-tsm attester whose kernel returns `outblob` (and no certificate table), with
/// endorsements from `endorser` only; the tree lives as long as the directory returned.
pub(crate) fn attester(
    provider: &str,
    outblob: Vec<u8>,
    endorser: Arc<Endorser>,
) -> (ConfigfsTsm, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("tsm root");
    let fake = Arc::new(FakeTsm::new(FakeTsmConfig::new(
        Some(provider),
        outblob,
        Vec::new(),
    )));
    let a = ConfigfsTsm::with_fs(
        root.path().to_owned(),
        Endorsements::default().with_source(endorser),
        fake,
    );
    (a, root)
}
