//! Where the certificates (SNP) and collateral (TDX) that travel with evidence come from,
//! when the TEE itself does not hand them over.

use std::path::PathBuf;

use crate::evidence::MAX_BUNDLE_LEN;
use crate::snp::split_certificates;
use crate::{SnpCerts, TdxEvidence};

use super::AttestError;

/// Configured sources of endorsements.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Endorsements {
    /// A directory of SEV-SNP certificates (VCEK or VLEK, optionally ASK/ASVK/ARK), PEM or
    /// DER, any file names: each file is sorted into its role by subject.
    pub snp_cert_dir: Option<PathBuf>,
    /// A file with TDX PCS collateral (dcap-qvl `QuoteCollateralV3` JSON) for this platform.
    pub tdx_collateral: Option<PathBuf>,
}

impl Endorsements {
    /// Endorsements from a certificate directory and a collateral file.
    pub fn new(snp_cert_dir: Option<PathBuf>, tdx_collateral: Option<PathBuf>) -> Self {
        Self {
            snp_cert_dir,
            tdx_collateral,
        }
    }

    pub(crate) fn snp_certs(&self) -> Result<SnpCerts, AttestError> {
        let Some(dir) = &self.snp_cert_dir else {
            return Err(AttestError::NoCertificates("VCEK/VLEK"));
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
        let path = self
            .tdx_collateral
            .as_ref()
            .ok_or(AttestError::NoCollateral)?;
        Ok(TdxEvidence::new(quote, &read_capped(path)?)?)
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
