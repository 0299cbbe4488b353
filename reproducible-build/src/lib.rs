//! Veil reproducible build: from source to the numbers a TEE attests.
//!
//! A third party rebuilds `veil-server` deterministically ([`BuildPlan`]),
//! packs it into a deterministic initrd ([`initrd`]), computes the launch
//! measurements a correct deployment produces ([`snp`], [`tdx`]), and checks
//! them against the signed release manifest ([`manifest`]) that clients turn
//! into their verification policy. Everything here is a function over bytes
//! (SNP also has a wrapper over paths, [`snp::launch_digest`]); the
//! `veil-repro` binary does the file and process I/O.
//!
//! ```no_run
//! use veil_repro::manifest::SignedManifest;
//! use veil_repro::tdx::{PageAddOrder, TdxInputs, measure};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (ovmf, kernel, release, key): (Vec<u8>, Vec<u8>, Vec<u8>, [u8; 32]) = Default::default();
//! let m = measure(&TdxInputs {
//!     tdvf: &ovmf,
//!     kernel: Some(&kernel),
//!     initrd: None,
//!     append: "console=ttyS0",
//!     order: PageAddOrder::SinglePass,
//! })?;
//! let pubkey = ed25519_dalek::VerifyingKey::from_bytes(&key)?;
//! let signed = SignedManifest::verify(&release, &pubkey)?;
//! let tdx = signed.manifest.reference_values.tdx.expect("release supports TDX");
//! assert_eq!(tdx.mrtd, hex::encode(m.mrtd));
//! # Ok(()) }
//! ```

mod build_plan;
pub mod elf_diff;
mod error;
pub mod image;
pub mod initrd;
pub mod manifest;
pub mod snp;
pub mod tdx;

pub use build_plan::{
    BuildPlan, CommandSpec, DEFAULT_PACKAGE, REMAPPED_CARGO_HOME, REMAPPED_SOURCE,
    REMAPPED_TARGET_DIR, SCRUBBED_ENV, TARGET_CPU, TARGET_TRIPLE,
};
pub use error::ReproError;
