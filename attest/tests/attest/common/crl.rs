//! A test root that signs CRLs as AMD's ARK does (RSASSA-PSS, SHA-384, salt 48), under the
//! name of the real ARK-Milan, and a builder of such CRLs.
//!
//! The real ARK's private key is AMD's, so a CRL that the pinned ARK accepts cannot be made
//! here: [`TestRoot::ark_der`] is the real ARK-Milan certificate with its public key replaced
//! by the test key (its own signature is left stale; CRL checks use only name and key).

use der::{Decode as _, Encode as _};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use veil_attest::snp::Product;
use x509_cert::Certificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Time;

/// 2025-11-24T16:00:00Z: inside the validity of the SNP vectors' certificates.
pub const NOW: u64 = 1_764_000_000;
const DAY: u64 = 86_400;

pub struct TestRoot {
    key: rsa::RsaPrivateKey,
    ark: Certificate,
}

/// One CRL to sign: `this_update`/`next_update` in Unix seconds, listed serials (DER
/// INTEGER contents, as `SerialNumber::as_bytes` gives them).
pub struct CrlSpec<'a> {
    pub this_update: u64,
    pub next_update: Option<u64>,
    pub revoked: &'a [&'a [u8]],
    pub critical_extension: bool,
}

impl Default for CrlSpec<'_> {
    /// Valid a week around [`NOW`], listing nothing.
    fn default() -> Self {
        Self {
            this_update: NOW - 3 * DAY,
            next_update: Some(NOW + 4 * DAY),
            revoked: &[],
            critical_extension: false,
        }
    }
}

fn utc(secs: u64) -> Time {
    Time::UtcTime(
        der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(secs))
            .expect("time in UTCTime range"),
    )
}

impl TestRoot {
    /// A deterministic RSA-2048 test key (`seed` picks it) in ARK-`product`'s name.
    pub fn new(product: Product, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let mut ark = Certificate::from_der(&product.ark_der().expect("pinned ARK"))
            .expect("pinned ARK parses");
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .expect("SPKI encodes");
        ark.tbs_certificate.subject_public_key_info =
            SubjectPublicKeyInfoOwned::from_der(spki.as_bytes()).expect("SPKI parses");
        Self { key, ark }
    }

    /// The test root as a certificate (DER): ARK-Milan's name, the test key.
    pub fn ark_der(&self) -> Vec<u8> {
        self.ark.to_der().expect("certificate encodes")
    }

    /// A CRL issued by this root, signed as AMD signs (RSASSA-PSS, SHA-384, salt 48).
    pub fn crl(&self, spec: &CrlSpec<'_>) -> Vec<u8> {
        // The algorithm identifier of AMD's own certificates: RSASSA-PSS, SHA-384, MGF1
        // with SHA-384, salt 48.
        let alg = self.ark.signature_algorithm.clone();
        let revoked: Vec<RevokedCert> = spec
            .revoked
            .iter()
            .map(|serial| RevokedCert {
                serial_number: SerialNumber::new(serial).expect("serial"),
                revocation_date: utc(spec.this_update - DAY),
                crl_entry_extensions: None,
            })
            .collect();
        let crl_extensions = spec.critical_extension.then(|| {
            vec![Extension {
                // Issuing distribution point: scopes a CRL, which Veil does not process.
                extn_id: der::asn1::ObjectIdentifier::new_unwrap("2.5.29.28"),
                critical: true,
                extn_value: der::asn1::OctetString::new(vec![0x30, 0x00]).expect("octets"),
            }]
        });
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: alg.clone(),
            issuer: self.ark.tbs_certificate.subject.clone(),
            this_update: utc(spec.this_update),
            next_update: spec.next_update.map(utc),
            revoked_certificates: (!revoked.is_empty()).then_some(revoked),
            crl_extensions,
        };
        let tbs_der = tbs.to_der().expect("TBS encodes");
        let mut rng = ChaCha20Rng::seed_from_u64(spec.this_update);
        let signature =
            rsa::pss::SigningKey::<sha2::Sha384>::new_with_salt_len(self.key.clone(), 48)
                .sign_with_rng(&mut rng, &tbs_der)
                .to_vec();
        CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: alg,
            signature: der::asn1::BitString::from_bytes(&signature).expect("bit string"),
        }
        .to_der()
        .expect("CRL encodes")
    }
}

/// The serial number of a DER certificate.
pub fn serial(cert_der: &[u8]) -> Vec<u8> {
    Certificate::from_der(cert_der)
        .expect("certificate")
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec()
}
