//! `veil-image-init`: `/init` of a Veil VM image (see the library docs for what it does).

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use veil_image_init::system::{self, ModuleLoad, Netlink};
use veil_image_init::{InitError, MODULES, SERVER, SERVER_ARGS, config};

fn say(line: &str) {
    eprintln!("veil-init: {line}");
}

fn read(path: &str) -> Result<String, InitError> {
    std::fs::read_to_string(path).map_err(|e| InitError::Read {
        path: path.to_owned(),
        source: e,
    })
}

fn load_modules() -> Result<(), InitError> {
    if !Path::new(MODULES).exists() {
        return Ok(());
    }
    for m in config::lines(&read(MODULES)?) {
        match system::load_module(Path::new(&m))? {
            ModuleLoad::Loaded => say(&format!("module {m}: loaded")),
            ModuleLoad::AlreadyLoaded => say(&format!("module {m}: already loaded")),
            ModuleLoad::NoDevice => say(&format!("module {m}: no such device on this machine")),
        }
    }
    Ok(())
}

fn network() -> Result<(), InitError> {
    let cmdline = read("/proc/cmdline")?;
    let net = config::net_config(&cmdline)?;
    let mut nl = Netlink::open()?;
    let (lo, lo_index) = system::find_interface(Some("lo"), Duration::ZERO)?;
    nl.link_up(&lo, lo_index)?;
    let Some(c) = net else {
        say("no ip= on the kernel command line: only lo is up");
        return Ok(());
    };
    let (name, index) = system::find_interface(c.device.as_deref(), Duration::from_secs(10))?;
    nl.link_up(&name, index)?;
    nl.configure(&name, index, &c)?;
    let gw = c.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    say(&format!("{name}: {}/{}{gw}", c.address, c.prefix));
    Ok(())
}

fn run() -> Result<ExitStatus, InitError> {
    system::mount_fs("proc", "/proc")?;
    system::mount_fs("sysfs", "/sys")?;
    system::mount_fs("devtmpfs", "/dev")?;
    load_modules()?;
    // configfs is a module in distribution kernels: mounted once it is in.
    if Path::new("/sys/kernel/config").exists() {
        system::mount_fs("configfs", "/sys/kernel/config")?;
    }
    network()?;
    let args = config::lines(&read(SERVER_ARGS)?);
    say(&format!("starting {SERVER}"));
    let mut child = Command::new(SERVER)
        .args(&args)
        .env_clear()
        .env("HOME", "/")
        .spawn()
        .map_err(|source| InitError::Spawn {
            path: SERVER.to_owned(),
            source,
        })?;
    child.wait().map_err(|source| InitError::Spawn {
        path: SERVER.to_owned(),
        source,
    })
}

fn main() {
    if !rustix::process::getpid().is_init() {
        say(&InitError::NotPid1.to_string());
        std::process::exit(2);
    }
    let reason = match run() {
        Ok(status) => format!("veil-server exited ({status}): powering off"),
        Err(e) => format!("{e}: powering off"),
    };
    say(&reason);
    system::power_off()
}
