//! What a new user meets in the first hour (issue #21): help without stray lines, one
//! report for "no server there" in every command, a URL without `http://` named as such,
//! the TCB in words, `veil chat` sending an API key, and `veil proxy` finding its port
//! taken before it contacts the server.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use veil_attest::{Evidence, SimulatedEvidence};

use crate::support::TestServer;

fn veil(args: &[&str]) -> Output {
    veil_with(args, &[], b"")
}

/// Runs `veil` in its own thread (the test server runs on this test's runtime), with extra
/// environment variables and `stdin` as its input.
fn veil_with(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let stdin = stdin.to_vec();
    std::thread::spawn(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(args)
            .env_remove("VEIL_API_KEY")
            .envs(env)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut input = child.stdin.take().expect("stdin");
        // A command that exits before reading its input closes the pipe: not an error here.
        let _ = input.write_all(&stdin);
        drop(input);
        child.wait_with_output().expect("output")
    })
    .join()
    .expect("thread")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback port nothing listens on (bound a moment ago, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn help_pages_have_no_stray_backslash_line() {
    for sub in [
        &[][..],
        &["verify"],
        &["attest"],
        &["proxy"],
        &["chat"],
        &["policy"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = veil(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(
            text.lines().all(|l| l.trim() != "\\"),
            "{args:?} prints a lone backslash line:\n{text}"
        );
    }
}

#[test]
fn no_server_is_the_same_transport_error_with_exit_2_in_verify_and_chat() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        vec!["verify", &url, "--allow-simulated"],
        vec!["chat", &url, "--allow-simulated"],
    ] {
        let out = veil(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("veil: error: transport: "), "{args:?}: {err}");
        assert!(!err.contains("transport: transport"), "{args:?}: {err}");
        assert!(!err.contains("rejected"), "{args:?}: {err}");
    }
}

#[test]
fn a_url_without_scheme_is_refused_with_add_http() {
    for args in [
        &["verify", "127.0.0.1:8080", "--allow-simulated"][..],
        &["verify", "localhost:8080", "--allow-simulated"],
        &["chat", "127.0.0.1:8080", "--allow-simulated"],
        &[
            "proxy",
            "--upstream",
            "127.0.0.1:8080",
            "--allow-simulated",
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = veil(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("add http:// (or https://) in front, as in http://"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("relative URL"), "{args:?}: {err}");
    }
}

#[test]
fn the_table_gives_the_tcb_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("sim.json");
    let ev = Evidence::Simulated(SimulatedEvidence::sign(&[7; 32], [1; 48], [2; 64]));
    std::fs::write(&bundle, ev.to_json()).expect("write");
    let out = veil(&[
        "verify",
        "--evidence",
        bundle.to_str().expect("utf-8"),
        "--allow-simulated",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let tcb = |table: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with("tcb "))
            .unwrap_or_else(|| panic!("no tcb line in {table}"))
            .to_owned()
    };
    assert!(
        tcb(&table).contains("none (the simulated platform has no hardware TCB)"),
        "{table}"
    );

    let v = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../attest/tests/vectors/snp/milan-v2-virtee");
    let out = veil(&[
        "verify",
        "snp",
        "--report",
        v.join("report.bin").to_str().expect("utf-8"),
        "--cert",
        v.join("vcek.der").to_str().expect("utf-8"),
        "--cert",
        v.join("ask_ark.pem").to_str().expect("utf-8"),
        "--now",
        "2026-11-25T00:00:00Z",
        "--allow-outdated-tcb",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = tcb(&table);
    for word in ["bootloader ", ", tee ", ", snp ", ", microcode "] {
        assert!(line.contains(word), "{line}");
    }
    assert!(
        !table.contains("{\"kind\""),
        "raw JSON in the table: {table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_sends_the_api_key_from_the_flag_or_veil_api_key() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let out = veil_with(
        &[
            "chat",
            &url,
            "--allow-simulated",
            "--api-key",
            "sk-from-flag",
        ],
        &[],
        b"hi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = veil_with(
        &["chat", &url, "--allow-simulated"],
        &[("VEIL_API_KEY", "sk-from-env")],
        b"hi\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = veil_with(&["chat", &url, "--allow-simulated"], &[], b"hi\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        *server.shared.authorizations.lock().expect("lock"),
        ["Bearer sk-from-flag", "Bearer sk-from-env"],
        "one key per chat that was given one, none without"
    );
    // The help names the variable but never shows its value.
    let help = veil_with(
        &["chat", "--help"],
        &[("VEIL_API_KEY", "sk-secret-value")],
        b"",
    );
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("VEIL_API_KEY") && !help.contains("sk-secret-value"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_finds_its_port_taken_before_it_attests() {
    let server = TestServer::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let out = veil(&[
        "proxy",
        "--upstream",
        &server.url,
        "--listen",
        &listen,
        "--allow-simulated",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on {listen}")), "{err}");
    assert!(!err.contains("attesting"), "{err}");
    assert_eq!(server.attestations(), 0, "the server was contacted");
}
