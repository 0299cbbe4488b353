//! What a policy must pin to be used by a client, and the warnings a verdict carries for
//! what it lets through. `veil verify` (an inspection tool) accepts a policy that pins
//! nothing and reports it; a client that sends prompts runs [`Policy::check_pinned`] first.

use crate::{Platform, Policy, VerifyError};

impl Policy {
    /// Rules a policy document must follow whoever uses it.
    pub(crate) fn validate(self) -> Result<Self, VerifyError> {
        let pins_launch = self.reference.iter().any(|r| {
            r.platform
                .launch_registers()
                .iter()
                .any(|reg| r.field(reg).is_some())
        });
        if let Some(r) = self
            .reference
            .iter()
            .find(|r| r.simulated_key.is_some() && r.platform != Platform::Simulated)
        {
            return Err(VerifyError::Policy(format!(
                "simulated_key is for the simulated platform, not {}",
                r.platform
            )));
        }
        if (self.binary.is_some() || self.model.is_some()) && !pins_launch {
            return Err(VerifyError::Policy(
                "[binary]/[model] are pinned but no [[reference]] pins a launch measurement: \
                 the binary and model hashes are the server's own claim unless the measurement \
                 covers them; add the release's measurement (veil policy from-manifest)"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// What a client requires before it connects with this policy: every hardware platform it
    /// allows is pinned by a reference, and every launch register of such a reference is a
    /// value or an explicit `"any"`. `accept_any_measurement` lifts the rule. A policy with no
    /// hardware reference but `allow_simulated` accepts the simulated platform only (its
    /// verification then refuses hardware evidence as unpinned: [`Policy::check_verdict_pinned`]).
    pub fn check_pinned(&self) -> Result<(), VerifyError> {
        if self.accept_any_measurement {
            return Ok(());
        }
        if self
            .gpu
            .as_ref()
            .is_some_and(|g| g.measurements.0.is_empty())
        {
            return Err(VerifyError::Unpinned(
                "[gpu] pins no measurement: it would accept any GPU firmware; pin the values \
                 of NVIDIA's reference manifests for the driver and VBIOS in [gpu.measurements]"
                    .into(),
            ));
        }
        // With no reference every hardware platform is allowed; with references only theirs.
        if self.reference.is_empty() && !self.allow_simulated {
            return Err(VerifyError::Unpinned(
                "the policy has no [[reference]]: it would accept any launch image of any \
                 SEV-SNP or TDX machine"
                    .into(),
            ));
        }
        for (i, r) in self.reference.iter().enumerate() {
            let missing = r.unpinned();
            if !missing.is_empty() && r.platform != Platform::Simulated {
                return Err(VerifyError::Unpinned(format!(
                    "[[reference]] #{} ({}) leaves {} unpinned: give the value, or write \"any\" \
                     to skip a register on purpose",
                    i + 1,
                    r.platform,
                    missing.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// After verification, for a client: refuses a hardware verdict that no reference of
    /// this policy pinned (the simulated-only policy of `--allow-simulated`).
    pub fn check_verdict_pinned(&self, platform: Platform) -> Result<(), VerifyError> {
        if self.accept_any_measurement
            || platform == Platform::Simulated
            || self.reference.iter().any(|r| r.platform == platform)
        {
            return Ok(());
        }
        Err(VerifyError::Unpinned(format!(
            "the server runs on {platform}, but the policy pins no {platform} measurement \
             (--allow-simulated without --policy accepts the simulated platform only)"
        )))
    }

    /// Warnings every verdict under this policy carries for `platform`.
    pub(crate) fn warnings(&self, platform: Platform) -> Vec<String> {
        let mut w = Vec::new();
        if self.allow_outdated_tcb && platform == Platform::SevSnp {
            w.push(
                "allow_outdated_tcb: AMD's minimum TCB is not enforced (a key from firmware \
                 below it may be forged)"
                    .to_owned(),
            );
        }
        if self.accept_any_measurement {
            w.push("accept_any_measurement: unpinned launch registers are accepted".to_owned());
        }
        for r in self.reference.iter().filter(|r| r.platform == platform) {
            let skipped: Vec<&str> = platform
                .launch_registers()
                .iter()
                .copied()
                .filter(|reg| r.field(reg).is_none())
                .collect();
            if !skipped.is_empty() && !self.reference.is_empty() {
                w.push(format!(
                    "a {platform} reference does not check {}",
                    skipped.join(", ")
                ));
            }
        }
        w
    }
}
