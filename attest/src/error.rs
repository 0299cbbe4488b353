//! The one error type of this crate: every way evidence can fail to be trusted.

use crate::verdict::CheckName;

/// Why evidence was not accepted.
///
/// Every variant names the rule that failed; [`VerifyError::check`] maps it to
/// the stable check name the `veil verify` command prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The evidence bytes could not be parsed (wrong length, unknown version, bad encoding).
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// A certificate could not be parsed, or its role could not be determined.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// The evidence needs a certificate that was neither supplied nor built in.
    #[error("missing certificate: {0}")]
    MissingCertificate(&'static str),
    /// The processor product could not be determined, or is not one Veil pins a root for.
    #[error("unknown AMD product: {0}")]
    UnknownProduct(String),
    /// The report's CPUID family/model and the certificate chain name different products.
    #[error("product mismatch: report says {report}, certificates say {certs}")]
    ProductMismatch {
        /// Product derived from the report's CPUID fields.
        report: String,
        /// Product named by the certificate chain.
        certs: String,
    },
    /// The product is not in the policy's allow-list.
    #[error("product {got} is not allowed by the policy (allowed: {allowed})")]
    ProductNotAllowed {
        /// Product of this evidence.
        got: String,
        /// What the policy allows.
        allowed: String,
    },
    /// The root certificate is not the pinned root for the product.
    #[error("root certificate is not the pinned AMD root for {product}")]
    UntrustedRoot {
        /// The product whose root was expected.
        product: String,
    },
    /// A certificate in the chain is not signed by its issuer.
    #[error("certificate chain broken: {0}")]
    ChainSignature(String),
    /// A certificate is not valid at `now`.
    #[error("certificate {cert} not valid at {now}: valid {not_before} .. {not_after}")]
    CertificateNotValid {
        /// Which certificate (`vcek`, `ask`, `ark`, …).
        cert: &'static str,
        /// The verification time (RFC 3339).
        now: String,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
    /// The SEV-SNP CRL could not be parsed, or carries what Veil cannot process.
    #[error("malformed CRL: {0}")]
    MalformedCrl(String),
    /// The SEV-SNP CRL is not issued and signed (RSASSA-PSS, SHA-384) by the pinned ARK.
    #[error("CRL not signed by the ARK: {0}")]
    CrlSignature(String),
    /// The SEV-SNP CRL is not valid at `now` (before `thisUpdate`, after `nextUpdate`).
    #[error("CRL not valid at {now}: valid {this_update} .. {next_update}")]
    CrlNotValid {
        /// The verification time (RFC 3339).
        now: String,
        /// The CRL's `thisUpdate` (RFC 3339).
        this_update: String,
        /// The CRL's `nextUpdate` (RFC 3339, or `none`).
        next_update: String,
    },
    /// A certificate of the chain is listed in the CRL.
    #[error("certificate {cert} (serial {serial}) revoked by AMD at {revoked_at}")]
    CertificateRevoked {
        /// Which certificate (`ask`, `asvk`, `ark`).
        cert: &'static str,
        /// Its serial number (hex).
        serial: String,
        /// The revocation date the CRL gives (RFC 3339).
        revoked_at: String,
    },
    /// The policy requires a CRL (`require_crl`) and the evidence carries none.
    #[error("no CRL: the policy requires one (require_crl)")]
    CrlMissing,
    /// The report's signature does not verify against the endorsement key.
    #[error("report signature invalid: {0}")]
    SignatureInvalid(String),
    /// The report says it was signed by one kind of key, the certificate is another.
    #[error("signing key mismatch: report says {report}, certificate is {cert}")]
    SigningKeyMismatch {
        /// Key kind from the report's KEY_INFO.
        report: &'static str,
        /// Key kind of the supplied endorsement certificate.
        cert: &'static str,
    },
    /// A TCB component in the VCEK/VLEK extensions differs from the report's `reported_tcb`.
    #[error("TCB mismatch in {component}: certificate {cert}, report {report}")]
    TcbMismatch {
        /// The TCB component (`bootloader`, `tee`, `snp`, `microcode`, `fmc`).
        component: &'static str,
        /// Value in the certificate extension.
        cert: u8,
        /// Value in the report.
        report: u8,
    },
    /// The VCEK's hwID extension differs from the report's CHIP_ID.
    #[error("VCEK hwID does not match the report's chip id")]
    ChipIdMismatch,
    /// The platform TCB is below the policy's minimum.
    #[error("TCB below minimum: {component} is {got}, policy requires at least {min}")]
    TcbBelowMinimum {
        /// The TCB component.
        component: &'static str,
        /// Reported value.
        got: u8,
        /// Policy minimum.
        min: u8,
    },
    /// The SEV-SNP TCB is below AMD's minimum fixed TCB for the processor.
    #[error(
        "TCB below AMD's floor for {product}: {component} is {got}, at least {floor} is fixed \
         ({bulletin}); allow_outdated_tcb / --allow-outdated-tcb accepts it"
    )]
    TcbBelowFloor {
        /// The processor product (and stepping, when the report names one).
        product: String,
        /// The TCB component.
        component: &'static str,
        /// Reported value.
        got: u8,
        /// The built-in floor.
        floor: u8,
        /// The security bulletin(s) the floor comes from.
        bulletin: &'static str,
    },
    /// The policy leaves launch measurements unpinned where a client needs them pinned.
    #[error(
        "policy pins nothing here: {0}; accept_any_measurement / --accept-any-measurement accepts any image"
    )]
    Unpinned(String),
    /// The TDX TCB status is not one the policy accepts.
    #[error("TCB status {status} not accepted by the policy (accepted: {accepted})")]
    TcbStatusRejected {
        /// The status dcap-qvl computed (e.g. `OutOfDate`).
        status: String,
        /// What the policy accepts.
        accepted: String,
    },
    /// The TDX quote or its collateral failed Intel DCAP verification.
    #[error("TDX quote verification failed: {0}")]
    Quote(String),
    /// The TDX collateral (CRLs, TCB info, QE identity) is not valid at `now`.
    #[error("TDX collateral not valid at {now}: {reason}")]
    CollateralNotValid {
        /// The verification time (RFC 3339).
        now: String,
        /// What dcap-qvl reported.
        reason: String,
    },
    /// A certificate of the TDX quote's PCK chain is not valid at `now`.
    #[error("TDX PCK certificate chain not valid at {now}: {reason}")]
    PckCertificateNotValid {
        /// The verification time (RFC 3339).
        now: String,
        /// What dcap-qvl reported.
        reason: String,
    },
    /// The TDX collateral (TCB info, QE identity) is not authentic or not consistent.
    #[error("TDX collateral invalid: {0}")]
    CollateralInvalid(String),
    /// The TDX collateral predates the policy's minimum TCB evaluation (a TCB recovery).
    #[error("TDX {which} has tcbEvaluationDataNumber {got}, policy requires at least {min}")]
    CollateralTooOld {
        /// `TCB info` or `QE identity`.
        which: &'static str,
        /// The collateral's `tcbEvaluationDataNumber`.
        got: u32,
        /// The policy's `min_tcb_evaluation_number`.
        min: u32,
    },
    /// The TDX collateral is for another platform (FMSPC).
    #[error("TDX collateral is for another platform: {0}")]
    CollateralMismatch(String),
    /// No TCB level in the collateral matches the platform.
    #[error("TDX platform TCB matches no TCB level in the collateral: {0}")]
    TcbLevelNotFound(String),
    /// The guest runs with debugging enabled and the policy does not allow it.
    #[error("debug guest rejected (debugging lets the host read guest memory)")]
    DebugGuestRejected,
    /// The SNP guest policy allows a migration agent and the policy does not.
    #[error("guest policy allows a migration agent, which the policy rejects")]
    MigrationAgentRejected,
    /// The report was produced at a VMPL the policy does not accept.
    #[error("report from VMPL {got}, policy requires at most {max}")]
    VmplRejected {
        /// VMPL of the report.
        got: u32,
        /// Highest VMPL the policy accepts.
        max: u32,
    },
    /// A launch measurement (SNP MEASUREMENT, TDX MRTD/RTMR/…) is not one the policy allows.
    #[error("{register} mismatch: expected one of [{expected}], got {got}")]
    MeasurementMismatch {
        /// Which register (`measurement`, `mrtd`, `rtmr0`, …).
        register: &'static str,
        /// Allowed values (hex).
        expected: String,
        /// Value in the evidence (hex).
        got: String,
    },
    /// REPORT_DATA differs from what the verifier expected.
    #[error("report_data mismatch: expected {expected}, got {got}")]
    ReportDataMismatch {
        /// Expected REPORT_DATA (hex).
        expected: String,
        /// REPORT_DATA in the evidence (hex).
        got: String,
    },
    /// The attested server binary or model is not the one the policy pins.
    #[error("{what} mismatch: policy pins {expected}, server attests {got}")]
    ManifestMismatch {
        /// `binary` or `model`.
        what: &'static str,
        /// The policy's sha256 (hex).
        expected: String,
        /// The attested digest (hex).
        got: String,
    },
    /// The evidence's platform is not one the policy allows.
    #[error("platform {0} not allowed by the policy")]
    PlatformNotAllowed(&'static str),
    /// The evidence is software-signed (no hardware) and the policy does not allow simulation.
    #[error(
        "simulated evidence rejected: it is signed by software, not by a TEE (allow_simulated is off)"
    )]
    SimulatedRejected,
    /// The policy document could not be parsed.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The GPU certificate chain does not end at the pinned NVIDIA Device Identity CA.
    #[error("GPU certificate chain not rooted in the pinned NVIDIA root: {0}")]
    UntrustedGpuRoot(String),
    /// The GPU leaf certificate's firmware id differs from the report's.
    #[error("GPU firmware id mismatch: certificate {cert}, report {report}")]
    FwidMismatch {
        /// FWID in the leaf certificate (hex).
        cert: String,
        /// FWID in the report's opaque data (hex, or `none`).
        report: String,
    },
    /// The GPU report answers another nonce than the verifier's.
    #[error("GPU report nonce mismatch: expected {expected}, got {got}")]
    NonceMismatch {
        /// The nonce the verifier expects (hex).
        expected: String,
        /// The nonce in the report's request (hex).
        got: String,
    },
    /// The GPU driver or VBIOS version is not one the policy accepts.
    #[error("GPU {component} version {got} not accepted by the policy (accepted: {allowed})")]
    GpuVersionNotAllowed {
        /// `driver` or `vbios`.
        component: &'static str,
        /// The version in the report (or `none`).
        got: String,
        /// What the policy accepts.
        allowed: String,
    },
    /// A GPU measurement differs from the policy's reference values, or is missing.
    #[error("GPU measurement {index} mismatch: expected one of [{expected}], got {got}")]
    GpuMeasurementMismatch {
        /// Measurement index.
        index: u8,
        /// Accepted values (hex).
        expected: String,
        /// Value in the report (hex, or `missing`).
        got: String,
    },
    /// The policy has a `[gpu]` section and the evidence carries no GPU evidence.
    #[error("no GPU evidence: the policy's [gpu] section requires it")]
    GpuEvidenceMissing,
}

impl VerifyError {
    /// The check this error belongs to, as printed by `veil verify`.
    pub fn check(&self) -> CheckName {
        use CheckName as C;
        match self {
            Self::Malformed(_) | Self::Policy(_) => C::Parse,
            Self::MalformedCertificate(_)
            | Self::MissingCertificate(_)
            | Self::UnknownProduct(_)
            | Self::UntrustedRoot { .. }
            | Self::ChainSignature(_)
            | Self::UntrustedGpuRoot(_) => C::CertChain,
            Self::ProductMismatch { .. } | Self::ProductNotAllowed { .. } => C::Family,
            Self::CertificateNotValid { .. } | Self::PckCertificateNotValid { .. } => {
                C::CertValidity
            }
            Self::MalformedCrl(_)
            | Self::CrlSignature(_)
            | Self::CrlNotValid { .. }
            | Self::CertificateRevoked { .. }
            | Self::CrlMissing => C::Revocation,
            Self::SignatureInvalid(_) | Self::SigningKeyMismatch { .. } => C::Signature,
            Self::TcbMismatch { .. }
            | Self::TcbBelowMinimum { .. }
            | Self::TcbBelowFloor { .. }
            | Self::TcbStatusRejected { .. }
            | Self::TcbLevelNotFound(_) => C::Tcb,
            Self::ChipIdMismatch => C::ChipId,
            Self::Quote(_) | Self::CollateralMismatch(_) => C::Quote,
            Self::CollateralNotValid { .. }
            | Self::CollateralInvalid(_)
            | Self::CollateralTooOld { .. } => C::Collateral,
            Self::DebugGuestRejected => C::Debug,
            Self::MigrationAgentRejected => C::MigrationAgent,
            Self::VmplRejected { .. } => C::Vmpl,
            Self::MeasurementMismatch { .. }
            | Self::Unpinned(_)
            | Self::GpuMeasurementMismatch { .. } => C::Measurement,
            Self::FwidMismatch { .. } => C::Fwid,
            Self::NonceMismatch { .. } => C::Nonce,
            Self::GpuVersionNotAllowed { .. } => C::GpuVersion,
            Self::GpuEvidenceMissing => C::Gpu,
            Self::ReportDataMismatch { .. } => C::ReportData,
            Self::ManifestMismatch { .. } => C::Manifest,
            Self::PlatformNotAllowed(_) | Self::SimulatedRejected => C::Platform,
        }
    }
}
