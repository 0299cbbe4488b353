//! MRTD: the TDX module's build-time measurement of the initial TD memory.
//!
//! Intel TDX module ABI: MRTD is one SHA-384 stream, finalized by
//! TDH.MR.FINALIZE, fed 128-byte blocks:
//! - TDH.MEM.PAGE.ADD(gpa): `"MEM.PAGE.ADD"` (12 bytes), 4 zero bytes, the GPA as
//!   `u64` little-endian at offset 16, zeros to 128 bytes;
//! - TDH.MR.EXTEND(gpa, 256 bytes): `"MR.EXTEND"` (9 bytes), zeros, the GPA at
//!   offset 16, zeros to 128 bytes; then the 256 data bytes (two more blocks).
//!
//! The VMM adds every page of every TDVF section (except `PAGE.AUG` ones) and
//! extends the sections marked `MR.EXTEND`, 256 bytes at a time.

use sha2::{Digest, Sha384};

use super::tdvf::{ATTR_MR_EXTEND, ATTR_PAGE_AUG, TdvfSection, parse_tdvf_sections};
use crate::ReproError;

const PAGE: u64 = 4096;
const CHUNK: u64 = 256;
/// A TDVF section larger than this is refused (a TDVF is a few MiB).
const MAX_SECTION_BYTES: u64 = 1 << 30;

/// The order in which the VMM issues PAGE.ADD and MR.EXTEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageAddOrder {
    /// Per page: add it, then extend its 16 chunks (Linux KVM's
    /// `KVM_TDX_INIT_MEM_REGION` with `KVM_TDX_MEASURE_MEMORY_REGION`, as used by
    /// QEMU 10.1+ on upstream kernels).
    #[default]
    SinglePass,
    /// All pages of all sections first, then all extends (some earlier,
    /// out-of-tree KVM/QEMU TDX stacks).
    TwoPass,
}

/// The 128-byte block of TDH.MEM.PAGE.ADD.
pub fn page_add_block(gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[..12].copy_from_slice(b"MEM.PAGE.ADD");
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// The 128-byte header block of TDH.MR.EXTEND.
pub fn mr_extend_block(gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[..9].copy_from_slice(b"MR.EXTEND");
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// A section's bytes as they sit in guest memory (zero-padded to its size).
fn section_memory(image: &[u8], s: &TdvfSection) -> Result<Vec<u8>, ReproError> {
    if s.memory_data_size > MAX_SECTION_BYTES {
        return Err(ReproError::TdvfMetadataMalformed(format!(
            "section at {:#x} is larger than 1 GiB",
            s.memory_address
        )));
    }
    let start = s.data_offset as usize;
    let raw = image
        .get(start..start + s.raw_data_size as usize)
        .ok_or_else(|| {
            ReproError::TdvfMetadataMalformed(format!(
                "section at {:#x} lies outside the image (use the unified OVMF.fd, not OVMF_CODE.fd)",
                s.memory_address
            ))
        })?;
    let mut mem = raw.to_vec();
    mem.resize(s.memory_data_size as usize, 0);
    Ok(mem)
}

fn add_pages(h: &mut Sha384, s: &TdvfSection) {
    for page in 0..s.memory_data_size / PAGE {
        h.update(page_add_block(s.memory_address + page * PAGE));
    }
}

fn extend_range(h: &mut Sha384, gpa: u64, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(CHUNK as usize).enumerate() {
        h.update(mr_extend_block(gpa + i as u64 * CHUNK));
        h.update(chunk);
    }
}

/// MRTD of a TDVF firmware image.
pub fn mrtd(image: &[u8], order: PageAddOrder) -> Result<[u8; 48], ReproError> {
    let sections = parse_tdvf_sections(image)?;
    let added: Vec<&TdvfSection> = sections
        .iter()
        .filter(|s| s.attributes & ATTR_PAGE_AUG == 0)
        .collect();
    let mut h = Sha384::new();
    match order {
        PageAddOrder::SinglePass => {
            for s in &added {
                let extend = s.attributes & ATTR_MR_EXTEND != 0;
                let mem = if extend {
                    section_memory(image, s)?
                } else {
                    Vec::new()
                };
                // `mem` holds exactly one 4 KiB chunk per page when extending.
                let mut measured = mem.chunks(PAGE as usize);
                for page in 0..s.memory_data_size / PAGE {
                    let gpa = s.memory_address + page * PAGE;
                    h.update(page_add_block(gpa));
                    if let Some(bytes) = measured.next() {
                        extend_range(&mut h, gpa, bytes);
                    }
                }
            }
        }
        PageAddOrder::TwoPass => {
            for s in &added {
                add_pages(&mut h, s);
            }
            for s in added.iter().filter(|s| s.attributes & ATTR_MR_EXTEND != 0) {
                extend_range(&mut h, s.memory_address, &section_memory(image, s)?);
            }
        }
    }
    Ok(h.finalize().into())
}
