//! The kernel of the image: the pinned Debian package, and the modules the image needs from
//! it (drivers built into the kernel need none; the rest come with their dependencies,
//! read from each module's `.modinfo` `depends=` line, loaded dependencies first).

use std::collections::{BTreeMap, BTreeSet};

use object::{Object, ObjectSection};

use crate::ReproError;

/// The Debian package whose kernel the image boots by default: 6.12 has configfs-tsm
/// (`tsm`), `sev-guest` and `tdx-guest` as modules, and virtio-pci built in.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-6.12.117+deb12-cloud-amd64";
/// Its version (`apt-get download PACKAGE=VERSION`).
pub const DEFAULT_KERNEL_VERSION: &str = "6.12.117-1~deb12u1";
/// SHA-256 of the `.deb` (from bookworm-security's `Packages` index, checked on download).
pub const DEFAULT_KERNEL_DEB_SHA256: &str =
    "5195b288dec79e2981d6b84457f38b7ce7310a2d702930ec7d07209c7f78ce37";
/// Its `uname -r` (the `/boot/vmlinuz-*` and `/lib/modules/*` name inside the package).
pub const DEFAULT_KERNEL_RELEASE: &str = "6.12.117+deb12-cloud-amd64";

/// Whether the image cannot work without a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The image fails without it: an error names it.
    Required,
    /// Included when the kernel has it (as a module or built in).
    IfPresent,
}

/// The drivers the image asks for, by module name.
pub const DRIVERS: &[(&str, Need)] = &[
    ("virtio_pci", Need::Required),
    ("virtio_net", Need::Required),
    ("virtio_blk", Need::IfPresent),
    ("virtio_rng", Need::IfPresent),
    ("configfs", Need::IfPresent),
    ("tsm", Need::IfPresent),
    ("sev_guest", Need::IfPresent),
    ("tdx_guest", Need::IfPresent),
];

/// The guest drivers of the hardware TEEs: with `--tee auto` the kernel needs one.
pub const TEE_DRIVERS: &[&str] = &["sev_guest", "tdx_guest"];

/// A module name as the kernel spells it (`sev-guest` and `sev_guest` are one module).
pub fn module_name(s: &str) -> String {
    s.replace('-', "_")
}

/// The module name of a file path (`kernel/drivers/net/virtio_net.ko.xz` → `virtio_net`).
pub fn module_name_of_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    Some(module_name(stem))
}

/// The modules of one kernel: which are built in, and where each module file is
/// (relative to `/lib/modules/RELEASE`).
#[derive(Debug, Clone, Default)]
pub struct ModuleTree {
    builtin: BTreeSet<String>,
    files: BTreeMap<String, String>,
}

impl ModuleTree {
    /// From the text of `modules.builtin` and the module files' relative paths.
    pub fn new<'a>(builtin: &str, files: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            builtin: builtin
                .lines()
                .filter_map(|l| module_name_of_path(l.trim()))
                .collect(),
            files: files
                .into_iter()
                .filter_map(|p| Some((module_name_of_path(p)?, p.to_owned())))
                .collect(),
        }
    }

    /// Whether the kernel has `module` built in.
    pub fn is_builtin(&self, module: &str) -> bool {
        self.builtin.contains(&module_name(module))
    }

    /// Whether the kernel has `module`, built in or as a file.
    pub fn has(&self, module: &str) -> bool {
        let m = module_name(module);
        self.builtin.contains(&m) || self.files.contains_key(&m)
    }

    /// The module files to load for `wanted`, dependencies first, each once.
    /// `depends` gives a module file's `depends=` list. A wanted or needed module that is
    /// neither built in nor a file is an error naming it.
    pub fn load_order(
        &self,
        wanted: &[&str],
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>, ReproError>,
    ) -> Result<Vec<String>, ReproError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            self.visit(&module_name(w), depends, &mut seen, &mut order, 0)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        module: &str,
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>, ReproError>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), ReproError> {
        if depth > 64 {
            return Err(ReproError::KernelModule(format!(
                "dependency loop through {module}"
            )));
        }
        if self.builtin.contains(module) || !seen.insert(module.to_owned()) {
            return Ok(());
        }
        let path = self.files.get(module).ok_or_else(|| {
            ReproError::KernelModule(format!("{module} is neither built in nor a module file"))
        })?;
        let mut deps = depends(path)?;
        deps.sort();
        for d in deps {
            self.visit(&module_name(&d), depends, seen, order, depth + 1)?;
        }
        order.push(path.clone());
        Ok(())
    }
}

/// The `depends=` list of an (uncompressed) module's `.modinfo` section.
pub fn modinfo_depends(module: &[u8]) -> Result<Vec<String>, ReproError> {
    let file =
        object::File::parse(module).map_err(|e| ReproError::KernelModule(format!("ELF: {e}")))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| ReproError::KernelModule("no .modinfo section".to_owned()))?;
    let data = section
        .data()
        .map_err(|e| ReproError::KernelModule(format!(".modinfo: {e}")))?;
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> ModuleTree {
        ModuleTree::new(
            "kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n",
            [
                "kernel/drivers/net/virtio_net.ko.xz",
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/net/core/failover.ko.xz",
                "kernel/drivers/virt/coco/sev-guest/sev-guest.ko.xz",
                "kernel/drivers/virt/coco/tsm.ko.xz",
                "kernel/fs/configfs/configfs.ko.xz",
            ],
        )
    }

    fn deps(path: &str) -> Result<Vec<String>, ReproError> {
        Ok(match module_name_of_path(path).as_deref() {
            Some("virtio_net") => vec!["net_failover".into()],
            Some("net_failover") => vec!["failover".into()],
            Some("sev_guest") => vec!["tsm".into()],
            Some("tsm") => vec!["configfs".into()],
            _ => vec![],
        })
    }

    #[test]
    fn dependencies_load_first_and_builtins_not_at_all() {
        let t = tree();
        assert!(t.is_builtin("virtio_pci") && t.has("sev-guest") && !t.has("tdx_guest"));
        let order = t
            .load_order(
                &["virtio_pci", "virtio_net", "sev-guest", "configfs"],
                &mut deps,
            )
            .expect("resolves");
        assert_eq!(
            order,
            [
                "kernel/net/core/failover.ko.xz",
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/drivers/net/virtio_net.ko.xz",
                "kernel/fs/configfs/configfs.ko.xz",
                "kernel/drivers/virt/coco/tsm.ko.xz",
                "kernel/drivers/virt/coco/sev-guest/sev-guest.ko.xz",
            ]
        );
    }

    #[test]
    fn a_missing_driver_is_named() {
        let err = tree()
            .load_order(&["tdx_guest"], &mut deps)
            .expect_err("absent");
        assert!(err.to_string().contains("tdx_guest"), "{err}");
    }
}
