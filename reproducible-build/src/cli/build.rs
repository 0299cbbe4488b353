//! `build` and `diff`: run the deterministic cargo command, compare two binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use veil_repro::BuildPlan;
use veil_repro::elf_diff::{SectionDiff, diff_sections};

use super::{BuildArgs, output_of, read, sha256_hex, write};

fn cargo_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

pub(super) fn build(args: BuildArgs) -> Result<()> {
    let source = absolute(&args.source.unwrap_or(std::env::current_dir()?))?;
    let epoch = match args.source_date_epoch {
        Some(e) => e,
        None => output_of(&source, "git", &["log", "-1", "--format=%ct"])?
            .parse()
            .context("SOURCE_DATE_EPOCH from git log is not a number")?,
    };
    let target_dir = args
        .target_dir
        .unwrap_or_else(|| source.join("target/veil-repro/build"));
    let out_dir = args
        .out
        .unwrap_or_else(|| source.join("target/veil-repro/out"));
    let cargo_home = cargo_home()?;
    let cargo_home = absolute(&cargo_home).unwrap_or(cargo_home);
    let plan = BuildPlan {
        source_dir: source.display().to_string(),
        cargo_home: cargo_home.display().to_string(),
        source_date_epoch: epoch,
        bin: args.bin.unwrap_or_else(|| args.package.clone()),
        package: args.package,
        target_dir: target_dir.display().to_string(),
    };
    let spec = plan.command()?;
    if args.print_command {
        for (k, v) in &spec.env {
            println!("{k}={v}");
        }
        println!("{} {}", spec.program, spec.args.join(" "));
        return Ok(());
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args).current_dir(&source);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let artifact = PathBuf::from(plan.artifact_path());
    let bytes = read(&artifact)?;
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let dest = out_dir.join(&plan.bin);
    write(&dest, &bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("{}  {}", sha256_hex(&bytes), dest.display());
    Ok(())
}

pub(super) fn diff(a: &Path, b: &Path) -> Result<()> {
    let (ba, bb) = (read(a)?, read(b)?);
    if ba == bb {
        println!("identical: {}", sha256_hex(&ba));
        return Ok(());
    }
    println!("{}  {}", sha256_hex(&ba), a.display());
    println!("{}  {}", sha256_hex(&bb), b.display());
    match diff_sections(&ba, &bb) {
        Ok(diffs) if diffs.is_empty() => {
            println!("all sections identical: headers or layout differ");
        }
        Ok(diffs) => {
            for d in diffs {
                match d {
                    SectionDiff::Differs {
                        name,
                        size_a,
                        size_b,
                    } => println!("differs  {name} ({size_a} vs {size_b} bytes)"),
                    SectionDiff::OnlyInA(n) => println!("only in A  {n}"),
                    SectionDiff::OnlyInB(n) => println!("only in B  {n}"),
                }
            }
        }
        Err(e) => println!("no section diff: {e}"),
    }
    match Command::new("diffoscope").arg(a).arg(b).status() {
        Ok(_) => {}
        Err(_) => println!("(diffoscope not installed; section hashes only)"),
    }
    bail!("the files differ")
}
