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
//! byte for byte as served (the readers are `veil_attest::tdx::pcs`, sans-IO and fuzzed). Before it is cached the set must name the quote's FMSPC and
//! verify with the quote through dcap-qvl at `now` (signatures, chains, CRLs, dates).

use veil_attest::tdx::pcs::{crl_der, crl_distribution_point, crl_window, dated, signed_json};

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

fn invalid(e: veil_attest::VerifyError) -> EndorsementError {
    EndorsementError::Invalid(e.to_string())
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
    let pck_crl = crl_der(r.body, "PCK CRL").map_err(invalid)?;

    let r = http.get(&tcb_url, MAX_BODY).await?;
    let tcb_info_issuer_chain = r
        .decoded_header("TCB-Info-Issuer-Chain")
        .or_else(|_| r.decoded_header("SGX-TCB-Info-Issuer-Chain"))?;
    let (tcb_info, tcb_info_signature) = signed_json(&r.body, "TCB info").map_err(invalid)?;

    let r = http.get(&qe_url, MAX_BODY).await?;
    let qe_identity_issuer_chain = r.decoded_header("SGX-Enclave-Identity-Issuer-Chain")?;
    let (qe_identity, qe_identity_signature) =
        signed_json(&r.body, "QE identity").map_err(invalid)?;

    let mut sources = vec![pckcrl_url, tcb_url, qe_url];
    let root_ca_crl = match http.get(&root_url, MAX_BODY).await {
        Ok(r) => {
            sources.push(root_url);
            crl_der(r.body, "root CA CRL").map_err(invalid)?
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
            crl_der(body, "root CA CRL").map_err(invalid)?
        }
    };

    let t = dated(&tcb_info, "TCB info").map_err(invalid)?;
    let q = dated(&qe_identity, "QE identity").map_err(invalid)?;
    let (t_issued, t_next, q_issued, q_next) = (t.issued, t.next_update, q.issued, q.next_update);
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
    let (p_this, p_next) = crl_window(&pck_crl, "PCK CRL").map_err(invalid)?;
    let (r_this, r_next) = crl_window(&root_ca_crl, "root CA CRL").map_err(invalid)?;
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
