//! The deterministic cargo invocation, as data.
//!
//! [`BuildPlan::command`] turns the few inputs that legitimately differ between
//! two rebuilders (where the source and the cargo home live, which commit's
//! time to use) into the exact program, arguments and environment to run. It
//! runs nothing; the CLI executes it, and the `Dockerfile` test checks that the
//! image's builder stage runs the same command.
//!
//! What makes two builds of the same commit byte-identical:
//! - the toolchain comes from `rust-toolchain.toml` (exact version), and
//!   `--locked` refuses a `Cargo.lock` that would change;
//! - `--remap-path-prefix` rewrites the source directory, `$CARGO_HOME` and the
//!   target directory to fixed names, so no absolute host path reaches panic
//!   messages or debug info;
//! - a fixed `--target` and a fixed CPU level ([`TARGET_CPU`]), never
//!   `target-cpu=native`;
//! - profile settings forced by environment (no debug info, symbols stripped,
//!   one codegen unit, no incremental state);
//! - `SOURCE_DATE_EPOCH` from the commit, for any build script that stamps time;
//! - flags that would leak the host (`CARGO_ENCODED_RUSTFLAGS`, `RUSTC_WRAPPER`,
//!   ...) removed, and `RUSTFLAGS` replaced.

use crate::ReproError;

/// The one target triple release binaries are built for.
pub const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The CPU level release binaries are built for (issue 10): x86-64-v3
/// (AVX2, BMI2, FMA; every SEV-SNP and TDX host has it). A fixed level, never
/// `native`, so the bytes do not depend on the build machine. The `Dockerfile`
/// uses the same value (checked by a test).
pub const TARGET_CPU: &str = "x86-64-v3";

/// What the source directory is remapped to in the binary.
pub const REMAPPED_SOURCE: &str = "/veil";

/// What `$CARGO_HOME` is remapped to in the binary.
pub const REMAPPED_CARGO_HOME: &str = "/cargo";

/// What the cargo target directory (build scripts' `OUT_DIR`) is remapped to.
pub const REMAPPED_TARGET_DIR: &str = "/target";

/// The package `veil-repro build` builds by default.
pub const DEFAULT_PACKAGE: &str = "veil-server";

/// Environment variables removed before building: each can change the bytes.
pub const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PROFILE_RELEASE_LTO",
    "CARGO_PROFILE_RELEASE_OPT_LEVEL",
];

/// The inputs of a deterministic build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// Absolute path of the workspace root being built.
    pub source_dir: String,
    /// Absolute path of `$CARGO_HOME` (registry sources live below it).
    pub cargo_home: String,
    /// Seconds since the epoch of the last commit (`git log -1 --format=%ct`).
    pub source_date_epoch: u64,
    /// The cargo package to build.
    pub package: String,
    /// The binary target of that package.
    pub bin: String,
    /// The cargo target directory.
    pub target_dir: String,
}

/// A command to run: program, arguments, environment to set and to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program (`cargo`, resolved on `PATH`; rustup honours `rust-toolchain.toml`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set, in a fixed order.
    pub env: Vec<(String, String)>,
    /// Environment variables to remove.
    pub env_remove: Vec<String>,
}

impl BuildPlan {
    /// The rustc flags: path remapping and the CPU level. rustc applies the
    /// last matching remap, so the target directory (often inside the source
    /// directory) comes after the source directory.
    pub fn rustflags(&self) -> Vec<String> {
        vec![
            format!("--remap-path-prefix={}={REMAPPED_SOURCE}", self.source_dir),
            format!(
                "--remap-path-prefix={}={REMAPPED_CARGO_HOME}",
                self.cargo_home
            ),
            format!(
                "--remap-path-prefix={}={REMAPPED_TARGET_DIR}",
                self.target_dir
            ),
            format!("-Ctarget-cpu={TARGET_CPU}"),
        ]
    }

    /// The environment that pins the profile and the time.
    pub fn env(&self) -> Vec<(String, String)> {
        let fixed = [
            ("CARGO_INCREMENTAL", "0"),
            ("CARGO_PROFILE_RELEASE_DEBUG", "0"),
            ("CARGO_PROFILE_RELEASE_STRIP", "symbols"),
            ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
            ("CARGO_PROFILE_RELEASE_PANIC", "unwind"),
            ("CARGO_TERM_COLOR", "never"),
            ("LC_ALL", "C"),
            ("TZ", "UTC"),
        ];
        let mut env: Vec<(String, String)> = fixed
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push((
            "SOURCE_DATE_EPOCH".to_owned(),
            self.source_date_epoch.to_string(),
        ));
        // Space-separated: [`BuildPlan::command`] refuses paths with whitespace.
        env.push(("RUSTFLAGS".to_owned(), self.rustflags().join(" ")));
        env
    }

    /// The cargo arguments.
    pub fn cargo_args(&self) -> Vec<String> {
        [
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET_TRIPLE,
            "--package",
            &self.package,
            "--bin",
            &self.bin,
            "--target-dir",
            &self.target_dir,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// The full command. Paths with whitespace are refused: `RUSTFLAGS` is
    /// space-separated, and the `Dockerfile` spells the same variable.
    pub fn command(&self) -> Result<CommandSpec, ReproError> {
        for p in [&self.source_dir, &self.cargo_home, &self.target_dir] {
            if p.chars().any(char::is_whitespace) {
                return Err(ReproError::PathWithWhitespace(p.clone()));
            }
        }
        Ok(CommandSpec {
            program: "cargo".to_owned(),
            args: self.cargo_args(),
            env: self.env(),
            env_remove: SCRUBBED_ENV
                .iter()
                .filter(|k| **k != "RUSTFLAGS")
                .map(|s| (*s).to_owned())
                .collect(),
        })
    }

    /// Where cargo leaves the binary, relative to nothing: a path string.
    pub fn artifact_path(&self) -> String {
        format!("{}/{TARGET_TRIPLE}/release/{}", self.target_dir, self.bin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BuildPlan {
        BuildPlan {
            source_dir: "/home/alice/veil".to_owned(),
            cargo_home: "/home/alice/.cargo".to_owned(),
            source_date_epoch: 1_764_000_000,
            package: "veil-cli".to_owned(),
            bin: "veil".to_owned(),
            target_dir: "/home/alice/veil/target/repro".to_owned(),
        }
    }

    #[test]
    fn never_builds_for_the_native_cpu() {
        let flags = plan().rustflags().join(" ");
        assert!(!flags.contains("native"), "{flags}");
        assert!(flags.contains("-Ctarget-cpu=x86-64-v3"), "{flags}");
    }

    #[test]
    fn remaps_source_cargo_home_and_target_dir_to_fixed_names() {
        let flags = plan().rustflags();
        assert_eq!(flags[0], "--remap-path-prefix=/home/alice/veil=/veil");
        assert_eq!(flags[1], "--remap-path-prefix=/home/alice/.cargo=/cargo");
        // Last, so it wins over the source remap for OUT_DIR paths.
        assert_eq!(
            flags[2],
            "--remap-path-prefix=/home/alice/veil/target/repro=/target"
        );
    }

    #[test]
    fn is_locked_with_a_fixed_target() {
        let args = plan().cargo_args();
        assert!(args.contains(&"--locked".to_owned()));
        let t = args
            .iter()
            .position(|a| a == "--target")
            .expect("has --target");
        assert_eq!(args[t + 1], "x86_64-unknown-linux-gnu");
    }

    #[test]
    fn pins_time_and_incremental_and_strips() {
        let env = plan().env();
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .expect("variable set")
        };
        assert_eq!(get("SOURCE_DATE_EPOCH"), "1764000000");
        assert_eq!(get("CARGO_INCREMENTAL"), "0");
        assert_eq!(get("CARGO_PROFILE_RELEASE_STRIP"), "symbols");
        assert_eq!(get("CARGO_PROFILE_RELEASE_DEBUG"), "0");
        assert_eq!(
            get("RUSTFLAGS"),
            "--remap-path-prefix=/home/alice/veil=/veil --remap-path-prefix=/home/alice/.cargo=/cargo \
             --remap-path-prefix=/home/alice/veil/target/repro=/target -Ctarget-cpu=x86-64-v3"
        );
    }

    #[test]
    fn scrubs_host_flags_but_sets_rustflags() {
        let cmd = plan().command().expect("valid plan");
        assert!(
            cmd.env_remove
                .contains(&"CARGO_ENCODED_RUSTFLAGS".to_owned())
        );
        assert!(cmd.env_remove.contains(&"RUSTC_WRAPPER".to_owned()));
        assert!(!cmd.env_remove.contains(&"RUSTFLAGS".to_owned()));
    }

    #[test]
    fn refuses_paths_with_whitespace() {
        let mut p = plan();
        p.source_dir = "/home/alice/my veil".to_owned();
        assert!(matches!(
            p.command(),
            Err(ReproError::PathWithWhitespace(_))
        ));
    }

    #[test]
    fn artifact_is_under_the_fixed_target() {
        assert_eq!(
            plan().artifact_path(),
            "/home/alice/veil/target/repro/x86_64-unknown-linux-gnu/release/veil"
        );
    }
}
