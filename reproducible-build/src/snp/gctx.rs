//! The launch digest chain (SNP firmware ABI, `SNP_LAUNCH_UPDATE`'s PAGE_INFO):
//! each page folds its type, GPA and contents digest into the running SHA-384.

use sha2::{Digest, Sha384};

use crate::ReproError;

/// The GPA the firmware records for a VMSA page: (u64)-1, page-aligned, bits
/// above 51 cleared.
const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;
const PAGE: usize = 4096;
const ZEROS: [u8; 48] = [0; 48];

/// PAGE_INFO page types.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum PageType {
    Normal = 1,
    Vmsa = 2,
    Zero = 3,
    Unmeasured = 4,
    Secrets = 5,
    Cpuid = 6,
}

/// The guest context's launch digest while pages are added.
#[derive(Debug, Clone)]
pub(super) struct Gctx {
    ld: [u8; 48],
}

impl Gctx {
    /// Starts from all zeros, or from a digest computed earlier (`--snp-ovmf-hash`).
    pub(super) fn new(seed: Option<[u8; 48]>) -> Self {
        Self {
            ld: seed.unwrap_or(ZEROS),
        }
    }

    /// The digest so far.
    pub(super) fn ld(&self) -> [u8; 48] {
        self.ld
    }

    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        // PAGE_INFO: digest so far, contents digest, length 0x70, type, IS_IMI,
        // VMPL3..1 permissions, reserved, GPA.
        let mut info = [0u8; 0x70];
        info[..48].copy_from_slice(&self.ld);
        info[48..96].copy_from_slice(contents);
        info[96..98].copy_from_slice(&0x70u16.to_le_bytes());
        info[98] = page_type as u8;
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// Pages with contents (the firmware image, the kernel hashes page).
    pub(super) fn normal_pages(&mut self, gpa: u64, data: &[u8]) -> Result<(), ReproError> {
        whole_pages(data.len() as u64, "measured data")?;
        for (i, page) in data.chunks_exact(PAGE).enumerate() {
            self.update(
                PageType::Normal,
                gpa + (i * PAGE) as u64,
                &Sha384::digest(page).into(),
            );
        }
        Ok(())
    }

    /// One VMSA page.
    pub(super) fn vmsa_page(&mut self, page: &[u8; PAGE]) {
        self.update(PageType::Vmsa, VMSA_GPA, &Sha384::digest(page).into());
    }

    /// Pre-validated zero pages.
    pub(super) fn zero_pages(&mut self, gpa: u64, len: u32) -> Result<(), ReproError> {
        self.empty_pages(PageType::Zero, gpa, len)
    }

    /// Unmeasured pages (GCE's pre-validated memory).
    pub(super) fn unmeasured_pages(&mut self, gpa: u64, len: u32) -> Result<(), ReproError> {
        self.empty_pages(PageType::Unmeasured, gpa, len)
    }

    fn empty_pages(&mut self, t: PageType, gpa: u64, len: u32) -> Result<(), ReproError> {
        whole_pages(u64::from(len), "SEV metadata section")?;
        for off in (0..u64::from(len)).step_by(PAGE) {
            self.update(t, gpa + off, &ZEROS);
        }
        Ok(())
    }

    /// The secrets page.
    pub(super) fn secrets_page(&mut self, gpa: u64) {
        self.update(PageType::Secrets, gpa, &ZEROS);
    }

    /// The CPUID page.
    pub(super) fn cpuid_page(&mut self, gpa: u64) {
        self.update(PageType::Cpuid, gpa, &ZEROS);
    }
}

fn whole_pages(len: u64, what: &str) -> Result<(), ReproError> {
    if !len.is_multiple_of(PAGE as u64) {
        return Err(ReproError::SnpMeasurement(format!(
            "{what}: {len} bytes is not a whole number of 4096-byte pages"
        )));
    }
    Ok(())
}
