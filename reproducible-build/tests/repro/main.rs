//! veil-repro's integration tests, one binary: a module per former test binary.
//! One binary links the crate and its dependencies once.

mod cli;
mod dockerfile;
mod elf_diff;
mod image_cli;
mod initrd;
mod manifest;
mod reproducible;
mod snp_measure;
mod tdx_measure;
