//! TDX collateral from Intel's Provisioning Certification Service (PCS) or a caching
//! service (PCCS) with the same v4 API, assembled as dcap-qvl's `QuoteCollateralV3`:
//!
//! - `/sgx/certification/v4/pckcrl?ca={processor|platform}&encoding=der`: the PCK CRL,
//!   issuer chain in `SGX-PCK-CRL-Issuer-Chain`;
//! - `/tdx/certification/v4/tcb?fmspc=..`: `{"tcbInfo":..,"signature":..}`, issuer chain in
//!   `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`);
//! - `/tdx/certification/v4/qe/identity`: `{"enclaveIdentity":..,"signature":..}`, issuer
//!   chain in `SGX-Enclave-Identity-Issuer-Chain`;
//! - `/sgx/certification/v4/rootcacrl` (PCCS: hex or DER), else the CRL distribution point
//!   of the root certificate (Intel PCS has no such path).
//!
//! Issuer chains are URL-encoded PEM. The signed JSON (`tcbInfo`, `enclaveIdentity`) is kept
//! byte for byte as served. Before it is cached the set must name the quote's FMSPC and
//! verify with the quote through dcap-qvl at `now` (signatures, chains, CRLs, dates).

use serde::Deserialize;
use serde_json::value::RawValue;
use veil_attest::UnixTime;
use x509_cert::der::Decode as _;

use super::http::Http;
use super::{EndorsementError, Fetched, Payload};

/// Largest TCB info, QE identity or CRL body accepted (Intel's are a few KiB to ~100 KiB).
pub(crate) const MAX_BODY: usize = 512 << 10;

/// The platform a quote needs collateral for: FMSPC (upper-case hex) and PCK CA.
pub(crate) fn platform_of(quote: &[u8]) -> Result<(String, String), EndorsementError> {
    let bad = |e: &dyn std::fmt::Display| EndorsementError::Invalid(format!("TDX quote: {e}"));
    let q = dcap_qvl::quote::Quote::parse(quote).map_err(|e| bad(&e))?;
    let fmspc = dcap_qvl::intel::quote_fmspc(&q).map_err(|e| bad(&e))?;
    let ca = dcap_qvl::intel::quote_ca(&q).map_err(|e| bad(&e))?;
    Ok((hex::encode_upper(fmspc), ca.as_id_str().to_owned()))
}

#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(rename = "tcbInfo", alias = "enclaveIdentity", borrow)]
    body: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dated {
    id: Option<String>,
    fmspc: Option<String>,
    issue_date: String,
    next_update: String,
}

fn dated(json: &str, what: &str) -> Result<(Dated, u64, u64), EndorsementError> {
    let d: Dated = serde_json::from_str(json)
        .map_err(|e| EndorsementError::Invalid(format!("{what}: {e}")))?;
    let t = |s: &str| {
        UnixTime::parse_rfc3339(s)
            .map(|t| t.0)
            .map_err(|e| EndorsementError::Invalid(format!("{what} date: {e}")))
    };
    let (issued, next) = (t(&d.issue_date)?, t(&d.next_update)?);
    Ok((d, issued, next))
}

fn signed(body: &[u8], what: &str) -> Result<(String, Vec<u8>), EndorsementError> {
    let s: Signed<'_> = serde_json::from_slice(body)
        .map_err(|e| EndorsementError::Invalid(format!("{what}: {e}")))?;
    let sig = hex::decode(&s.signature)
        .map_err(|_| EndorsementError::Invalid(format!("{what}: signature is not hex")))?;
    Ok((s.body.get().to_owned(), sig))
}

/// DER from a CRL body: DER, PEM or hex (PCCS).
fn crl_der(body: Vec<u8>, what: &str) -> Result<Vec<u8>, EndorsementError> {
    if body.first() == Some(&0x30) {
        return Ok(body);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| EndorsementError::Invalid(format!("{what}: neither DER nor text")))?
        .trim();
    if text.starts_with("-----BEGIN") {
        return pem::parse(text)
            .map(pem::Pem::into_contents)
            .map_err(|e| EndorsementError::Invalid(format!("{what}: {e}")));
    }
    hex::decode(text).map_err(|_| EndorsementError::Invalid(format!("{what}: not DER, PEM or hex")))
}

/// `(thisUpdate, nextUpdate)` of a DER CRL.
fn crl_window(der: &[u8], what: &str) -> Result<(u64, u64), EndorsementError> {
    let l = x509_cert::crl::CertificateList::from_der(der)
        .map_err(|e| EndorsementError::Invalid(format!("{what}: {e}")))?;
    let this = l.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next = l
        .tbs_cert_list
        .next_update
        .map(|t| t.to_unix_duration().as_secs())
        .ok_or_else(|| EndorsementError::Invalid(format!("{what}: no nextUpdate")))?;
    Ok((this, next))
}

/// The first URI among a certificate's CRL distribution points.
fn crl_distribution_point(cert_der: &[u8]) -> Option<String> {
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

/// Fetches and checks collateral for `quote` (whose platform is `fmspc`/`ca`).
pub(crate) async fn fetch(
    http: &Http,
    base: &str,
    quote: &[u8],
    fmspc: &str,
    ca: &str,
    now: u64,
) -> Result<Fetched, EndorsementError> {
    let base = base
        .trim_end_matches('/')
        .trim_end_matches("/sgx/certification/v4")
        .trim_end_matches("/tdx/certification/v4");
    let pckcrl_url = format!("{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der");
    let tcb_url = format!("{base}/tdx/certification/v4/tcb?fmspc={fmspc}");
    let qe_url = format!("{base}/tdx/certification/v4/qe/identity");
    let root_url = format!("{base}/sgx/certification/v4/rootcacrl");

    let r = http.get(&pckcrl_url, MAX_BODY).await?;
    let pck_crl_issuer_chain = r.decoded_header("SGX-PCK-CRL-Issuer-Chain")?;
    let pck_crl = crl_der(r.body, "PCK CRL")?;

    let r = http.get(&tcb_url, MAX_BODY).await?;
    let tcb_info_issuer_chain = r
        .decoded_header("TCB-Info-Issuer-Chain")
        .or_else(|_| r.decoded_header("SGX-TCB-Info-Issuer-Chain"))?;
    let (tcb_info, tcb_info_signature) = signed(&r.body, "TCB info")?;

    let r = http.get(&qe_url, MAX_BODY).await?;
    let qe_identity_issuer_chain = r.decoded_header("SGX-Enclave-Identity-Issuer-Chain")?;
    let (qe_identity, qe_identity_signature) = signed(&r.body, "QE identity")?;

    let mut sources = vec![pckcrl_url, tcb_url, qe_url];
    let root_ca_crl = match http.get(&root_url, MAX_BODY).await {
        Ok(r) => {
            sources.push(root_url);
            crl_der(r.body, "root CA CRL")?
        }
        Err(first) => {
            let root = pem::parse_many(qe_identity_issuer_chain.as_bytes())
                .ok()
                .and_then(|c| c.last().map(|p| p.contents().to_vec()));
            let Some(url) = root.as_deref().and_then(crl_distribution_point) else {
                return Err(first);
            };
            let body = http.get(&url, MAX_BODY).await?.body;
            sources.push(url);
            crl_der(body, "root CA CRL")?
        }
    };

    let (t, t_issued, t_next) = dated(&tcb_info, "TCB info")?;
    let (q, q_issued, q_next) = dated(&qe_identity, "QE identity")?;
    let served = t.fmspc.unwrap_or_default();
    if !served.eq_ignore_ascii_case(fmspc) {
        return Err(EndorsementError::WrongPlatform {
            asked: fmspc.to_owned(),
            served,
        });
    }
    if t.id.as_deref() != Some("TDX") || q.id.as_deref() != Some("TD_QE") {
        return Err(EndorsementError::Invalid(
            "the TCB info or QE identity is not TDX's (id TDX, TD_QE)".into(),
        ));
    }
    let (p_this, p_next) = crl_window(&pck_crl, "PCK CRL")?;
    let (r_this, r_next) = crl_window(&root_ca_crl, "root CA CRL")?;
    let collateral = dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain,
        root_ca_crl,
        pck_crl,
        tcb_info_issuer_chain,
        tcb_info,
        tcb_info_signature,
        qe_identity_issuer_chain,
        qe_identity,
        qe_identity_signature,
        pck_certificate_chain: None,
    };
    dcap_qvl::verify::verify(quote, &collateral, now)
        .map_err(|e| EndorsementError::Invalid(format!("collateral does not verify: {e:#}")))?;
    Ok(Fetched {
        sources,
        not_before: t_issued.max(q_issued).max(p_this).max(r_this),
        expires: t_next.min(q_next).min(p_next).min(r_next),
        payload: Payload::Tdx(Box::new(collateral)),
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
        let (json, sig) = signed(body, "TCB info").expect("parses");
        assert_eq!(json, r#"{"b":1,  "a":[2]}"#);
        assert_eq!(sig, vec![10, 11]);
        assert!(signed(br#"{"tcbInfo":{},"signature":"zz"}"#, "x").is_err());
    }
}
