//! The simulated platform: claims signed by a software Ed25519 key.
//!
//! It exists so the whole product can be demonstrated on a machine without a TEE.
//! It proves nothing: whoever holds the key can sign any claims. Verification
//! refuses it unless the policy says `allow_simulated`, and every verdict and
//! display marks it `simulated`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::verdict::{CheckName, Checks, Measurement, Tcb};
use crate::{Platform, Policy, SimulatedEvidence, Verdict, VerifyError};

const DOMAIN: &[u8] = b"veil-simulated-evidence-v1\0";

fn message(measurement: &[u8; 48], report_data: &[u8; 64]) -> Vec<u8> {
    [DOMAIN, measurement.as_slice(), report_data.as_slice()].concat()
}

impl SimulatedEvidence {
    /// Signs simulated claims with a software key given as its 32-byte seed.
    pub fn sign(seed: &[u8; 32], measurement: [u8; 48], report_data: [u8; 64]) -> Self {
        Self::sign_with(&SigningKey::from_bytes(seed), measurement, report_data)
    }

    pub(crate) fn sign_with(
        key: &SigningKey,
        measurement: [u8; 48],
        report_data: [u8; 64],
    ) -> Self {
        let sig = key.sign(&message(&measurement, &report_data));
        Self {
            measurement: measurement.to_vec(),
            report_data: report_data.to_vec(),
            public_key: key.verifying_key().to_bytes().to_vec(),
            signature: sig.to_bytes().to_vec(),
        }
    }
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], VerifyError> {
    <[u8; N]>::try_from(v).map_err(|_| {
        VerifyError::Malformed(format!("simulated {what}: {} bytes, expected {N}", v.len()))
    })
}

pub(crate) fn verify(
    ev: &SimulatedEvidence,
    policy: &Policy,
    checks: &mut Checks,
) -> Result<Verdict, VerifyError> {
    let measurement = fixed::<48>(&ev.measurement, "measurement")?;
    let report_data = fixed::<64>(&ev.report_data, "report_data")?;
    let public_key = fixed::<32>(&ev.public_key, "public_key")?;
    let signature = fixed::<64>(&ev.signature, "signature")?;
    checks.pass(CheckName::Parse, "simulated evidence");

    let key = VerifyingKey::from_bytes(&public_key).map_err(|_| {
        VerifyError::Malformed("simulated public key is not an Ed25519 point".into())
    })?;
    key.verify(
        &message(&measurement, &report_data),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| {
        VerifyError::SignatureInvalid("simulated claims signature does not verify".into())
    })?;
    let pinned: Vec<&[u8; 32]> = policy
        .reference
        .iter()
        .filter(|r| r.platform == Platform::Simulated)
        .filter_map(|r| r.simulated_key.as_ref().map(|k| &k.0))
        .collect();
    if !pinned.is_empty() && !pinned.contains(&&public_key) {
        return Err(VerifyError::SignatureInvalid(format!(
            "simulated evidence signed by key {}, the policy pins {}",
            hex::encode(public_key),
            pinned
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    checks.pass(
        CheckName::Signature,
        if pinned.is_empty() {
            "Ed25519 by a software key (SIMULATED: no hardware root of trust)"
        } else {
            "Ed25519 by the pinned software key (SIMULATED: no hardware root of trust)"
        },
    );

    policy.check_measurements(Platform::Simulated, &[("measurement", &measurement)])?;
    checks.pass(
        CheckName::Measurement,
        format!("{} (simulated)", hex::encode(measurement)),
    );
    policy.check_report_data(&report_data, checks)?;

    Ok(Verdict {
        platform: Platform::Simulated,
        product: None,
        measurements: vec![Measurement {
            register: "measurement",
            value: measurement.to_vec(),
        }],
        report_data,
        tcb: Tcb::None,
        chip_id: None,
        warnings: vec![
            "SIMULATED platform: software-signed evidence, no hardware protection".to_owned(),
        ],
        gpus: Vec::new(),
    })
}
