//! QUIC variable-length integers (RFC 9000 §16) and a bounds-checked byte cursor.

use crate::Error;

/// The largest value a QUIC varint can hold.
pub(crate) const VARINT_MAX: u64 = (1 << 62) - 1;

/// Appends the shortest QUIC varint encoding of `v` to `out`.
///
/// Values above [`VARINT_MAX`] are not representable; callers only pass lengths that
/// are capped far below it, so this saturates rather than panics.
pub(crate) fn write_varint(v: u64, out: &mut Vec<u8>) {
    let v = v.min(VARINT_MAX);
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// How many bytes [`write_varint`] writes for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    match v.min(VARINT_MAX) {
        v if v < 1 << 6 => 1,
        v if v < 1 << 14 => 2,
        v if v < 1 << 30 => 4,
        _ => 8,
    }
}

/// Decodes a varint at the start of `buf`: `Ok(None)` when `buf` is too short to
/// hold all of it, otherwise the value and the number of bytes it took.
pub(crate) fn peek_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in bytes.iter().skip(1) {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// A read cursor over a byte slice; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_rfc9000_examples() {
        // RFC 9000 Appendix A.1 examples.
        for (hex_str, value) in [
            ("c2197c5eff14e88c", 151_288_809_941_952_652u64),
            ("9d7f3e7d", 494_878_333),
            ("7bbd", 15_293),
            ("25", 37),
        ] {
            let bytes: Vec<u8> = (0..hex_str.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex_str[i..i + 2], 16).expect("hex"))
                .collect();
            assert_eq!(peek_varint(&bytes), Some((value, bytes.len())));
            let mut out = Vec::new();
            write_varint(value, &mut out);
            assert_eq!(out, bytes);
        }
        // The two-byte encoding of 37 also decodes (non-minimal forms are valid).
        assert_eq!(peek_varint(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn varint_needs_all_its_bytes() {
        assert_eq!(peek_varint(&[]), None);
        assert_eq!(peek_varint(&[0x9d, 0x7f, 0x3e]), None);
    }
}
