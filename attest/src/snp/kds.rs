//! What to ask AMD's Key Distribution Service (KDS) for the VCEK of a report: the product,
//! the chip id (hwID) and the reported TCB, as its URLs spell them. Parsing only: the
//! server's fetcher does the I/O.

use super::Product;
use super::report::{self, SigningKey};
use crate::VerifyError;

/// The VCEK a report needs, in KDS terms.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KdsQuery {
    /// The product, from the report's CPUID fields (reports v3+); `None` for v2 reports.
    pub product: Option<Product>,
    /// The hwID as KDS takes it: lowercase hex of the chip id (its first 8 bytes on Turin).
    pub hwid: String,
    /// The reported TCB: FMC (Turin only), boot loader, TEE, SNP firmware, microcode SPLs.
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// The report is signed by a VLEK, which KDS does not serve to guests: only the host can
    /// supply it.
    pub vlek: bool,
}

impl KdsQuery {
    /// `{product}/{hwid}?...SPL=..`: the part of `/vcek/v1/` AMD's KDS names the VCEK by,
    /// for `product` (the report's own, or the operator's for a v2 report).
    pub fn vcek_path(&self, product: Product) -> String {
        let fmc = self.fmc.map(|f| format!("fmcSPL={f}&")).unwrap_or_default();
        format!(
            "{}/{}?{fmc}blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            product.name(),
            self.hwid,
            self.bootloader,
            self.tee,
            self.snp,
            self.microcode
        )
    }
}

/// The KDS query for a report. Never panics; a VCEK-signed report whose chip id is masked
/// (all zero) cannot be named to KDS and is refused.
pub fn kds_query(raw: &[u8]) -> Result<KdsQuery, VerifyError> {
    let r = report::parse(raw)?;
    let f = &r.fields;
    let product = match (f.cpuid_fam_id, f.cpuid_mod_id) {
        (Some(fam), Some(model)) => Product::from_cpuid(fam, model),
        _ => None,
    };
    let vlek = r.signing_key == SigningKey::Vlek;
    if !vlek && f.chip_id.iter().all(|&b| b == 0) {
        return Err(VerifyError::Malformed(
            "the report's chip id is masked (MASK_CHIP_ID): KDS cannot name its VCEK".into(),
        ));
    }
    let id_len = if product == Some(Product::Turin) {
        8
    } else {
        64
    };
    let t = &f.reported_tcb;
    Ok(KdsQuery {
        product,
        hwid: hex::encode(&f.chip_id[..id_len]),
        fmc: t.fmc,
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
        vlek,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/vectors/snp/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("vector")
    }

    #[test]
    fn a_v3_report_names_product_chip_and_tcb() {
        let q = kds_query(&vector("milan-v3-azure/report.bin")).expect("query");
        assert_eq!(q.product, Some(Product::Milan));
        assert_eq!(q.hwid.len(), 128);
        assert!(!q.vlek);
        let path = q.vcek_path(Product::Milan);
        assert!(
            path.starts_with(&format!("Milan/{}?blSPL=", q.hwid)),
            "{path}"
        );
        assert!(path.contains("&ucodeSPL="), "{path}");
    }

    #[test]
    fn a_vlek_report_says_so() {
        let q = kds_query(&vector("milan-v3-aws-vlek/report.bin")).expect("query");
        assert!(q.vlek);
    }

    #[test]
    fn a_masked_chip_id_is_refused() {
        let mut raw = vector("milan-v2-virtee/report.bin");
        raw[0x1A0..0x1E0].fill(0);
        assert!(matches!(kds_query(&raw), Err(VerifyError::Malformed(_))));
        assert!(kds_query(&raw[..100]).is_err());
    }
}
