//! Where two builds differ: section-level SHA-256 of two ELF files.
//!
//! When two rebuilds of the same commit give different bytes, the first
//! question is *which part* differs: `.text` (codegen), `.rodata` (embedded
//! paths or timestamps), `.note.gnu.build-id` (follows any other difference),
//! or only the section layout. diffoscope answers in more detail when it is
//! installed; this answer needs nothing but the `object` crate.

use object::{Object, ObjectSection};
use sha2::{Digest, Sha256};

use crate::ReproError;

/// One section of an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDigest {
    /// The section name (`.text`, `.rodata`, ...).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its file bytes (all zeros for sections without file data, like `.bss`).
    pub sha256: [u8; 32],
}

/// How one section compares between two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionDiff {
    /// Present in both with different contents or size.
    Differs {
        /// The section name.
        name: String,
        /// Size in the first file.
        size_a: u64,
        /// Size in the second file.
        size_b: u64,
    },
    /// Present only in the first file.
    OnlyInA(String),
    /// Present only in the second file.
    OnlyInB(String),
}

/// The per-section SHA-256 of an ELF file, in section-header order.
pub fn section_digests(elf: &[u8]) -> Result<Vec<SectionDigest>, ReproError> {
    let file = object::File::parse(elf).map_err(|e| ReproError::NotElf(e.to_string()))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(ReproError::NotElf(format!("{:?}", file.format())));
    }
    let mut out = Vec::new();
    for section in file.sections() {
        let name = section
            .name()
            .map_err(|e| ReproError::NotElf(e.to_string()))?
            .to_owned();
        let data = section
            .data()
            .map_err(|e| ReproError::NotElf(e.to_string()))?;
        let sha256 = if data.is_empty() {
            [0; 32]
        } else {
            Sha256::digest(data).into()
        };
        out.push(SectionDigest {
            name,
            size: section.size(),
            sha256,
        });
    }
    Ok(out)
}

/// The sections whose bytes differ between two ELF files, matched by name
/// (the first section of a name wins when names repeat). Empty when every
/// section is identical; the files may then still differ in headers or layout.
pub fn diff_sections(a: &[u8], b: &[u8]) -> Result<Vec<SectionDiff>, ReproError> {
    let a = section_digests(a)?;
    let b = section_digests(b)?;
    let find = |list: &[SectionDigest], name: &str| list.iter().find(|s| s.name == name).cloned();
    let mut out = Vec::new();
    for sa in &a {
        match find(&b, &sa.name) {
            Some(sb) if sb.sha256 == sa.sha256 && sb.size == sa.size => {}
            Some(sb) => out.push(SectionDiff::Differs {
                name: sa.name.clone(),
                size_a: sa.size,
                size_b: sb.size,
            }),
            None => out.push(SectionDiff::OnlyInA(sa.name.clone())),
        }
    }
    for sb in &b {
        if find(&a, &sb.name).is_none() {
            out.push(SectionDiff::OnlyInB(sb.name.clone()));
        }
    }
    Ok(out)
}
