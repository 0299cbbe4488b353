//! A client refuses a policy that pins nothing before any traffic; `--allow-simulated` alone
//! accepts the simulated platform only; server strings never reach a terminal raw.

mod support;

use std::process::{Command, Output};

use support::{TestServer, manifest};
use veil_client::{Client, Error, Policy, Reference, VerifyError};

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

#[tokio::test]
async fn connect_refuses_an_unpinned_policy_before_any_request() {
    let server = TestServer::start().await;
    for policy in [
        Policy::default(),
        Policy::default().with_reference(Reference::tdx_mrtd([1; 48])),
    ] {
        let e = Client::connect(&server.url, policy)
            .await
            .expect_err("unpinned");
        assert!(
            matches!(&e, Error::Verification(VerifyError::Unpinned(_))),
            "{e:?}"
        );
        assert_eq!(e.check(), "measurement");
    }
    assert_eq!(server.attestations(), 0, "nothing fetched");
    assert_eq!(server.posts(), 0);
    // The explicit opt-in lets it through, and the verdict says so.
    let c = Client::connect(
        &server.url,
        Policy::default()
            .allow_simulated(true)
            .accept_any_measurement(true),
    )
    .await
    .expect("accept_any_measurement");
    assert!(
        c.attested()
            .verdict
            .warnings
            .iter()
            .any(|w| w.contains("accept_any_measurement")),
        "{:?}",
        c.attested().verdict.warnings
    );
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

#[test]
fn any_marks_a_register_as_skipped_on_purpose() {
    let text = format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"{m}\"\nrtmr0 = \"any\"\nrtmr1 = \"{m}\"\n\
         rtmr2 = \"{m}\"\nrtmr3 = \"{m}\"\n",
        m = "22".repeat(48)
    );
    let p = Policy::from_toml(&text).expect("parses");
    p.check_pinned().expect("every register pinned or any");
    let without = text.replace("rtmr0 = \"any\"\n", "");
    let e = Policy::from_toml(&without)
        .expect("parses")
        .check_pinned()
        .expect_err("rtmr0 left out");
    assert!(e.to_string().contains("leaves rtmr0 unpinned"), "{e}");
    assert!(Policy::from_toml(&text.replace("\"any\"", "\"anything\"")).is_err());
}

#[test]
fn binary_or_model_pins_without_a_measurement_do_not_parse() {
    let e = Policy::from_toml(&format!("[binary]\nsha256 = \"{}\"\n", "ab".repeat(32)))
        .expect_err("binary without measurement");
    assert!(
        e.to_string()
            .contains("no [[reference]] pins a launch measurement")
    );
    let e = Policy::from_toml(&format!(
        "[[reference]]\nplatform = \"tdx\"\nmrtd = \"any\"\n[model]\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    ))
    .expect_err("only any");
    assert!(e.to_string().contains("[binary]/[model]"));
}

#[tokio::test]
async fn allow_simulated_without_a_policy_refuses_hardware_verdicts() {
    let p = Policy::default().allow_simulated(true);
    p.check_pinned().expect("simulated only");
    let e = p
        .check_verdict_pinned(veil_client::Platform::SevSnp)
        .expect_err("hardware refused");
    assert!(e.to_string().contains("pins no sev-snp measurement"), "{e}");
    p.check_verdict_pinned(veil_client::Platform::Simulated)
        .expect("simulated accepted");
    // And end to end: a simulated server is fine with --allow-simulated alone.
    let server = TestServer::start().await;
    Client::connect(&server.url, p).await.expect("simulated");
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
