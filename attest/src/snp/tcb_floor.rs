//! AMD's minimum fixed TCB per processor, built in: the floor below which a report's
//! endorsement key (VCEK/VLEK) may come from firmware whose keys an attacker can extract,
//! so its signature proves nothing about MEASUREMENT or REPORT_DATA.
//!
//! # Provenance
//!
//! The floor raised here is the **microcode** component, from AMD-SB-3019 (server) /
//! AMD-SB-7033 (all products): CVE-2024-56161 and CVE-2024-36347, improper signature
//! verification in the microcode patch loader, which lets a host administrator load
//! malicious microcode and break SEV-SNP confidentiality and integrity (Google's advisory
//! GHSA-4xq7-4mgh-gp6w: "SEV-SNP users can verify the fix by confirming TCB values for SNP
//! in their attestation reports"). The first fixed microcode revision per CPUID signature is
//! the one after the last vulnerable revision that Linux lists for these bulletins in
//! `arch/x86/kernel/cpu/microcode/amd.c` (`need_sha_check`, 2025-03 and its Zen 5
//! additions); the SNP TCB's microcode SPL is the revision's low byte (the captured
//! vectors agree: Milan B1 at `0x0A0011DB` reports 219, Genoa B1 at `0x0A101154`
//! reports 84, 2022-era Milan at `0x0A001173` reports 115).
//!
//! Not raised, and why: AMD-SB-3023 (CVE-2025-48514, SNP firmware SVN 0x1B on Zen 3/4 and
//! 0x04 on Zen 5) affects SEV-ES guests only; bootloader, TEE and FMC floors of the
//! bulletins were not available offline to check. A policy's `[tcb]` raises any
//! component above these floors.
//!
//! # Steppings
//!
//! The floor depends on the stepping (each has its own microcode line). A report of
//! version 3 or later names its CPUID family, model and stepping; a version 2 report names
//! none, and gets the strictest floor of its product (v2 reports come from SNP firmware
//! older than ABI 1.55, itself older than the fix). An unknown stepping also gets the
//! strictest floor of its product.

use super::Product;

/// The bulletins the floors come from (shown in every refusal).
pub const BULLETINS: &str = "AMD-SB-3019/AMD-SB-7033 (CVE-2024-56161, CVE-2024-36347)";

/// One CPUID signature and its first fixed microcode SPL.
#[derive(Debug, Clone, Copy)]
struct Row {
    product: Product,
    family: u8,
    model: u8,
    stepping: u8,
    /// Low byte of the first fixed microcode revision.
    microcode: u8,
    /// That revision, for the record.
    revision: u32,
}

const fn row(product: Product, family: u8, model: u8, stepping: u8, revision: u32) -> Row {
    Row {
        product,
        family,
        model,
        stepping,
        microcode: (revision & 0xFF) as u8,
        revision,
    }
}

/// First fixed revision = last vulnerable revision (Linux's table) + 1.
const ROWS: [Row; 12] = [
    row(Product::Milan, 0x19, 0x01, 0, 0x0A00_107B),
    row(Product::Milan, 0x19, 0x01, 1, 0x0A00_11DB),
    row(Product::Milan, 0x19, 0x01, 2, 0x0A00_1244),
    row(Product::Milan, 0x19, 0x08, 2, 0x0A00_820F),
    row(Product::Genoa, 0x19, 0x11, 1, 0x0A10_1154),
    row(Product::Genoa, 0x19, 0x11, 2, 0x0A10_124F),
    row(Product::Genoa, 0x19, 0x18, 1, 0x0A10_810A),
    row(Product::Genoa, 0x19, 0xA0, 1, 0x0AA0_0117),
    row(Product::Genoa, 0x19, 0xA0, 2, 0x0AA0_0219),
    row(Product::Turin, 0x1A, 0x02, 1, 0x0B00_2147),
    row(Product::Turin, 0x1A, 0x08, 1, 0x0B00_8112),
    row(Product::Turin, 0x1A, 0x11, 0, 0x0B10_1047),
];

/// The built-in minimum TCB for one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcbFloor {
    /// Minimum PSP bootloader SVN.
    pub bootloader: u8,
    /// Minimum PSP OS SVN.
    pub tee: u8,
    /// Minimum SNP firmware SVN.
    pub snp: u8,
    /// Minimum microcode SPL.
    pub microcode: u8,
    /// Minimum FMC SVN (Turin).
    pub fmc: u8,
    /// Whether the floor is the stepping's own (`false`: the strictest of the product,
    /// because the report names no known stepping).
    pub exact_stepping: bool,
}

/// The floor for `product`, given the report's CPUID (family, model, stepping) if it has one.
pub fn floor(product: Product, cpuid: Option<(u8, u8, u8)>) -> TcbFloor {
    let exact = cpuid.and_then(|(f, m, s)| {
        ROWS.iter()
            .find(|r| r.product == product && r.family == f && r.model == m && r.stepping == s)
    });
    let microcode = match exact {
        Some(r) => r.microcode,
        None => ROWS
            .iter()
            .filter(|r| r.product == product)
            .map(|r| r.microcode)
            .max()
            .unwrap_or(0),
    };
    TcbFloor {
        bootloader: 0,
        tee: 0,
        snp: 0,
        microcode,
        fmc: 0,
        exact_stepping: exact.is_some(),
    }
}

/// The first fixed microcode revision behind a floor (for messages and docs).
pub fn fixed_revision(product: Product, cpuid: Option<(u8, u8, u8)>) -> Option<u32> {
    let (f, m, s) = cpuid?;
    ROWS.iter()
        .find(|r| r.product == product && r.family == f && r.model == m && r.stepping == s)
        .map(|r| r.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_its_products_cpuid_and_spl_is_the_low_byte() {
        for r in ROWS {
            assert_eq!(
                Product::from_cpuid(r.family, r.model),
                Some(r.product),
                "{r:?}"
            );
            // Revision layout: extended family, extended model, 0, model, stepping, patch byte.
            let ext_fam = r.family - 0x0F;
            let want = (u32::from(ext_fam) << 24)
                | (u32::from(r.model >> 4) << 20)
                | (u32::from(r.model & 0x0F) << 12)
                | (u32::from(r.stepping) << 8);
            assert_eq!(r.revision & 0xFFFF_FF00, want, "{r:?}");
            assert_eq!(u32::from(r.microcode), r.revision & 0xFF);
        }
    }

    #[test]
    fn known_stepping_gets_its_own_floor_and_unknown_the_strictest() {
        assert_eq!(floor(Product::Milan, Some((0x19, 0x01, 1))).microcode, 219);
        assert_eq!(floor(Product::Milan, Some((0x19, 0x01, 2))).microcode, 0x44);
        assert_eq!(floor(Product::Genoa, Some((0x19, 0x11, 1))).microcode, 84);
        let v2 = floor(Product::Milan, None);
        assert_eq!((v2.microcode, v2.exact_stepping), (219, false));
        assert_eq!(floor(Product::Genoa, Some((0x19, 0x11, 9))).microcode, 84);
        assert_eq!(floor(Product::Turin, None).microcode, 0x47);
    }
}
