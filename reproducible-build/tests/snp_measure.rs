//! `measure snp` equals virtee's `sev-snp-measure` (the reference implementation).
//!
//! The expected digests were produced by `sev-snp-measure` 0.0.13 on the same
//! files; they are pinned here so the test checks something without Python.
//! With `VEIL_SEV_SNP_MEASURE=/path/to/sev-snp-measure` the reference tool is
//! run again on every case and must agree, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use veil_repro::ReproError;
use veil_repro::snp::{SnpInputs, VmmType, launch_digest};

const DEBIAN_OVMF: &str = "/usr/share/ovmf/OVMF.fd";
const DEBIAN_OVMF_SHA256: &str = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773";

fn vector(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel)
}

fn cmdline() -> String {
    std::fs::read_to_string(vector("boot/cmdline.txt")).expect("cmdline fixture")
}

struct Case {
    name: &'static str,
    ovmf: PathBuf,
    vcpus: u32,
    vcpu_type: &'static str,
    boot: Boot,
    guest_features: u64,
    expected: &'static str,
}

enum Boot {
    Firmware,
    Kernel,
    KernelInitrdAppend,
    KernelInitrd,
}

impl Case {
    fn inputs(&self) -> SnpInputs {
        let (kernel, initrd, append) = match self.boot {
            Boot::Firmware => (None, None, None),
            Boot::Kernel => (Some(vector("boot/kernel.efi")), None, None),
            Boot::KernelInitrdAppend => (
                Some(vector("boot/kernel.efi")),
                Some(vector("boot/initrd.cpio.gz")),
                Some(cmdline()),
            ),
            Boot::KernelInitrd => (
                Some(vector("boot/kernel.efi")),
                Some(vector("boot/initrd.cpio.gz")),
                None,
            ),
        };
        SnpInputs {
            ovmf: self.ovmf.clone(),
            kernel,
            initrd,
            append,
            vcpus: self.vcpus,
            vcpu_type: self.vcpu_type.to_owned(),
            vmm: VmmType::Qemu,
            guest_features: self.guest_features,
        }
    }

    fn reference_args(&self) -> Vec<String> {
        let i = self.inputs();
        let mut a: Vec<String> = vec![
            "--mode".into(),
            "snp".into(),
            "--ovmf".into(),
            i.ovmf.display().to_string(),
            "--vcpus".into(),
            i.vcpus.to_string(),
            "--vcpu-type".into(),
            i.vcpu_type.clone(),
            "--guest-features".into(),
            format!("{:#x}", i.guest_features),
        ];
        if let Some(k) = &i.kernel {
            a.extend(["--kernel".into(), k.display().to_string()]);
        }
        if let Some(r) = &i.initrd {
            a.extend(["--initrd".into(), r.display().to_string()]);
        }
        if let Some(c) = &i.append {
            a.extend(["--append".into(), c.clone()]);
        }
        a
    }
}

fn shared_cases() -> Vec<Case> {
    let amd = vector("ovmf/ovmf_AmdSev_suffix.bin");
    let x64 = vector("ovmf/ovmf_OvmfX64_suffix.bin");
    vec![
        Case {
            name: "ovmfx64-4vcpu-genoa (shared vectors README)",
            ovmf: x64.clone(),
            vcpus: 4,
            vcpu_type: "EPYC-Genoa",
            boot: Boot::Firmware,
            guest_features: 0x1,
            expected: "403aa9a8e082a1763575d6b52d7b8bfbcc0f1b1d996f0b17040e6418bdfb6a855eca502b391ce776dbd5af275c6c8d0b",
        },
        Case {
            name: "ovmfx64-1vcpu-epyc-v4",
            ovmf: x64,
            vcpus: 1,
            vcpu_type: "EPYC-v4",
            boot: Boot::Firmware,
            guest_features: 0x1,
            expected: "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005",
        },
        Case {
            name: "amdsev-1vcpu-epyc-v4-no-kernel",
            ovmf: amd.clone(),
            vcpus: 1,
            vcpu_type: "EPYC-v4",
            boot: Boot::Firmware,
            guest_features: 0x1,
            expected: "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
        },
        Case {
            name: "amdsev-2vcpu-milan-kernel",
            ovmf: amd.clone(),
            vcpus: 2,
            vcpu_type: "EPYC-Milan",
            boot: Boot::Kernel,
            guest_features: 0x1,
            expected: "7355a0ccfa38cad192a2348d72c983f320b23e3db96b91cf1d683a35b7d3fa9911a1257f8f64027821d9152a3c73cccb",
        },
        Case {
            name: "amdsev-4vcpu-genoa-kernel-initrd-append",
            ovmf: amd.clone(),
            vcpus: 4,
            vcpu_type: "EPYC-Genoa",
            boot: Boot::KernelInitrdAppend,
            guest_features: 0x1,
            expected: "56c91246f4be3e01f97e9cc8714af1f07693719a5207246330f41aeb713dd1cd8a8219b4eddf9d34b40ae5f263bcb4bb",
        },
        Case {
            name: "amdsev-1vcpu-milan-kernel-initrd-features-0x21",
            ovmf: amd,
            vcpus: 1,
            vcpu_type: "EPYC-Milan",
            boot: Boot::KernelInitrd,
            guest_features: 0x21,
            expected: "1a667641053b7a499bc0b636a575610f6a38b9c3ac9926a4602498986daae18f734f2bd81fda25d4b43b4691c86dc4da",
        },
    ]
}

/// Debian bookworm's full OVMF.fd, when installed (`apt-get install ovmf`).
fn debian_cases() -> Vec<Case> {
    let path = PathBuf::from(DEBIAN_OVMF);
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("{DEBIAN_OVMF} absent: Debian OVMF cases skipped");
        return Vec::new();
    };
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    if sha != DEBIAN_OVMF_SHA256 {
        eprintln!("{DEBIAN_OVMF} is another build ({sha}): Debian OVMF cases skipped");
        return Vec::new();
    }
    vec![
        Case {
            name: "debian-ovmf-1vcpu-epyc-v4 (shared vectors README)",
            ovmf: path.clone(),
            vcpus: 1,
            vcpu_type: "EPYC-v4",
            boot: Boot::Firmware,
            guest_features: 0x1,
            expected: "11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3",
        },
        Case {
            name: "debian-ovmf-16vcpu-genoa",
            ovmf: path.clone(),
            vcpus: 16,
            vcpu_type: "EPYC-Genoa",
            boot: Boot::Firmware,
            guest_features: 0x1,
            expected: "a53b092dad8e6d006642d560b6dae6269648d1e8e757a2f89c77b3bc293aced425cb86fc2b9f4f790636cb7f475aa697",
        },
        Case {
            name: "debian-ovmf-2vcpu-milan-features-0x21",
            ovmf: path,
            vcpus: 2,
            vcpu_type: "EPYC-Milan",
            boot: Boot::Firmware,
            guest_features: 0x21,
            expected: "5b3db052ccc5855965bddaedae87d1a3d1f3728bb93bc12f4eb86e07e842b7bdaa77e56f97c28eb52fdd93eb25e72305",
        },
    ]
}

#[test]
fn launch_digest_equals_sev_snp_measure_golden_values() {
    let cases: Vec<Case> = shared_cases().into_iter().chain(debian_cases()).collect();
    assert!(cases.len() >= 6);
    for case in &cases {
        let got = launch_digest(&case.inputs()).expect(case.name).to_hex();
        assert_eq!(got, case.expected, "{}", case.name);
    }
}

#[test]
fn launch_digest_equals_sev_snp_measure_when_run() {
    let Ok(tool) = std::env::var("VEIL_SEV_SNP_MEASURE") else {
        eprintln!(
            "VEIL_SEV_SNP_MEASURE unset: reference tool not run (golden values still checked)"
        );
        return;
    };
    let cases: Vec<Case> = shared_cases().into_iter().chain(debian_cases()).collect();
    for case in &cases {
        let out = Command::new(&tool)
            .args(case.reference_args())
            .output()
            .expect("sev-snp-measure runs");
        assert!(out.status.success(), "{}: {:?}", case.name, out);
        let reference = String::from_utf8(out.stdout).expect("utf-8");
        let reference = reference.trim().lines().last().expect("a digest line");
        let got = launch_digest(&case.inputs()).expect(case.name).to_hex();
        assert_eq!(got, reference, "{} differs from sev-snp-measure", case.name);
        assert_eq!(got, case.expected, "{}: golden value is stale", case.name);
    }
}

#[test]
fn changing_one_input_changes_the_digest() {
    let base = &shared_cases()[4];
    let mut inputs = base.inputs();
    inputs.append = Some(format!("{} quiet", cmdline()));
    let got = launch_digest(&inputs).expect("measures").to_hex();
    assert_ne!(got, base.expected);
    let mut inputs = base.inputs();
    inputs.vcpus = 5;
    assert_ne!(
        launch_digest(&inputs).expect("measures").to_hex(),
        base.expected
    );
}

#[test]
fn rejects_a_kernel_with_firmware_that_cannot_measure_it() {
    let mut inputs = shared_cases()[1].inputs();
    inputs.kernel = Some(vector("boot/kernel.efi"));
    assert!(matches!(
        launch_digest(&inputs),
        Err(ReproError::SnpMeasurement(_))
    ));
}

#[test]
fn rejects_vmm_types_where_sev_disagrees_with_the_reference() {
    for vmm in [VmmType::Ec2, VmmType::Gce] {
        let mut inputs = shared_cases()[0].inputs();
        inputs.vmm = vmm;
        assert!(matches!(
            launch_digest(&inputs),
            Err(ReproError::UnsupportedSnpOption {
                option: "vmm-type",
                ..
            })
        ));
    }
}

#[test]
fn rejects_a_command_line_that_sev_would_trim() {
    let mut inputs = shared_cases()[4].inputs();
    inputs.append = Some("  console=ttyS0 ".to_owned());
    assert!(matches!(
        launch_digest(&inputs),
        Err(ReproError::UnsupportedSnpOption {
            option: "append",
            ..
        })
    ));
}

#[test]
fn rejects_an_unknown_vcpu_type() {
    let mut inputs = shared_cases()[0].inputs();
    inputs.vcpu_type = "EPYC-Zen9".to_owned();
    assert!(matches!(
        launch_digest(&inputs),
        Err(ReproError::UnsupportedSnpOption {
            option: "vcpu-type",
            ..
        })
    ));
}
