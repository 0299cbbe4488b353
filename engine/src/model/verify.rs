//! Checks a file's bytes against its manifest entry: size, SHA-256, and format magic.
//!
//! Sans-IO: the caller reads the bytes once and loads exactly the bytes verified here.

use sha2::{Digest, Sha256};

use super::manifest::{FileKind, ManifestFile};
use crate::error::{Error, Result};

/// GGUF files start with these four bytes.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Verifies `bytes` as the content of `file`: size first (cheap), then SHA-256, then that
/// the content really is the format its name claims (a pickle renamed `.gguf` is refused).
pub fn verify_file(file: &ManifestFile, bytes: &[u8]) -> Result<FileKind> {
    let kind = FileKind::of(&file.name)?;
    let got_size = bytes.len() as u64;
    if got_size != file.size {
        return Err(Error::SizeMismatch {
            name: file.name.clone(),
            expected: file.size,
            got: got_size,
        });
    }
    let got = hex::encode(Sha256::digest(bytes));
    if got != file.sha256 {
        return Err(Error::HashMismatch {
            name: file.name.clone(),
            expected: file.sha256.clone(),
            got,
        });
    }
    check_magic(&file.name, kind, bytes)?;
    Ok(kind)
}

fn check_magic(name: &str, kind: FileKind, bytes: &[u8]) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::UnsupportedFormat {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    match kind {
        // A safetensors file starts with its header's length (8 bytes, little-endian), so
        // its first byte may be anything, 0x80 included: the header itself is checked.
        FileKind::Safetensors => {
            let header = bytes
                .get(..8)
                .and_then(|l| <[u8; 8]>::try_from(l).ok())
                .map(u64::from_le_bytes)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| bytes.get(8..8usize.checked_add(len)?));
            let is_object = header.is_some_and(|h| {
                serde_json::from_slice::<serde_json::Value>(h).is_ok_and(|v| v.is_object())
            });
            return if is_object {
                Ok(())
            } else {
                refuse("no safetensors header")
            };
        }
        // Pickle protocol 2+ starts with 0x80 <version>; torch's zip archives with "PK".
        _ if bytes.first() == Some(&0x80) || bytes.starts_with(b"PK\x03\x04") => {
            return refuse("content is a pickle or a zip archive");
        }
        _ => {}
    }
    match kind {
        FileKind::Gguf if !bytes.starts_with(GGUF_MAGIC) => refuse("no GGUF magic"),
        FileKind::Json if serde_json::from_slice::<serde_json::Value>(bytes).is_err() => {
            refuse("not JSON")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, bytes: &[u8]) -> ManifestFile {
        ManifestFile {
            name: name.to_owned(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }

    #[test]
    fn accepts_matching_gguf() {
        let bytes = b"GGUF\x03\x00\x00\x00rest";
        assert_eq!(
            verify_file(&entry("m.gguf", bytes), bytes).expect("valid"),
            FileKind::Gguf
        );
    }

    #[test]
    fn rejects_wrong_hash() {
        let bytes = b"GGUF\x03\x00\x00\x00rest";
        let mut e = entry("m.gguf", bytes);
        let tampered = b"GGUF\x03\x00\x00\x00resT";
        let err = verify_file(&e, tampered).expect_err("tampered");
        assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
        e.size += 1;
        let err = verify_file(&e, bytes).expect_err("size");
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    }

    #[test]
    fn rejects_pickle_renamed_to_gguf() {
        let pickle = b"\x80\x04\x95rest-of-pickle";
        let err = verify_file(&entry("m.gguf", pickle), pickle).expect_err("pickle");
        assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
        let zip = b"PK\x03\x04torch-archive";
        let err = verify_file(&entry("m.safetensors", zip), zip).expect_err("zip");
        assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
    }

    #[test]
    fn rejects_gguf_without_magic() {
        let bytes = b"GGML-old-format";
        let err = verify_file(&entry("m.gguf", bytes), bytes).expect_err("magic");
        assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
    }

    #[test]
    fn accepts_safetensors_header_and_rejects_garbage() {
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        verify_file(&entry("m.safetensors", &st), &st).expect("valid header");
        let bad = b"\xff\xff\xff\xff\xff\xff\xff\xff{}";
        assert!(verify_file(&entry("m.safetensors", bad), bad).is_err());
        // A header of 0x80 (or 0x180, …) bytes starts with 0x80, like a pickle: still valid.
        let mut st = 0x80u64.to_le_bytes().to_vec();
        st.extend_from_slice(format!("{{{:126}}}", "").as_bytes());
        st.extend_from_slice(b"tensor bytes");
        verify_file(&entry("m.safetensors", &st), &st).expect("header length 0x80");
        // A header that is not a JSON object, or runs past the end, is refused.
        let mut st = 4u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"[1]");
        let err = verify_file(&entry("m.safetensors", &st), &st).expect_err("short");
        assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
    }
}
