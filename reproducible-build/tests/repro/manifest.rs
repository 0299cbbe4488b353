//! Release manifests: signed, canonical, and any changed byte is rejected; a
//! policy made from one accepts the release's measurement and nothing else.

use ed25519_dalek::SigningKey;
use veil_attest::{Evidence, Policy, SnpCerts, SnpEvidence, UnixTime, VerifyError, verify};
use veil_repro::ReproError;
use veil_repro::manifest::{
    MANIFEST_VERSION, ReferenceValues, ReleaseError, ReleaseManifest, SignedManifest,
    TdxReferenceValues, sign,
};

/// MEASUREMENT of the real Milan report in `tests/vectors/snp/report.bin`.
const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";

fn key() -> SigningKey {
    // A fixed test key; never a release key.
    SigningKey::from_bytes(&[7u8; 32])
}

fn manifest(snp: &str) -> ReleaseManifest {
    ReleaseManifest {
        version: MANIFEST_VERSION,
        binary_sha256: "11".repeat(32),
        model_manifest_digest: "22".repeat(32),
        source_commit: "4df1d45".to_owned(),
        toolchain: "rustc 1.95.0".to_owned(),
        reference_values: ReferenceValues {
            snp_measurements: vec![snp.to_owned()],
            tdx: Some(TdxReferenceValues {
                mrtd: "aa".repeat(48),
                rtmr0: None,
                rtmr1: "bb".repeat(48),
                rtmr2: "cc".repeat(48),
            }),
            ..Default::default()
        },
    }
}

fn signed_file() -> Vec<u8> {
    sign(manifest(MILAN_MEASUREMENT), &key())
        .expect("signs")
        .to_file_bytes()
        .expect("serializes")
}

#[test]
fn a_signed_manifest_verifies_and_round_trips() {
    let file = signed_file();
    let signed = SignedManifest::verify(&file, &key().verifying_key()).expect("verifies");
    assert_eq!(signed.manifest, manifest(MILAN_MEASUREMENT));
    // The digest bound into REPORT_DATA is SHA-256 of the file bytes.
    use sha2::Digest;
    let expected: [u8; 32] = sha2::Sha256::digest(&file).into();
    assert_eq!(signed.digest().expect("digest"), expected);
}

#[test]
fn signing_is_deterministic() {
    // Ed25519 is deterministic and the JSON canonical: same inputs, same file.
    assert_eq!(signed_file(), signed_file());
}

#[test]
fn every_single_changed_byte_is_rejected() {
    let file = signed_file();
    let pk = key().verifying_key();
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        assert!(
            SignedManifest::verify(&bad, &pk).is_err(),
            "byte {i} ({:?}) changed and still verified",
            file[i] as char
        );
    }
}

#[test]
fn a_changed_value_fails_the_signature_not_just_the_form() {
    let file = String::from_utf8(signed_file()).expect("utf-8");
    // Same shape, one hex digit of the binary hash changed.
    let bad = file.replacen(&"11".repeat(32), &format!("21{}", "11".repeat(31)), 1);
    assert!(matches!(
        SignedManifest::verify(bad.as_bytes(), &key().verifying_key()),
        Err(ReleaseError::SignatureInvalid)
    ));
}

#[test]
fn rejects_another_signers_key() {
    let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
    assert!(matches!(
        SignedManifest::verify(&signed_file(), &other),
        Err(ReleaseError::SignatureInvalid)
    ));
}

#[test]
fn refuses_to_sign_malformed_digests() {
    let mut m = manifest(MILAN_MEASUREMENT);
    m.binary_sha256 = "xyz".to_owned();
    assert!(matches!(
        sign(m, &key()),
        Err(ReproError::Release(ReleaseError::InvalidHex { .. }))
    ));
}

fn milan_evidence() -> Evidence {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/snp/");
    let report = std::fs::read(format!("{dir}report.bin")).expect("report");
    let vcek = std::fs::read(format!("{dir}vcek.der")).expect("vcek");
    let certs = SnpCerts::classify([vcek]).expect("classify");
    Evidence::SevSnp(SnpEvidence::new(report, certs))
}

fn policy_from(snp_measurement: &str) -> Policy {
    let file = sign(manifest(snp_measurement), &key())
        .expect("signs")
        .to_file_bytes()
        .expect("serializes");
    let signed = SignedManifest::verify(&file, &key().verifying_key()).expect("verifies");
    // The captured report is 2022 Milan firmware, below AMD's TCB floor: these tests are
    // about the measurement the release pins, so its TCB is accepted explicitly.
    Policy::from_toml(&signed.manifest.to_policy_toml())
        .expect("policy parses")
        .allow_outdated_tcb(true)
}

#[test]
fn policy_from_manifest_accepts_the_released_measurement() {
    let now = UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time");
    verify(&milan_evidence(), &policy_from(MILAN_MEASUREMENT), now).expect("accepted");
}

#[test]
fn policy_from_manifest_rejects_a_measurement_one_byte_off() {
    let mut bytes = hex::decode(MILAN_MEASUREMENT).expect("hex");
    bytes[47] ^= 0x01;
    let now = UnixTime::parse_rfc3339("2026-11-25T00:00:00Z").expect("time");
    let err = verify(&milan_evidence(), &policy_from(&hex::encode(bytes)), now)
        .expect_err("must be rejected");
    assert!(
        matches!(err, VerifyError::MeasurementMismatch { .. }),
        "{err:?}"
    );
}
