//! What verification concludes: the [`Verdict`] on success, and the list of
//! [`Check`]s that led to it (or to the failure).

use serde::Serialize;

use crate::VerifyError;

/// A time, in seconds since the Unix epoch, at which evidence is judged.
///
/// Verification never reads a clock: the caller passes `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Parses an RFC 3339 timestamp such as `2026-11-25T00:00:00Z`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, VerifyError> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| VerifyError::Policy(format!("invalid RFC 3339 time {s:?}: {e}")))?;
        u64::try_from(t.unix_timestamp())
            .map(Self)
            .map_err(|_| VerifyError::Policy(format!("time before 1970: {s}")))
    }

    /// Formats as RFC 3339 (UTC).
    pub fn to_rfc3339(self) -> String {
        i64::try_from(self.0)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("@{}", self.0))
    }
}

/// The kind of platform that produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Platform {
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
    /// Software-signed evidence from the simulated platform: **no hardware protection**.
    Simulated,
}

impl Platform {
    /// Stable name, as in the evidence bundle.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
            Self::Simulated => "simulated",
        }
    }

    /// The launch registers a reference for this platform can pin.
    pub fn launch_registers(self) -> &'static [&'static str] {
        match self {
            Self::SevSnp | Self::Simulated => &["measurement"],
            Self::Tdx => &["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"],
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable names of the checks a verifier runs; scripts may rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckName {
    /// The evidence (and policy) parse.
    Parse,
    /// The platform is one the policy allows (and simulation is allowed if simulated).
    Platform,
    /// The processor family/product is known, consistent and allowed.
    Family,
    /// Every certificate chains to the pinned vendor root.
    CertChain,
    /// Every certificate is valid at `now`.
    CertValidity,
    /// SNP: no certificate of the chain is revoked by a current ARK-signed CRL.
    Revocation,
    /// The report/quote signature verifies.
    Signature,
    /// TDX: quote, QE report, PCK chain and collateral verify (Intel DCAP).
    Quote,
    /// TDX: the collateral is valid at `now`.
    Collateral,
    /// The platform TCB is bound to the key and acceptable to the policy.
    Tcb,
    /// SNP: the VCEK is for this chip.
    ChipId,
    /// The guest is not debuggable (unless allowed).
    Debug,
    /// SNP: no migration agent (unless allowed).
    MigrationAgent,
    /// SNP: the VMPL is acceptable.
    Vmpl,
    /// Launch measurements match the policy's reference values.
    Measurement,
    /// REPORT_DATA matches the expected binding.
    ReportData,
    /// The attested binary and model are the ones the policy pins.
    Manifest,
    /// GPU: the leaf certificate's firmware id equals the report's.
    Fwid,
    /// GPU: the report answers the verifier's nonce.
    Nonce,
    /// GPU: the driver and VBIOS versions are ones the policy accepts.
    GpuVersion,
    /// The GPU evidence a policy requires is present, verified and bound to the CPU's.
    Gpu,
}

impl CheckName {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Platform => "platform",
            Self::Family => "family",
            Self::CertChain => "cert_chain",
            Self::CertValidity => "cert_validity",
            Self::Revocation => "revocation",
            Self::Signature => "signature",
            Self::Quote => "quote",
            Self::Collateral => "collateral",
            Self::Tcb => "tcb",
            Self::ChipId => "chip_id",
            Self::Debug => "debug",
            Self::MigrationAgent => "migration_agent",
            Self::Vmpl => "vmpl",
            Self::Measurement => "measurement",
            Self::ReportData => "report_data",
            Self::Manifest => "manifest",
            Self::Fwid => "fwid",
            Self::Nonce => "nonce",
            Self::GpuVersion => "gpu_version",
            Self::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// Whether it held.
    pub ok: bool,
    /// What was compared, or why it failed.
    pub detail: String,
}

/// A named launch measurement register and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measurement {
    /// Register name (`measurement`, `mrtd`, `rtmr0`…`rtmr3`, `mrconfigid`, `mrowner`, …).
    pub register: &'static str,
    /// Value (hex in JSON).
    #[serde(serialize_with = "crate::encoding::hex_serialize")]
    pub value: Vec<u8>,
}

/// The platform's trusted computing base as the evidence reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tcb {
    /// SEV-SNP `reported_tcb` components.
    Snp {
        /// PSP bootloader SVN.
        bootloader: u8,
        /// PSP OS (TEE) SVN.
        tee: u8,
        /// SNP firmware SVN.
        snp: u8,
        /// Microcode patch level.
        microcode: u8,
        /// FMC SVN (Turin and later).
        #[serde(skip_serializing_if = "Option::is_none")]
        fmc: Option<u8>,
    },
    /// TDX: Intel's TCB status for the platform and TD, with advisories.
    Tdx {
        /// TCB status (`UpToDate`, `SWHardeningNeeded`, `OutOfDate`, …).
        status: String,
        /// Intel security advisory ids that apply.
        advisory_ids: Vec<String>,
        /// TEE_TCB_SVN (hex).
        tee_tcb_svn: String,
    },
    /// The simulated platform has no TCB.
    None,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    /// Platform of the evidence.
    pub platform: Platform,
    /// Processor product (`Milan`, `Genoa`, `Turin`) for SNP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Launch measurements, in the platform's register order.
    pub measurements: Vec<Measurement>,
    /// The 64-byte REPORT_DATA (hex in JSON).
    #[serde(serialize_with = "crate::encoding::hex_serialize")]
    pub report_data: [u8; 64],
    /// The platform TCB.
    pub tcb: Tcb,
    /// SNP CHIP_ID or TDX PPID (hex), where the evidence carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip_id: Option<String>,
    /// Things that held but deserve attention (e.g. "debug allowed by policy").
    pub warnings: Vec<String>,
    /// The GPUs whose evidence the attestation carried and bound (verified by
    /// [`crate::Attestation::verify`]); empty for CPU evidence alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuVerdict>,
}

/// The full account of one verification: every check that ran, and the outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Audit {
    /// Checks in the order they ran. On failure the last one failed.
    pub checks: Vec<Check>,
    /// The verdict, or why the evidence was rejected.
    pub outcome: Result<Verdict, VerifyError>,
}

/// Records checks as verification proceeds.
#[derive(Debug, Default)]
pub(crate) struct Checks(pub(crate) Vec<Check>);

impl Checks {
    pub(crate) fn pass(&mut self, name: CheckName, detail: impl Into<String>) {
        self.0.push(Check {
            name,
            ok: true,
            detail: detail.into(),
        });
    }
}
