//! The SEV-SNP attestation report: parsing (through `sev`) and its signature,
//! checked over the exact bytes the firmware signed.

use p384::ecdsa::{Signature, VerifyingKey, signature::Verifier as _};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;

use crate::VerifyError;

/// Size of every SEV-SNP attestation report.
pub const REPORT_LEN: usize = 1184;
/// The signature covers bytes `0..SIGNED_LEN`.
pub(crate) const SIGNED_LEN: usize = 0x2A0;
const CHIP_ID: std::ops::Range<usize> = 0x1A0..0x1E0;
const SIG_COMPONENT_LEN: usize = 72;

/// Which key signed the report (KEY_INFO.SIGNING_KEY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigningKey {
    Vcek,
    Vlek,
}

impl SigningKey {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Vcek => "vcek",
            Self::Vlek => "vlek",
        }
    }
}

/// A parsed report and the bytes it came from.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) fields: AttestationReport,
    pub(crate) signing_key: SigningKey,
}

/// Parses a report. Never panics; any malformation is `VerifyError::Malformed`.
pub(crate) fn parse(raw: &[u8]) -> Result<Report<'_>, VerifyError> {
    if raw.len() != REPORT_LEN {
        return Err(VerifyError::Malformed(format!(
            "SNP report is {} bytes, expected {REPORT_LEN}",
            raw.len()
        )));
    }
    let version = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if !matches!(version, 2..=5) {
        return Err(VerifyError::Malformed(format!(
            "unsupported SNP report version {version}"
        )));
    }
    let masked_v2 = version == 2 && raw[CHIP_ID].iter().all(|&b| b == 0);
    let fields = if masked_v2 {
        // `sev` infers the TCB layout of a v2 report from the chip id and refuses a masked
        // (all-zero) one. v2 reports predate Turin, so they use the Milan/Genoa layout; parse
        // a copy with a placeholder chip id of that shape and restore the zeros. The signature
        // is checked over the original bytes, never over this copy.
        let mut copy = raw.to_vec();
        copy[CHIP_ID].fill(0xFF);
        let mut r = AttestationReport::from_bytes(&copy)
            .map_err(|e| VerifyError::Malformed(format!("SNP report: {e}")))?;
        r.chip_id = [0; 64];
        r
    } else {
        AttestationReport::from_bytes(raw)
            .map_err(|e| VerifyError::Malformed(format!("SNP report: {e}")))?
    };
    if fields.sig_algo != 1 {
        return Err(VerifyError::Malformed(format!(
            "signature algorithm {} (expected 1, ECDSA P-384 with SHA-384)",
            fields.sig_algo
        )));
    }
    if fields.key_info.mask_chip_key() {
        return Err(VerifyError::SignatureInvalid(
            "report is unsigned (MASK_CHIP_KEY set)".into(),
        ));
    }
    let signing_key = match fields.key_info.signing_key() {
        0 => SigningKey::Vcek,
        1 => SigningKey::Vlek,
        7 => {
            return Err(VerifyError::SignatureInvalid(
                "report is unsigned (SIGNING_KEY = none)".into(),
            ));
        }
        k => {
            return Err(VerifyError::Malformed(format!(
                "reserved SIGNING_KEY value {k}"
            )));
        }
    };
    Ok(Report {
        raw,
        fields,
        signing_key,
    })
}

impl Report<'_> {
    /// Checks the ECDSA P-384 signature at 0x2A0 over bytes 0x000..0x2A0 against a SEC1 public key.
    pub(crate) fn check_signature(&self, public_key_sec1: &[u8]) -> Result<(), VerifyError> {
        let key = VerifyingKey::from_sec1_bytes(public_key_sec1).map_err(|e| {
            VerifyError::MalformedCertificate(format!("endorsement key is not P-384: {e}"))
        })?;
        let sig = self.signature()?;
        key.verify(&self.raw[..SIGNED_LEN], &sig).map_err(|_| {
            VerifyError::SignatureInvalid("the endorsement key did not sign this report".into())
        })
    }

    /// r and s are stored little-endian in 72-byte fields; only the low 48 bytes may be non-zero.
    fn signature(&self) -> Result<Signature, VerifyError> {
        let field = |i: usize| -> Result<[u8; 48], VerifyError> {
            let start = SIGNED_LEN + i * SIG_COMPONENT_LEN;
            let le = &self.raw[start..start + SIG_COMPONENT_LEN];
            if le[48..].iter().any(|&b| b != 0) {
                return Err(VerifyError::SignatureInvalid(
                    "signature component out of range".into(),
                ));
            }
            let mut be = [0u8; 48];
            for (d, s) in be.iter_mut().zip(le[..48].iter().rev()) {
                *d = *s;
            }
            Ok(be)
        };
        Signature::from_scalars(field(0)?, field(1)?).map_err(|_| {
            VerifyError::SignatureInvalid("signature is not a valid P-384 (r, s)".into())
        })
    }
}
