//! The GPU's certificate chain: leaf (GSP FMC, per boot) -> device (GSP BROM) -> NVIDIA
//! provisioner and identity CAs -> the pinned NVIDIA Device Identity CA, every link ECDSA
//! P-384/SHA-384; and the leaf's firmware id (TCG DICE extension `2.23.133.5.4.1`).

use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
use p384::ecdsa::{Signature, VerifyingKey, signature::Verifier as _};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::snp::certs::{check_validity, common_name, parse};
use crate::{UnixTime, VerifyError};

/// NVIDIA's device identity root: the only trust anchor for GPU certificates.
pub const NVIDIA_DEVICE_ROOT_PEM: &str = include_str!("roots/nvidia_device_identity_ca.pem");
/// Most certificates accepted in a GPU chain (Hopper's has five).
pub const MAX_CHAIN_LEN: usize = 8;

const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// The pinned root (DER).
pub fn nvidia_root_der() -> Result<Vec<u8>, VerifyError> {
    pem::parse(NVIDIA_DEVICE_ROOT_PEM)
        .map(pem::Pem::into_contents)
        .map_err(|e| VerifyError::MalformedCertificate(e.to_string()))
}

/// What a verified chain tells about the GPU.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedChain {
    /// The leaf's key, which must sign the report.
    pub(crate) leaf_key: VerifyingKey,
    /// The leaf's firmware id (SHA-384).
    pub(crate) fwid: Vec<u8>,
    /// Subject common names, leaf first, root last.
    pub(crate) names: Vec<String>,
    /// Latest `notBefore` and earliest `notAfter` over the chain.
    pub(crate) valid: (UnixTime, UnixTime),
    certs: Vec<Certificate>,
}

fn cert_name(i: usize, n: usize) -> &'static str {
    match i {
        0 => "gpu leaf",
        _ if i + 1 == n => "nvidia root",
        _ => "gpu intermediate",
    }
}

/// Checks the chain (DER, leaf first; the root may be left out) up to the pinned root.
/// Validity at a time is [`VerifiedChain::check_validity`].
pub(crate) fn verify_chain(ders: &[Vec<u8>]) -> Result<VerifiedChain, VerifyError> {
    let root = nvidia_root_der()?;
    let mut ders: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
    if ders.is_empty() || ders.len() > MAX_CHAIN_LEN {
        return Err(VerifyError::MalformedCertificate(format!(
            "GPU certificate chain has {} certificates (1..={MAX_CHAIN_LEN} accepted)",
            ders.len()
        )));
    }
    let certs: Vec<Certificate> = ders.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    let root_cert = parse(&root)?;
    let mut certs = certs;
    if ders.last() != Some(&root.as_slice()) {
        let Some(last) = certs.last() else {
            return Err(VerifyError::MissingCertificate("gpu leaf"));
        };
        if last.tbs_certificate.issuer != root_cert.tbs_certificate.subject {
            return Err(VerifyError::UntrustedGpuRoot(format!(
                "the chain ends at {:?}, which is neither the pinned NVIDIA Device Identity CA \
                 nor issued by it",
                common_name(&last.tbs_certificate.subject).unwrap_or_default()
            )));
        }
        certs.push(root_cert);
        ders.push(&root);
    }
    if certs.len() < 2 {
        return Err(VerifyError::MissingCertificate(
            "gpu leaf (the chain holds the root only)",
        ));
    }
    let names: Vec<String> = certs
        .iter()
        .map(|c| common_name(&c.tbs_certificate.subject).unwrap_or_else(|| "?".into()))
        .collect();
    for i in 0..certs.len() - 1 {
        let (subject, issuer) = (&certs[i], &certs[i + 1]);
        let what = format!("{} -> {}", names[i + 1], names[i]);
        if subject.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            return Err(VerifyError::ChainSignature(format!(
                "{what}: issuer name differs (a certificate is missing or out of order)"
            )));
        }
        require_ca(issuer, &names[i + 1])?;
        check_signed_by(issuer, subject, &what)?;
    }
    let leaf = &certs[0];
    if let Some(ku) = extension::<KeyUsage>(leaf, KEY_USAGE)?
        && !ku.digital_signature()
    {
        return Err(VerifyError::ChainSignature(
            "the GPU leaf may not sign (keyUsage lacks digitalSignature)".into(),
        ));
    }
    let leaf_key = p384_key(leaf)?;
    let fwid = leaf_fwid(leaf)?;

    let mut valid = (UnixTime(0), UnixTime(u64::MAX));
    for c in &certs {
        let v = &c.tbs_certificate.validity;
        valid.0 = valid
            .0
            .max(UnixTime(v.not_before.to_unix_duration().as_secs()));
        valid.1 = valid
            .1
            .min(UnixTime(v.not_after.to_unix_duration().as_secs()));
    }
    Ok(VerifiedChain {
        leaf_key,
        fwid,
        names,
        valid,
        certs,
    })
}

impl VerifiedChain {
    /// Checks every certificate is valid at `now`.
    pub(crate) fn check_validity(&self, now: UnixTime) -> Result<(), VerifyError> {
        let n = self.certs.len();
        for (i, c) in self.certs.iter().enumerate() {
            check_validity(c, cert_name(i, n), now)?;
        }
        Ok(())
    }
}

fn extension<'a, T: Decode<'a>>(
    cert: &'a Certificate,
    oid: ObjectIdentifier,
) -> Result<Option<T>, VerifyError> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let Some(ext) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(VerifyError::MalformedCertificate(format!(
            "extension {oid} repeated"
        )));
    }
    T::from_der(ext.extn_value.as_bytes())
        .map(Some)
        .map_err(|e| VerifyError::MalformedCertificate(format!("extension {oid}: {e}")))
}

fn require_ca(cert: &Certificate, name: &str) -> Result<(), VerifyError> {
    let ca = extension::<BasicConstraints>(cert, BASIC_CONSTRAINTS)?.is_some_and(|b| b.ca);
    let may_sign = extension::<KeyUsage>(cert, KEY_USAGE)?.is_none_or(|k| k.key_cert_sign());
    if !ca || !may_sign {
        return Err(VerifyError::ChainSignature(format!(
            "{name} is not a CA (basicConstraints/keyUsage) and may not issue certificates"
        )));
    }
    Ok(())
}

fn p384_key(cert: &Certificate) -> Result<VerifyingKey, VerifyError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(SECP384R1) {
        return Err(VerifyError::MalformedCertificate(
            "GPU certificate key is not ECDSA P-384".into(),
        ));
    }
    let point = spki.subject_public_key.as_bytes().unwrap_or_default();
    VerifyingKey::from_sec1_bytes(point)
        .map_err(|e| VerifyError::MalformedCertificate(format!("GPU certificate key: {e}")))
}

fn check_signed_by(
    issuer: &Certificate,
    subject: &Certificate,
    what: &str,
) -> Result<(), VerifyError> {
    if subject.signature_algorithm.oid != ECDSA_SHA384
        || subject.tbs_certificate.signature.oid != ECDSA_SHA384
    {
        return Err(VerifyError::ChainSignature(format!(
            "{what}: signature algorithm is not ecdsa-with-SHA384"
        )));
    }
    let key = p384_key(issuer)?;
    let sig = subject
        .signature
        .as_bytes()
        .and_then(|b| Signature::from_der(b).ok())
        .ok_or_else(|| VerifyError::ChainSignature(format!("{what}: malformed signature")))?;
    let tbs = subject
        .tbs_certificate
        .to_der()
        .map_err(|e| VerifyError::MalformedCertificate(e.to_string()))?;
    key.verify(&tbs, &sig)
        .map_err(|_| VerifyError::ChainSignature(format!("{what}: signature does not verify")))
}

/// The leaf's firmware id: the one SHA-384 FWID (`SEQUENCE { hashAlg, OCTET STRING }`) in
/// its DICE TCB-info extension, found among the extension's elements or, in the TCG layout,
/// in its `[6] fwids` list.
pub(crate) fn leaf_fwid(leaf: &Certificate) -> Result<Vec<u8>, VerifyError> {
    let Some(ext) = extension::<AnyRef<'_>>(leaf, DICE_TCB_INFO)? else {
        return Err(VerifyError::MissingCertificate(
            "gpu leaf with a firmware id (the first certificate has no FWID extension)",
        ));
    };
    let bad = |e: der::Error| VerifyError::MalformedCertificate(format!("FWID extension: {e}"));
    if ext.tag() != Tag::Sequence {
        return Err(VerifyError::MalformedCertificate(
            "FWID extension is not a SEQUENCE".into(),
        ));
    }
    let mut fwids = Vec::new();
    let mut r = SliceReader::new(ext.value()).map_err(bad)?;
    while !r.is_finished() {
        let el = AnyRef::decode(&mut r).map_err(bad)?;
        let fwids_list = Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N6,
        };
        if el.tag() == fwids_list {
            let mut list = SliceReader::new(el.value()).map_err(bad)?;
            while !list.is_finished() {
                let f = AnyRef::decode(&mut list).map_err(bad)?;
                fwids.extend(as_fwid(f));
            }
        } else {
            fwids.extend(as_fwid(el));
        }
    }
    match fwids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(VerifyError::MalformedCertificate(
            "FWID extension has no SHA-384 firmware id".into(),
        )),
        _ => Err(VerifyError::MalformedCertificate(
            "FWID extension has several SHA-384 firmware ids".into(),
        )),
    }
}

fn as_fwid(el: AnyRef<'_>) -> Option<Vec<u8>> {
    if el.tag() != Tag::Sequence {
        return None;
    }
    let mut r = SliceReader::new(el.value()).ok()?;
    let alg = ObjectIdentifier::decode(&mut r).ok()?;
    let digest = OctetStringRef::decode(&mut r).ok()?;
    (r.is_finished() && alg == SHA384 && digest.as_bytes().len() == 48)
        .then(|| digest.as_bytes().to_vec())
}
