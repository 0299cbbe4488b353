//! The Dockerfile's builder stage runs exactly the command `veil-repro build`
//! runs, for the image's paths. No container engine is needed: this compares
//! the text of the Dockerfile with the [`BuildPlan`].

use veil_repro::{BuildPlan, DEFAULT_PACKAGE, TARGET_CPU};

fn dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("Dockerfile at the workspace root")
}

/// The plan for the image: source in /src, CARGO_HOME of the rust image.
fn image_plan() -> BuildPlan {
    BuildPlan {
        source_dir: "/src".to_owned(),
        cargo_home: "/usr/local/cargo".to_owned(),
        source_date_epoch: 0,
        package: DEFAULT_PACKAGE.to_owned(),
        bin: DEFAULT_PACKAGE.to_owned(),
        target_dir: "/src/target/veil-repro/build".to_owned(),
    }
}

fn instructions() -> Vec<String> {
    // Join continuation lines, drop comments.
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in dockerfile().lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            cur.push_str(stripped);
            continue;
        }
        cur.push_str(t);
        out.push(std::mem::take(&mut cur));
    }
    out
}

#[test]
fn builder_runs_the_same_cargo_command() {
    let spec = image_plan().command().expect("valid plan");
    let expected = format!("RUN {} {}", spec.program, spec.args.join(" "));
    let runs: Vec<String> = instructions()
        .into_iter()
        .filter(|i| i.starts_with("RUN cargo"))
        .collect();
    assert_eq!(runs, vec![expected]);
}

#[test]
fn builder_sets_the_same_environment() {
    let ins = instructions();
    let spec = image_plan().command().expect("valid plan");
    for (k, v) in &spec.env {
        if k == "SOURCE_DATE_EPOCH" {
            assert!(ins.iter().any(|i| i == "ARG SOURCE_DATE_EPOCH"));
            continue;
        }
        let line = if v.contains(' ') {
            format!("ENV {k}=\"{v}\"")
        } else {
            format!("ENV {k}={v}")
        };
        assert!(ins.contains(&line), "Dockerfile lacks `{line}`");
    }
    // Nothing sets a variable the plan scrubs.
    for k in &spec.env_remove {
        assert!(
            !ins.iter().any(|i| i.starts_with(&format!("ENV {k}="))),
            "Dockerfile sets scrubbed {k}"
        );
    }
}

#[test]
fn uses_the_one_target_cpu_constant_and_never_native() {
    let text = dockerfile();
    assert!(text.contains(&format!("-Ctarget-cpu={TARGET_CPU}")));
    assert!(!text.contains("native"));
}

#[test]
fn toolchain_tag_matches_rust_toolchain_toml() {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rust-toolchain.toml"
    ))
    .expect("rust-toolchain.toml");
    let channel = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("channel line")
        .trim_matches('"')
        .to_owned();
    let ins = instructions();
    assert!(
        ins.iter()
            .any(|i| i.starts_with(&format!("FROM rust:{channel}-slim-bookworm@sha256:"))),
        "builder image tag is not rust:{channel}"
    );
    assert!(ins.contains(&format!("ENV RUSTUP_TOOLCHAIN={channel}")));
}

#[test]
fn every_base_image_is_pinned_by_a_real_looking_digest() {
    for from in instructions().iter().filter(|i| i.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).expect("image");
        if image == "scratch" {
            continue;
        }
        let digest = image
            .split_once("@sha256:")
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("{image} is not pinned by digest"));
        assert_eq!(digest.len(), 64, "{image}");
        assert!(
            digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{image}: placeholder digest"
        );
    }
}

#[test]
fn runtime_stage_is_non_root() {
    let ins = instructions();
    let last_from = ins
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("has stages");
    let user = ins[last_from..]
        .iter()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("runtime sets USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
}
