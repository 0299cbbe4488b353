//! A deterministic initrd: cpio "newc" archive, optionally gzip-compressed.
//!
//! Same inputs, same bytes: entries are sorted by path, parent directories are
//! added implicitly, every mtime, uid and gid is zero, inode numbers count up
//! from 1 in path order, and the gzip header carries no name, a zero mtime and
//! the "unknown" OS byte. Compression uses `flate2`'s pure-Rust backend at a
//! fixed level; its exact output is pinned by `Cargo.lock`.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

use crate::ReproError;

const NEWC_MAGIC: &str = "070701";
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const TRAILER: &str = "TRAILER!!!";

/// What an initrd entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    node: Node,
    perm: u32,
}

/// An initrd under construction. Paths are relative (`init`, `etc/veil/x`).
#[derive(Debug, Clone, Default)]
pub struct Initrd {
    entries: BTreeMap<String, Entry>,
}

fn check_path(path: &str) -> Result<(), ReproError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.ends_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || path.contains('\0');
    if bad {
        Err(ReproError::InvalidInitrdPath(path.to_owned()))
    } else {
        Ok(())
    }
}

impl Initrd {
    /// An empty initrd.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), ReproError> {
        check_path(path)?;
        if self.entries.contains_key(path) {
            return Err(ReproError::DuplicateInitrdPath(path.to_owned()));
        }
        // Parent directories, added once, mode 0755.
        let mut prefix = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for c in components.iter().take(components.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            match self.entries.get(&prefix) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => return Err(ReproError::DuplicateInitrdPath(prefix)),
                None => {
                    self.entries.insert(
                        prefix.clone(),
                        Entry {
                            node: Node::Dir,
                            perm: 0o755,
                        },
                    );
                }
            }
        }
        self.entries.insert(path.to_owned(), entry);
        Ok(())
    }

    /// Adds a regular file with permission bits `perm` (e.g. `0o755`).
    pub fn add_file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<(), ReproError> {
        if u32::try_from(data.len()).is_err() {
            return Err(ReproError::InitrdEntryTooLarge(path.to_owned()));
        }
        self.insert(
            path,
            Entry {
                node: Node::File(data),
                perm: perm & 0o7777,
            },
        )
    }

    /// Adds an (empty) directory.
    pub fn add_dir(&mut self, path: &str, perm: u32) -> Result<(), ReproError> {
        self.insert(
            path,
            Entry {
                node: Node::Dir,
                perm: perm & 0o7777,
            },
        )
    }

    /// Adds a character device node.
    pub fn add_char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), ReproError> {
        self.insert(
            path,
            Entry {
                node: Node::CharDevice { major, minor },
                perm: perm & 0o7777,
            },
        )
    }

    /// The regular files, in path order: `(path, contents)`.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().filter_map(|(p, e)| match &e.node {
            Node::File(d) => Some((p.as_str(), d.as_slice())),
            _ => None,
        })
    }

    /// The uncompressed cpio newc archive.
    pub fn to_cpio(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match &entry.node {
                Node::Dir => (S_IFDIR | entry.perm, 2, &[], (0, 0)),
                Node::File(d) => (S_IFREG | entry.perm, 1, d.as_slice(), (0, 0)),
                Node::CharDevice { major, minor } => {
                    (S_IFCHR | entry.perm, 1, &[], (*major, *minor))
                }
            };
            write_entry(&mut out, ino, mode, nlink, rdev, path, data);
        }
        write_entry(&mut out, 0, 0, 1, (0, 0), TRAILER, &[]);
        out
    }

    /// The cpio archive, gzip-compressed with a fixed header (like `gzip -n`).
    pub fn to_gzip(&self) -> Result<Vec<u8>, ReproError> {
        gzip_deterministic(&self.to_cpio())
    }
}

/// Gzip with no file name, mtime 0, OS byte 255 ("unknown"), level 9.
pub fn gzip_deterministic(data: &[u8]) -> Result<Vec<u8>, ReproError> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    // Checked by `add_file`; directories, devices and the trailer have no data.
    let filesize = u32::try_from(data.len()).unwrap_or(u32::MAX);
    // Name length includes the terminating NUL.
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, // uid
        0, // gid
        nlink, 0, // mtime
        filesize, 0, // devmajor
        0, // devminor
        rdev.0, rdev.1, namesize, 0, // check
    ];
    out.extend_from_slice(NEWC_MAGIC.as_bytes());
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The standard layout of a Veil initrd: the server as `/init`, the model
/// manifest under `/etc/veil/`, the mount points it needs, and `/dev/console`.
pub fn veil_initrd(server: Vec<u8>, model_manifest: Option<Vec<u8>>) -> Result<Initrd, ReproError> {
    let mut initrd = Initrd::new();
    initrd.add_file("init", 0o755, server)?;
    for dir in ["dev", "proc", "sys", "tmp", "run", "etc/veil"] {
        initrd.add_dir(dir, 0o755)?;
    }
    initrd.add_char_device("dev/console", 0o600, 5, 1)?;
    if let Some(m) = model_manifest {
        initrd.add_file("etc/veil/model-manifest.json", 0o444, m)?;
    }
    Ok(initrd)
}
