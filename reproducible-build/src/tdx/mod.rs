//! Intel TDX reference values: MRTD from a TDVF image, RTMR1/RTMR2 for a
//! direct kernel boot. See `docs/reproducible-build.md` for the boot flow and
//! its limits; [`rtmr`] lists the modelled events.

mod authenticode;
mod mrtd;
mod rtmr;
mod tdvf;

pub use authenticode::authenticode_sha384;
pub use mrtd::{PageAddOrder, mr_extend_block, mrtd, page_add_block};
pub use rtmr::{
    CALLING_EFI_APPLICATION, EXIT_BOOT_SERVICES_INVOCATION, EXIT_BOOT_SERVICES_SUCCESS,
    INITRD_SUFFIX, Rtmr, load_options_utf16, rtmr1_events, rtmr2_events,
};
pub use tdvf::{
    ATTR_MR_EXTEND, ATTR_PAGE_AUG, SectionType, TDX_METADATA_OFFSET_GUID, TdvfSection,
    footer_entry, parse_tdvf_sections,
};

use crate::ReproError;

/// TDX reference values of one boot configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdxMeasurements {
    /// MRTD (firmware).
    pub mrtd: [u8; 48],
    /// RTMR1 (kernel, boot actions); `None` without a kernel.
    pub rtmr1: Option<Rtmr>,
    /// RTMR2 (command line, initrd); `None` without a kernel.
    pub rtmr2: Option<Rtmr>,
}

/// The inputs of a TDX measurement, as bytes.
#[derive(Debug, Clone, Copy)]
pub struct TdxInputs<'a> {
    /// The unified TDVF/OVMF image (`OVMF.fd`).
    pub tdvf: &'a [u8],
    /// The kernel as the firmware loads it (PE/COFF bzImage).
    pub kernel: Option<&'a [u8]>,
    /// The initrd.
    pub initrd: Option<&'a [u8]>,
    /// The kernel command line.
    pub append: &'a str,
    /// PAGE.ADD / MR.EXTEND order of the VMM.
    pub order: PageAddOrder,
}

/// Computes MRTD and, with a kernel, RTMR1 and RTMR2.
pub fn measure(inputs: &TdxInputs<'_>) -> Result<TdxMeasurements, ReproError> {
    let mrtd = mrtd(inputs.tdvf, inputs.order)?;
    let (rtmr1, rtmr2) = match inputs.kernel {
        Some(k) => (
            Some(Rtmr::replay(&rtmr1_events(k)?)),
            Some(Rtmr::replay(&rtmr2_events(inputs.append, inputs.initrd))),
        ),
        None => (None, None),
    };
    Ok(TdxMeasurements { mrtd, rtmr1, rtmr2 })
}
