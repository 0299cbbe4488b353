//! AMD's certificate revocation list (CRL) for SEV-SNP.
//!
//! AMD's Key Distribution Service serves one CRL per product and key kind
//! (`/vcek/v1/{product}/crl`, `/vlek/v1/{product}/crl`): DER, issued and signed by the ARK
//! with RSASSA-PSS over SHA-384 (the algorithm of the ARK's own certificates), with a
//! `thisUpdate`/`nextUpdate` window. Veil takes it from the certificate table (the host's
//! CRL entry), from an evidence bundle (`certs.crl`) or from a file (`veil verify --crl`),
//! checks it was issued by the pinned ARK and is current at `now`, and refuses a chain with
//! a listed certificate.
//!
//! **Scope.** A CRL speaks for the certificates its issuer signed (RFC 5280 §5, and it is
//! not an indirect CRL: Veil refuses critical extensions it does not process). The ARK's
//! CRL therefore revokes the ASK or ASVK (or the ARK itself); a VCEK or VLEK, signed by
//! the ASK/ASVK, falls with its signer. AMD issues every VCEK and VLEK with serial number
//! 0 (all the vectors do), so a serial in the ARK's list cannot name a single endorsement
//! key; [`Crl::check_not_revoked`] only matches certificates whose issuer is the CRL's.
//!
//! What a CRL cannot do: the host chooses which current CRL to hand over, so a CRL that
//! AMD replaced but whose `nextUpdate` has not passed still verifies (AMD's window bounds
//! the staleness), and nothing in a CRL says whether it is the VCEK or the VLEK list.

use der::referenced::OwnedToRef as _;
use der::{Decode as _, Encode as _, Reader as _, asn1::ObjectIdentifier};
use rsa::signature::Verifier as _;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::Extensions;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::verdict::{CheckName, Checks};
use crate::{UnixTime, VerifyError};

/// Largest CRL accepted, in bytes (the certificate table that may carry one is capped alike).
pub const MAX_CRL_LEN: usize = 64 << 10;

const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");

/// A parsed CRL, with the exact bytes its signature covers.
#[derive(Debug, Clone)]
pub struct Crl {
    list: CertificateList,
    tbs: Vec<u8>,
}

/// Parses a DER CRL (as AMD's KDS serves it, and as evidence carries it). Never panics.
pub fn parse_crl(der: &[u8]) -> Result<Crl, VerifyError> {
    let bad = |m: String| VerifyError::MalformedCrl(m);
    if der.len() > MAX_CRL_LEN {
        return Err(bad(format!("{} bytes, limit {MAX_CRL_LEN}", der.len())));
    }
    let list = CertificateList::from_der(der).map_err(|e| bad(e.to_string()))?;
    // The signed bytes as they came, not a re-encoding: CertificateList ::= SEQUENCE {
    // tbsCertList, signatureAlgorithm, signatureValue }.
    let tbs = der::asn1::AnyRef::from_der(der)
        .and_then(|outer| {
            der::SliceReader::new(outer.value())?
                .tlv_bytes()
                .map(<[u8]>::to_vec)
        })
        .map_err(|e| bad(e.to_string()))?;
    Ok(Crl { list, tbs })
}

/// A CRL file's bytes as DER: DER as it is, or one PEM `X509 CRL` block.
pub fn read_crl(bytes: &[u8]) -> Result<Vec<u8>, VerifyError> {
    if bytes.len() > 2 * MAX_CRL_LEN {
        return Err(VerifyError::MalformedCrl("CRL file too large".into()));
    }
    let der = if bytes.starts_with(&[0x30]) {
        bytes.to_vec()
    } else {
        let p = pem::parse(bytes).map_err(|e| VerifyError::MalformedCrl(e.to_string()))?;
        if p.tag() != "X509 CRL" {
            return Err(VerifyError::MalformedCrl(format!(
                "PEM block {:?}, expected \"X509 CRL\"",
                p.tag()
            )));
        }
        p.into_contents()
    };
    parse_crl(&der)?;
    Ok(der)
}

fn time(t: x509_cert::time::Time) -> UnixTime {
    UnixTime(t.to_unix_duration().as_secs())
}

/// Refuses a critical extension: Veil processes none (RFC 5280 §5.2, §5.3: a CRL with one
/// that is not understood must not be used).
fn no_critical(exts: Option<&Extensions>, what: &str) -> Result<(), VerifyError> {
    match exts.into_iter().flatten().find(|e| e.critical) {
        Some(e) => Err(VerifyError::MalformedCrl(format!(
            "{what} has a critical extension {} that Veil does not process",
            e.extn_id
        ))),
        None => Ok(()),
    }
}

/// The salt length of an RSASSA-PSS algorithm identifier over SHA-384 (MGF1 with SHA-384).
fn pss_sha384_salt_len(alg: &AlgorithmIdentifierOwned) -> Result<usize, VerifyError> {
    let bad = |m: String| VerifyError::CrlSignature(m);
    if alg.oid != RSASSA_PSS {
        return Err(bad(format!(
            "signature algorithm {} is not RSASSA-PSS",
            alg.oid
        )));
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("RSASSA-PSS without parameters".into()))
        .and_then(|p| p.to_der().map_err(|e| bad(e.to_string())))?;
    let p = rsa::pkcs1::RsaPssParams::from_der(&params).map_err(|e| bad(e.to_string()))?;
    let mgf_hash = p.mask_gen.parameters.map(|h| h.oid);
    if p.hash.oid != SHA384 || p.mask_gen.oid != MGF1 || mgf_hash != Some(SHA384) {
        return Err(bad(format!(
            "RSASSA-PSS with hash {} and mask {} ({mgf_hash:?}); AMD signs with SHA-384",
            p.hash.oid, p.mask_gen.oid
        )));
    }
    Ok(usize::from(p.salt_len))
}

impl Crl {
    /// Start of the CRL's validity (`thisUpdate`).
    pub fn this_update(&self) -> UnixTime {
        time(self.list.tbs_cert_list.this_update)
    }

    /// End of the CRL's validity (`nextUpdate`), if it names one.
    pub fn next_update(&self) -> Option<UnixTime> {
        self.list.tbs_cert_list.next_update.map(time)
    }

    /// How many certificates it lists.
    pub fn len(&self) -> usize {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .map_or(0, Vec::len)
    }

    /// Whether it lists no certificate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that `issuer` (a DER certificate, the caller's trust anchor) issued this CRL,
    /// that its signature verifies (RSASSA-PSS, SHA-384) and that `now` is inside
    /// `thisUpdate ..= nextUpdate` (a CRL without `nextUpdate` is refused).
    pub fn verify(&self, issuer: &[u8], now: UnixTime) -> Result<(), VerifyError> {
        self.verify_issued_by(&super::certs::parse(issuer)?, now)
    }

    pub(crate) fn verify_issued_by(
        &self,
        issuer: &Certificate,
        now: UnixTime,
    ) -> Result<(), VerifyError> {
        let tbs = &self.list.tbs_cert_list;
        if tbs.issuer != issuer.tbs_certificate.subject {
            return Err(VerifyError::CrlSignature(format!(
                "issued by {}, not by {}",
                tbs.issuer, issuer.tbs_certificate.subject
            )));
        }
        if tbs.signature != self.list.signature_algorithm {
            return Err(VerifyError::MalformedCrl(
                "the signed and the outer signature algorithms differ".into(),
            ));
        }
        no_critical(tbs.crl_extensions.as_ref(), "the CRL")?;
        for entry in tbs.revoked_certificates.iter().flatten() {
            no_critical(entry.crl_entry_extensions.as_ref(), "an entry")?;
        }

        let salt_len = pss_sha384_salt_len(&self.list.signature_algorithm)?;
        let key = rsa::RsaPublicKey::try_from(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .owned_to_ref(),
        )
        .map_err(|e| VerifyError::CrlSignature(format!("issuer key is not RSA: {e}")))?;
        let signature = self
            .list
            .signature
            .as_bytes()
            .ok_or_else(|| VerifyError::CrlSignature("signature is not whole bytes".into()))
            .and_then(|s| {
                rsa::pss::Signature::try_from(s)
                    .map_err(|e| VerifyError::CrlSignature(e.to_string()))
            })?;
        rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(key, salt_len)
            .verify(&self.tbs, &signature)
            .map_err(|_| {
                VerifyError::CrlSignature(format!(
                    "does not verify with the key of {}",
                    issuer.tbs_certificate.subject
                ))
            })?;

        let (this, next) = (self.this_update(), self.next_update());
        match next {
            Some(next) if this <= now && now <= next => Ok(()),
            _ => Err(VerifyError::CrlNotValid {
                now: now.to_rfc3339(),
                this_update: this.to_rfc3339(),
                next_update: next.map_or_else(|| "none".to_owned(), UnixTime::to_rfc3339),
            }),
        }
    }

    /// Refuses `cert` (DER) if this CRL lists it: its issuer is the CRL's issuer and its
    /// serial number is listed. `which` names it in the error (`ask`, `vcek`, …). Checks
    /// nothing about the CRL itself: call [`Crl::verify`] first.
    pub fn check_not_revoked(&self, cert: &[u8], which: &'static str) -> Result<(), VerifyError> {
        self.check_cert(&super::certs::parse(cert)?, which)
    }

    pub(crate) fn check_cert(
        &self,
        cert: &Certificate,
        which: &'static str,
    ) -> Result<(), VerifyError> {
        let tbs = &self.list.tbs_cert_list;
        if cert.tbs_certificate.issuer != tbs.issuer {
            return Ok(());
        }
        let serial = &cert.tbs_certificate.serial_number;
        match tbs
            .revoked_certificates
            .iter()
            .flatten()
            .find(|e| &e.serial_number == serial)
        {
            Some(e) => Err(VerifyError::CertificateRevoked {
                cert: which,
                serial: hex::encode(serial.as_bytes()),
                revoked_at: time(e.revocation_date).to_rfc3339(),
            }),
            None => Ok(()),
        }
    }
}

/// The `revocation` check of an SNP chain: the CRL (if any) verified against the pinned
/// ARK at `now`, then every certificate of `chain` checked against it. Without a CRL the
/// check passes unless `require` is set, and the returned warning says it was not done.
pub(crate) fn check_chain(
    crl: Option<&[u8]>,
    require: bool,
    ark: &Certificate,
    chain: &[(&'static str, &Certificate)],
    now: UnixTime,
    checks: &mut Checks,
) -> Result<Option<String>, VerifyError> {
    let Some(der) = crl else {
        if require {
            return Err(VerifyError::CrlMissing);
        }
        checks.pass(CheckName::Revocation, "not checked (no CRL)");
        return Ok(Some(
            "revocation not checked: no CRL with the evidence (require_crl refuses this)"
                .to_owned(),
        ));
    };
    let crl = parse_crl(der)?;
    crl.verify_issued_by(ark, now)?;
    for (which, cert) in chain {
        crl.check_cert(cert, which)?;
    }
    let in_scope: Vec<&str> = chain
        .iter()
        .filter(|(_, c)| c.tbs_certificate.issuer == crl.list.tbs_cert_list.issuer)
        .map(|(w, _)| *w)
        .collect();
    checks.pass(
        CheckName::Revocation,
        format!(
            "CRL signed by the pinned ARK, valid {} .. {}, {} entries; {} not listed",
            crl.this_update().to_rfc3339(),
            crl.next_update()
                .map_or_else(String::new, UnixTime::to_rfc3339),
            crl.len(),
            in_scope.join(", ")
        ),
    );
    Ok(None)
}
