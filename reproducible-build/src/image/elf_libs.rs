//! What a dynamically linked program needs at run time: its ELF interpreter (`PT_INTERP`)
//! and its `DT_NEEDED` libraries. The image copies them into the initrd.

use object::read::elf::{Dyn, ElfFile64, ProgramHeader};

use crate::ReproError;

/// The interpreter path (absent for a static program) and the needed library names.
pub fn dynamic_deps(elf: &[u8]) -> Result<(Option<String>, Vec<String>), ReproError> {
    let err = |e: object::Error| ReproError::NotElf(e.to_string());
    let file = ElfFile64::<object::Endianness>::parse(elf).map_err(err)?;
    let endian = file.endian();
    let interp = file
        .elf_program_headers()
        .iter()
        .find_map(|ph| ph.interpreter(endian, elf).ok().flatten())
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let sections = file.elf_section_table();
    let mut needed = Vec::new();
    if let Some((dyns, link)) = sections.dynamic(endian, elf).map_err(err)? {
        let strings = sections.strings(endian, elf, link).map_err(err)?;
        for d in dyns {
            if d.tag32(endian) == Some(object::elf::DT_NEEDED) {
                let name = d.string(endian, strings).map_err(err)?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok((interp, needed))
}
