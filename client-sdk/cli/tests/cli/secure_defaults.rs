//! `veil proxy` and `veil chat` refuse a policy that pins nothing before any traffic; server
//! strings never reach a terminal raw. (The SDK's side: `client-sdk/tests/secure_defaults.rs`.)

use std::process::{Command, Output};

use crate::support::{TestServer, manifest};

fn veil(args: Vec<String>) -> Output {
    std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(args)
            .output()
            .expect("runs")
    })
    .join()
    .expect("thread")
}

fn temp_policy(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("veil-secure-defaults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_and_chat_refuse_an_unpinned_policy_file_without_contacting_the_server() {
    let server = TestServer::start().await;
    let tdx_half = temp_policy(
        "tdx-half.toml",
        &format!(
            "[[reference]]\nplatform = \"tdx\"\nmrtd = \"{}\"\n",
            "11".repeat(48)
        ),
    );
    let empty = temp_policy("empty.toml", "");
    for (policy, missing) in [
        (&tdx_half, "leaves rtmr0, rtmr1, rtmr2, rtmr3 unpinned"),
        (&empty, "no [[reference]]"),
    ] {
        for cmd in [
            vec![
                "proxy",
                "--upstream",
                &server.url,
                "--listen",
                "127.0.0.1:0",
            ],
            vec!["chat", &server.url],
        ] {
            let mut args: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
            args.extend(["--policy".to_owned(), policy.clone()]);
            let out = veil(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?}: {stderr}");
            assert!(
                stderr.contains("measurement") && stderr.contains(missing),
                "{cmd:?}: {stderr}"
            );
        }
    }
    assert_eq!(server.attestations(), 0, "refused before any traffic");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_strings_reach_the_terminal_without_control_characters() {
    let mut m = manifest();
    m.model_id = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}\rREJECTED".to_owned();
    let server = TestServer::start_with_manifest(m).await;
    let out = veil(vec![
        "verify".into(),
        server.url.clone(),
        "--allow-simulated".into(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("evil\\u{1b}[2J"), "{stdout}");
    for c in ['\u{1b}', '\u{7}', '\r'] {
        assert!(!stdout.contains(c), "raw {c:?} in {stdout:?}");
    }
}
