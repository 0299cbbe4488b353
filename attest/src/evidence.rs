//! [`Evidence`]: what a server hands a client so it can verify offline in one round trip.
//!
//! It serializes as the JSON *evidence bundle* (byte fields in base64):
//!
//! ```json
//! {"platform":"sev-snp","report":"<1184 bytes>","certs":{"vcek":"<DER>","ask":"<DER>","ark":"<DER>","crl":"<DER>"}}
//! {"platform":"tdx","quote":"<bytes>","collateral":{ /* dcap-qvl QuoteCollateralV3 */ }}
//! {"platform":"simulated","measurement":"…","report_data":"…","public_key":"…","signature":"…"}
//! ```

use serde::{Deserialize, Serialize};

use crate::{Platform, VerifyError, encoding::b64, encoding::b64_opt};

/// Largest evidence bundle accepted, in bytes (collateral is the bulk: ~20 KiB).
pub const MAX_BUNDLE_LEN: usize = 1 << 20;
/// Largest TDX quote accepted, in bytes (real quotes are ~5 KiB).
pub const MAX_QUOTE_LEN: usize = 64 << 10;
/// Largest certificate accepted, in bytes (AMD's RSA-4096 ARK is ~1.6 KiB).
pub const MAX_CERT_LEN: usize = 16 << 10;

/// Hardware (or simulated) evidence, as carried in an evidence bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Evidence {
    /// An AMD SEV-SNP attestation report with its certificates.
    SevSnp(SnpEvidence),
    /// An Intel TDX DCAP quote with its collateral.
    Tdx(TdxEvidence),
    /// Software-signed claims from the simulated platform (no hardware protection).
    Simulated(SimulatedEvidence),
}

/// SEV-SNP evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SnpEvidence {
    /// The 1184-byte attestation report, as the firmware produced it.
    #[serde(with = "b64")]
    pub report: Vec<u8>,
    /// The endorsement certificate and (optionally) its chain.
    #[serde(default)]
    pub certs: SnpCerts,
}

/// SEV-SNP certificates (DER), and the ARK's CRL. The ARK is checked against the pinned
/// root; a missing ASK/ASVK/ARK is filled in from the roots built into Veil.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SnpCerts {
    /// Versioned Chip Endorsement Key certificate.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub vcek: Option<Vec<u8>>,
    /// Versioned Loaded Endorsement Key certificate (cloud providers).
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub vlek: Option<Vec<u8>>,
    /// AMD SEV Signing Key (signs VCEKs).
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub ask: Option<Vec<u8>>,
    /// AMD SEV VLEK Signing Key (signs VLEKs).
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub asvk: Option<Vec<u8>>,
    /// AMD Root Key.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub ark: Option<Vec<u8>>,
    /// The ARK-signed certificate revocation list (DER, as AMD's KDS serves it).
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub crl: Option<Vec<u8>>,
}

/// Intel TDX evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TdxEvidence {
    /// The DCAP quote (v4 or v5).
    #[serde(with = "b64")]
    pub quote: Vec<u8>,
    /// PCS collateral for the quote's platform (FMSPC).
    pub collateral: dcap_qvl::QuoteCollateralV3,
}

/// Claims signed by a software key: what the simulated platform produces.
///
/// Anyone can make such evidence; it proves nothing about hardware and is
/// rejected unless the policy sets `allow_simulated`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SimulatedEvidence {
    /// The simulated launch measurement (48 bytes).
    #[serde(with = "b64")]
    pub measurement: Vec<u8>,
    /// REPORT_DATA (64 bytes).
    #[serde(with = "b64")]
    pub report_data: Vec<u8>,
    /// Ed25519 public key of the simulated platform (32 bytes).
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    /// Ed25519 signature over the domain-separated claims (64 bytes).
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

impl Evidence {
    /// Parses an evidence bundle (JSON), refusing anything over [`MAX_BUNDLE_LEN`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(VerifyError::Malformed(format!(
                "evidence bundle is {} bytes, limit {MAX_BUNDLE_LEN}",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| VerifyError::Malformed(format!("evidence bundle: {e}")))
    }

    /// Serializes as an evidence bundle (JSON).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: all keys are strings, no maps with non-string keys.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The platform this evidence claims to come from.
    pub fn platform(&self) -> Platform {
        match self {
            Self::SevSnp(_) => Platform::SevSnp,
            Self::Tdx(_) => Platform::Tdx,
            Self::Simulated(_) => Platform::Simulated,
        }
    }
}

impl SnpEvidence {
    /// SNP evidence from a report and certificates.
    pub fn new(report: Vec<u8>, certs: SnpCerts) -> Self {
        Self { report, certs }
    }
}

impl TdxEvidence {
    /// TDX evidence from a quote and the collateral JSON (dcap-qvl `QuoteCollateralV3`).
    pub fn new(quote: Vec<u8>, collateral_json: &[u8]) -> Result<Self, VerifyError> {
        if collateral_json.len() > MAX_BUNDLE_LEN {
            return Err(VerifyError::Malformed("collateral too large".into()));
        }
        let collateral = serde_json::from_slice(collateral_json)
            .map_err(|e| VerifyError::Malformed(format!("collateral: {e}")))?;
        Ok(Self { quote, collateral })
    }
}
