//! TDX MRTD and RTMR1/RTMR2, derived by hand from the specifications.
//!
//! No independent TDX reference implementation is available here, so each
//! value is derived step by step in the test from the spec text (TDX module
//! ABI: the 128-byte PAGE.ADD / MR.EXTEND blocks; TCG/UEFI: event digests and
//! `RTMR = SHA-384(RTMR || digest)`), on a synthetic TDVF image whose every
//! byte is known, then pinned as a golden value.

use sha2::{Digest, Sha384};
use veil_repro::ReproError;
use veil_repro::tdx::{
    ATTR_MR_EXTEND, ATTR_PAGE_AUG, PageAddOrder, Rtmr, SectionType, TdxInputs, authenticode_sha384,
    measure, mrtd, parse_tdvf_sections, rtmr1_events, rtmr2_events,
};

const BFV_GPA: u64 = 0xFFFF_E000;
const TEMP_GPA: u64 = 0x80_0000;
const AUG_GPA: u64 = 0x90_0000;
const FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];
const TDX_OFFSET_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];

fn bfv_byte(i: usize) -> u8 {
    (i * 31 % 251) as u8
}

/// An 8 KiB TDVF image: page 0 is the BFV (measured), page 1 holds the TDVF
/// descriptor and, at its end, the OVMF GUIDed footer table. Sections: BFV
/// (1 page, MR.EXTEND), TempMem (2 pages, added only), PermMem (PAGE.AUG, skipped).
fn synthetic_tdvf() -> Vec<u8> {
    let len = 0x2000usize;
    let mut img = vec![0u8; len];
    for (i, b) in img.iter_mut().take(0x1000).enumerate() {
        *b = bfv_byte(i);
    }
    let desc = 0x1000;
    img[desc..desc + 4].copy_from_slice(b"TDVF");
    img[desc + 4..desc + 8].copy_from_slice(&(16u32 + 3 * 32).to_le_bytes());
    img[desc + 8..desc + 12].copy_from_slice(&1u32.to_le_bytes());
    img[desc + 12..desc + 16].copy_from_slice(&3u32.to_le_bytes());
    let sections: [(u32, u32, u64, u64, u32, u32); 3] = [
        (0, 0x1000, BFV_GPA, 0x1000, 0, ATTR_MR_EXTEND),
        (0, 0, TEMP_GPA, 0x2000, 3, 0),
        (0, 0, AUG_GPA, 0x1000, 4, ATTR_PAGE_AUG),
    ];
    for (i, (off, raw, gpa, size, ty, attr)) in sections.into_iter().enumerate() {
        let o = desc + 16 + 32 * i;
        img[o..o + 4].copy_from_slice(&off.to_le_bytes());
        img[o + 4..o + 8].copy_from_slice(&raw.to_le_bytes());
        img[o + 8..o + 16].copy_from_slice(&gpa.to_le_bytes());
        img[o + 16..o + 24].copy_from_slice(&size.to_le_bytes());
        img[o + 24..o + 28].copy_from_slice(&ty.to_le_bytes());
        img[o + 28..o + 32].copy_from_slice(&attr.to_le_bytes());
    }
    // Footer entry: [u16 table length][footer GUID], 32 bytes before the end.
    let footer = len - 32 - 18;
    img[footer..footer + 2].copy_from_slice(&(18u16 + 22).to_le_bytes());
    img[footer + 2..footer + 18].copy_from_slice(&FOOTER_GUID);
    // The TDX entry before it: [u32 offset of the descriptor from the end][u16 22][GUID].
    let entry = footer - 22;
    img[entry..entry + 4].copy_from_slice(&((len - desc) as u32).to_le_bytes());
    img[entry + 4..entry + 6].copy_from_slice(&22u16.to_le_bytes());
    img[entry + 6..entry + 22].copy_from_slice(&TDX_OFFSET_GUID);
    img
}

/// TDH.MEM.PAGE.ADD: "MEM.PAGE.ADD" at 0, GPA (LE) at 16, 128 bytes.
fn spec_page_add(gpa: u64) -> Vec<u8> {
    let mut b = b"MEM.PAGE.ADD".to_vec();
    b.resize(16, 0);
    b.extend_from_slice(&gpa.to_le_bytes());
    b.resize(128, 0);
    b
}

/// TDH.MR.EXTEND: "MR.EXTEND" at 0, GPA (LE) at 16, 128 bytes, then 256 data bytes.
fn spec_mr_extend(gpa: u64, data: &[u8]) -> Vec<u8> {
    assert_eq!(data.len(), 256);
    let mut b = b"MR.EXTEND".to_vec();
    b.resize(16, 0);
    b.extend_from_slice(&gpa.to_le_bytes());
    b.resize(128, 0);
    b.extend_from_slice(data);
    b
}

fn bfv_chunk(k: usize) -> Vec<u8> {
    (k * 256..(k + 1) * 256).map(bfv_byte).collect()
}

#[test]
fn parses_the_tdvf_sections() {
    let s = parse_tdvf_sections(&synthetic_tdvf()).expect("parses");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].section_type, SectionType::Bfv);
    assert_eq!(s[0].memory_address, BFV_GPA);
    assert_eq!(s[1].section_type, SectionType::TempMem);
    assert_eq!(s[2].attributes, ATTR_PAGE_AUG);
}

#[test]
fn mrtd_single_pass_derivation() {
    // The SHA-384 input, block by block, as the VMM issues the SEAMCALLs.
    let mut stream = Vec::new();
    // BFV page: add, then 16 extends of 256 bytes.
    stream.extend(spec_page_add(BFV_GPA));
    for k in 0..16 {
        stream.extend(spec_mr_extend(BFV_GPA + 256 * k as u64, &bfv_chunk(k)));
    }
    // TempMem: two pages added, not extended. PermMem (PAGE.AUG): nothing.
    stream.extend(spec_page_add(TEMP_GPA));
    stream.extend(spec_page_add(TEMP_GPA + 0x1000));
    assert_eq!(stream.len(), 128 + 16 * 384 + 2 * 128);
    let by_hand: [u8; 48] = Sha384::digest(&stream).into();

    let got = mrtd(&synthetic_tdvf(), PageAddOrder::SinglePass).expect("measures");
    assert_eq!(got, by_hand);
    assert_eq!(
        hex::encode(got),
        "98d825a423dc3a01dfa94e4b97917161cc19957eecdd5637eba5e7fce947c9adaba70f7876b9869b80c1a8de2b715021"
    );
}

#[test]
fn mrtd_two_pass_derivation() {
    let mut stream = Vec::new();
    stream.extend(spec_page_add(BFV_GPA));
    stream.extend(spec_page_add(TEMP_GPA));
    stream.extend(spec_page_add(TEMP_GPA + 0x1000));
    for k in 0..16 {
        stream.extend(spec_mr_extend(BFV_GPA + 256 * k as u64, &bfv_chunk(k)));
    }
    let by_hand: [u8; 48] = Sha384::digest(&stream).into();
    let got = mrtd(&synthetic_tdvf(), PageAddOrder::TwoPass).expect("measures");
    assert_eq!(got, by_hand);
    assert_ne!(
        got,
        mrtd(&synthetic_tdvf(), PageAddOrder::SinglePass).expect("measures")
    );
}

#[test]
fn mrtd_changes_with_one_measured_firmware_byte() {
    let mut img = synthetic_tdvf();
    let before = mrtd(&img, PageAddOrder::SinglePass).expect("measures");
    img[0x123] ^= 1;
    assert_ne!(
        mrtd(&img, PageAddOrder::SinglePass).expect("measures"),
        before
    );
}

#[test]
fn rejects_firmware_without_tdvf_metadata() {
    let mut img = synthetic_tdvf();
    img[0x1000] = b'X'; // break the "TDVF" signature
    assert!(matches!(
        mrtd(&img, PageAddOrder::SinglePass),
        Err(ReproError::TdvfMetadataMissing(_))
    ));
    let no_footer = vec![0u8; 0x2000];
    assert!(matches!(
        mrtd(&no_footer, PageAddOrder::SinglePass),
        Err(ReproError::TdvfMetadataMissing(_))
    ));
}

#[test]
fn debian_ovmf_mrtd_is_pinned() {
    const PATH: &str = "/usr/share/ovmf/OVMF.fd";
    let Ok(img) = std::fs::read(PATH) else {
        eprintln!("{PATH} absent: skipped");
        return;
    };
    if hex::encode(sha2::Sha256::digest(&img))
        != "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"
    {
        eprintln!("{PATH} is another build: skipped");
        return;
    }
    let s = parse_tdvf_sections(&img).expect("Debian OVMF.fd carries TDVF metadata");
    assert_eq!(s.len(), 6);
    assert_eq!(s[0].section_type, SectionType::Bfv);
    assert_eq!(
        (s[0].memory_address, s[0].memory_data_size),
        (0xFFE2_0000, 0x1E_0000)
    );
    assert_eq!(
        hex::encode(mrtd(&img, PageAddOrder::SinglePass).expect("measures")),
        "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47"
    );
}

/// The four fixed event digests of RTMR1. The same values appear in the event
/// logs of real TDVF boots (CCEL), which confirms the strings byte for byte.
#[test]
fn rtmr1_fixed_event_digests() {
    let kernel = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/boot/kernel.efi"
    ))
    .expect("kernel fixture");
    let ev = rtmr1_events(&kernel).expect("PE kernel");
    let hexes: Vec<String> = ev.iter().map(hex::encode).collect();
    assert_eq!(
        hexes[1],
        "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71"
    );
    assert_eq!(
        hexes[2],
        "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
    );
    assert_eq!(
        hexes[3],
        "214b0bef1379756011344877743fdc2a5382bac6e70362d624ccf3f654407c1b4badf7d8f9295dd3dabdef65b27677e0"
    );
    assert_eq!(
        hexes[4],
        "0a2e01c85deae718a530ad8c6d20a84009babe6c8989269e950d8cf440c6e997695e64d455c4174a652cd080f6230b74"
    );
}

/// Authenticode of the fixture, by hand: its layout is known (see make_kernel.py):
/// headers 0..0x400 with CheckSum at 0x80+24+64 and the certificate directory
/// entry at 0x80+24+112+32; sections at 0x400 and 0x600 (0x200 each); 16
/// trailing bytes at 0x800.
#[test]
fn authenticode_derivation() {
    let k = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/boot/kernel.efi"
    ))
    .expect("kernel fixture");
    assert_eq!(k.len(), 0x810);
    let opt = 0x80 + 4 + 20;
    let checksum = opt + 64;
    let cert_dir = opt + 112 + 4 * 8;
    let mut h = Sha384::new();
    h.update(&k[..checksum]);
    h.update(&k[checksum + 4..cert_dir]);
    h.update(&k[cert_dir + 8..0x400]);
    h.update(&k[0x400..0x600]);
    h.update(&k[0x600..0x800]);
    h.update(&k[0x800..]);
    let by_hand: [u8; 48] = h.finalize().into();
    assert_eq!(authenticode_sha384(&k).expect("PE"), by_hand);

    // The checksum is excluded: changing it does not change the hash...
    let mut k2 = k.clone();
    k2[checksum] ^= 0xff;
    assert_eq!(authenticode_sha384(&k2).expect("PE"), by_hand);
    // ...but a byte of code does.
    let mut k3 = k;
    k3[0x450] ^= 1;
    assert_ne!(authenticode_sha384(&k3).expect("PE"), by_hand);
}

#[test]
fn rejects_a_kernel_that_is_not_pe() {
    assert!(matches!(
        authenticode_sha384(b"\x7fELF not a bzImage"),
        Err(ReproError::NotPeImage(_))
    ));
}

#[test]
fn rtmr_derivation_for_direct_boot() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/boot/");
    let kernel = std::fs::read(format!("{dir}kernel.efi")).expect("kernel");
    let initrd = std::fs::read(format!("{dir}initrd.cpio.gz")).expect("initrd");
    let cmdline = std::fs::read_to_string(format!("{dir}cmdline.txt")).expect("cmdline");

    let sha = |d: &[u8]| -> [u8; 48] { Sha384::digest(d).into() };
    let extend = |r: [u8; 48], d: [u8; 48]| -> [u8; 48] {
        let mut x = r.to_vec();
        x.extend_from_slice(&d);
        sha(&x)
    };
    let mut r1 = [0u8; 48];
    for d in [
        authenticode_sha384(&kernel).expect("PE"),
        sha(b"Calling EFI Application from Boot Option"),
        sha(&[0, 0, 0, 0]),
        sha(b"Exit Boot Services Invocation"),
        sha(b"Exit Boot Services Returned with Success"),
    ] {
        r1 = extend(r1, d);
    }
    // OVMF appends " initrd=initrd"; the stub measures UTF-16LE with a NUL.
    let opts: Vec<u8> = format!("{cmdline} initrd=initrd\0")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let r2 = extend(extend([0u8; 48], sha(&opts)), sha(&initrd));

    let m = measure(&TdxInputs {
        tdvf: &synthetic_tdvf(),
        kernel: Some(&kernel),
        initrd: Some(&initrd),
        append: &cmdline,
        order: PageAddOrder::SinglePass,
    })
    .expect("measures");
    assert_eq!(m.rtmr1.expect("kernel given").0, r1);
    assert_eq!(m.rtmr2.expect("kernel given").0, r2);
    assert_eq!(
        m.rtmr1.expect("rtmr1").to_hex(),
        "1f95b97043fe3355efd500ad6ff3b8888c28a245616feb27d318eb0f3fb2ce18087ac5462b553440c63dd7a8f6ea650c"
    );
    assert_eq!(
        m.rtmr2.expect("rtmr2").to_hex(),
        "015ac6037d0ffc94957ca2705f43d0f0cde759fd8d9b9c579046da8dd20baac4394bb4be39d42a89c5e5132061a6c9a8"
    );
}

#[test]
fn rtmr2_without_initrd_or_cmdline_is_zero() {
    assert!(rtmr2_events("", None).is_empty());
    assert_eq!(Rtmr::replay(&rtmr2_events("", None)), Rtmr::default());
    // A command line alone is measured without the initrd suffix.
    let ev = rtmr2_events("quiet", None);
    let utf16: Vec<u8> = "quiet\0"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(ev, vec![<[u8; 48]>::from(Sha384::digest(&utf16))]);
}

#[test]
fn rejects_a_measured_section_outside_the_image() {
    let mut img = synthetic_tdvf();
    // BFV data offset 0x1800 + 0x1000 bytes runs past the 8 KiB image.
    img[0x1000 + 16..0x1000 + 20].copy_from_slice(&0x1800u32.to_le_bytes());
    assert!(matches!(
        mrtd(&img, PageAddOrder::SinglePass),
        Err(ReproError::TdvfMetadataMalformed(_))
    ));
    // Debian's split OVMF_CODE.fd is such an image: its BFV lies at 0x20000 of the unified file.
    if let Ok(code) = std::fs::read("/usr/share/OVMF/OVMF_CODE.fd") {
        assert!(matches!(
            mrtd(&code, PageAddOrder::SinglePass),
            Err(ReproError::TdvfMetadataMalformed(_))
        ));
    }
}
