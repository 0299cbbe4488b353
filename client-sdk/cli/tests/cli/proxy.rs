//! `veil proxy` (in-process router) and `veil verify URL` against the test server.

use std::sync::Arc;

use crate::support::{ANSWER, INNER_HEADERS, Tamper, TestServer, policy};
use veil_attest::{Policy, Reference};
use veil_cli::proxy::{Upstream, router};

async fn start_proxy(upstream: &str, policy: Policy) -> String {
    let app = router(Arc::new(Upstream::new(upstream, policy)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    url
}

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    veil_client::install_crypto_provider();
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("authorization", "Bearer sk-proxy")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn chat(stream: bool) -> serde_json::Value {
    serde_json::json!({"model": "test-model", "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn an_oversized_body_gets_a_413_in_openai_shape_not_a_reset() {
    let server = TestServer::start().await;
    let url = start_proxy(&server.url, policy()).await;
    veil_client::install_crypto_provider();
    let big = format!(
        "{{\"model\":\"test-model\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(5 << 20)
    );
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(resp.status().as_u16(), 413);
    let j: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(j["error"]["code"], "request_too_large");
    assert_eq!(server.posts(), 0, "nothing forwarded");
    // The proxy keeps serving.
    let (status, _) = post(&url, chat(false)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn proxy_reemits_json_and_sse_after_verification() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.url, policy()).await;
    let (status, body) = post(&proxy, chat(false)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER.concat());
    let (status, body) = post(&proxy, chat(true)).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(body.matches("chat.completion.chunk").count(), 3);
    assert_eq!(
        server.shared.authorizations.lock().expect("lock")[0],
        "Bearer sk-proxy"
    );
}

/// Posts a chat through the proxy; returns the status and the response headers.
async fn post_headers(url: &str, body: serde_json::Value) -> (u16, reqwest::header::HeaderMap) {
    veil_client::install_crypto_provider();
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    (resp.status().as_u16(), resp.headers().clone())
}

#[tokio::test]
async fn proxy_passes_on_retry_after_and_rate_limit_headers_only() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.url, policy()).await;
    let mut not_found = chat(false);
    not_found["model"] = serde_json::json!("no-such-model");
    for (what, body, status, content_type) in [
        ("whole", chat(false), 200, "application/json"),
        ("streamed", chat(true), 200, "text/event-stream"),
        ("refused", not_found, 404, "application/json"),
    ] {
        let (got, headers) = post_headers(&proxy, body).await;
        assert_eq!(got, status, "{what}");
        let header = |n: &str| headers.get(n).map(|v| v.to_str().expect("ascii"));
        for (name, value) in INNER_HEADERS {
            let expected = (name != "x-internal-note").then_some(value);
            assert_eq!(header(name), expected, "{what}: {name}");
        }
        assert_eq!(header("content-type"), Some(content_type), "{what}");
    }
}

#[tokio::test]
async fn proxy_ends_a_truncated_stream_with_an_error_event_and_no_done() {
    let server = TestServer::start().await;
    let proxy = start_proxy(&server.url, policy()).await;
    server.set(Tamper::DropFinalChunk);
    let (status, body) = post(&proxy, chat(true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("[DONE]"), "{body}");
    let last = body.trim_end().rsplit("\n\n").next().expect("event");
    let err: serde_json::Value =
        serde_json::from_str(last.trim_start_matches("data: ")).expect("error event");
    assert_eq!(err["error"]["code"], "truncated");
}

#[tokio::test]
async fn proxy_refuses_with_openai_error_and_sends_nothing_on_bad_evidence() {
    let server = TestServer::start().await;
    let bad = Policy::default()
        .allow_simulated(true)
        .with_reference(Reference::simulated([7; 48]));
    let proxy = start_proxy(&server.url, bad).await;
    let (status, body) = post(&proxy, chat(false)).await;
    assert_eq!(status, 502);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "measurement");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("nothing was sent")
    );
    assert_eq!(server.posts(), 0);
}

#[tokio::test]
async fn veil_verify_url_checks_a_live_server_and_names_failures() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let run = move |extra: &'static [&'static str]| {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut args = vec!["verify".to_owned(), url, "--json".to_owned()];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            std::process::Command::new(env!("CARGO_BIN_EXE_veil"))
                .args(args)
                .output()
                .expect("runs")
        })
        .join()
        .expect("thread")
    };
    let (ok, rejected) =
        tokio::task::spawn_blocking(move || (run(&["--allow-simulated"]), run(&[])))
            .await
            .expect("join");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(v["manifest"]["model_id"], "test-model");
    let checks = v["checks"].as_array().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "report_data" && c["ok"] == true)
    );
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "manifest" && c["ok"] == true)
    );
    // Both key configurations are bound with the nonce, X-Wing first.
    assert!(
        checks.iter().any(|c| c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("gateway keys 1 (X-Wing), 2 (X25519) bound"))),
        "{checks:?}"
    );
    assert_eq!(rejected.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("rejected: platform"));
}
