//! Shared pieces of Veil's whole-system tests: the workspace's built binaries, free ports,
//! and a QEMU guest that is killed when the test ends.
//!
//! These tests run the real binaries (`veil-server`, `veil-repro`, `veil-image-init`,
//! `veil`) from the cargo target directory: `cargo test --workspace` builds every
//! member's binaries before any test runs. To run one test alone, build them first:
//! `cargo build -p veil-server -p veil-repro -p veil-image-init -p veil-cli`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace from the same target directory as this test.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build -p veil-server -p veil-repro -p veil-image-init \
         -p veil-cli` first (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A QEMU guest; killed on drop.
#[derive(Debug)]
pub struct Guest {
    child: Child,
    /// The serial console, as a file.
    pub console: PathBuf,
    /// When QEMU was started.
    pub started: Instant,
}

/// How to boot the image.
#[derive(Debug, Clone)]
pub struct Boot<'a> {
    /// The directory `veil-repro image` wrote (vmlinuz, initrd.img, cmdline).
    pub image: &'a Path,
    /// Host port forwarded to the guest's `guest_port`.
    pub host_port: u16,
    /// The server's port in the guest.
    pub guest_port: u16,
    /// `tcg` or `kvm`.
    pub accel: &'a str,
    /// Where the console goes.
    pub console: PathBuf,
}

impl Guest {
    /// Boots the image: direct kernel boot, user-mode network with the port forwarded,
    /// console on a file, no reboot (a panic or power off ends QEMU).
    pub fn boot(b: &Boot<'_>) -> Self {
        let cmdline = std::fs::read_to_string(b.image.join("cmdline")).expect("cmdline");
        let cpu = if b.accel == "kvm" { "host" } else { "max" };
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", b.accel, "-cpu", cpu, "-m", "2048", "-smp", "2"])
            .args([
                "-nodefaults",
                "-no-reboot",
                "-display",
                "none",
                "-monitor",
                "none",
            ])
            .arg("-kernel")
            .arg(b.image.join("vmlinuz"))
            .arg("-initrd")
            .arg(b.image.join("initrd.img"))
            .args(["-append", &cmdline])
            .arg("-nic")
            .arg(format!(
                "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{}-:{}",
                b.host_port, b.guest_port
            ))
            .arg("-serial")
            .arg(format!("file:{}", b.console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("qemu-system-x86_64 starts (Debian package qemu-system-x86)");
        Self {
            child,
            console: b.console.clone(),
            started: Instant::now(),
        }
    }

    /// The console so far.
    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `line`; panics with the console's tail when the guest
    /// stops or `timeout` passes first.
    pub fn wait_for(&mut self, line: &str, timeout: Duration) -> Duration {
        loop {
            let text = self.console_text();
            if text.contains(line) {
                return self.started.elapsed();
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || self.started.elapsed() > timeout {
                let tail: String = text
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!(
                    "no {line:?} on the console after {:?} (QEMU {exited:?}); console tail:\n{tail}",
                    self.started.elapsed()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Guest {
    /// Waits until QEMU exits (the guest powered off); returns how long it ran. Panics with
    /// the console's tail after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Duration {
        loop {
            if self.child.try_wait().ok().flatten().is_some() {
                return self.started.elapsed();
            }
            assert!(
                self.started.elapsed() < timeout,
                "the guest still runs after {timeout:?}; console:\n{}",
                self.console_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
