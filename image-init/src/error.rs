//! The one error type of the init.

/// Why the init could not bring the image up. Every variant names what failed, so the line
/// the init prints on the console before powering off says what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The init was started as an ordinary process.
    #[error(
        "not PID 1: veil-image-init is the /init of a Veil VM image and refuses to run as an \
         ordinary process (it would mount file systems and power the machine off)"
    )]
    NotPid1,

    /// The `ip=` parameter of the kernel command line is malformed.
    #[error("kernel command line: bad ip={value:?}: {why}")]
    BadIpParameter {
        /// The parameter's value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },

    /// A file system could not be mounted.
    #[error("mounting {fstype} on {target}: {source}")]
    Mount {
        /// The file system type.
        fstype: &'static str,
        /// The mount point.
        target: &'static str,
        /// The kernel's answer.
        source: rustix::io::Errno,
    },

    /// A kernel module could not be loaded.
    #[error("loading kernel module {path}: {source}")]
    Module {
        /// The module file in the image.
        path: String,
        /// The kernel's answer.
        source: rustix::io::Errno,
    },

    /// No network interface other than `lo` appeared.
    #[error("no network interface{}: is the virtio-net device attached?", .0.as_deref().map(|d| format!(" named {d}")).unwrap_or_default())]
    NoInterface(Option<String>),

    /// A netlink request (link up, address, route) failed.
    #[error("network: {what}: {source}")]
    Netlink {
        /// The request.
        what: String,
        /// The kernel's answer.
        source: rustix::io::Errno,
    },

    /// A netlink answer could not be parsed.
    #[error("network: malformed netlink answer to {0}")]
    NetlinkAnswer(String),

    /// A file of the image could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },

    /// The server could not be started.
    #[error("starting {path}: {source}")]
    Spawn {
        /// The server binary.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}
