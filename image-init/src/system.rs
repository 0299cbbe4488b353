//! The system calls of an init: mounts, kernel modules, the network, power off. Thin
//! wrappers over `rustix` (no unsafe code), each error naming what failed.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::mount::{MountFlags, mount};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, recv, sendto, socket};

use crate::config::NetConfig;
use crate::{InitError, netlink};

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself
/// (`CONFIG_MODULE_DECOMPRESS`), so the image carries the distribution's files unchanged.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// Mounts a kernel file system; an already mounted one is fine.
pub fn mount_fs(fstype: &'static str, target: &'static str) -> Result<(), InitError> {
    std::fs::create_dir_all(target).map_err(|e| InitError::Read {
        path: target.to_owned(),
        source: e,
    })?;
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    match mount(fstype, target, fstype, flags, None) {
        Ok(()) | Err(Errno::BUSY) => Ok(()),
        Err(source) => Err(InitError::Mount {
            fstype,
            target,
            source,
        }),
    }
}

/// What happened to one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleLoad {
    /// Loaded now.
    Loaded,
    /// Already in the kernel.
    AlreadyLoaded,
    /// The module has no device to drive on this machine (e.g. `sev-guest` outside SNP).
    NoDevice,
}

/// Loads one module file (`.ko`, or `.ko.xz`/`.ko.zst`/`.ko.gz` that the kernel inflates).
pub fn load_module(path: &Path) -> Result<ModuleLoad, InitError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| InitError::Read {
        path: shown.clone(),
        source: e,
    })?;
    let compressed = path
        .extension()
        .is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    match rustix::system::finit_module(&file, c"", flags) {
        Ok(()) => Ok(ModuleLoad::Loaded),
        Err(Errno::EXIST) => Ok(ModuleLoad::AlreadyLoaded),
        Err(Errno::NODEV | Errno::NXIO) => Ok(ModuleLoad::NoDevice),
        Err(source) => Err(InitError::Module {
            path: shown,
            source,
        }),
    }
}

fn read_index(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The interface `name`, or the first (by name) that is not `lo`, waiting up to `wait`
/// for its driver to register it. Returns its name and index.
pub fn find_interface(name: Option<&str>, wait: Duration) -> Result<(String, u32), InitError> {
    let start = Instant::now();
    loop {
        let found = match name {
            Some(n) => read_index(n).map(|i| (n.to_owned(), i)),
            None => {
                let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lo")
                    .collect();
                names.sort();
                names
                    .into_iter()
                    .find_map(|n| read_index(&n).map(|i| (n, i)))
            }
        };
        if let Some(f) = found {
            return Ok(f);
        }
        if start.elapsed() > wait {
            return Err(InitError::NoInterface(name.map(str::to_owned)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A route netlink socket that sends one request at a time and waits for its answer.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens the socket.
    pub fn open() -> Result<Self, InitError> {
        let fd = socket(AddressFamily::NETLINK, SocketType::RAW, None).map_err(|source| {
            InitError::Netlink {
                what: "opening a netlink socket".to_owned(),
                source,
            }
        })?;
        Ok(Self { fd, seq: 0 })
    }

    fn request(&mut self, what: &str, build: impl Fn(u32) -> Vec<u8>) -> Result<(), InitError> {
        self.seq += 1;
        let err = |source| InitError::Netlink {
            what: what.to_owned(),
            source,
        };
        let msg = build(self.seq);
        sendto(
            &self.fd,
            &msg,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(err)?;
        let mut buf = [0u8; 4096];
        let (n, _) = recv(&self.fd, &mut buf[..], RecvFlags::empty()).map_err(err)?;
        let answer = buf.get(..n).unwrap_or_default();
        match netlink::ack(answer, self.seq) {
            Some(0) => Ok(()),
            Some(errno) => Err(err(Errno::from_raw_os_error(errno))),
            None => Err(InitError::NetlinkAnswer(what.to_owned())),
        }
    }

    /// Sets interface `index` up.
    pub fn link_up(&mut self, name: &str, index: u32) -> Result<(), InitError> {
        self.request(&format!("setting {name} up"), |s| {
            netlink::link_up(s, index)
        })
    }

    /// Gives interface `index` its address and, with a gateway, the default route.
    pub fn configure(&mut self, name: &str, index: u32, c: &NetConfig) -> Result<(), InitError> {
        self.request(
            &format!("adding {}/{} to {name}", c.address, c.prefix),
            |s| netlink::add_address(s, index, c.address, c.prefix),
        )?;
        if let Some(gw) = c.gateway {
            self.request(&format!("adding the default route via {gw}"), |s| {
                netlink::add_default_route(s, index, gw)
            })?;
        }
        Ok(())
    }
}

/// Flushes file systems and powers the machine off; never returns.
pub fn power_off() -> ! {
    rustix::fs::sync();
    loop {
        let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
        std::thread::sleep(Duration::from_secs(1));
    }
}
