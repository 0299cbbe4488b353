//! What Intel's Provisioning Certification Service (or a caching PCCS) answers, read without
//! trusting it: the signed JSON (`{"tcbInfo"|"enclaveIdentity": .., "signature": ..}`) kept
//! byte for byte as served, its validity window, a CRL body in any of the encodings the
//! services use (DER, PEM, hex), a CRL's window, and a certificate's CRL distribution point.
//!
//! Sans-IO: the server fetches (`veil-server`'s endorsements), these functions read the
//! bytes; whether the collateral is authentic is dcap-qvl's check, afterwards. Parsers of
//! bytes from the network: they return errors, never panic (fuzz target `pcs_collateral`).

use serde::Deserialize;
use serde_json::value::RawValue;
use x509_cert::der::Decode as _;

use crate::{UnixTime, VerifyError};

fn invalid(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::CollateralInvalid(format!("{what}: {e}"))
}

#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(rename = "tcbInfo", alias = "enclaveIdentity", borrow)]
    body: &'a RawValue,
    signature: String,
}

/// The signed JSON of a TCB info or QE identity answer, as served, and its signature.
pub fn signed_json(body: &[u8], what: &str) -> Result<(String, Vec<u8>), VerifyError> {
    let s: Signed<'_> = serde_json::from_slice(body).map_err(|e| invalid(what, e))?;
    let sig = hex::decode(&s.signature).map_err(|_| invalid(what, "signature is not hex"))?;
    Ok((s.body.get().to_owned(), sig))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatedJson {
    id: Option<String>,
    fmspc: Option<String>,
    issue_date: String,
    next_update: String,
}

/// What a signed TCB info or QE identity says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    /// `id` (`TDX`, `TD_QE`, ...), if present.
    pub id: Option<String>,
    /// `fmspc` (TCB info), if present.
    pub fmspc: Option<String>,
    /// `issueDate`, Unix seconds.
    pub issued: u64,
    /// `nextUpdate`, Unix seconds.
    pub next_update: u64,
}

/// Reads [`Dated`] from the signed JSON ([`signed_json`]'s first part).
pub fn dated(json: &str, what: &str) -> Result<Dated, VerifyError> {
    let d: DatedJson = serde_json::from_str(json).map_err(|e| invalid(what, e))?;
    let t = |s: &str| {
        UnixTime::parse_rfc3339(s)
            .map(|t| t.0)
            .map_err(|e| invalid(&format!("{what} date"), e))
    };
    Ok(Dated {
        issued: t(&d.issue_date)?,
        next_update: t(&d.next_update)?,
        id: d.id,
        fmspc: d.fmspc,
    })
}

/// DER from a CRL body: DER, PEM or hex (a PCCS answers hex).
pub fn crl_der(body: Vec<u8>, what: &str) -> Result<Vec<u8>, VerifyError> {
    if body.first() == Some(&0x30) {
        return Ok(body);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| invalid(what, "neither DER nor text"))?
        .trim();
    if text.starts_with("-----BEGIN") {
        return pem::parse(text)
            .map(pem::Pem::into_contents)
            .map_err(|e| invalid(what, e));
    }
    hex::decode(text).map_err(|_| invalid(what, "not DER, PEM or hex"))
}

/// `(thisUpdate, nextUpdate)` of a DER CRL, Unix seconds.
pub fn crl_window(der: &[u8], what: &str) -> Result<(u64, u64), VerifyError> {
    let l = x509_cert::crl::CertificateList::from_der(der).map_err(|e| invalid(what, e))?;
    let this = l.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next = l
        .tbs_cert_list
        .next_update
        .map(|t| t.to_unix_duration().as_secs())
        .ok_or_else(|| invalid(what, "no nextUpdate"))?;
    Ok((this, next))
}

/// The first URI among a DER certificate's CRL distribution points.
pub fn crl_distribution_point(cert_der: &[u8]) -> Option<String> {
    use x509_cert::ext::pkix::CrlDistributionPoints;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let (_, points) = cert
        .tbs_certificate
        .get::<CrlDistributionPoints>()
        .ok()
        .flatten()?;
    points.0.iter().find_map(|p| match &p.distribution_point {
        Some(DistributionPointName::FullName(names)) => names.iter().find_map(|n| match n {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_bodies_in_any_of_the_three_encodings() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert_eq!(crl_der(der.clone(), "x").expect("der"), der);
        assert_eq!(
            crl_der(hex::encode(&der).into_bytes(), "x").expect("hex"),
            der
        );
        let pem = pem::encode(&pem::Pem::new("X509 CRL", der.clone()));
        assert_eq!(crl_der(pem.into_bytes(), "x").expect("pem"), der);
        assert!(crl_der(b"not a crl".to_vec(), "x").is_err());
    }

    #[test]
    fn signed_json_is_kept_byte_for_byte() {
        let body = br#"{"tcbInfo":{"b":1,  "a":[2]},"signature":"0a0b"}"#;
        let (json, sig) = signed_json(body, "TCB info").expect("parses");
        assert_eq!(json, r#"{"b":1,  "a":[2]}"#);
        assert_eq!(sig, vec![10, 11]);
        assert!(signed_json(br#"{"tcbInfo":{},"signature":"zz"}"#, "x").is_err());
    }

    #[test]
    fn dates_are_read_and_bad_ones_refused() {
        let d = dated(
            r#"{"id":"TDX","fmspc":"20a06f000000","issueDate":"2025-09-02T11:00:00Z","nextUpdate":"2025-10-02T11:00:00Z"}"#,
            "TCB info",
        )
        .expect("dated");
        assert_eq!(d.id.as_deref(), Some("TDX"));
        assert_eq!(d.next_update - d.issued, 30 * 86_400);
        assert!(
            dated(
                r#"{"issueDate":"yesterday","nextUpdate":"2025-10-02T11:00:00Z"}"#,
                "x"
            )
            .is_err()
        );
    }
}
