//! Input limits over a real socket ([`veil_server::listen::serve`] in-process, real model):
//! slow clients, request heads, bodies, connections, messages and `max_tokens`. After each
//! refusal a normal request still succeeds.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use veil_engine::EngineConfig;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::{ApiConfig, router};
use veil_server::listen::{self, ListenConfig};

const SLACK: Duration = Duration::from_secs(3);

/// Serves the real model with these limits on a free loopback port.
async fn serve(api: ApiConfig, config: ListenConfig) -> SocketAddr {
    let (state, worker) = common::app_with(
        EngineConfig::default(),
        ApiConfig {
            allow_plaintext: true,
            ..api
        },
    );
    worker.spawn().expect("worker thread");
    let drain = state.drain();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(listen::serve(
        listener,
        router(state),
        config,
        std::future::pending(),
        drain,
    ));
    addr
}

/// Sends `request` whole and reads the answer until the server closes the connection
/// (a server that refuses a request head closes without reading the rest of it: the
/// answer is what arrived before the reset).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = vec![0; 16 << 10];
    let read_all = async {
        while let Ok(n) = s.read(&mut buf).await
            && n > 0
        {
            out.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all)
        .await
        .expect("answered in time");
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    common::binary::status(answer)
}

fn json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").expect("head and body").1;
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {answer}"))
}

fn chat(messages: usize, max_tokens: Option<u64>) -> Value {
    let mut v = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": vec![json!({"role": "user", "content": "Hi"}); messages],
        "temperature": 0,
    });
    if let Some(n) = max_tokens {
        v["max_tokens"] = json!(n);
    }
    v
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> String {
    exchange(addr, &common::binary::post(path, &body.to_string(), None)).await
}

/// A normal request still succeeds (after every refusal).
async fn still_serves(addr: SocketAddr) {
    let r = post(addr, "/v1/chat/completions", &chat(1, Some(2))).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json_body(&r)["usage"]["completion_tokens"], 2);
}

fn get_healthz(extra_headers: &str) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// Sends `bytes` one per `pace` until the server closes the connection; returns when it did.
async fn trickle(addr: SocketAddr, bytes: &[u8], pace: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        for b in bytes {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(pace).await;
        }
        std::future::pending::<()>().await;
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got)).await;
    writer.abort();
    (started.elapsed(), got)
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let timeout = Duration::from_secs(2);
    let addr = serve(
        ApiConfig::default(),
        ListenConfig {
            header_read_timeout: timeout,
            ..ListenConfig::default()
        },
    )
    .await;
    // Slowloris: a request head at one byte per second is cut off after the timeout.
    let (took, got) = trickle(addr, &get_healthz(""), Duration::from_secs(1)).await;
    assert!(
        took >= timeout - Duration::from_millis(500) && took < timeout + SLACK,
        "disconnected after {took:?}"
    );
    assert!(
        got.is_empty(),
        "no answer: {}",
        String::from_utf8_lossy(&got)
    );
    // The same head sent at once is answered.
    let r = exchange(addr, &get_healthz("")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.ends_with("ok"), "{r}");
    still_serves(addr).await;

    // An idle keep-alive connection is closed after the same timeout.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).await.expect("answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "kept alive and answered"
    );
    let idle = Instant::now();
    let n = tokio::time::timeout(timeout + SLACK, s.read(&mut buf))
        .await
        .expect("closed within the timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed, not answered");
    assert!(idle.elapsed() >= timeout - Duration::from_millis(500));
    still_serves(addr).await;
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let addr = serve(
        ApiConfig::default(),
        ListenConfig {
            max_header_bytes: 8192,
            max_headers: 16,
            ..ListenConfig::default()
        },
    )
    .await;
    let big = |n: usize| format!("X-Big: {}\r\n", "a".repeat(n));
    let many = |n: usize| (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();

    let r = exchange(addr, &get_healthz(&big(10_000))).await;
    assert_eq!(status(&r), 431, "{r}");
    still_serves(addr).await;
    let r = exchange(addr, &get_healthz(&big(6_000))).await;
    assert_eq!(status(&r), 200, "a head under the limit: {r}");

    let r = exchange(addr, &get_healthz(&many(20))).await;
    assert_eq!(status(&r), 431, "{r}");
    still_serves(addr).await;
    let r = exchange(addr, &get_healthz(&many(10))).await;
    assert_eq!(status(&r), 200, "fewer fields than the limit: {r}");
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408() {
    let timeout = Duration::from_secs(2);
    let addr = serve(
        ApiConfig::default(),
        ListenConfig {
            body_read_timeout: timeout,
            ..ListenConfig::default()
        },
    )
    .await;
    let body = chat(1, Some(2)).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&body.as_bytes()[..10])
        .await
        .expect("part of the body");
    let mut out = vec![0; 4096];
    let n = tokio::time::timeout(timeout + SLACK, s.read(&mut out))
        .await
        .expect("answered within the timeout")
        .expect("read");
    let r = String::from_utf8_lossy(&out[..n]).into_owned();
    assert!(started.elapsed() >= timeout - Duration::from_millis(500));
    assert_eq!(status(&r), 408, "{r}");
    let err = &json_body(&r)["error"];
    assert_eq!(err["code"], "request_timeout");
    assert_eq!(err["type"], "invalid_request_error");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    // The same body sent at once is served.
    still_serves(addr).await;
}

#[tokio::test]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    let addr = serve(ApiConfig::default(), ListenConfig::default()).await;
    // Eight times the 1 MiB limit: far more than the socket buffers hold, so the server
    // answers while the client is still writing.
    let body = vec![b' '; 8 << 20];
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    // Like an HTTP client: the whole body first, then the answer. Without a lingering close
    // the server resets the connection and this write fails with a broken pipe.
    s.write_all(&body)
        .await
        .expect("the server drains the refused body instead of resetting");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("answered in time")
        .expect("the answer arrives, no reset");
    let r = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status(&r), 413, "{r}");
    assert!(json_body(&r)["error"]["message"].is_string(), "{r}");
    still_serves(addr).await;
}

#[tokio::test]
async fn too_many_messages_and_max_tokens_over_the_ceiling_get_400() {
    let addr = serve(
        ApiConfig {
            max_messages: 4,
            max_tokens_limit: 6,
            ..ApiConfig::default()
        },
        ListenConfig::default(),
    )
    .await;
    let refused = |r: &str, code: &str, param: &str| {
        assert_eq!(status(r), 400, "{r}");
        let err = &json_body(r)["error"];
        assert_eq!(err["code"], code, "{r}");
        assert_eq!(err["param"], param, "{r}");
        assert_eq!(err["type"], "invalid_request_error", "{r}");
    };
    let r = post(addr, "/v1/chat/completions", &chat(5, Some(2))).await;
    refused(&r, "too_many_messages", "messages");
    still_serves(addr).await;
    let r = post(addr, "/v1/chat/completions", &chat(4, Some(2))).await;
    assert_eq!(status(&r), 200, "at the message limit: {r}");

    let r = post(addr, "/v1/chat/completions", &chat(1, Some(7))).await;
    refused(&r, "max_tokens_too_large", "max_tokens");
    still_serves(addr).await;
    let completion = json!({"model": DEFAULT_MODEL_ID, "prompt": "Once", "max_tokens": 7});
    let r = post(addr, "/v1/completions", &completion).await;
    refused(&r, "max_tokens_too_large", "max_tokens");
    still_serves(addr).await;

    // At the ceiling, and with no max_tokens (the ceiling is the default), chat is served.
    let mut body = chat(1, Some(6));
    body["ignore_eos"] = json!(true);
    let r = post(addr, "/v1/chat/completions", &body).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json_body(&r)["usage"]["completion_tokens"], 6);
    let mut body = chat(1, None);
    body["ignore_eos"] = json!(true);
    let r = post(addr, "/v1/chat/completions", &body).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(json_body(&r)["usage"]["completion_tokens"], 6);
    assert_eq!(json_body(&r)["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let addr = serve(
        ApiConfig::default(),
        ListenConfig {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(60),
            ..ListenConfig::default()
        },
    )
    .await;
    let first = TcpStream::connect(addr).await.expect("connect");
    let _second = TcpStream::connect(addr).await.expect("connect");
    let third = tokio::spawn(async move { exchange(addr, &get_healthz("")).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!third.is_finished(), "a third connection is not served yet");
    drop(first);
    let r = tokio::time::timeout(SLACK, third)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn parameters_that_would_change_the_answer_are_refused_by_name() {
    let addr = serve(ApiConfig::default(), ListenConfig::default()).await;
    let cases = [
        (
            "/v1/completions",
            json!({"prompt": "Hi", "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tools",
        ),
        ("/v1/chat/completions", json!({"store": true}), "store"),
        (
            "/v1/completions",
            json!({"prompt": "Hi", "echo": true}),
            "echo",
        ),
        (
            "/v1/completions",
            json!({"prompt": "Hi", "top_logprobs": 2}),
            "top_logprobs",
        ),
    ];
    for (path, extra, param) in cases {
        let mut body = if path == "/v1/completions" {
            json!({"model": DEFAULT_MODEL_ID, "max_tokens": 2})
        } else {
            chat(1, Some(2))
        };
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = post(addr, path, &body).await;
        assert_eq!(status(&r), 400, "{param}: {r}");
        let error = &json_body(&r)["error"];
        assert_eq!(error["param"], param, "{r}");
        assert_eq!(error["code"], "unsupported_parameter", "{r}");
        assert_eq!(error["type"], "invalid_request_error", "{r}");
    }
    // A legacy function call in the history cannot be dropped from it silently.
    let mut body = chat(1, Some(2));
    body["messages"] = json!([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null,
         "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "user", "content": "Go on"},
    ]);
    let r = post(addr, "/v1/chat/completions", &body).await;
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(json_body(&r)["error"]["param"], "messages", "{r}");

    // Implemented parameters outside their range are refused by name too (not as unsupported).
    for (k, v) in [
        ("presence_penalty", json!(2.5)),
        ("frequency_penalty", json!(-3)),
        ("logit_bias", json!({"999999999": 1})),
        ("logit_bias", json!({"not-a-token": 1})),
        ("logit_bias", json!({"42": 101})),
        ("logprobs", json!(3)),
        ("top_logprobs", json!(21)),
        ("top_logprobs", json!(-1)),
        ("n", json!(9)),
        ("n", json!(0)),
        ("max_completion_tokens", json!(0)),
    ] {
        let mut body = chat(1, Some(2));
        body["logprobs"] = json!(true);
        body[k] = v;
        let r = post(addr, "/v1/chat/completions", &body).await;
        assert_eq!(status(&r), 400, "{k}: {r}");
        assert_eq!(json_body(&r)["error"]["param"], k, "{r}");
        assert_ne!(
            json_body(&r)["error"]["code"],
            "unsupported_parameter",
            "{r}"
        );
    }

    // Completions take 0 to 5 alternatives.
    for v in [json!(6), json!(true), json!(-1)] {
        let body =
            json!({"model": DEFAULT_MODEL_ID, "prompt": "Hi", "max_tokens": 2, "logprobs": v});
        let r = post(addr, "/v1/completions", &body).await;
        assert_eq!(status(&r), 400, "{v}: {r}");
        assert_eq!(json_body(&r)["error"]["param"], "logprobs", "{r}");
    }

    // Penalties reach the engine: a repeating pattern comes out otherwise.
    let completion = |presence: f64, frequency: f64| {
        json!({"model": DEFAULT_MODEL_ID, "prompt": "1, 2, 1, 2, 1, 2, 1, 2, 1, 2,",
               "max_tokens": 16, "temperature": 0, "ignore_eos": true,
               "presence_penalty": presence, "frequency_penalty": frequency})
    };
    let plain = json_body(&post(addr, "/v1/completions", &completion(0.0, 0.0)).await);
    let penalized = json_body(&post(addr, "/v1/completions", &completion(2.0, 2.0)).await);
    assert_ne!(
        plain["choices"][0]["text"], penalized["choices"][0]["text"],
        "{plain} {penalized}"
    );

    // SDK defaults (the neutral values) and fields that change nothing are accepted.
    let mut body = chat(1, Some(2));
    for (k, v) in [
        ("response_format", json!({"type": "text"})),
        ("tools", json!([])),
        ("logprobs", json!(false)),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0.0)),
        ("user", json!("someone")),
        ("metadata", json!({"k": "v"})),
    ] {
        body[k] = v;
    }
    let r = post(addr, "/v1/chat/completions", &body).await;
    assert_eq!(status(&r), 200, "{r}");
    still_serves(addr).await;
}
