//! SEV-SNP endorsements from AMD's Key Distribution Service (or a mirror with the same
//! paths): the VCEK for a chip and reported TCB (`/vcek/v1/{product}/{hwid}?blSPL=..`, DER),
//! the ASK and ARK (`/vcek/v1/{product}/cert_chain`, PEM) and the ARK-signed CRL
//! (`/vcek/v1/{product}/crl`, DER). KDS serves no VLEK: a VLEK comes only from the host.
//!
//! What comes back is checked before it is cached: one VCEK, the ASK, and the ARK that
//! Veil pins for the product (KDS's copy must be byte for byte the pinned one). The CRL is
//! kept only if it verifies against that ARK at `now`; without one the evidence travels
//! without a CRL (clients then warn, or refuse under `require_crl`). Clients verify the
//! whole chain and the report signature again; these checks keep an unusable set out of
//! the cache.

use veil_attest::snp::{Product, parse_crl};
use veil_attest::{SnpCerts, UnixTime};
use x509_cert::der::Decode as _;

use super::http::Http;
use super::{EndorsementError, Fetched, Payload};

/// Largest VCEK accepted (a VCEK is about 1.3 KiB of DER).
pub(crate) const MAX_VCEK: usize = 16 << 10;
/// Largest certificate chain accepted (two certificates of about 2 KiB each, in PEM).
pub(crate) const MAX_CHAIN: usize = 32 << 10;

/// Fetches and checks the VCEK, chain and CRL for `path` (`{product}/{hwid}?...`).
pub(crate) async fn fetch(
    http: &Http,
    base: &str,
    product: Product,
    path: &str,
    now: u64,
) -> Result<Fetched, EndorsementError> {
    let base = base.trim_end_matches('/');
    let vcek_url = format!("{base}/vcek/v1/{path}");
    let chain_url = format!("{base}/vcek/v1/{}/cert_chain", product.name());
    let crl_url = format!("{base}/vcek/v1/{}/crl", product.name());
    let vcek = http.get(&vcek_url, MAX_VCEK).await?.body;
    let chain = http.get(&chain_url, MAX_CHAIN).await?.body;
    let mut sources = vec![vcek_url.clone(), chain_url.clone()];

    let invalid = |url: &str, why: String| EndorsementError::Invalid(format!("{url}: {why}"));
    let mut ders = veil_attest::snp::split_certificates(&vcek)
        .map_err(|e| invalid(&vcek_url, e.to_string()))?;
    if ders.len() != 1 {
        return Err(invalid(
            &vcek_url,
            format!("{} certificates, expected one VCEK", ders.len()),
        ));
    }
    ders.extend(
        veil_attest::snp::split_certificates(&chain)
            .map_err(|e| invalid(&chain_url, e.to_string()))?,
    );
    let mut certs =
        SnpCerts::classify(ders).map_err(|e| invalid(&vcek_url, format!("certificates: {e}")))?;
    let (Some(vcek), Some(ask), Some(ark)) = (&certs.vcek, &certs.ask, &certs.ark) else {
        return Err(invalid(
            &vcek_url,
            "KDS did not give a VCEK, an ASK and an ARK".into(),
        ));
    };
    let pinned = product
        .ark_der()
        .map_err(|e| EndorsementError::Invalid(e.to_string()))?;
    if *ark != pinned {
        return Err(invalid(
            &chain_url,
            format!("the ARK is not the pinned ARK-{product}"),
        ));
    }
    let mut not_before = 0;
    let mut expires = u64::MAX;
    for (what, der) in [("VCEK", vcek), ("ASK", ask), ("ARK", ark)] {
        let c = x509_cert::Certificate::from_der(der)
            .map_err(|e| EndorsementError::Invalid(format!("{what}: {e}")))?;
        let v = &c.tbs_certificate.validity;
        not_before = not_before.max(v.not_before.to_unix_duration().as_secs());
        expires = expires.min(v.not_after.to_unix_duration().as_secs());
    }

    match http.get(&crl_url, veil_attest::snp::MAX_CRL_LEN).await {
        Ok(r) => match parse_crl(&r.body).and_then(|crl| {
            crl.verify(&pinned, UnixTime(now))?;
            Ok(crl)
        }) {
            Ok(crl) => {
                not_before = not_before.max(crl.this_update().0);
                if let Some(next) = crl.next_update() {
                    expires = expires.min(next.0);
                }
                certs.crl = Some(r.body);
                sources.push(crl_url);
            }
            Err(e) => {
                tracing::warn!(url = %crl_url, error = %e, "AMD CRL refused: evidence goes without a CRL");
            }
        },
        Err(e) => {
            tracing::warn!(url = %crl_url, error = %e, "AMD CRL unavailable: evidence goes without a CRL");
        }
    }
    Ok(Fetched {
        sources,
        not_before,
        expires,
        payload: Payload::Snp(certs),
    })
}
