//! The SEV hashes table QEMU writes into the firmware's kernel-hashes page for
//! a direct boot (`-kernel/-initrd/-append` with `kernel-hashes=on`): SHA-256
//! of the command line (NUL-terminated), the initrd and the kernel file.

use sha2::{Digest, Sha256};

use super::ovmf::{GuidLe, guid_le};
use crate::ReproError;

const TABLE_GUID: GuidLe = guid_le("9438d606-4f22-4cc9-b479-a793d411fd21");
const KERNEL_GUID: GuidLe = guid_le("4de79437-abd2-427f-b835-d5b172d2045b");
const INITRD_GUID: GuidLe = guid_le("44baf731-3a2f-4bd7-9af1-41e29169781d");
const CMDLINE_GUID: GuidLe = guid_le("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");

/// GUID + u16 length + SHA-256.
const ENTRY_LEN: usize = 16 + 2 + 32;
/// GUID + u16 length + three entries.
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// The table padded to 16 bytes.
const PADDED_LEN: usize = TABLE_LEN.div_ceil(16) * 16;

/// The three hashes of a direct boot.
#[derive(Debug, Clone)]
pub(super) struct SevHashes {
    kernel: [u8; 32],
    initrd: [u8; 32],
    cmdline: [u8; 32],
}

impl SevHashes {
    /// Hashes the kernel, the initrd (empty when absent) and the command line
    /// exactly as given plus a NUL (QEMU hashes what it passes, untrimmed).
    pub(super) fn new(kernel: &[u8], initrd: Option<&[u8]>, append: Option<&str>) -> Self {
        let mut cmdline = Sha256::new();
        cmdline.update(append.unwrap_or("").as_bytes());
        cmdline.update([0u8]);
        Self {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            cmdline: cmdline.finalize().into(),
        }
    }

    /// The padded table (176 bytes).
    pub(super) fn table(&self) -> [u8; PADDED_LEN] {
        let mut t = [0u8; PADDED_LEN];
        t[..16].copy_from_slice(&TABLE_GUID);
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (CMDLINE_GUID, &self.cmdline),
            (INITRD_GUID, &self.initrd),
            (KERNEL_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.into_iter().enumerate() {
            let o = 18 + i * ENTRY_LEN;
            t[o..o + 16].copy_from_slice(&guid);
            t[o + 16..o + 18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            t[o + 18..o + ENTRY_LEN].copy_from_slice(hash);
        }
        t
    }

    /// The kernel-hashes page: the table at `offset` within an otherwise zero page.
    pub(super) fn page(&self, offset: usize) -> Result<Box<[u8; 4096]>, ReproError> {
        let end = offset + PADDED_LEN;
        let mut page = Box::new([0u8; 4096]);
        page.get_mut(offset..end)
            .ok_or_else(|| {
                ReproError::SnpMeasurement(format!(
                    "OVMF: the SEV hashes table at page offset {offset:#x} does not fit in its page"
                ))
            })?
            .copy_from_slice(&self.table());
        Ok(page)
    }
}
