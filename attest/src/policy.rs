//! The verifier's reference values and rules: what evidence must show to be trusted.
//!
//! Everything weaker than the default is opt-in and named so (`allow_debug`,
//! `allow_simulated`, `allow_migration_agent`, `allow_outdated_tcb`,
//! `accept_any_measurement`). The TOML form (unknown keys are an error):
//!
//! ```toml
//! allow_simulated = false        # default false
//! allow_debug = false            # default false
//! allow_outdated_tcb = false     # default false: AMD's built-in SNP TCB floor applies
//! accept_any_measurement = false # default false: a client refuses a policy that pins nothing
//! require_post_quantum = false   # true: a client refuses a server whose attested keys offer
//!                                #   no post-quantum KEM (X-Wing); default: X-Wing when offered
//! report_data = "HEX64"          # optional: the exact REPORT_DATA expected
//! [[reference]]                  # the evidence must match one of these
//! platform = "sev-snp"           # "sev-snp" | "tdx" | "simulated"
//! measurement = "HEX48"          # SNP MEASUREMENT (simulated: SHA-384 of the server binary)
//! # mrtd / rtmr0 / rtmr1 / rtmr2 / rtmr3 = "HEX48" for tdx; each given field must match;
//! # a register may be left unchecked only by writing "any"
//! [binary]
//! sha256 = "HEX32"               # optional: the attested server binary (checked by clients)
//! [model]
//! sha256 = "HEX32"               # optional: the attested model manifest digest (checked by clients)
//! [tcb]                          # optional SNP minimums (raise AMD's floor); TDX statuses accepted
//! bootloader = 3
//! tee = 0
//! snp = 8
//! microcode = 115
//! tdx_status = ["UpToDate"]      # default
//! [snp]                          # optional SNP rules
//! products = ["Milan", "Genoa", "Turin"]
//! max_vmpl = 0
//! allow_migration_agent = false
//! require_crl = false            # true: refuse evidence without AMD's CRL (default: a warning)
//! [tdx]                          # optional TDX rules
//! mr_config_id = "HEX48"
//! mr_owner = "HEX48"
//! min_tcb_evaluation_number = 17 # optional: refuse collateral of an older TCB evaluation
//! [gpu]                          # optional NVIDIA GPU rules: see nvidia::GpuPolicy
//! ```
//!
//! [`Policy::check_pinned`] is what a client runs before it connects: a policy that allows a
//! hardware platform must pin every launch register of it (or say `"any"`), or set
//! `accept_any_measurement`.

use serde::{Deserialize, Deserializer};

use crate::{Platform, VerifyError, snp::Product};

/// Fixed-length bytes written as hex in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::encoding::parse_hex::<N>(&s)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl<const N: usize> std::fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A 48-byte launch measurement (SNP MEASUREMENT, TDX MRTD/RTMR).
pub type Measurement48 = HexBytes<48>;

/// A reference register: a value it must equal, or `"any"` (explicitly unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// The register must equal this value.
    Value(Measurement48),
    /// The policy's author chose not to check this register.
    Any,
}

impl Pin {
    fn value(&self) -> Option<&Measurement48> {
        match self {
            Self::Value(v) => Some(v),
            Self::Any => None,
        }
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "any" {
            return Ok(Self::Any);
        }
        crate::encoding::parse_hex::<48>(&s)
            .map(|b| Self::Value(HexBytes(b)))
            .map_err(serde::de::Error::custom)
    }
}

/// What the verifier requires. [`Policy::default()`] is the strict policy: no debug
/// guests, no simulated evidence, no migration agent, TDX TCB `UpToDate` only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Policy {
    /// Accept guests with debugging enabled (the host can read their memory). Default false.
    #[serde(default)]
    pub allow_debug: bool,
    /// Accept software-signed evidence from the simulated platform. Default false.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Accept an SEV-SNP TCB below AMD's built-in floor (`snp::tcb_floor`): only where the
    /// `[tcb]` section sets the minimums instead. Reported as a warning in every verdict.
    #[serde(default)]
    pub allow_outdated_tcb: bool,
    /// Let a client connect with a policy that leaves launch registers unpinned (any image
    /// accepted). Reported as a warning in every verdict.
    #[serde(default)]
    pub accept_any_measurement: bool,
    /// Clients refuse a server whose attested key configurations offer no post-quantum KEM
    /// (X-Wing), instead of falling back to X25519. Checked by the client SDK, not by
    /// [`verify`](crate::verify). Default false.
    #[serde(default)]
    pub require_post_quantum: bool,
    /// REPORT_DATA the evidence must carry (usually computed by the caller from its nonce).
    #[serde(default)]
    pub report_data: Option<HexBytes<64>>,
    /// Reference values: the evidence must match one of them. Empty: any launch image
    /// of any hardware platform (a warning is recorded; clients refuse such a policy
    /// unless `accept_any_measurement`).
    #[serde(default)]
    pub reference: Vec<Reference>,
    /// The attested server binary (clients compare it with the attested manifest).
    #[serde(default)]
    pub binary: Option<DigestReference>,
    /// The attested model manifest digest (clients compare it with the attested manifest).
    #[serde(default)]
    pub model: Option<DigestReference>,
    /// TCB minimums (SNP) and accepted statuses (TDX).
    #[serde(default)]
    pub tcb: TcbPolicy,
    /// SEV-SNP rules.
    #[serde(default)]
    pub snp: SnpPolicy,
    /// TDX rules.
    #[serde(default)]
    pub tdx: TdxPolicy,
    /// NVIDIA GPU rules and reference values; present: GPU evidence is required.
    #[serde(default)]
    pub gpu: Option<crate::nvidia::GpuPolicy>,
}

/// One set of reference values. Every field given must match; fields left out (or `\"any\"`)
/// match anything, and [`Policy::check_pinned`] refuses left-out ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Reference {
    /// The platform these values are for.
    pub platform: Platform,
    /// SEV-SNP MEASUREMENT, or the simulated platform's measurement.
    #[serde(default)]
    pub measurement: Option<Pin>,
    /// TDX MRTD.
    #[serde(default)]
    pub mrtd: Option<Pin>,
    /// TDX RTMR0.
    #[serde(default)]
    pub rtmr0: Option<Pin>,
    /// TDX RTMR1.
    #[serde(default)]
    pub rtmr1: Option<Pin>,
    /// TDX RTMR2.
    #[serde(default)]
    pub rtmr2: Option<Pin>,
    /// TDX RTMR3.
    #[serde(default)]
    pub rtmr3: Option<Pin>,
    /// Simulated platform only: the Ed25519 key its evidence must be signed with (what
    /// trust on first use pins, since simulated evidence carries its own key).
    #[serde(default)]
    pub simulated_key: Option<HexBytes<32>>,
}

impl Reference {
    /// A reference that pins one SEV-SNP launch measurement.
    pub fn snp(measurement: [u8; 48]) -> Self {
        Self::new(Platform::SevSnp, Some(measurement))
    }

    /// A reference that pins a TDX MRTD (and no RTMR).
    pub fn tdx_mrtd(mrtd: [u8; 48]) -> Self {
        let mut r = Self::new(Platform::Tdx, None);
        r.mrtd = Some(Pin::Value(HexBytes(mrtd)));
        r
    }

    /// A reference that pins the simulated platform's measurement.
    pub fn simulated(measurement: [u8; 48]) -> Self {
        Self::new(Platform::Simulated, Some(measurement))
    }

    fn new(platform: Platform, measurement: Option<[u8; 48]>) -> Self {
        Self {
            platform,
            measurement: measurement.map(|m| Pin::Value(HexBytes(m))),
            mrtd: None,
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
            simulated_key: None,
        }
    }

    /// Sets one TDX register (`mrtd`, `rtmr0`..`rtmr3`) or the SNP `measurement`.
    pub fn with_register(mut self, register: &str, pin: Pin) -> Self {
        if let Some(slot) = self.slot_mut(register) {
            *slot = Some(pin);
        }
        self
    }

    fn slot(&self, register: &str) -> Option<&Option<Pin>> {
        Some(match register {
            "measurement" => &self.measurement,
            "mrtd" => &self.mrtd,
            "rtmr0" => &self.rtmr0,
            "rtmr1" => &self.rtmr1,
            "rtmr2" => &self.rtmr2,
            "rtmr3" => &self.rtmr3,
            _ => return None,
        })
    }

    fn slot_mut(&mut self, register: &str) -> Option<&mut Option<Pin>> {
        Some(match register {
            "measurement" => &mut self.measurement,
            "mrtd" => &mut self.mrtd,
            "rtmr0" => &mut self.rtmr0,
            "rtmr1" => &mut self.rtmr1,
            "rtmr2" => &mut self.rtmr2,
            "rtmr3" => &mut self.rtmr3,
            _ => return None,
        })
    }

    pub(crate) fn field(&self, register: &str) -> Option<&Measurement48> {
        self.slot(register)?.as_ref()?.value()
    }

    /// The registers this reference's platform has and it leaves out entirely.
    pub(crate) fn unpinned(&self) -> Vec<&'static str> {
        self.platform
            .launch_registers()
            .iter()
            .copied()
            .filter(|reg| self.slot(reg).is_some_and(Option::is_none))
            .collect()
    }
}

/// A SHA-256 reference value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DigestReference {
    /// The digest.
    pub sha256: HexBytes<32>,
}

/// TCB requirements.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TcbPolicy {
    /// SNP: minimum PSP bootloader SVN.
    #[serde(default)]
    pub bootloader: u8,
    /// SNP: minimum PSP OS SVN.
    #[serde(default)]
    pub tee: u8,
    /// SNP: minimum SNP firmware SVN.
    #[serde(default)]
    pub snp: u8,
    /// SNP: minimum microcode patch level.
    #[serde(default)]
    pub microcode: u8,
    /// SNP: minimum FMC SVN (Turin and later; ignored where the report has none).
    #[serde(default)]
    pub fmc: u8,
    /// TDX: TCB statuses accepted (dcap-qvl names). Default `["UpToDate"]`.
    #[serde(default = "default_tcb_status")]
    pub tdx_status: Vec<String>,
}

impl Default for TcbPolicy {
    fn default() -> Self {
        Self {
            bootloader: 0,
            tee: 0,
            snp: 0,
            microcode: 0,
            fmc: 0,
            tdx_status: default_tcb_status(),
        }
    }
}

fn default_tcb_status() -> Vec<String> {
    vec!["UpToDate".to_owned()]
}

/// SEV-SNP rules beyond reference values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SnpPolicy {
    /// Accept a guest policy that allows a migration agent. Default false.
    #[serde(default)]
    pub allow_migration_agent: bool,
    /// Highest VMPL accepted (none: any).
    #[serde(default)]
    pub max_vmpl: Option<u32>,
    /// Processor products accepted; empty means every product with a pinned root.
    #[serde(default)]
    pub products: Vec<Product>,
    /// Refuse evidence that carries no ARK-signed CRL (check `revocation`). Default false:
    /// without a CRL, revocation is not checked and the verdict says so in a warning.
    #[serde(default)]
    pub require_crl: bool,
}

/// TDX rules beyond reference values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TdxPolicy {
    /// Required MRCONFIGID, if set.
    #[serde(default)]
    pub mr_config_id: Option<Measurement48>,
    /// Required MROWNER, if set.
    #[serde(default)]
    pub mr_owner: Option<Measurement48>,
    /// Lowest `tcbEvaluationDataNumber` accepted in the collateral (TCB info and QE
    /// identity), if set: Intel raises it at each TCB recovery, so older collateral, still
    /// inside its `nextUpdate`, can call a platform `UpToDate` that the recovery outdated.
    #[serde(default)]
    pub min_tcb_evaluation_number: Option<u32>,
}

impl Policy {
    /// Parses a TOML policy document.
    pub fn from_toml(s: &str) -> Result<Self, VerifyError> {
        let p: Self = toml::from_str(s).map_err(|e| VerifyError::Policy(e.to_string()))?;
        p.validate()
    }

    /// Parses a JSON policy document.
    pub fn from_json(s: &str) -> Result<Self, VerifyError> {
        let p: Self = serde_json::from_str(s).map_err(|e| VerifyError::Policy(e.to_string()))?;
        p.validate()
    }

    /// Accepts an SEV-SNP TCB below AMD's built-in floor. Weakens the policy.
    pub fn allow_outdated_tcb(mut self, allow: bool) -> Self {
        self.allow_outdated_tcb = allow;
        self
    }

    /// Lets a client connect with unpinned launch registers. Weakens the policy.
    pub fn accept_any_measurement(mut self, accept: bool) -> Self {
        self.accept_any_measurement = accept;
        self
    }

    /// Accepts debuggable guests. Weakens the policy: only for development.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Accepts software-signed evidence. Weakens the policy: only for demos and tests.
    pub fn allow_simulated(mut self, allow: bool) -> Self {
        self.allow_simulated = allow;
        self
    }

    /// Refuses servers without a post-quantum key (X-Wing). Strengthens the policy.
    pub fn require_post_quantum(mut self, require: bool) -> Self {
        self.require_post_quantum = require;
        self
    }

    /// Requires this exact REPORT_DATA.
    pub fn expect_report_data(mut self, report_data: [u8; 64]) -> Self {
        self.report_data = Some(HexBytes(report_data));
        self
    }

    /// Adds a set of reference values.
    pub fn with_reference(mut self, reference: Reference) -> Self {
        self.reference.push(reference);
        self
    }

    /// Sets the SNP TCB minimums.
    pub fn snp_min_tcb(mut self, bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        (
            self.tcb.bootloader,
            self.tcb.tee,
            self.tcb.snp,
            self.tcb.microcode,
        ) = (bootloader, tee, snp, microcode);
        self
    }

    /// Sets the accepted TDX TCB statuses.
    pub fn tdx_accepted_tcb_status(
        mut self,
        s: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.tcb.tdx_status = s.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn check_platform(&self, p: Platform) -> Result<(), VerifyError> {
        if p == Platform::Simulated && !self.allow_simulated {
            return Err(VerifyError::SimulatedRejected);
        }
        if !self.reference.is_empty() && !self.reference.iter().any(|r| r.platform == p) {
            return Err(VerifyError::PlatformNotAllowed(p.as_str()));
        }
        Ok(())
    }

    /// Checks measured registers against the references for `platform`. Returns whether a
    /// reference pinned them (`false`: the policy has no reference values at all).
    pub(crate) fn check_measurements(
        &self,
        platform: Platform,
        measured: &[(&'static str, &[u8; 48])],
    ) -> Result<bool, VerifyError> {
        let refs: Vec<&Reference> = self
            .reference
            .iter()
            .filter(|r| r.platform == platform)
            .collect();
        if refs.is_empty() {
            // check_platform ran first: no references at all.
            return Ok(false);
        }
        let mismatch = |r: &Reference| {
            measured
                .iter()
                .find(|(reg, got)| r.field(reg).is_some_and(|want| &want.0 != *got))
                .copied()
        };
        if refs.iter().any(|r| mismatch(r).is_none()) {
            return Ok(true);
        }
        // Name the first register that differs from the first reference.
        let (register, got) = refs
            .first()
            .and_then(|r| mismatch(r))
            .ok_or_else(|| VerifyError::Policy("no measured registers".into()))?;
        Err(VerifyError::MeasurementMismatch {
            register,
            expected: refs
                .iter()
                .filter_map(|r| r.field(register))
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            got: hex::encode(got),
        })
    }

    /// Checks REPORT_DATA against the expected value, if any, and records the check.
    pub(crate) fn check_report_data(
        &self,
        got: &[u8; 64],
        checks: &mut crate::verdict::Checks,
    ) -> Result<(), VerifyError> {
        match &self.report_data {
            Some(expected) if &expected.0 != got => Err(VerifyError::ReportDataMismatch {
                expected: hex::encode(expected.0),
                got: hex::encode(got),
            }),
            Some(_) => {
                checks.pass(crate::CheckName::ReportData, "equals the expected value");
                Ok(())
            }
            None => {
                checks.pass(
                    crate::CheckName::ReportData,
                    "not checked (no expected value)",
                );
                Ok(())
            }
        }
    }
}

/// Checks an optional exact value.
pub(crate) fn check_exact(
    register: &'static str,
    want: Option<&Measurement48>,
    got: &[u8; 48],
) -> Result<(), VerifyError> {
    match want {
        Some(w) if &w.0 != got => Err(VerifyError::MeasurementMismatch {
            register,
            expected: w.to_string(),
            got: hex::encode(got),
        }),
        _ => Ok(()),
    }
}
