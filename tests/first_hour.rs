//! A new user's first hour with the real binaries (issue #21): `veil-server serve` takes a
//! host name, finds its port taken before it touches the model, names a missing model file,
//! and says the default model is a demo; the model id in `veil chat --help`'s example is the
//! one the server serves, and that example chats with it end to end.
//!
//! Needs the built binaries (`cargo test --workspace` builds them) and the default model
//! (fetched and cached once, as the server's own tests do).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use veil_system_tests::workspace_bin;

/// A `veil-server` child, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `veil-server ARGS` to its end, with a model cache that is empty and a Python that
/// does not exist: a run that went for the model fails at once instead of fetching it.
fn server_without_model(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().expect("tempdir");
    Command::new(workspace_bin("veil-server"))
        .args(args)
        .env("VEIL_CACHE_DIR", cache.path())
        .env("VEIL_PYTHON", "/nonexistent/python3")
        .stdin(Stdio::null())
        .output()
        .expect("veil-server runs")
}

#[test]
fn serve_finds_its_port_taken_before_it_looks_for_the_model() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let out = server_without_model(&[
        "serve",
        "--listen",
        &listen,
        "--tee",
        "simulated",
        "--no-auth",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("--listen {listen}: cannot listen there")),
        "{err}"
    );
    assert!(
        !err.contains("fetch") && !err.contains("verifying and loading"),
        "went for the model first: {err}"
    );
}

#[test]
fn a_model_path_that_does_not_exist_is_named() {
    for cmd in [
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "simulated",
            "--no-auth",
        ][..],
        &["manifest"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--model", "/nonexistent/model.gguf"]);
        let out = server_without_model(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("--model /nonexistent/model.gguf: no such file or directory"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("manifest:"),
            "{args:?} blames a manifest: {err}"
        );
    }
}

/// The model id `veil chat --help` uses in its example.
fn model_in_chat_help() -> String {
    let out = Command::new(workspace_bin("veil"))
        .args(["chat", "--help"])
        .output()
        .expect("veil runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut in_example = help
        .lines()
        .filter(|l| l.trim_start().starts_with("veil chat ") && l.contains(" --model "));
    let line = in_example
        .next()
        .unwrap_or_else(|| panic!("no example with --model in {help}"));
    let after = line.split(" --model ").nth(1).expect("an id");
    after.split_whitespace().next().expect("an id").to_owned()
}

#[test]
fn serve_takes_a_host_name_says_demo_and_the_chat_help_example_chats() {
    let mut child = Command::new(workspace_bin("veil-server"))
        .args([
            "serve",
            "--listen",
            "localhost:0",
            "--tee",
            "simulated",
            "--no-auth",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("veil-server starts");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("no `listening on` line; saw {seen:#?}"));
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
        seen.push(line);
    };
    assert!(
        seen.iter().any(|l| l.contains("demo model")
            && l.contains("often wrong")
            && l.contains("--model")),
        "the start lines do not say the default model is a demo: {seen:#?}"
    );

    let model = model_in_chat_help();
    let out = Command::new(workspace_bin("veil"))
        .args([
            "chat",
            &url,
            "--allow-simulated",
            "--model",
            &model,
            "--max-tokens",
            "8",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"What is the capital of France?\n")?;
            c.wait_with_output()
        })
        .expect("veil chat runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("error"), "model {model:?}: {err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no answer for model {model:?}: {err}"
    );
    drop(server);
}
