//! The PE/COFF (Authenticode) image hash, as UEFI firmware measures an EFI
//! application before starting it (EV_EFI_BOOT_SERVICES_APPLICATION).
//!
//! Microsoft PE/COFF specification, "Calculating the PE Image Hash", as EDK2's
//! `DxeTpm2MeasureBootLib` implements it:
//! 1. the headers up to the `CheckSum` field, skipping its 4 bytes;
//! 2. the rest of the headers up to `SizeOfHeaders`, skipping the 8-byte
//!    Certificate Table data directory entry (when the image has one);
//! 3. each section's raw data, in ascending `PointerToRawData` order;
//! 4. any bytes after the last section, except the attribute certificate table.

use sha2::{Digest, Sha384};

use crate::ReproError;

const PE32_MAGIC: u16 = 0x10b;
const PE32PLUS_MAGIC: u16 = 0x20b;
const SECURITY_DIRECTORY: u32 = 4;

fn bad(why: &str) -> ReproError {
    ReproError::NotPeImage(why.to_owned())
}
fn u16_at(b: &[u8], off: usize) -> Result<u16, ReproError> {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| bad("truncated header"))
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, ReproError> {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| bad("truncated header"))
}
fn range(b: &[u8], start: usize, end: usize) -> Result<&[u8], ReproError> {
    b.get(start..end)
        .ok_or_else(|| bad("range outside the file"))
}

/// The Authenticode SHA-384 of a PE/COFF image.
pub fn authenticode_sha384(image: &[u8]) -> Result<[u8; 48], ReproError> {
    if image.get(..2) != Some(b"MZ".as_slice()) {
        return Err(bad("no MZ signature"));
    }
    let pe = u32_at(image, 0x3c)? as usize;
    if image.get(pe..pe + 4) != Some(b"PE\0\0".as_slice()) {
        return Err(bad("no PE signature"));
    }
    let coff = pe + 4;
    let sections = usize::from(u16_at(image, coff + 2)?);
    let opt_size = usize::from(u16_at(image, coff + 16)?);
    let opt = coff + 20;
    let (checksum, dirs_count_at, dirs_at) = match u16_at(image, opt)? {
        PE32_MAGIC => (opt + 64, opt + 92, opt + 96),
        PE32PLUS_MAGIC => (opt + 64, opt + 108, opt + 112),
        _ => return Err(bad("unknown optional header magic")),
    };
    let size_of_headers = u32_at(image, opt + 60)? as usize;
    let dirs = u32_at(image, dirs_count_at)?;
    let (cert_entry, cert_size) = if dirs > SECURITY_DIRECTORY {
        let at = dirs_at + 8 * SECURITY_DIRECTORY as usize;
        (Some(at), u32_at(image, at + 4)? as usize)
    } else {
        (None, 0)
    };

    let mut h = Sha384::new();
    h.update(range(image, 0, checksum)?);
    match cert_entry {
        Some(at) => {
            h.update(range(image, checksum + 4, at)?);
            h.update(range(image, at + 8, size_of_headers)?);
        }
        None => h.update(range(image, checksum + 4, size_of_headers)?),
    }

    let table = opt + opt_size;
    let mut raw: Vec<(usize, usize)> = Vec::with_capacity(sections.min(96));
    for i in 0..sections {
        let s = table + 40 * i;
        let size = u32_at(image, s + 16)? as usize;
        let ptr = u32_at(image, s + 20)? as usize;
        if size > 0 {
            raw.push((ptr, size));
        }
    }
    raw.sort_unstable();
    let mut hashed = size_of_headers;
    for (ptr, size) in raw {
        h.update(range(image, ptr, ptr + size)?);
        hashed += size;
    }
    let end = image
        .len()
        .checked_sub(cert_size)
        .ok_or_else(|| bad("certificate table larger than the file"))?;
    if end > hashed {
        h.update(range(image, hashed, end)?);
    }
    Ok(h.finalize().into())
}
