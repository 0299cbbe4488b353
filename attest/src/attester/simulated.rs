//! The simulated attester: a software Ed25519 key. Demos only; see [`crate::SimulatedEvidence`].

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha384};

use super::{AttestError, Attester};
use crate::{Evidence, Platform, SimulatedEvidence};

/// Signs claims with a key generated at start. Its evidence is marked `simulated` and is
/// refused by every verifier unless `allow_simulated` is set.
pub struct Simulated {
    key: SigningKey,
    measurement: [u8; 48],
}

impl std::fmt::Debug for Simulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulated")
            .field(
                "public_key",
                &hex::encode(self.key.verifying_key().as_bytes()),
            )
            .field("measurement", &hex::encode(self.measurement))
            .finish()
    }
}

impl Simulated {
    /// A simulated platform with a key from `seed` (draw it from the OS RNG) and a measurement.
    pub fn new(seed: [u8; 32], measurement: [u8; 48]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
            measurement,
        }
    }

    /// The measurement a simulated platform reports for a server binary: its SHA-384,
    /// so a policy can pin it like a hardware launch measurement.
    pub fn measurement_of(binary: &[u8]) -> [u8; 48] {
        Sha384::digest(binary).into()
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl Attester for Simulated {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Ok(Evidence::Simulated(SimulatedEvidence::sign_with(
            &self.key,
            self.measurement,
            *report_data,
        )))
    }

    fn platform(&self) -> Option<Platform> {
        Some(Platform::Simulated)
    }

    fn name(&self) -> &'static str {
        "simulated"
    }
}
