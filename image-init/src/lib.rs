//! The init of a Veil VM image: PID 1 of the measured initrd.
//!
//! It mounts `/proc`, `/sys`, `/dev` (devtmpfs) and, once the `configfs` module is in,
//! `/sys/kernel/config` (configfs-tsm, where SNP and TDX evidence comes from); loads the
//! kernel modules the image lists (`/etc/veil/modules`, dependencies first); brings up `lo`
//! and the network interface with the static address of the kernel command line's `ip=`
//! parameter (no DHCP client); then runs `/bin/veil-server` with the arguments baked into
//! the image (`/etc/veil/server.args`, one per line). When the server exits, or anything
//! before fails, it prints the reason on the console and powers the machine off. There is
//! no shell, no login and no other process in the image.
//!
//! The parsing ([`config`]) and the netlink messages ([`netlink`]) are pure and tested
//! here; [`system`] holds the system calls, through `rustix` (the workspace forbids
//! unsafe code). The image itself (`veil-repro image`) is tested by booting it.
//!
//! Shared libraries: the init and the server are the workspace's ordinary (glibc,
//! dynamically linked) binaries, and `veil-repro image` copies their ELF interpreter and
//! `DT_NEEDED` libraries into the initrd. That keeps the image buildable from the very
//! binaries the tests and the reproducible build produce (a `crt-static` build would
//! rebuild every dependency with other flags), and the libraries are measured with
//! everything else: `image.json` lists each file's sha256.

pub mod config;
mod error;
pub mod netlink;
pub mod system;

pub use error::InitError;

/// The server binary in the image.
pub const SERVER: &str = "/bin/veil-server";
/// The server's arguments, one per line.
pub const SERVER_ARGS: &str = "/etc/veil/server.args";
/// The modules to load, one path per line, dependencies first.
pub const MODULES: &str = "/etc/veil/modules";
