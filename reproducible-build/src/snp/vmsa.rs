//! The initial VMSA (SEV-ES save area) of each vCPU, as the hypervisor sets it
//! and `sev-snp-measure` 0.0.13 models it (`sevsnpmeasure/vmsa.py`): the
//! register values in AMD APM vol. 2 table B-4's layout, in a 4096-byte page.

use super::VmmType;

/// The bootstrap processor starts at the reset vector.
const BSP_EIP: u32 = 0xffff_fff0;
/// RDX that EC2 and GCE load instead of the CPUID signature.
const CLOUD_RDX: u64 = 0x600;
/// PAT MSR power-on value (AMD APM vol. 2, A.3).
const DEFAULT_G_PAT: u64 = 0x0007_0406_0007_0406;
/// The PAT value GCE's hypervisor writes.
const GCE_G_PAT: u64 = 0x0007_0106;

// Field offsets in the save area.
const ES: usize = 0x00;
const CS: usize = 0x10;
const SS: usize = 0x20;
const DS: usize = 0x30;
const FS: usize = 0x40;
const GS: usize = 0x50;
const GDTR: usize = 0x60;
const LDTR: usize = 0x70;
const IDTR: usize = 0x80;
const TR: usize = 0x90;
const EFER: usize = 0xd0;
const CR4: usize = 0x148;
const CR0: usize = 0x158;
const DR7: usize = 0x160;
const DR6: usize = 0x168;
const RFLAGS: usize = 0x170;
const RIP: usize = 0x178;
const G_PAT: usize = 0x268;
const RDX: usize = 0x310;
const SEV_FEATURES: usize = 0x3b0;
const XCR0: usize = 0x3e8;
const MXCSR: usize = 0x408;
const X87_FCW: usize = 0x410;

/// One vCPU's initial state page.
pub(super) type VmsaPage = [u8; 4096];

fn put(page: &mut VmsaPage, off: usize, bytes: &[u8]) {
    page[off..off + bytes.len()].copy_from_slice(bytes);
}

/// A `vmcb_seg`: selector, attributes, limit, base.
fn seg(page: &mut VmsaPage, off: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
    put(page, off, &selector.to_le_bytes());
    put(page, off + 2, &attrib.to_le_bytes());
    put(page, off + 4, &limit.to_le_bytes());
    put(page, off + 8, &base.to_le_bytes());
}

/// The save area of a vCPU starting at `eip`. `vcpu_sig` is QEMU's RDX (the
/// CPUID signature); EC2 and GCE ignore it.
pub(super) fn save_area(eip: u32, sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Box<VmsaPage> {
    struct Regs {
        cs: u16,
        ss: u16,
        tr: u16,
        rdx: u64,
        mxcsr: u32,
        fcw: u16,
        g_pat: u64,
    }
    let r = match vmm {
        VmmType::Qemu => Regs {
            cs: 0x9b,
            ss: 0x93,
            tr: 0x8b,
            rdx: vcpu_sig,
            mxcsr: 0x1f80,
            fcw: 0x37f,
            g_pat: DEFAULT_G_PAT,
        },
        VmmType::Ec2 => Regs {
            // EC2 leaves the BSP's code segment unaccessed.
            cs: if eip == BSP_EIP { 0x9a } else { 0x9b },
            ss: 0x92,
            tr: 0x83,
            rdx: CLOUD_RDX,
            mxcsr: 0,
            fcw: 0,
            g_pat: DEFAULT_G_PAT,
        },
        VmmType::Gce => Regs {
            cs: 0x9b,
            ss: 0x93,
            tr: 0x8b,
            rdx: CLOUD_RDX,
            mxcsr: 0,
            fcw: 0,
            g_pat: GCE_G_PAT,
        },
    };
    let mut p = Box::new([0u8; 4096]);
    seg(&mut p, ES, 0, 0x93, 0xffff, 0);
    seg(
        &mut p,
        CS,
        0xf000,
        r.cs,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    seg(&mut p, SS, 0, r.ss, 0xffff, 0);
    seg(&mut p, DS, 0, 0x93, 0xffff, 0);
    seg(&mut p, FS, 0, 0x93, 0xffff, 0);
    seg(&mut p, GS, 0, 0x93, 0xffff, 0);
    seg(&mut p, GDTR, 0, 0, 0xffff, 0);
    seg(&mut p, LDTR, 0, 0x82, 0xffff, 0);
    seg(&mut p, IDTR, 0, 0, 0xffff, 0);
    seg(&mut p, TR, 0, r.tr, 0xffff, 0);
    // KVM sets EFER.SVME and CR4.MCE.
    put(&mut p, EFER, &0x1000u64.to_le_bytes());
    put(&mut p, CR4, &0x40u64.to_le_bytes());
    put(&mut p, CR0, &0x10u64.to_le_bytes());
    put(&mut p, DR7, &0x400u64.to_le_bytes());
    put(&mut p, DR6, &0xffff_0ff0u64.to_le_bytes());
    put(&mut p, RFLAGS, &0x2u64.to_le_bytes());
    put(&mut p, RIP, &u64::from(eip & 0xffff).to_le_bytes());
    put(&mut p, G_PAT, &r.g_pat.to_le_bytes());
    put(&mut p, RDX, &r.rdx.to_le_bytes());
    put(&mut p, SEV_FEATURES, &sev_features.to_le_bytes());
    put(&mut p, XCR0, &0x1u64.to_le_bytes());
    put(&mut p, MXCSR, &r.mxcsr.to_le_bytes());
    put(&mut p, X87_FCW, &r.fcw.to_le_bytes());
    p
}

/// The bootstrap processor's save area.
pub(super) fn bsp(sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Box<VmsaPage> {
    save_area(BSP_EIP, sev_features, vcpu_sig, vmm)
}
