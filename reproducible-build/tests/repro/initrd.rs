//! The initrd is deterministic and a valid cpio newc / gzip stream.

use std::io::Read;
use std::process::{Command, Stdio};

use veil_repro::ReproError;
use veil_repro::initrd::{Initrd, veil_initrd};

const BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/boot/");

fn fixture_initrd() -> Vec<u8> {
    let init = std::fs::read(format!("{BOOT}init.sh")).expect("init fixture");
    veil_initrd(init, None)
        .expect("builds")
        .to_gzip()
        .expect("gzip")
}

#[test]
fn same_inputs_give_the_committed_bytes() {
    let committed = std::fs::read(format!("{BOOT}initrd.cpio.gz")).expect("fixture");
    assert_eq!(fixture_initrd(), committed);
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&committed)),
        "3f6b84628b29be2d03862feffd83247a90cdd49ae206d27297223631b056bf2a"
    );
}

#[test]
fn gzip_header_has_no_name_and_zero_mtime() {
    let gz = fixture_initrd();
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]); // magic, deflate
    assert_eq!(gz[3], 0, "no FNAME/FCOMMENT/FEXTRA flags");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
    assert_eq!(gz[9], 255, "OS unknown");
}

#[test]
fn entries_are_sorted_with_zero_mtime_and_owner() {
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(fixture_initrd().as_slice())
        .read_to_end(&mut cpio)
        .expect("gunzip");
    // Walk the newc headers by hand.
    let mut off = 0;
    let mut names = Vec::new();
    loop {
        let h = &cpio[off..off + 110];
        assert_eq!(&h[..6], b"070701");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).expect("ascii"),
                16,
            )
            .expect("hex field")
        };
        assert_eq!((field(2), field(3), field(5)), (0, 0, 0), "uid gid mtime");
        let namesize = field(11) as usize;
        let filesize = field(6) as usize;
        let name = std::str::from_utf8(&cpio[off + 110..off + 110 + namesize - 1])
            .expect("name")
            .to_owned();
        off = (off + 110 + namesize).div_ceil(4) * 4;
        off = (off + filesize).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            break;
        }
        names.push(name);
    }
    assert_eq!(off, cpio.len());
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names,
        [
            "dev",
            "dev/console",
            "etc",
            "etc/veil",
            "init",
            "proc",
            "run",
            "sys",
            "tmp"
        ]
    );
}

#[test]
fn gnu_cpio_lists_the_archive_when_installed() {
    let Ok(mut child) = Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("cpio not installed: skipped");
        return;
    };
    let mut model = veil_initrd(b"server".to_vec(), Some(b"{}".to_vec())).expect("builds");
    model
        .add_file("usr/lib/x", 0o644, vec![1; 5])
        .expect("adds");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&model.to_cpio()).expect("write");
    }
    let out = child.wait_with_output().expect("cpio runs");
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).expect("utf-8");
    assert!(listed.lines().any(|l| l == "etc/veil/model-manifest.json"));
    assert!(listed.lines().any(|l| l == "usr/lib/x"));
    assert!(listed.lines().any(|l| l == "init"));
}

#[test]
fn insertion_order_does_not_matter() {
    let mut a = Initrd::new();
    a.add_file("b/x", 0o644, vec![1]).expect("adds");
    a.add_file("a", 0o755, vec![2]).expect("adds");
    let mut b = Initrd::new();
    b.add_file("a", 0o755, vec![2]).expect("adds");
    b.add_file("b/x", 0o644, vec![1]).expect("adds");
    assert_eq!(a.to_cpio(), b.to_cpio());
}

#[test]
fn rejects_escaping_or_absolute_paths() {
    for bad in ["/etc/passwd", "../x", "a/../b", "a//b", "", "a/./b", "dir/"] {
        let mut i = Initrd::new();
        assert!(
            matches!(
                i.add_file(bad, 0o644, vec![]),
                Err(ReproError::InvalidInitrdPath(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn rejects_duplicate_paths() {
    let mut i = Initrd::new();
    i.add_file("init", 0o755, vec![]).expect("adds");
    assert!(matches!(
        i.add_file("init", 0o755, vec![]),
        Err(ReproError::DuplicateInitrdPath(_))
    ));
    // A file cannot also be a parent directory.
    assert!(matches!(
        i.add_file("init/x", 0o644, vec![]),
        Err(ReproError::DuplicateInitrdPath(_))
    ));
}
