//! SEV-SNP certificates: which role each one plays, the pinned roots, validity
//! and the AMD extensions (TCB components, hwID) of VCEK/VLEK certificates.

use der::{Decode, asn1::ObjectIdentifier};
use serde::{Deserialize, Serialize};
use sev::certs::snp::{Certificate as SevCertificate, Verifiable as _, builtin};
use x509_cert::Certificate;

use crate::{SnpCerts, UnixTime, VerifyError, evidence::MAX_CERT_LEN};

/// AMD EPYC product with a pinned SEV-SNP root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Product {
    /// 3rd generation EPYC.
    Milan,
    /// 4th generation EPYC.
    Genoa,
    /// 5th generation EPYC.
    Turin,
}

impl Product {
    /// Every product Veil pins a root for.
    pub const ALL: [Self; 3] = [Self::Milan, Self::Genoa, Self::Turin];

    /// AMD's name, as in certificate subjects (`SEV-Milan`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The product of a CPUID family/model pair (report v3+).
    pub fn from_cpuid(family: u8, model: u8) -> Option<Self> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Self::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(Self::Genoa),
            (0x1A, 0x00..=0x11) => Some(Self::Turin),
            _ => None,
        }
    }

    /// The pinned AMD Root Key (DER): the only trust anchor for this product.
    pub fn ark_der(self) -> Result<Vec<u8>, VerifyError> {
        let pem = match self {
            Self::Milan => builtin::milan::ARK,
            Self::Genoa => builtin::genoa::ARK,
            Self::Turin => builtin::turin::ARK,
        };
        pem_to_der(pem)
    }

    /// The built-in AMD SEV Signing Key (DER), used when the evidence carries none.
    pub fn ask_der(self) -> Result<Vec<u8>, VerifyError> {
        let pem = match self {
            Self::Milan => builtin::milan::ASK,
            Self::Genoa => builtin::genoa::ASK,
            Self::Turin => builtin::turin::ASK,
        };
        pem_to_der(pem)
    }

    /// The built-in ASVK (DER), where Veil ships one.
    pub(crate) fn builtin_asvk(self) -> Option<Result<Vec<u8>, VerifyError>> {
        match self {
            Self::Milan => Some(pem_to_der(include_bytes!("roots/milan_asvk.pem"))),
            Self::Genoa | Self::Turin => None,
        }
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let p = pem::parse(pem).map_err(|e| VerifyError::MalformedCertificate(e.to_string()))?;
    Ok(p.into_contents())
}

/// The role of an AMD SEV-SNP certificate, from its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertRole {
    /// `SEV-VCEK`.
    Vcek,
    /// `SEV-VLEK`.
    Vlek,
    /// `SEV-<product>`: signs VCEKs.
    Ask(Product),
    /// `SEV-VLEK-<product>`: signs VLEKs.
    Asvk(Product),
    /// `ARK-<product>`: the root.
    Ark(Product),
}

/// Splits a file's bytes into DER certificates: one DER certificate, or any
/// number of PEM `CERTIFICATE` blocks.
pub fn split_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, VerifyError> {
    if bytes.len() > 4 * MAX_CERT_LEN {
        return Err(VerifyError::MalformedCertificate(
            "certificate file too large".into(),
        ));
    }
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![bytes.to_vec()]);
    }
    let blocks =
        pem::parse_many(bytes).map_err(|e| VerifyError::MalformedCertificate(e.to_string()))?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if ders.is_empty() {
        return Err(VerifyError::MalformedCertificate(
            "no certificate found (expected DER or PEM)".into(),
        ));
    }
    Ok(ders)
}

impl SnpCerts {
    /// Sorts DER certificates into their roles by subject (any order).
    pub fn classify(ders: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, VerifyError> {
        let mut out = Self::default();
        for der in ders {
            let cert = parse(&der)?;
            let slot = match role(&cert)? {
                CertRole::Vcek => &mut out.vcek,
                CertRole::Vlek => &mut out.vlek,
                CertRole::Ask(_) => &mut out.ask,
                CertRole::Asvk(_) => &mut out.asvk,
                CertRole::Ark(_) => &mut out.ark,
            };
            if slot.as_ref().is_some_and(|d| d != &der) {
                return Err(VerifyError::MalformedCertificate(
                    "two different certificates for the same role".into(),
                ));
            }
            *slot = Some(der);
        }
        Ok(out)
    }
}

pub(crate) fn parse(der: &[u8]) -> Result<Certificate, VerifyError> {
    if der.len() > MAX_CERT_LEN {
        return Err(VerifyError::MalformedCertificate(format!(
            "certificate is {} bytes",
            der.len()
        )));
    }
    Certificate::from_der(der).map_err(|e| VerifyError::MalformedCertificate(e.to_string()))
}

pub(crate) fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|a| a.oid == CN)
        .and_then(|a| {
            a.value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    a.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    a.value
                        .decode_as::<der::asn1::Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        })
}

/// The role of a certificate, from its subject common name.
pub(crate) fn role(cert: &Certificate) -> Result<CertRole, VerifyError> {
    let cn = common_name(&cert.tbs_certificate.subject)
        .ok_or_else(|| VerifyError::MalformedCertificate("certificate has no subject CN".into()))?;
    let product = |s: &str| {
        Product::from_name(s)
            .ok_or_else(|| VerifyError::UnknownProduct(format!("certificate {cn:?}")))
    };
    Ok(match cn.as_str() {
        "SEV-VCEK" => CertRole::Vcek,
        "SEV-VLEK" => CertRole::Vlek,
        s if s.starts_with("SEV-VLEK-") => CertRole::Asvk(product(&s["SEV-VLEK-".len()..])?),
        s if s.starts_with("ARK-") => CertRole::Ark(product(&s["ARK-".len()..])?),
        s if s.starts_with("SEV-") => CertRole::Ask(product(&s["SEV-".len()..])?),
        _ => {
            return Err(VerifyError::MalformedCertificate(format!(
                "not an AMD SEV certificate: {cn:?}"
            )));
        }
    })
}

/// The product named by an endorsement certificate's issuer (`SEV-Milan`, `SEV-VLEK-Genoa`).
pub(crate) fn issuer_product(cert: &Certificate) -> Result<Product, VerifyError> {
    let cn = common_name(&cert.tbs_certificate.issuer)
        .ok_or_else(|| VerifyError::MalformedCertificate("certificate has no issuer CN".into()))?;
    let name = cn
        .strip_prefix("SEV-VLEK-")
        .or_else(|| cn.strip_prefix("SEV-"))
        .ok_or_else(|| VerifyError::UnknownProduct(format!("issuer {cn:?}")))?;
    Product::from_name(name).ok_or_else(|| VerifyError::UnknownProduct(format!("issuer {cn:?}")))
}

/// Checks that `issuer` (DER) signs `subject` (DER) with RSA-PSS/SHA-384, as AMD's chain does.
pub(crate) fn check_signed_by(
    issuer: &[u8],
    subject: &[u8],
    what: &str,
) -> Result<(), VerifyError> {
    let i = SevCertificate::from_der(issuer)
        .map_err(|e| VerifyError::MalformedCertificate(e.to_string()))?;
    let s = SevCertificate::from_der(subject)
        .map_err(|e| VerifyError::MalformedCertificate(e.to_string()))?;
    (&i, &s)
        .verify()
        .map_err(|e| VerifyError::ChainSignature(format!("{what}: {e}")))
}

/// Checks the ARK's self-signature and that it signs the ASK/ASVK.
///
/// Both are RSA-4096 verifications over AMD's long-lived certificates, and the same few
/// pairs recur in every verification; a pair that verified once is remembered (by the
/// SHA-256 of both DER encodings), which is pure memoization of a deterministic check.
pub(crate) fn check_ca_pair(ark: &[u8], ca: &[u8], ca_name: &str) -> Result<(), VerifyError> {
    use sha2::{Digest, Sha256};
    use std::sync::Mutex;
    static VERIFIED: Mutex<Vec<[u8; 32]>> = Mutex::new(Vec::new());
    const MAX_REMEMBERED: usize = 16;

    let key: [u8; 32] = Sha256::new()
        .chain_update(ark)
        .chain_update([0])
        .chain_update(ca)
        .finalize()
        .into();
    let known = VERIFIED.lock().map(|v| v.contains(&key)).unwrap_or(false);
    if known {
        return Ok(());
    }
    check_signed_by(ark, ark, "ark self-signature")?;
    check_signed_by(ark, ca, &format!("ark -> {ca_name}"))?;
    if let Ok(mut v) = VERIFIED.lock() {
        if v.len() >= MAX_REMEMBERED {
            v.remove(0);
        }
        v.push(key);
    }
    Ok(())
}

/// Checks `now` is inside the certificate's validity period.
pub(crate) fn check_validity(
    cert: &Certificate,
    which: &'static str,
    now: UnixTime,
) -> Result<(), VerifyError> {
    let v = &cert.tbs_certificate.validity;
    let nb = v.not_before.to_unix_duration().as_secs();
    let na = v.not_after.to_unix_duration().as_secs();
    if now.0 < nb || now.0 > na {
        return Err(VerifyError::CertificateNotValid {
            cert: which,
            now: now.to_rfc3339(),
            not_before: UnixTime(nb).to_rfc3339(),
            not_after: UnixTime(na).to_rfc3339(),
        });
    }
    Ok(())
}

/// The AMD extensions of a VCEK/VLEK certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VekExtensions {
    pub(crate) bootloader: Option<u8>,
    pub(crate) tee: Option<u8>,
    pub(crate) snp: Option<u8>,
    pub(crate) microcode: Option<u8>,
    pub(crate) fmc: Option<u8>,
    pub(crate) hw_id: Option<Vec<u8>>,
}

pub(crate) fn vek_extensions(cert: &Certificate) -> Result<VekExtensions, VerifyError> {
    const BL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    const TEE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    const SNP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    const UCODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    const FMC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    const HWID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
    let mut out = VekExtensions::default();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let raw = ext.extn_value.as_bytes();
        let spl = || {
            u8::from_der(raw).map_err(|e| {
                VerifyError::MalformedCertificate(format!("TCB extension {}: {e}", ext.extn_id))
            })
        };
        match ext.extn_id {
            BL => out.bootloader = Some(spl()?),
            TEE => out.tee = Some(spl()?),
            SNP => out.snp = Some(spl()?),
            UCODE => out.microcode = Some(spl()?),
            FMC => out.fmc = Some(spl()?),
            // AMD encodes hwID as an OCTET STRING inside extnValue; accept the raw bytes too.
            HWID => {
                out.hw_id = Some(
                    der::asn1::OctetStringRef::from_der(raw)
                        .map(|o| o.as_bytes().to_vec())
                        .unwrap_or_else(|_| raw.to_vec()),
                );
            }
            _ => {}
        }
    }
    Ok(out)
}
