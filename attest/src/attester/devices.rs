//! The guest devices, for kernels without configfs-tsm.

use std::path::PathBuf;

use super::{AttestError, Attester, Endorsements};
use crate::{Evidence, Platform};

/// `/dev/sev-guest` through `sev::firmware::guest::Firmware` (extended report: the report
/// and the host's certificate table in one request).
#[derive(Debug, Clone)]
pub struct SevGuestDevice {
    device: PathBuf,
    endorsements: Endorsements,
}

impl SevGuestDevice {
    /// The backend for `device` (`/dev/sev-guest`; `sev` opens that fixed path).
    pub fn new(device: PathBuf, endorsements: Endorsements) -> Self {
        Self {
            device,
            endorsements,
        }
    }
}

impl Attester for SevGuestDevice {
    #[cfg(target_os = "linux")]
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        use sev::firmware::guest::Firmware;
        use sev::firmware::host::CertType;

        use crate::{SnpCerts, SnpEvidence};

        let mut fw = Firmware::open().map_err(|e| AttestError::io(&self.device, e))?;
        let (report, table) = fw
            .get_ext_report(None, Some(*report_data), Some(0))
            .map_err(|e| AttestError::Firmware(e.to_string()))?;
        let mut certs = SnpCerts::default();
        for entry in table.unwrap_or_default() {
            let slot = match entry.cert_type {
                CertType::VCEK => &mut certs.vcek,
                CertType::VLEK => &mut certs.vlek,
                CertType::ASK => &mut certs.ask,
                CertType::ARK => &mut certs.ark,
                _ => continue,
            };
            *slot = Some(entry.data);
        }
        if certs.vcek.is_none() && certs.vlek.is_none() {
            certs = self.endorsements.snp_certs(&report)?;
        }
        Ok(Evidence::SevSnp(SnpEvidence::new(report, certs)))
    }

    #[cfg(not(target_os = "linux"))]
    fn attest(&self, _report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Err(AttestError::NoTee(format!(
            "{} (Linux only)",
            self.device.display()
        )))
    }

    fn platform(&self) -> Option<Platform> {
        Some(Platform::SevSnp)
    }

    fn name(&self) -> &'static str {
        "sev-guest"
    }
}

/// `/dev/tdx_guest`. Its ioctl yields a TD *report*, which is MAC'd for the local platform
/// only; turning it into a remotely verifiable *quote* needs the quoting enclave, which Linux
/// reaches through configfs-tsm. Without configfs-tsm this backend says exactly that.
#[derive(Debug, Clone)]
pub struct TdxGuestDevice {
    device: PathBuf,
}

impl TdxGuestDevice {
    /// The backend for `device` (`/dev/tdx_guest`).
    pub fn new(device: PathBuf) -> Self {
        Self { device }
    }
}

impl Attester for TdxGuestDevice {
    fn attest(&self, _report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Err(AttestError::QuoteUnavailable(format!(
            "{} gives only a TD report, which no remote party can verify; a quote needs the \
             quoting enclave through configfs-tsm (Linux >= 6.7 with the tdx_guest provider and \
             a quote generation service on the host): mount configfs and use --tee configfs",
            self.device.display()
        )))
    }

    fn platform(&self) -> Option<Platform> {
        Some(Platform::Tdx)
    }

    fn name(&self) -> &'static str {
        "tdx-guest"
    }
}
