//! The SDK against the in-process test server: the happy path, then the tamper matrix —
//! every case fails with its own error, and bad evidence means no gateway request at all.

use crate::support;

use futures_util::StreamExt as _;
use support::{ANSWER, COMPLETION_MARKER, MEASUREMENT, Tamper, TestServer, policy};
use veil_attest::{CheckName, Policy, Reference};
use veil_client::{ChatMessage, ChatRequest, Client, CompletionRequest, Error};

fn chat_req(prompt: &str) -> ChatRequest {
    ChatRequest::new("test-model", vec![ChatMessage::user(prompt)])
}

async fn collect_stream(client: &Client) -> Result<String, Error> {
    let mut s = client.chat_stream(&chat_req("hi")).await?;
    let mut text = String::new();
    while let Some(chunk) = s.next().await {
        text.push_str(chunk?.text().unwrap_or_default());
    }
    Ok(text)
}

#[tokio::test]
async fn chat_complete_models_and_streams_through_the_attested_gateway() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests")
        .with_api_key("sk-test-key");
    assert_eq!(client.attested().verdict.measurements[0].value, MEASUREMENT);
    let models = client.models().await.expect("models");
    assert_eq!(models.data[0].id, "test-model");
    let chat = client.chat(&chat_req("hi")).await.expect("chat");
    assert_eq!(chat.text(), Some(ANSWER.concat().as_str()));
    assert_eq!(
        collect_stream(&client).await.expect("stream"),
        ANSWER.concat()
    );
    let done = client
        .complete(&CompletionRequest::new("test-model", "once upon"))
        .await
        .expect("complete");
    assert_eq!(done.choices[0].text, ANSWER.concat());
    let mut s = client
        .complete_stream(&CompletionRequest::new("test-model", "once upon"))
        .await
        .expect("stream");
    let mut text = String::new();
    while let Some(c) = s.next().await {
        text.push_str(&c.expect("chunk").choices[0].text);
    }
    assert_eq!(text, ANSWER.concat());
    let auth = server.shared.authorizations.lock().expect("lock").clone();
    assert!(
        auth.iter().all(|a| a == "Bearer sk-test-key"),
        "API key travels inside"
    );
    assert_eq!(server.attestations(), 1, "attested once, not per request");
}

#[tokio::test]
async fn server_errors_surface_as_typed_api_errors() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    let mut req = chat_req("hi");
    req.model = "no-such-model".into();
    for r in [
        client.chat(&req).await.map(|_| ()),
        client.chat_stream(&req).await.map(|_| ()),
    ] {
        match r {
            Err(Error::Api {
                status: 404,
                message,
                ..
            }) => assert_eq!(message, "model not found"),
            other => panic!("expected Api 404, got {other:?}"),
        }
    }
}

async fn rejected_before_sending(server: &TestServer, policy: Policy) -> Error {
    let err = Client::connect(&server.url, policy)
        .await
        .expect_err("must be rejected");
    assert_eq!(server.posts(), 0, "no gateway request before verification");
    err
}

#[tokio::test]
async fn wrong_measurement_is_rejected_before_any_request() {
    let server = TestServer::start().await;
    let p = Policy::default()
        .allow_simulated(true)
        .with_reference(Reference::simulated([5; 48]));
    let e = rejected_before_sending(&server, p).await;
    assert_eq!(e.verify_check(), Some(CheckName::Measurement), "{e}");
}

#[tokio::test]
async fn wrong_nonce_is_rejected_before_any_request() {
    let server = TestServer::start().await;
    server.set(Tamper::WrongNonce);
    let e = rejected_before_sending(&server, policy()).await;
    assert_eq!(e.verify_check(), Some(CheckName::ReportData), "{e}");
}

#[tokio::test]
async fn report_data_over_another_key_is_rejected_before_any_request() {
    let server = TestServer::start().await;
    server.set(Tamper::SwapKey);
    let e = rejected_before_sending(&server, policy()).await;
    assert_eq!(e.verify_check(), Some(CheckName::ReportData), "{e}");
}

#[tokio::test]
async fn simulated_without_permission_is_rejected_before_any_request() {
    let server = TestServer::start().await;
    let p = Policy::default().with_reference(Reference::simulated(MEASUREMENT));
    let e = rejected_before_sending(&server, p).await;
    assert_eq!(e.verify_check(), Some(CheckName::Platform), "{e}");
}

#[tokio::test]
async fn other_model_digest_than_pinned_is_rejected_before_any_request() {
    let server = TestServer::start().await;
    let p = Policy::from_toml(&format!(
        "allow_simulated = true\n[[reference]]\nplatform = \"simulated\"\nmeasurement = \"{}\"\n[model]\nsha256 = \"{}\"\n",
        hex::encode(MEASUREMENT),
        hex::encode([9u8; 32])
    ))
    .expect("policy");
    let e = rejected_before_sending(&server, p).await;
    assert_eq!(e.verify_check(), Some(CheckName::Manifest), "{e}");
}

#[tokio::test]
async fn flipped_request_byte_is_refused_by_the_gateway() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    server.set(Tamper::FlipRequestByte);
    let e = client.chat(&chat_req("hi")).await.expect_err("refused");
    assert!(
        matches!(e, Error::GatewayRefused { status: 400, .. }),
        "{e}"
    );
    assert_eq!(e.check(), "gateway");
}

#[tokio::test]
async fn flipped_response_byte_fails_authentication() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    server.set(Tamper::FlipResponseByte);
    let e = client.chat(&chat_req("hi")).await.expect_err("tampered");
    assert!(
        matches!(
            e,
            Error::ResponseIntegrity(veil_protocol::Error::Authentication)
        ),
        "{e}"
    );
    let e = collect_stream(&client).await.expect_err("tampered stream");
    assert!(
        matches!(
            e,
            Error::ResponseIntegrity(veil_protocol::Error::ChunkAuthentication { .. })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn dropped_final_chunk_is_reported_as_truncation() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    server.set(Tamper::DropFinalChunk);
    let mut s = client
        .chat_stream(&chat_req("hi"))
        .await
        .expect("head arrives");
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    let last = items.pop().expect("an item");
    assert!(matches!(last, Err(Error::Truncated)), "{last:?}");
    assert!(
        items.iter().all(Result::is_ok),
        "every chunk before it authenticated"
    );
}

#[tokio::test]
async fn reordered_chunks_fail_authentication() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    server.set(Tamper::ReorderChunks);
    let e = collect_stream(&client).await.expect_err("reordered");
    assert!(
        matches!(
            e,
            Error::ResponseIntegrity(veil_protocol::Error::ChunkAuthentication { index: 1 })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn replayed_request_is_refused_and_the_server_survives() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    client.chat(&chat_req("hi")).await.expect("first");
    let (ct, body) = server
        .shared
        .last_post
        .lock()
        .expect("lock")
        .clone()
        .expect("captured");
    veil_client::install_crypto_provider();
    let resp = reqwest::Client::new()
        .post(format!("{}/.well-known/ohttp-gateway", server.url))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.expect("text").contains("replayed"));
    client
        .chat(&chat_req("hi"))
        .await
        .expect("server still serves");
}

#[tokio::test]
async fn unknown_key_after_rotation_reattests_once_and_retries() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    let first = client.attested().key_config.key_id();
    server.set(Tamper::RotateKey);
    client.chat(&chat_req("hi")).await.expect("retried");
    assert_eq!(server.attestations(), 2);
    assert_ne!(client.attested().key_config.key_id(), first);
    assert_eq!(
        collect_stream(&client).await.expect("stream"),
        ANSWER.concat()
    );
}

#[tokio::test]
async fn a_relay_that_runs_a_request_then_claims_unknown_key_gets_no_second_run() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    let runs = || server.shared.requests.lock().expect("lock").len();
    for streamed in [false, true] {
        let before = runs();
        server.set(Tamper::RunThenClaimUnknownKey);
        let err = if streamed {
            collect_stream(&client).await.expect_err("refused")
        } else {
            client.chat(&chat_req("hi")).await.expect_err("refused")
        };
        assert!(matches!(err, Error::KeyNotRotated), "{err:?}");
        assert_eq!(err.check(), "key_not_rotated");
        assert_eq!(
            runs(),
            before + 1,
            "the request ran once, and was not sent again"
        );
    }
    // It re-attested to find out, and the key it holds is still the server's.
    assert_eq!(server.attestations(), 3);
    client.chat(&chat_req("hi")).await.expect("still serves");
}

#[tokio::test]
async fn unknown_key_text_without_the_problem_type_is_not_a_rotation() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    server.set(Tamper::UnknownKeyTextOnly);
    let err = client.chat(&chat_req("hi")).await.expect_err("refused");
    assert!(
        matches!(err, Error::GatewayRefused { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(server.attestations(), 1, "no re-attestation");
    assert_eq!(server.posts(), 1, "not re-sent");
}

#[tokio::test]
async fn a_busy_attestation_is_retried_as_the_server_says_then_given_up() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    let server = TestServer::start().await;
    // Two 503s without advice: retried after the backoff (250 ms, then 500 ms, plus jitter).
    server.shared.busy.store(2, Ordering::SeqCst);
    Client::connect(&server.url, policy())
        .await
        .expect("attests on the third request");
    assert_eq!(server.attestations(), 3);

    // A 429 with Retry-After: 1 is waited out.
    *server.shared.retry_after.lock().expect("lock") = Some(1);
    server.shared.busy.store(1, Ordering::SeqCst);
    let started = Instant::now();
    Client::connect(&server.url, policy())
        .await
        .expect("attests on the second request");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.attestations(), 5);

    // Busy for good: four requests, then the server's refusal.
    *server.shared.retry_after.lock().expect("lock") = Some(0);
    server.shared.busy.store(100, Ordering::SeqCst);
    let err = Client::connect(&server.url, policy())
        .await
        .expect_err("gives up");
    assert!(
        matches!(err, Error::AttestationUnavailable { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(server.attestations(), 9);
    assert_eq!(server.posts(), 0, "nothing sent");
}

#[tokio::test]
async fn nothing_readable_on_the_wire() {
    let server = TestServer::start().await;
    let (url, log) = support::recording_relay(server.addr).await;
    let prompt = "PROMPT-SECRET-1f2e3d what is the capital of France";
    let api_key = "sk-APIKEY-SECRET-9a8b7c";
    let client = Client::connect(&url, policy())
        .await
        .expect("attests")
        .with_api_key(api_key);
    client.chat(&chat_req(prompt)).await.expect("chat");
    let mut s = client.chat_stream(&chat_req(prompt)).await.expect("stream");
    while let Some(c) = s.next().await {
        c.expect("chunk");
    }
    client.models().await.expect("models");
    let wire = log.lock().expect("lock").clone();
    assert!(wire.len() > 1000, "the relay saw the traffic");
    for needle in [
        prompt,
        "PROMPT-SECRET",
        api_key,
        "APIKEY-SECRET",
        COMPLETION_MARKER,
        "/v1/chat",
        "Bearer",
    ] {
        assert!(
            !wire.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} found on the wire"
        );
    }
}

/// `examples/chat`, built beside this test (`cargo test` builds a package's examples).
fn chat_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory");
    let bin = dir.join("examples").join("chat");
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build -p veil-client --examples` (or `cargo test -p \
         veil-client`, which builds them)",
        bin.display()
    );
    bin
}

/// Runs the chat example with `args` and `env` in its own thread (the test server runs on
/// this test's runtime).
fn run_chat_example(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(chat_example());
    cmd.args(args).env_remove("VEIL_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    std::thread::spawn(move || cmd.output().expect("runs"))
        .join()
        .expect("thread")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_example_takes_help_an_api_key_and_sends_max_tokens() {
    let help = run_chat_example(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&help.stdout);
    for flag in ["--url", "--api-key", "VEIL_API_KEY", "--max-tokens"] {
        assert!(usage.contains(flag), "{usage}");
    }
    assert_eq!(run_chat_example(&["--bogus"], &[]).status.code(), Some(2));

    let server = TestServer::start().await;
    let url = server.url.clone();
    let base = ["--url", &url, "--allow-simulated", "hi"];
    let with_flag = [&base[..], &["--api-key", "sk-flag", "--max-tokens", "7"]].concat();
    for (args, env) in [
        (&with_flag[..], &[][..]),
        (&base[..], &[("VEIL_API_KEY", "sk-env")][..]),
    ] {
        let out = run_chat_example(args, env);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ANSWER.concat());
    }
    assert_eq!(
        *server.shared.authorizations.lock().expect("lock"),
        ["Bearer sk-flag", "Bearer sk-env"]
    );
    let sent: Vec<_> = server
        .shared
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|r| r["max_tokens"].clone())
        .collect();
    assert_eq!(sent, [serde_json::json!(7), serde_json::json!(256)]);
}
