//! `diff` points at the section that differs, on a real ELF (this test binary).

use object::{Object, ObjectSection};
use veil_repro::ReproError;
use veil_repro::elf_diff::{SectionDiff, diff_sections, section_digests};

fn this_binary() -> Vec<u8> {
    std::fs::read(std::env::current_exe().expect("test exe path")).expect("read test exe")
}

#[test]
fn identical_files_have_no_section_diff() {
    let elf = this_binary();
    assert!(diff_sections(&elf, &elf).expect("parses").is_empty());
    let names: Vec<String> = section_digests(&elf)
        .expect("parses")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.iter().any(|n| n == ".text"), "{names:?}");
}

#[test]
fn one_changed_byte_is_located_in_its_section() {
    let elf = this_binary();
    let (start, _) = object::File::parse(elf.as_slice())
        .expect("ELF")
        .section_by_name(".rodata")
        .expect("has .rodata")
        .file_range()
        .expect("has file data");
    let mut changed = elf.clone();
    changed[start as usize + 7] ^= 0x80;
    let diffs = diff_sections(&elf, &changed).expect("parses");
    assert_eq!(
        diffs,
        vec![SectionDiff::Differs {
            name: ".rodata".to_owned(),
            size_a: diffs_size(&elf, ".rodata"),
            size_b: diffs_size(&elf, ".rodata"),
        }]
    );
}

fn diffs_size(elf: &[u8], name: &str) -> u64 {
    section_digests(elf)
        .expect("parses")
        .into_iter()
        .find(|s| s.name == name)
        .expect("section present")
        .size
}

#[test]
fn rejects_a_file_that_is_not_elf() {
    assert!(matches!(
        section_digests(b"MZ this is not an ELF file"),
        Err(ReproError::NotElf(_))
    ));
}
