//! Where the certificates (SNP) and collateral (TDX) that travel with evidence come from,
//! when the TEE itself does not hand them over: a directory or file the operator fills, or
//! an [`EndorsementSource`] (the server's fetcher and cache, which this crate never
//! implements: it does no network I/O).

use std::path::PathBuf;
use std::sync::Arc;

use crate::evidence::MAX_BUNDLE_LEN;
use crate::snp::split_certificates;
use crate::{SnpCerts, TdxEvidence};

use super::AttestError;

/// Endorsements obtained on demand for one piece of evidence (the server fetches and caches
/// them from AMD KDS or Intel PCS/PCCS). Called only when the host supplies none and no
/// file is configured.
pub trait EndorsementSource: std::fmt::Debug + Send + Sync {
    /// The VCEK and its chain (and CRL, where available) for this SNP report.
    fn snp_certs(&self, report: &[u8]) -> Result<SnpCerts, AttestError>;
    /// dcap-qvl `QuoteCollateralV3` JSON for this TDX quote's platform.
    fn tdx_collateral(&self, quote: &[u8]) -> Result<Vec<u8>, AttestError>;
}

/// Configured sources of endorsements.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Endorsements {
    /// A directory of SEV-SNP certificates (VCEK or VLEK, optionally ASK/ASVK/ARK), PEM or
    /// DER, any file names: each file is sorted into its role by subject.
    pub snp_cert_dir: Option<PathBuf>,
    /// A file with TDX PCS collateral (dcap-qvl `QuoteCollateralV3` JSON) for this platform.
    pub tdx_collateral: Option<PathBuf>,
    /// Fetched endorsements, used where neither file is configured.
    pub source: Option<Arc<dyn EndorsementSource>>,
}

impl Endorsements {
    /// Endorsements from a certificate directory and a collateral file.
    pub fn new(snp_cert_dir: Option<PathBuf>, tdx_collateral: Option<PathBuf>) -> Self {
        Self {
            snp_cert_dir,
            tdx_collateral,
            source: None,
        }
    }

    /// These endorsements, with `source` consulted where no file is configured.
    pub fn with_source(mut self, source: Arc<dyn EndorsementSource>) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn snp_certs(&self, report: &[u8]) -> Result<SnpCerts, AttestError> {
        let Some(dir) = &self.snp_cert_dir else {
            return match &self.source {
                Some(source) => source.snp_certs(report),
                None => Err(AttestError::NoCertificates("VCEK/VLEK")),
            };
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| AttestError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        let mut ders = Vec::new();
        for p in names {
            let bytes = read_capped(&p)?;
            ders.extend(split_certificates(&bytes)?);
        }
        Ok(SnpCerts::classify(ders)?)
    }

    pub(crate) fn tdx_evidence(&self, quote: Vec<u8>) -> Result<TdxEvidence, AttestError> {
        let collateral = match (&self.tdx_collateral, &self.source) {
            (Some(path), _) => read_capped(path)?,
            (None, Some(source)) => source.tdx_collateral(&quote)?,
            (None, None) => return Err(AttestError::NoCollateral),
        };
        Ok(TdxEvidence::new(quote, &collateral)?)
    }
}

fn read_capped(p: &std::path::Path) -> Result<Vec<u8>, AttestError> {
    use std::io::Read as _;
    let f = std::fs::File::open(p).map_err(|e| AttestError::io(p, e))?;
    let mut buf = Vec::new();
    f.take(MAX_BUNDLE_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| AttestError::io(p, e))?;
    if buf.len() > MAX_BUNDLE_LEN {
        return Err(AttestError::OutputSize {
            what: "endorsement file",
            got: buf.len(),
            expected: format!("at most {MAX_BUNDLE_LEN}"),
        });
    }
    Ok(buf)
}
