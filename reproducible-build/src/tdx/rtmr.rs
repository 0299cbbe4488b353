//! RTMR1 and RTMR2 after a TDVF (OVMF) direct kernel boot.
//!
//! A runtime measurement register starts at 48 zero bytes and is extended with
//! `RTMR = SHA-384(RTMR || digest)`. TDVF maps TPM PCRs to RTMRs (PCR 1,7 →
//! RTMR0; PCR 2–6 → RTMR1; PCR 8–15 → RTMR2). The modelled flow, in event order:
//!
//! RTMR1 (PCR 4 and 5):
//! 1. the kernel as EV_EFI_BOOT_SERVICES_APPLICATION: its Authenticode SHA-384
//!    (OVMF `QemuLoadKernelImage` → `LoadImage`, measured before ReadyToBoot);
//! 2. EV_EFI_ACTION `"Calling EFI Application from Boot Option"` (ReadyToBoot);
//! 3. EV_SEPARATOR, digest of `00 00 00 00`;
//! 4. EV_EFI_ACTION `"Exit Boot Services Invocation"`;
//! 5. EV_EFI_ACTION `"Exit Boot Services Returned with Success"`.
//!
//! RTMR2 (PCR 9, measured by the Linux EFI stub):
//! 1. the load options: the command line as UTF-16LE with a terminating NUL;
//!    OVMF appends `" initrd=initrd"` when an initrd is given; no event when the
//!    resulting command line is empty;
//! 2. the initrd bytes (SHA-384), when an initrd is given.
//!
//! Not modelled: RTMR0 (TD HOB, ACPI tables, UEFI variables: they depend on the
//! VMM's memory size and configuration), Secure Boot (shim/grub/UKI events),
//! and QEMU's edits to the bzImage setup header before OVMF measures it — pass
//! `kernel` as the firmware loads it.

use sha2::{Digest, Sha384};

use super::authenticode::authenticode_sha384;
use crate::ReproError;

/// The EV_EFI_ACTION string logged at ReadyToBoot.
pub const CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
/// The EV_EFI_ACTION string logged when ExitBootServices is called.
pub const EXIT_BOOT_SERVICES_INVOCATION: &str = "Exit Boot Services Invocation";
/// The EV_EFI_ACTION string logged when ExitBootServices succeeds.
pub const EXIT_BOOT_SERVICES_SUCCESS: &str = "Exit Boot Services Returned with Success";
/// The suffix OVMF adds to the command line when an initrd is loaded.
pub const INITRD_SUFFIX: &str = " initrd=initrd";

/// A 48-byte runtime measurement register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtmr(pub [u8; 48]);

impl Default for Rtmr {
    fn default() -> Self {
        Self([0; 48])
    }
}

impl Rtmr {
    /// `RTMR = SHA-384(RTMR || digest)`.
    pub fn extend(&mut self, digest: &[u8; 48]) {
        let mut h = Sha384::new();
        h.update(self.0);
        h.update(digest);
        self.0 = h.finalize().into();
    }

    /// Replays a sequence of event digests from zero.
    pub fn replay(digests: &[[u8; 48]]) -> Self {
        let mut r = Self::default();
        for d in digests {
            r.extend(d);
        }
        r
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

fn sha384(data: &[u8]) -> [u8; 48] {
    Sha384::digest(data).into()
}

/// The load options as the kernel receives them: UTF-16LE with a NUL.
pub fn load_options_utf16(cmdline: &str) -> Vec<u8> {
    cmdline
        .encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The RTMR1 event digests for a direct boot of `kernel` (a PE/COFF bzImage).
pub fn rtmr1_events(kernel: &[u8]) -> Result<Vec<[u8; 48]>, ReproError> {
    Ok(vec![
        authenticode_sha384(kernel)?,
        sha384(CALLING_EFI_APPLICATION.as_bytes()),
        sha384(&[0, 0, 0, 0]),
        sha384(EXIT_BOOT_SERVICES_INVOCATION.as_bytes()),
        sha384(EXIT_BOOT_SERVICES_SUCCESS.as_bytes()),
    ])
}

/// The RTMR2 event digests for a command line and an optional initrd.
pub fn rtmr2_events(append: &str, initrd: Option<&[u8]>) -> Vec<[u8; 48]> {
    let mut cmdline = append.to_owned();
    if initrd.is_some() {
        cmdline.push_str(INITRD_SUFFIX);
    }
    let mut events = Vec::new();
    if !cmdline.is_empty() {
        events.push(sha384(&load_options_utf16(&cmdline)));
    }
    if let Some(i) = initrd {
        events.push(sha384(i));
    }
    events
}
