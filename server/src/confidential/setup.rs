//! Choosing the attester and computing the manifest at start.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use veil_attest::ManifestClaims;
use veil_attest::attester::{
    AttestError, Attester, ConfigfsTsm, DetectConfig, Endorsements, SevGuestDevice, Simulated,
    TdxGuestDevice, detect,
};

use crate::endorsements::Endorser;

/// Which trusted-execution backend produces evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tee {
    /// Detect the hardware interface this machine has (never picks `simulated`).
    Auto,
    /// The kernel's configfs-tsm interface (SEV-SNP or TDX).
    Configfs,
    /// `/dev/sev-guest`.
    SevGuest,
    /// `/dev/tdx_guest` (TD reports only: quotes need configfs-tsm).
    TdxGuest,
    /// A software key: NO hardware protection; clients refuse it unless told `--allow-simulated`.
    Simulated,
}

/// Where the TEE interfaces and endorsements are.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TeeOptions {
    /// configfs-tsm report directory (default `/sys/kernel/config/tsm/report`).
    pub tsm_root: Option<PathBuf>,
    /// SEV-SNP certificate directory (VCEK/VLEK and chain) when the host provides none.
    pub snp_cert_dir: Option<PathBuf>,
    /// TDX collateral file (dcap-qvl `QuoteCollateralV3` JSON).
    pub tdx_collateral: Option<PathBuf>,
    /// Fetches endorsements (AMD KDS, Intel PCS/PCCS) where the host and the files above
    /// supply none.
    pub endorser: Option<Arc<Endorser>>,
}

impl TeeOptions {
    /// Options from their parts.
    pub fn new(
        tsm_root: Option<PathBuf>,
        snp_cert_dir: Option<PathBuf>,
        tdx_collateral: Option<PathBuf>,
    ) -> Self {
        Self {
            tsm_root,
            snp_cert_dir,
            tdx_collateral,
            endorser: None,
        }
    }

    /// These options, with endorsements fetched by `endorser`.
    pub fn with_endorser(mut self, endorser: Arc<Endorser>) -> Self {
        self.endorser = Some(endorser);
        self
    }
}

/// The attester for `tee`, and why it was chosen. The simulated platform's key comes from
/// the OS RNG and its measurement is the SHA-384 of this binary.
pub fn attester(tee: Tee, opts: &TeeOptions) -> Result<(Arc<dyn Attester>, String), AttestError> {
    let mut endorsements =
        Endorsements::new(opts.snp_cert_dir.clone(), opts.tdx_collateral.clone());
    if let Some(e) = &opts.endorser {
        endorsements = endorsements.with_source(e.clone());
    }
    let mut cfg = DetectConfig::default();
    if let Some(root) = &opts.tsm_root {
        cfg.tsm_root = root.clone();
    }
    cfg.endorsements = endorsements.clone();
    Ok(match tee {
        Tee::Auto => {
            let d = detect(&cfg)?;
            (Arc::from(d.attester), d.why)
        }
        Tee::Configfs => (
            Arc::new(ConfigfsTsm::new(cfg.tsm_root.clone(), endorsements)),
            format!("--tee configfs ({})", cfg.tsm_root.display()),
        ),
        Tee::SevGuest => (
            Arc::new(SevGuestDevice::new(cfg.sev_device.clone(), endorsements)),
            "--tee sev-guest".to_owned(),
        ),
        Tee::TdxGuest => (
            Arc::new(TdxGuestDevice::new(cfg.tdx_device.clone())),
            "--tee tdx-guest".to_owned(),
        ),
        Tee::Simulated => {
            let exe = current_exe_bytes().map_err(|e| AttestError::Io {
                path: "/proc/self/exe".into(),
                source: e,
            })?;
            let seed: [u8; 32] = rand::random();
            (
                Arc::new(Simulated::new(seed, Simulated::measurement_of(&exe))),
                "--tee simulated: SOFTWARE KEY, NO HARDWARE PROTECTION".to_owned(),
            )
        }
    })
}

fn current_exe_bytes() -> std::io::Result<Vec<u8>> {
    std::fs::read(std::env::current_exe()?)
}

/// The manifest this server attests: its own binary's SHA-256 and the model manifest digest.
pub fn manifest_claims(model_id: &str, model_digest: [u8; 32]) -> std::io::Result<ManifestClaims> {
    let binary_sha256: [u8; 32] = Sha256::digest(current_exe_bytes()?).into();
    Ok(ManifestClaims::new(
        binary_sha256,
        model_digest,
        model_id.to_owned(),
    ))
}
