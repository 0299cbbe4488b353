//! The SEV-SNP certificate table (GHCB extended guest request; configfs-tsm `auxblob`):
//! certificates and AMD's CRL, each under its GUID, as entries of `{ guid[16], offset: u32 LE, length: u32 LE }` ended by an all-zero entry,
//! offsets counted from the start of the table.
//!
//! `sev` parses this table through raw pointers; the bytes come from the host, which is
//! untrusted, so Veil parses them with bounds checks.

use crate::{SnpCerts, VerifyError};

/// Largest table accepted (the kernel hands at most a few pages).
pub const MAX_CERT_TABLE_LEN: usize = 64 << 10;
const ENTRY_LEN: usize = 24;
const MAX_ENTRIES: usize = 32;

const ARK: [u8; 16] = guid("c0b406a4a80349529743 3fb6014cd0ae");
const ASK: [u8; 16] = guid("4ab7b379bbac4fe4a02f 05aef327c782");
const VCEK: [u8; 16] = guid("63da758de6644564adc5 f4b93be8accd");
const VLEK: [u8; 16] = guid("a8074bc2a25a483eaae6 39c045a0b8a1");
const CRL: [u8; 16] = guid("92f81bc358114d3d97ff d19f88dc67ea");

const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if b[i] != b' ' {
            let v = match b[i] {
                b'0'..=b'9' => b[i] - b'0',
                b'a'..=b'f' => b[i] - b'a' + 10,
                _ => panic!("bad hex"),
            };
            out[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
            n += 1;
        }
        i += 1;
    }
    out
}

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertTableEntry {
    /// The entry's GUID, in textual byte order.
    pub guid: [u8; 16],
    /// The certificate (or CRL, or other blob) bytes.
    pub data: Vec<u8>,
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a certificate table. Never panics.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<CertTableEntry>, VerifyError> {
    let bad = |m: String| VerifyError::Malformed(format!("SNP certificate table: {m}"));
    if table.len() > MAX_CERT_TABLE_LEN {
        return Err(bad(format!(
            "{} bytes, limit {MAX_CERT_TABLE_LEN}",
            table.len()
        )));
    }
    let mut out = Vec::new();
    for i in 0..=MAX_ENTRIES {
        let at = i * ENTRY_LEN;
        let entry = table
            .get(at..at + ENTRY_LEN)
            .ok_or_else(|| bad(format!("entry {i} runs past the end (no terminator)")))?;
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&entry[..16]);
        let offset = read_u32(entry, 16).unwrap_or(0) as usize;
        let length = read_u32(entry, 20).unwrap_or(0) as usize;
        if guid == [0; 16] {
            return Ok(out);
        }
        if i == MAX_ENTRIES {
            break;
        }
        let data = offset
            .checked_add(length)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| {
                bad(format!(
                    "entry {i} points outside the table ({offset}+{length})"
                ))
            })?;
        out.push(CertTableEntry {
            guid,
            data: data.to_vec(),
        });
    }
    Err(bad(format!("more than {MAX_ENTRIES} entries")))
}

impl SnpCerts {
    /// The VCEK/VLEK/ASK/ARK and the CRL of a certificate table (other entries are ignored).
    pub fn from_cert_table(table: &[u8]) -> Result<Self, VerifyError> {
        let mut out = Self::default();
        for e in parse_cert_table(table)? {
            let slot = match e.guid {
                ARK => &mut out.ark,
                ASK => &mut out.ask,
                VCEK => &mut out.vcek,
                VLEK => &mut out.vlek,
                CRL => &mut out.crl,
                _ => continue,
            };
            if slot.is_some() {
                return Err(VerifyError::Malformed(
                    "SNP certificate table: duplicate entry".into(),
                ));
            }
            *slot = Some(e.data);
        }
        Ok(out)
    }

    /// Encodes certificates as a table (the inverse of [`SnpCerts::from_cert_table`]).
    pub fn to_cert_table(&self) -> Vec<u8> {
        let entries: Vec<([u8; 16], &Vec<u8>)> = [
            (VCEK, &self.vcek),
            (VLEK, &self.vlek),
            (ASK, &self.ask),
            (ARK, &self.ark),
            (CRL, &self.crl),
        ]
        .into_iter()
        .filter_map(|(g, d)| d.as_ref().map(|d| (g, d)))
        .collect();
        let header = (entries.len() + 1) * ENTRY_LEN;
        let mut table = vec![0u8; header];
        let mut offset = header;
        for (i, (g, d)) in entries.iter().enumerate() {
            let e = &mut table[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
            e[..16].copy_from_slice(g);
            e[16..20].copy_from_slice(&(offset as u32).to_le_bytes());
            e[20..24].copy_from_slice(&(d.len() as u32).to_le_bytes());
            offset += d.len();
        }
        for (_, d) in &entries {
            table.extend_from_slice(d);
        }
        table
    }
}
