//! The measured image boots and serves: `veil-repro image` twice gives identical files; the
//! image boots in QEMU (TCG by default: `-accel tcg -cpu max`; `VEIL_QEMU_ACCEL=kvm` to try
//! KVM); `veil verify` accepts the server in the VM under a policy pinned from
//! `image.json` (simulated measurement, binary, model) and shows it runs from a measured
//! image; the client SDK gets a chat answer through the encrypted path; the console shows
//! no prompt. And an image whose server cannot start (`--tee auto` where QEMU offers no TEE)
//! powers the VM off with the server's reason on the console.
//!
//! Run alone (about 3 minutes on 2 cores; needs `qemu-system-x86_64`, the pinned kernel
//! package through `apt-get download`, and the default model through pip, both cached):
//! `cargo build -p veil-server -p veil-repro -p veil-image-init -p veil-cli &&
//!  cargo test -p veil-system-tests --test image_boot -- --nocapture`

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use veil_client::{ChatMessage, ChatRequest, Client, Policy};
use veil_system_tests::{Boot, Guest, free_port, workspace_bin};

const FILES: [&str; 4] = ["vmlinuz", "initrd.img", "cmdline", "image.json"];
const PROMPT: &str = "What is the capital of France? Answer in one word.";

/// One guest at a time: two TCG guests on two cores would slow each other past the budget.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn build_image(out: &Path) -> Duration {
    build_image_with(out, "simulated")
}

fn build_image_with(out: &Path, tee: &str) -> Duration {
    let start = Instant::now();
    let run = Command::new(workspace_bin("veil-repro"))
        .args(["image", "--tee", tee, "--port", "8080", "--out"])
        .arg(out)
        .output()
        .expect("veil-repro runs");
    assert!(
        run.status.success(),
        "veil-repro image failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    start.elapsed()
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn veil(args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("veil"))
        .args(args)
        .output()
        .expect("veil runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_measured_image_boots_attests_and_answers() {
    let _one = ONE_GUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (a, b) = (tmp.path().join("image-a"), tmp.path().join("image-b"));
    let first = build_image(&a);
    let second = build_image(&b);
    for f in FILES {
        let (x, y) = (
            std::fs::read(a.join(f)).expect("file"),
            std::fs::read(b.join(f)).expect("file"),
        );
        assert!(x == y, "{f} differs between two builds");
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(a.join("image.json")).expect("image.json"))
            .expect("json");
    let size = |f: &str| std::fs::metadata(a.join(f)).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "image built in {first:?} and {second:?}, identical: vmlinuz {} B, initrd.img {} B, \
         initrd sha256 {}",
        size("vmlinuz"),
        size("initrd.img"),
        record["files"]["initrd.img"]
    );
    assert_eq!(record["tee"], "simulated");

    let port = free_port();
    let accel = std::env::var("VEIL_QEMU_ACCEL").unwrap_or_else(|_| "tcg".to_owned());
    let mut guest = Guest::boot(&Boot {
        image: &a,
        host_port: port,
        guest_port: 8080,
        accel: &accel,
        console: tmp.path().join("console.log"),
    });
    let up = guest.wait_for("veil-server: listening on", Duration::from_secs(240));
    eprintln!("{accel}: server listening {up:?} after QEMU started");
    let console = guest.console_text();
    assert!(
        console.contains("veil-init: eth0: 10.0.2.15/24 via 10.0.2.2"),
        "{console}"
    );

    let url = format!("http://127.0.0.1:{port}");
    let policy_text = format!(
        "allow_simulated = true\n\
         [[reference]]\nplatform = \"simulated\"\nmeasurement = \"{}\"\n\
         [binary]\nsha256 = \"{}\"\n[model]\nsha256 = \"{}\"\n",
        field(&record, "simulated_measurement"),
        field(&record, "binary_sha256"),
        field(&record, "model_manifest_digest"),
    );
    let policy_path = tmp.path().join("policy.toml");
    std::fs::write(&policy_path, &policy_text).expect("policy");
    let policy_arg = policy_path.to_string_lossy().into_owned();
    let (ok, out) = veil(&["verify", &url, "--policy", &policy_arg, "--json"]);
    assert!(ok, "veil verify refused the image's server: {out}");
    let json_start = out.find('{').expect("JSON output");
    let verdict: Value = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter::<Value>()
        .next()
        .expect("one JSON object")
        .expect("JSON");
    assert_eq!(verdict["ok"], true);
    assert_eq!(verdict["platform"], "simulated");
    assert_eq!(verdict["measurement"], record["simulated_measurement"]);
    assert_eq!(
        verdict["manifest"]["binary_sha256"],
        record["binary_sha256"]
    );
    assert_eq!(
        verdict["manifest"]["model_digest"],
        record["model_manifest_digest"]
    );
    assert_eq!(verdict["manifest"]["measured_image"], true);
    let (ok, table) = veil(&["verify", &url, "--policy", &policy_arg]);
    assert!(
        ok && table.contains("measured (the server runs from the initrd"),
        "{table}"
    );

    let asked = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answer = rt.block_on(async {
        let policy = Policy::from_toml(&policy_text).expect("policy");
        let client = Client::connect(&url, policy).await.expect("attested");
        let mut req = ChatRequest::new(field(&record, "model_id"), vec![ChatMessage::user(PROMPT)]);
        req.sampling.max_tokens = Some(8);
        req.sampling.temperature = Some(0.0);
        client.chat(&req).await.expect("sealed chat")
    });
    let text = answer.text().unwrap_or_default().to_owned();
    eprintln!(
        "sealed chat answered in {:?}: {text:?} ({:?} after QEMU started)",
        asked.elapsed(),
        guest.started.elapsed()
    );
    assert!(!text.trim().is_empty(), "empty answer");
    let console = guest.console_text();
    assert!(!console.contains(PROMPT), "the prompt is on the console");
}

#[test]
fn a_server_that_cannot_start_powers_the_vm_off_with_the_reason() {
    let _one = ONE_GUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::tempdir().expect("temp dir");
    let image = tmp.path().join("image");
    build_image_with(&image, "auto");
    let mut guest = Guest::boot(&Boot {
        image: &image,
        host_port: free_port(),
        guest_port: 8080,
        accel: &std::env::var("VEIL_QEMU_ACCEL").unwrap_or_else(|_| "tcg".to_owned()),
        console: tmp.path().join("console.log"),
    });
    let ran = guest.wait_exit(Duration::from_secs(180));
    let console = guest.console_text();
    eprintln!("the guest powered off after {ran:?}");
    assert!(
        console.contains("choosing the TEE backend"),
        "no reason on the console:\n{console}"
    );
    assert!(
        console.contains("veil-init: veil-server exited (exit status: 1): powering off"),
        "{console}"
    );
    assert!(!console.contains("listening on"), "{console}");
}
