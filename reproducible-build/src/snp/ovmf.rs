//! The OVMF footer table (GUIDed entries that end 32 bytes before the end of
//! the image) and the SEV metadata it points to, read the way `sev-snp-measure`
//! 0.0.13 reads them (`sevsnpmeasure/ovmf.py`).
//!
//! Where the reference's parsing is lenient, this is lenient the same way, so
//! that the same files measure: an image whose footer GUID is absent has an
//! empty table; an image without the SEV metadata entry (Debian's
//! `OVMF_CODE_4M.fd`) has no metadata sections. Offsets follow Python's
//! slice rules (negative counts from the end, out of range clamps), because
//! that is what decides which bytes the reference reads from a malformed table.

use std::collections::HashMap;

use crate::ReproError;

/// A GUID as it is stored in firmware (`uuid.UUID(...).bytes_le`): the first
/// three fields little-endian.
pub(super) type GuidLe = [u8; 16];

/// The GUID of the footer entry that holds the whole table.
pub(super) const OVMF_TABLE_FOOTER_GUID: GuidLe = guid_le("96b582de-1fb2-45f7-baea-a366c55a082d");
/// The GPA of the SEV hashes table (kernel/initrd/cmdline), first 4 bytes.
pub(super) const SEV_HASH_TABLE_RV_GUID: GuidLe = guid_le("7255371f-3a3b-4b04-927b-1da6efa8d454");
/// The AP reset address (SEV-ES reset block), first 4 bytes.
pub(super) const SEV_ES_RESET_BLOCK_GUID: GuidLe = guid_le("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
/// The SEV metadata's offset from the end of the image, first 4 bytes.
pub(super) const OVMF_SEV_META_DATA_GUID: GuidLe = guid_le("dc886566-984a-4798-a75e-5585a7bf67cc");

/// A footer table entry header: `u16` size (header included), then the GUID.
const ENTRY_HEADER_SIZE: i64 = 18;
/// `OvmfSevMetadataHeader`: "ASEV", size, version, number of items (all u32 but the signature).
const METADATA_HEADER_SIZE: usize = 16;
/// `OvmfSevMetadataSectionDesc`: gpa, size, type (three u32).
const SECTION_DESC_SIZE: usize = 12;

/// The canonical text form of a GUID as its `bytes_le` bytes, at compile time.
pub(super) const fn guid_le(text: &str) -> GuidLe {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let t = text.as_bytes();
    let mut raw = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < t.len() {
        if t[i] == b'-' {
            i += 1;
            continue;
        }
        raw[n] = (nibble(t[i]) << 4) | nibble(t[i + 1]);
        n += 1;
        i += 2;
    }
    assert!(n == 16, "a GUID has 16 bytes");
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

/// The kinds of SEV metadata sections (edk2 `OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SectionType {
    /// Pre-validated memory, measured as zero pages (GCE: unmeasured).
    SnpSecMem,
    /// The secrets page.
    SnpSecrets,
    /// The CPUID page.
    Cpuid,
    /// The SVSM calling area, measured as zero pages.
    SvsmCaa,
    /// The page that holds the kernel/initrd/cmdline hashes table.
    SnpKernelHashes,
}

impl SectionType {
    fn from_u32(v: u32) -> Result<Self, ReproError> {
        match v {
            1 => Ok(Self::SnpSecMem),
            2 => Ok(Self::SnpSecrets),
            3 => Ok(Self::Cpuid),
            4 => Ok(Self::SvsmCaa),
            0x10 => Ok(Self::SnpKernelHashes),
            _ => Err(malformed(format!(
                "{v} is not a valid SEV metadata section type"
            ))),
        }
    }
}

/// One SEV metadata section: a guest-physical range and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Section {
    /// Guest physical address.
    pub(super) gpa: u32,
    /// Length in bytes.
    pub(super) size: u32,
    /// What the range holds.
    pub(super) kind: SectionType,
}

/// A parsed OVMF image: its bytes, footer table and SEV metadata sections.
#[derive(Debug)]
pub(super) struct Ovmf<'a> {
    data: &'a [u8],
    table: HashMap<GuidLe, &'a [u8]>,
    sections: Vec<Section>,
}

fn malformed(what: String) -> ReproError {
    ReproError::SnpMeasurement(format!("OVMF: {what}"))
}

/// `data[lo:hi]` with Python's slice rules.
fn py_slice(data: &[u8], lo: i64, hi: i64) -> &[u8] {
    let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
    let norm = |i: i64| {
        let i = if i < 0 { (i + len).max(0) } else { i.min(len) };
        usize::try_from(i).unwrap_or(usize::MAX)
    };
    let (a, b) = (norm(lo), norm(hi));
    data.get(a..b).unwrap_or(&[])
}

/// `int.from_bytes(entry[:4], 'little')`: up to the first four bytes, little-endian.
pub(super) fn le_u32_prefix(entry: &[u8]) -> u32 {
    entry
        .iter()
        .take(4)
        .rev()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn guid_at(b: &[u8], off: usize) -> Option<GuidLe> {
    b.get(off..off + 16)?.try_into().ok()
}

impl<'a> Ovmf<'a> {
    /// Parses the footer table and, when the table points to it, the SEV metadata.
    pub(super) fn parse(data: &'a [u8]) -> Result<Self, ReproError> {
        let size = i64::try_from(data.len()).map_err(|_| malformed("too large".to_owned()))?;
        let table = parse_footer_table(data, size)?;
        let sections = match table.get(&OVMF_SEV_META_DATA_GUID) {
            Some(entry) => parse_sev_metadata(data, size, entry)?,
            None => Vec::new(),
        };
        Ok(Self {
            data,
            table,
            sections,
        })
    }

    /// The whole image.
    pub(super) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The SEV metadata sections, in the image's order.
    pub(super) fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Whether a section of this kind is declared.
    pub(super) fn has_section(&self, kind: SectionType) -> bool {
        self.sections.iter().any(|s| s.kind == kind)
    }

    /// The first (up to) four bytes of a table entry, little-endian; `what`
    /// names it in the error when the entry is absent.
    pub(super) fn table_u32(&self, guid: &GuidLe, what: &str) -> Result<u32, ReproError> {
        self.table
            .get(guid)
            .map(|e| le_u32_prefix(e))
            .ok_or_else(|| malformed(format!("can't find {what} entry in OVMF table")))
    }
}

fn parse_footer_table(data: &[u8], size: i64) -> Result<HashMap<GuidLe, &[u8]>, ReproError> {
    let mut table = HashMap::new();
    // The table ends 32 bytes before the end of the image, with its own entry last.
    let start = size - 32 - ENTRY_HEADER_SIZE;
    let footer = py_slice(data, start, i64::MAX);
    let (Some(footer_size), Some(footer_guid)) = (u16_at(footer, 0), guid_at(footer, 2)) else {
        return Err(malformed(format!(
            "{size} bytes is too small for the footer table"
        )));
    };
    if footer_guid != OVMF_TABLE_FOOTER_GUID {
        return Ok(table);
    }
    let table_size = i64::from(footer_size) - ENTRY_HEADER_SIZE;
    if table_size < 0 {
        return Ok(table);
    }
    let mut rest = py_slice(data, start - table_size, start);
    // Entries are read from the end: header (size, GUID) after the data.
    while rest.len() >= 18 {
        let hdr = rest.len() - 18;
        let (Some(entry_size), Some(guid)) = (u16_at(rest, hdr), guid_at(rest, hdr + 2)) else {
            break;
        };
        let entry_size = i64::from(entry_size);
        if entry_size < ENTRY_HEADER_SIZE {
            return Err(malformed(format!(
                "footer table entry of size {entry_size}"
            )));
        }
        table.insert(guid, py_slice(rest, -entry_size, -ENTRY_HEADER_SIZE));
        rest = py_slice(rest, 0, -entry_size);
    }
    Ok(table)
}

fn parse_sev_metadata(data: &[u8], size: i64, entry: &[u8]) -> Result<Vec<Section>, ReproError> {
    let start = size - i64::from(le_u32_prefix(entry));
    let start = usize::try_from(start)
        .map_err(|_| malformed("the SEV metadata offset points before the image".to_owned()))?;
    let header = data
        .get(start..start + METADATA_HEADER_SIZE)
        .ok_or_else(|| malformed("the SEV metadata header lies outside the image".to_owned()))?;
    if header.get(..4) != Some(b"ASEV".as_slice()) {
        return Err(malformed("wrong SEV metadata signature".to_owned()));
    }
    let (Some(hsize), Some(version), Some(count)) =
        (u32_at(header, 4), u32_at(header, 8), u32_at(header, 12))
    else {
        return Err(malformed("short SEV metadata header".to_owned()));
    };
    if version != 1 {
        return Err(malformed(format!("SEV metadata version {version}")));
    }
    let start = start as i64;
    let items = py_slice(
        data,
        start + METADATA_HEADER_SIZE as i64,
        start + i64::from(hsize),
    );
    let mut sections = Vec::new();
    for i in 0..count as usize {
        let off = i * SECTION_DESC_SIZE;
        let (Some(gpa), Some(size), Some(kind)) = (
            u32_at(items, off),
            u32_at(items, off + 4),
            u32_at(items, off + 8),
        ) else {
            return Err(malformed(format!(
                "SEV metadata declares {count} sections; its {hsize} bytes hold fewer"
            )));
        };
        sections.push(Section {
            gpa,
            size,
            kind: SectionType::from_u32(kind)?,
        });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_le_swaps_the_first_three_fields() {
        assert_eq!(
            guid_le("96b582de-1fb2-45f7-baea-a366c55a082d"),
            [
                0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a,
                0x08, 0x2d
            ]
        );
    }

    #[test]
    fn py_slice_follows_python() {
        let d = b"abcdef";
        assert_eq!(py_slice(d, -2, i64::MAX), b"ef");
        assert_eq!(py_slice(d, -10, 2), b"ab");
        assert_eq!(py_slice(d, 4, 2), b"");
        assert_eq!(py_slice(d, 0, -4), b"ab");
        assert_eq!(py_slice(d, 0, -10), b"");
        assert_eq!(py_slice(d, -20, -4), b"ab");
    }

    #[test]
    fn le_u32_prefix_reads_short_entries() {
        assert_eq!(le_u32_prefix(&[]), 0);
        assert_eq!(le_u32_prefix(&[0x04, 0x80]), 0x8004);
        assert_eq!(le_u32_prefix(&[1, 2, 3, 4, 5]), 0x0403_0201);
    }
}
