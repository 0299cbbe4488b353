//! The verifier's reference values and rules: what evidence must show to be trusted.
//!
//! Everything weaker than the default is opt-in and named so (`allow_debug`,
//! `allow_simulated`, `allow_migration_agent`).

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

/// What the verifier requires. [`Policy::default()`] is the strict policy:
/// no debug guests, no simulated evidence, no migration agent, TDX TCB `UpToDate` only.
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
    /// Hardware platforms accepted; empty means every hardware platform.
    #[serde(default)]
    pub platforms: Vec<Platform>,
    /// REPORT_DATA the evidence must carry (usually computed by the caller from its nonce).
    #[serde(default)]
    pub report_data: Option<HexBytes<64>>,
    /// SEV-SNP rules.
    #[serde(default)]
    pub snp: SnpPolicy,
    /// TDX rules.
    #[serde(default)]
    pub tdx: TdxPolicy,
}

/// SEV-SNP reference values and rules.
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
    /// Minimum `reported_tcb`, component by component.
    #[serde(default)]
    pub min_tcb: Option<SnpMinTcb>,
    /// Processor products accepted; empty means every product with a pinned root.
    #[serde(default)]
    pub products: Vec<Product>,
    /// Accepted launch measurements; empty means any (a warning is recorded).
    #[serde(default)]
    pub measurements: Vec<Measurement48>,
}

/// Minimum SNP TCB components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SnpMinTcb {
    /// PSP bootloader SVN.
    #[serde(default)]
    pub bootloader: u8,
    /// PSP OS SVN.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SVN.
    #[serde(default)]
    pub snp: u8,
    /// Microcode patch level.
    #[serde(default)]
    pub microcode: u8,
    /// FMC SVN (Turin and later; ignored where the report has none).
    #[serde(default)]
    pub fmc: u8,
}

/// TDX reference values and rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TdxPolicy {
    /// TCB statuses accepted (dcap-qvl names). Default `["UpToDate"]`.
    #[serde(default = "default_tcb_status")]
    pub accepted_tcb_status: Vec<String>,
    /// Accepted MRTD values; empty means any.
    #[serde(default)]
    pub mrtd: Vec<Measurement48>,
    /// Accepted RTMR0 values; empty means any.
    #[serde(default)]
    pub rtmr0: Vec<Measurement48>,
    /// Accepted RTMR1 values; empty means any.
    #[serde(default)]
    pub rtmr1: Vec<Measurement48>,
    /// Accepted RTMR2 values; empty means any.
    #[serde(default)]
    pub rtmr2: Vec<Measurement48>,
    /// Accepted RTMR3 values; empty means any.
    #[serde(default)]
    pub rtmr3: Vec<Measurement48>,
    /// Required MRCONFIGID, if set.
    #[serde(default)]
    pub mr_config_id: Option<Measurement48>,
    /// Required MROWNER, if set.
    #[serde(default)]
    pub mr_owner: Option<Measurement48>,
}

fn default_tcb_status() -> Vec<String> {
    vec!["UpToDate".to_owned()]
}

impl Default for TdxPolicy {
    fn default() -> Self {
        Self {
            accepted_tcb_status: default_tcb_status(),
            mrtd: Vec::new(),
            rtmr0: Vec::new(),
            rtmr1: Vec::new(),
            rtmr2: Vec::new(),
            rtmr3: Vec::new(),
            mr_config_id: None,
            mr_owner: None,
        }
    }
}

impl Policy {
    /// Parses a TOML policy document.
    pub fn from_toml(s: &str) -> Result<Self, VerifyError> {
        toml::from_str(s).map_err(|e| VerifyError::Policy(e.to_string()))
    }

    /// Parses a JSON policy document.
    pub fn from_json(s: &str) -> Result<Self, VerifyError> {
        serde_json::from_str(s).map_err(|e| VerifyError::Policy(e.to_string()))
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

    /// Requires this exact REPORT_DATA.
    pub fn expect_report_data(mut self, report_data: [u8; 64]) -> Self {
        self.report_data = Some(HexBytes(report_data));
        self
    }

    /// Requires one of these SNP launch measurements.
    pub fn snp_measurements(mut self, m: impl IntoIterator<Item = [u8; 48]>) -> Self {
        self.snp.measurements = m.into_iter().map(HexBytes).collect();
        self
    }

    /// Requires one of these TDX MRTDs.
    pub fn tdx_mrtd(mut self, m: impl IntoIterator<Item = [u8; 48]>) -> Self {
        self.tdx.mrtd = m.into_iter().map(HexBytes).collect();
        self
    }

    /// Sets the minimum SNP TCB.
    pub fn snp_min_tcb(mut self, min: SnpMinTcb) -> Self {
        self.snp.min_tcb = Some(min);
        self
    }

    /// Sets the accepted TDX TCB statuses.
    pub fn tdx_accepted_tcb_status(
        mut self,
        s: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.tdx.accepted_tcb_status = s.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn check_platform(&self, p: Platform) -> Result<(), VerifyError> {
        if p == Platform::Simulated {
            if !self.allow_simulated {
                return Err(VerifyError::SimulatedRejected);
            }
            return Ok(());
        }
        if !self.platforms.is_empty() && !self.platforms.contains(&p) {
            return Err(VerifyError::PlatformNotAllowed(p.as_str()));
        }
        Ok(())
    }

    pub(crate) fn check_report_data(&self, got: &[u8; 64]) -> Result<(), VerifyError> {
        match &self.report_data {
            Some(expected) if &expected.0 != got => Err(VerifyError::ReportDataMismatch {
                expected: hex::encode(expected.0),
                got: hex::encode(got),
            }),
            _ => Ok(()),
        }
    }
}

impl SnpMinTcb {
    /// A minimum TCB from its components.
    pub fn new(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        Self {
            bootloader,
            tee,
            snp,
            microcode,
            fmc: 0,
        }
    }
}

/// Checks `got` against an allow-list (empty: anything goes).
pub(crate) fn check_allowed(
    register: &'static str,
    allowed: &[Measurement48],
    got: &[u8; 48],
) -> Result<(), VerifyError> {
    if allowed.is_empty() || allowed.iter().any(|a| &a.0 == got) {
        return Ok(());
    }
    Err(VerifyError::MeasurementMismatch {
        register,
        expected: allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        got: hex::encode(got),
    })
}
