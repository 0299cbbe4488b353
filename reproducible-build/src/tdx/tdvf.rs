//! TDVF metadata: which firmware pages the VMM adds and measures.
//!
//! Located through the OVMF GUIDed footer table (it ends 32 bytes before the
//! end of the image, as the reset vector sits there): the entry with GUID
//! [`TDX_METADATA_OFFSET_GUID`] holds a `u32` = distance from the image end
//! back to the `TDVF` descriptor (TDVF design guide, section "TDVF metadata").
//! The descriptor is `"TDVF"`, length, version 1, section count, then 32-byte
//! section entries.

use crate::ReproError;

/// `96b582de-1fb2-45f7-baea-a366c55a082d`, little-endian GUID bytes.
const FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];
/// `e47a6535-984a-4798-865e-4685a7bf8ec2`, little-endian GUID bytes.
pub const TDX_METADATA_OFFSET_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];
const ENTRY_HEADER: usize = 18; // u16 size + GUID
const DESCRIPTOR_LEN: usize = 16;
const SECTION_LEN: usize = 32;
/// More sections than any TDVF has; caps the allocation.
const MAX_SECTIONS: u32 = 64;

/// Section attribute: the VMM measures the section with TDH.MR.EXTEND.
pub const ATTR_MR_EXTEND: u32 = 1;
/// Section attribute: pages are accepted later (TDH.MEM.PAGE.AUG), not added now.
pub const ATTR_PAGE_AUG: u32 = 2;

/// A TDVF section type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionType {
    /// Boot firmware volume (code).
    Bfv,
    /// Configuration firmware volume (UEFI variables).
    Cfv,
    /// The TD HOB the VMM writes.
    TdHob,
    /// Temporary memory (stacks, heap).
    TempMem,
    /// Permanent memory.
    PermMem,
    /// Payload (td-shim).
    Payload,
    /// Payload parameters (td-shim).
    PayloadParam,
    /// TD info (td-shim).
    TdInfo,
    /// Any other value.
    Other(u32),
}

impl From<u32> for SectionType {
    fn from(v: u32) -> Self {
        match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            7 => Self::TdInfo,
            other => Self::Other(other),
        }
    }
}

/// One TDVF metadata section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdvfSection {
    /// Offset of the section's bytes in the image.
    pub data_offset: u32,
    /// Number of bytes in the image.
    pub raw_data_size: u32,
    /// Guest physical address (4 KiB aligned).
    pub memory_address: u64,
    /// Size in guest memory (4 KiB multiple; the tail beyond the raw data is zero).
    pub memory_data_size: u64,
    /// What the section holds.
    pub section_type: SectionType,
    /// [`ATTR_MR_EXTEND`], [`ATTR_PAGE_AUG`].
    pub attributes: u32,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Finds the data of a GUIDed footer-table entry.
pub fn footer_entry<'a>(image: &'a [u8], guid: &[u8; 16]) -> Result<&'a [u8], ReproError> {
    let footer = image
        .len()
        .checked_sub(32 + ENTRY_HEADER)
        .ok_or(ReproError::TdvfMetadataMissing("image too small"))?;
    let table_len =
        usize::from(u16_at(image, footer).ok_or(ReproError::TdvfMetadataMissing("no footer"))?);
    if image.get(footer + 2..footer + ENTRY_HEADER) != Some(&FOOTER_GUID[..]) {
        return Err(ReproError::TdvfMetadataMissing("no OVMF footer table GUID"));
    }
    let start = table_len
        .checked_sub(ENTRY_HEADER)
        .and_then(|body| footer.checked_sub(body))
        .ok_or_else(|| ReproError::TdvfMetadataMalformed("footer table length".to_owned()))?;
    let mut end = footer; // entries are read backwards from here
    while end >= start + ENTRY_HEADER {
        let len = usize::from(u16_at(image, end - ENTRY_HEADER).unwrap_or(0));
        if len < ENTRY_HEADER || end < start + len {
            return Err(ReproError::TdvfMetadataMalformed(
                "footer table entry length".to_owned(),
            ));
        }
        if image.get(end - 16..end) == Some(&guid[..]) {
            return image
                .get(end - len..end - ENTRY_HEADER)
                .ok_or_else(|| ReproError::TdvfMetadataMalformed("entry bounds".to_owned()));
        }
        end -= len;
    }
    Err(ReproError::TdvfMetadataMissing(
        "no TDX metadata offset entry in the OVMF footer table",
    ))
}

/// Parses the TDVF sections of a firmware image.
pub fn parse_tdvf_sections(image: &[u8]) -> Result<Vec<TdvfSection>, ReproError> {
    let entry = footer_entry(image, &TDX_METADATA_OFFSET_GUID)?;
    let from_end = u32_at(entry, 0)
        .ok_or_else(|| ReproError::TdvfMetadataMalformed("offset entry too short".to_owned()))?;
    let desc = usize::try_from(from_end)
        .ok()
        .and_then(|o| image.len().checked_sub(o))
        .ok_or_else(|| ReproError::TdvfMetadataMalformed("descriptor offset".to_owned()))?;
    if image.get(desc..desc + 4) != Some(b"TDVF".as_slice()) {
        return Err(ReproError::TdvfMetadataMissing("no TDVF signature"));
    }
    let version = u32_at(image, desc + 8).unwrap_or(0);
    let count = u32_at(image, desc + 12).unwrap_or(0);
    if version != 1 {
        return Err(ReproError::TdvfMetadataMalformed(format!(
            "descriptor version {version}"
        )));
    }
    if count == 0 || count > MAX_SECTIONS {
        return Err(ReproError::TdvfMetadataMalformed(format!(
            "{count} sections"
        )));
    }
    let mut sections = Vec::new();
    for i in 0..count as usize {
        let o = desc + DESCRIPTOR_LEN + i * SECTION_LEN;
        let short = || ReproError::TdvfMetadataMalformed(format!("section {i} truncated"));
        let s = TdvfSection {
            data_offset: u32_at(image, o).ok_or_else(short)?,
            raw_data_size: u32_at(image, o + 4).ok_or_else(short)?,
            memory_address: u64_at(image, o + 8).ok_or_else(short)?,
            memory_data_size: u64_at(image, o + 16).ok_or_else(short)?,
            section_type: SectionType::from(u32_at(image, o + 24).ok_or_else(short)?),
            attributes: u32_at(image, o + 28).ok_or_else(short)?,
        };
        if !s.memory_address.is_multiple_of(4096) || !s.memory_data_size.is_multiple_of(4096) {
            return Err(ReproError::TdvfMetadataMalformed(format!(
                "section {i} is not 4 KiB aligned"
            )));
        }
        if u64::from(s.raw_data_size) > s.memory_data_size {
            return Err(ReproError::TdvfMetadataMalformed(format!(
                "section {i}: raw data larger than memory"
            )));
        }
        sections.push(s);
    }
    Ok(sections)
}
