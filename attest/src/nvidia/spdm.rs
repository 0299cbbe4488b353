//! The SPDM 1.1 GET_MEASUREMENTS request and MEASUREMENTS response an NVIDIA Hopper GPU
//! returns as its attestation report, and NVIDIA's opaque data inside it.
//!
//! Layout (DMTF DSP0274 1.1, little-endian lengths):
//!
//! ```text
//! request  (37 bytes): version 0x11, code 0xE0, param1 (bit 0: signature wanted),
//!                      param2 (0xFF: all measurements), nonce[32], slot id
//! response:            version 0x11, code 0x60, param1, param2 (slot id),
//!                      number of blocks (1), record length (3), record,
//!                      nonce[32], opaque length (2), opaque data, signature[96]
//! measurement block:   index (1), specification (1: DMTF), size (2),
//!                      DMTF value type (1), value size (2), value
//! opaque data:         NVIDIA fields, each type (2), size (2), value
//! ```
//!
//! The signature (ECDSA P-384, `r || s` big-endian) covers SHA-384 of every byte before it:
//! the request and the response up to the signature (SPDM 1.1's L1/L2 transcript). Some
//! drivers append zero bytes after the signature (the 580.95.05 vector has one); they are
//! outside the signed transcript, counted in [`SpdmReport::trailing`] and reported, and any
//! non-zero byte there is refused. Written here rather than taken from a crate because no
//! maintained Rust SPDM crate parses a captured transcript without the I/O stack around it.

use crate::VerifyError;

/// SPDM version byte Hopper GPUs speak (1.1).
pub const SPDM_VERSION: u8 = 0x11;
/// Size of the GET_MEASUREMENTS request with a nonce (SPDM 1.1).
pub const REQUEST_LEN: usize = 37;
/// Nonce size in SPDM.
pub const NONCE_LEN: usize = 32;
/// ECDSA P-384 signature size (`r || s`).
pub const SIGNATURE_LEN: usize = 96;
/// Largest report accepted (real ones are about 4 KiB).
pub const MAX_REPORT_LEN: usize = 64 << 10;
/// Most zero bytes accepted after the signature.
pub const MAX_TRAILING: usize = 16;

const GET_MEASUREMENTS: u8 = 0xE0;
const MEASUREMENTS: u8 = 0x60;
const DMTF_SPEC: u8 = 0x01;

/// NVIDIA opaque data field types (from NVIDIA's verifier, `OPAQUE_FIELD_ID_*`).
mod field {
    pub(super) const DRIVER_VERSION: u16 = 3;
    pub(super) const VBIOS_VERSION: u16 = 6;
    pub(super) const FWID: u16 = 20;
}

/// One DMTF measurement block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// Measurement index (1-based, as NVIDIA's reference manifests number them).
    pub index: u8,
    /// DMTF measurement value type (bit 7: raw bit stream instead of a digest).
    pub value_type: u8,
    /// The value (a SHA-384 digest on Hopper).
    pub value: Vec<u8>,
}

/// One field of NVIDIA's opaque data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueField {
    /// Field type.
    pub kind: u16,
    /// Field value.
    pub value: Vec<u8>,
}

/// A parsed GPU attestation report (request and response). Parsing checks structure only;
/// [`super::verify_gpu`] checks what the bytes mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpdmReport {
    /// The requester's nonce (request bytes 4..36): what the verifier chose.
    pub nonce: [u8; NONCE_LEN],
    /// The responder's nonce.
    pub responder_nonce: [u8; NONCE_LEN],
    /// Whether the request asked for a signature (param1 bit 0).
    pub signature_requested: bool,
    /// Request param2: 0xFF for all measurements.
    pub measurement_operation: u8,
    /// Measurement blocks, in report order.
    pub blocks: Vec<MeasurementBlock>,
    /// NVIDIA opaque data fields, in report order.
    pub opaque: Vec<OpaqueField>,
    /// The signature (`r || s`).
    pub signature: [u8; SIGNATURE_LEN],
    /// Length of the signed transcript (everything before the signature).
    pub signed_len: usize,
    /// Zero bytes after the signature (not signed, ignored).
    pub trailing: usize,
}

impl SpdmReport {
    /// The field of this type, if present (the first one).
    pub fn opaque_field(&self, kind: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|f| f.kind == kind)
            .map(|f| f.value.as_slice())
    }

    /// The driver version (`550.90.07`), from the NUL-terminated ASCII opaque field.
    pub fn driver_version(&self) -> Option<String> {
        let v = self.opaque_field(field::DRIVER_VERSION)?;
        let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
        let s = std::str::from_utf8(&v[..end]).ok()?;
        s.chars()
            .all(|c| c.is_ascii_graphic())
            .then(|| s.to_owned())
    }

    /// The VBIOS version as NVIDIA prints it (`96.00.9f.00.01`): bytes 3, 2, 1, 0, 4.
    pub fn vbios_version(&self) -> Option<String> {
        let v = self.opaque_field(field::VBIOS_VERSION)?;
        let b = v.get(..5)?;
        Some(format!(
            "{:02x}.{:02x}.{:02x}.{:02x}.{:02x}",
            b[3], b[2], b[1], b[0], b[4]
        ))
    }

    /// The firmware id (the GSP FMC's SHA-384) the report claims; the leaf certificate
    /// must carry the same.
    pub fn fwid(&self) -> Option<&[u8]> {
        self.opaque_field(field::FWID)
    }
}

/// Reads a report given as raw bytes or as hex text (whitespace ignored).
pub fn decode_report_file(bytes: &[u8]) -> Result<Vec<u8>, VerifyError> {
    if bytes.len() > 2 * MAX_REPORT_LEN + 64 {
        return Err(VerifyError::Malformed("GPU report file too large".into()));
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        return hex::decode(&text)
            .map_err(|e| VerifyError::Malformed(format!("GPU report hex: {e}")));
    }
    Ok(bytes.to_vec())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], VerifyError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(VerifyError::Malformed(format!(
                "GPU report truncated in {what} (at byte {}, {n} more needed, {} left)",
                self.pos,
                self.bytes.len() - self.pos
            )));
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, VerifyError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, VerifyError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, what: &str) -> Result<usize, VerifyError> {
        let b = self.take(3, what)?;
        Ok(usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], VerifyError> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }
}

fn malformed(msg: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(msg.into())
}

/// Parses a report: the request followed by the response. Never panics.
pub fn parse(raw: &[u8]) -> Result<SpdmReport, VerifyError> {
    if raw.len() > MAX_REPORT_LEN {
        return Err(malformed(format!(
            "GPU report is {} bytes, limit {MAX_REPORT_LEN}",
            raw.len()
        )));
    }
    let mut c = Cursor { bytes: raw, pos: 0 };
    let header = c.take(4, "request header")?;
    if header[0] != SPDM_VERSION || header[1] != GET_MEASUREMENTS {
        return Err(malformed(format!(
            "not an SPDM 1.1 GET_MEASUREMENTS request (version {:#04x}, code {:#04x})",
            header[0], header[1]
        )));
    }
    let (signature_requested, measurement_operation) = (header[2] & 1 == 1, header[3]);
    let nonce = c.array::<NONCE_LEN>("request nonce")?;
    let _slot = c.u8("request slot id")?;

    let header = c.take(4, "response header")?;
    if header[0] != SPDM_VERSION || header[1] != MEASUREMENTS {
        return Err(malformed(format!(
            "not an SPDM 1.1 MEASUREMENTS response (version {:#04x}, code {:#04x})",
            header[0], header[1]
        )));
    }
    let count = c.u8("number of blocks")?;
    let record_len = c.u24("record length")?;
    let record = c.take(record_len, "measurement record")?;
    let blocks = parse_blocks(record, count)?;
    let responder_nonce = c.array::<NONCE_LEN>("response nonce")?;
    let opaque_len = c.u16("opaque length")?;
    let opaque = parse_opaque(c.take(usize::from(opaque_len), "opaque data")?)?;
    let signed_len = c.pos;
    let signature = c.array::<SIGNATURE_LEN>("signature")?;
    let rest = &raw[c.pos..];
    if rest.len() > MAX_TRAILING || rest.iter().any(|&b| b != 0) {
        return Err(malformed(format!(
            "{} bytes after the signature (at most {MAX_TRAILING} zero bytes are accepted)",
            rest.len()
        )));
    }
    Ok(SpdmReport {
        nonce,
        responder_nonce,
        signature_requested,
        measurement_operation,
        blocks,
        opaque,
        signature,
        signed_len,
        trailing: rest.len(),
    })
}

fn parse_blocks(record: &[u8], count: u8) -> Result<Vec<MeasurementBlock>, VerifyError> {
    let mut c = Cursor {
        bytes: record,
        pos: 0,
    };
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let index = c.u8("block index")?;
        let spec = c.u8("block specification")?;
        let size = c.u16("block size")?;
        let mut m = Cursor {
            bytes: c.take(usize::from(size), "block")?,
            pos: 0,
        };
        if spec != DMTF_SPEC {
            return Err(malformed(format!(
                "measurement {index}: specification {spec:#04x}, only DMTF (0x01) is supported"
            )));
        }
        let value_type = m.u8("DMTF value type")?;
        let value_len = m.u16("DMTF value size")?;
        let value = m.take(usize::from(value_len), "DMTF value")?.to_vec();
        if m.pos != m.bytes.len() {
            return Err(malformed(format!(
                "measurement {index}: block size {size} does not match its value"
            )));
        }
        if index == 0 || index == 0xFF || blocks.iter().any(|b| b.index == index) {
            return Err(malformed(format!(
                "measurement index {index} is reserved or repeated"
            )));
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value,
        });
    }
    if c.pos != record.len() {
        return Err(malformed(format!(
            "measurement record has {} bytes after its {count} blocks",
            record.len() - c.pos
        )));
    }
    Ok(blocks)
}

fn parse_opaque(data: &[u8]) -> Result<Vec<OpaqueField>, VerifyError> {
    let mut c = Cursor {
        bytes: data,
        pos: 0,
    };
    let mut out = Vec::new();
    while c.pos < data.len() {
        let kind = c.u16("opaque field type")?;
        let len = c.u16("opaque field size")?;
        let value = c.take(usize::from(len), "opaque field")?.to_vec();
        if out.iter().any(|f: &OpaqueField| f.kind == kind) {
            return Err(malformed(format!("opaque field {kind} repeated")));
        }
        out.push(OpaqueField { kind, value });
    }
    Ok(out)
}
