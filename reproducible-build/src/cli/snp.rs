//! `measure snp`: `sev-snp-measure --mode snp`'s options, parsed as it parses
//! them (numbers as Python's `int(x, 0)`, the OVMF hash as `bytes.fromhex`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use veil_repro::snp::{SnpInputs, SnpOptions, VmmType, cpu_sig, launch_digest_with};

#[derive(Debug, Args)]
pub(super) struct SnpArgs {
    /// OVMF image.
    #[arg(long)]
    ovmf: PathBuf,
    /// Kernel (direct boot with measured hashes; needs an AmdSev OVMF).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initrd (with --kernel).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line (with --kernel), hashed exactly as given.
    #[arg(long)]
    append: Option<String>,
    /// Number of vCPUs.
    #[arg(long)]
    vcpus: u32,
    /// vCPU type (EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome[-v1..v3], EPYC-Milan[-v1,-v2],
    /// EPYC-Genoa[-v1], EPYC-Turin); QEMU needs it or a signature.
    #[arg(long)]
    vcpu_type: Option<String>,
    /// vCPU signature (CPUID Fn0000_0001_EAX), instead of --vcpu-type.
    #[arg(long)]
    vcpu_sig: Option<String>,
    /// vCPU family (with --vcpu-model and --vcpu-stepping), instead of --vcpu-type.
    #[arg(long)]
    vcpu_family: Option<u32>,
    /// vCPU model.
    #[arg(long)]
    vcpu_model: Option<u32>,
    /// vCPU stepping.
    #[arg(long)]
    vcpu_stepping: Option<u32>,
    /// Hypervisor: QEMU, ec2 or gce.
    #[arg(long, default_value = "QEMU")]
    vmm_type: String,
    /// Guest features (SEV_FEATURES): 0x-prefixed hex, or decimal.
    #[arg(long, default_value = "0x1")]
    guest_features: String,
    /// Precalculated digest of the OVMF pages (hex), used instead of hashing them.
    #[arg(long)]
    snp_ovmf_hash: Option<String>,
}

/// The launch digest in lower-case hex.
pub(super) fn measure(a: SnpArgs) -> Result<String> {
    // The reference's order: family/model/stepping, then --vcpu-sig, then --vcpu-type
    // (a zero family or signature counts as not given).
    let vcpu_sig = match a.vcpu_family.filter(|f| *f != 0) {
        Some(family) => {
            let (Some(model), Some(stepping)) = (a.vcpu_model, a.vcpu_stepping) else {
                bail!("--vcpu-family needs --vcpu-model and --vcpu-stepping");
            };
            Some(u64::from(cpu_sig(family, model, stepping)))
        }
        None => a
            .vcpu_sig
            .as_deref()
            .map(py_int)
            .transpose()
            .context("--vcpu-sig")?,
    };
    let ovmf_hash = a
        .snp_ovmf_hash
        .as_deref()
        .map(from_hex_48)
        .transpose()
        .context("--snp-ovmf-hash")?;
    let inputs = SnpInputs {
        ovmf: a.ovmf,
        kernel: a.kernel,
        initrd: a.initrd,
        append: a.append,
        vcpus: a.vcpus,
        vcpu_type: a.vcpu_type.unwrap_or_default(),
        vmm: a.vmm_type.parse::<VmmType>()?,
        guest_features: py_int(&a.guest_features).context("--guest-features")?,
    };
    let options = SnpOptions {
        vcpu_sig,
        ovmf_hash,
    };
    Ok(launch_digest_with(&inputs, &options)?.to_hex())
}

/// Python's `int(text, 0)` for values that fit in 64 bits: `0x`/`0o`/`0b`
/// prefixes, decimal without leading zeros, `_` between digits, surrounding
/// whitespace, a `+` sign. Negative values are refused.
fn py_int(text: &str) -> Result<u64> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.to_ascii_lowercase();
    let (radix, digits) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ => (10, lower.as_str()),
    };
    // Underscores: one at a time, between digits, or right after a base prefix.
    let digits = match (radix, digits.strip_prefix('_')) {
        (16 | 8 | 2, Some(rest)) => rest,
        _ => digits,
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        bail!("{text:?} is not a number");
    }
    let digits = digits.replace('_', "");
    if radix == 10
        && digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().any(|b| b != b'0')
    {
        bail!("{text:?}: leading zeros in a decimal number (write 0x… for hex)");
    }
    let value = u64::from_str_radix(&digits, radix)
        .with_context(|| format!("{text:?} is not a number that fits in 64 bits"))?;
    if negative && value != 0 {
        bail!("{text:?} is negative");
    }
    Ok(value)
}

/// Python's `bytes.fromhex` (whitespace allowed between bytes), for a 48-byte digest.
fn from_hex_48(text: &str) -> Result<[u8; 48]> {
    let mut out = Vec::with_capacity(48);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
            continue;
        }
        let pair: String = [Some(c), chars.next()].into_iter().flatten().collect();
        out.push(
            u8::from_str_radix(&pair, 16)
                .ok()
                .filter(|_| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit()))
                .with_context(|| format!("{pair:?} is not a hex byte"))?,
        );
    }
    out.as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} bytes, not 48", out.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_int_parses_like_python() {
        for (text, value) in [
            ("0x1", 1),
            ("0X21", 0x21),
            ("21", 21),
            (" 33 ", 33),
            ("+5", 5),
            ("0", 0),
            ("00", 0),
            ("-0", 0),
            ("0b101", 5),
            ("0o17", 15),
            ("1_000", 1000),
            ("0x_ff", 255),
            ("0xffffffffffffffff", u64::MAX),
        ] {
            assert_eq!(py_int(text).expect(text), value, "{text}");
        }
        for text in [
            "",
            "0x",
            "010",
            "-1",
            "1__0",
            "_1",
            "1_",
            "0x1g",
            "1e3",
            "0x10000000000000000",
        ] {
            assert!(py_int(text).is_err(), "{text}");
        }
    }

    #[test]
    fn from_hex_48_skips_whitespace_between_bytes() {
        let hex = "ab".repeat(48);
        assert_eq!(from_hex_48(&hex).expect("hex"), [0xab; 48]);
        let spaced = format!(" {} ", "ab ".repeat(48));
        assert_eq!(from_hex_48(&spaced).expect("spaced"), [0xab; 48]);
        assert!(from_hex_48("a b").is_err());
        assert!(from_hex_48(&"ab".repeat(47)).is_err());
        assert!(from_hex_48(&"+1".repeat(48)).is_err());
    }
}
