//! The HTTP API in-process (`oneshot`, no socket) against the real model.

use crate::common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use veil_engine::EngineConfig;
use veil_engine::chat::ChatMessage;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::{ApiConfig, router};

/// Greedy completion of `CHAT_PROMPT` by SmolLM2-135M-Instruct Q4_1 on this engine, which
/// computes the same logits as candle's reference `quantized_llama`, bit for bit (pinned).
const GREEDY_CHAT_START: &str = "L'Étoile, la Marseillaise, la femme";
const CHAT_PROMPT: &str = "What is the capital of France?";

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

async fn post(app: &Router, path: &str, body: Value) -> Reply {
    post_raw(app, path, serde_json::to_vec(&body).expect("serializes")).await
}

async fn post_raw(app: &Router, path: &str, body: Vec<u8>) -> Reply {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    send(app, req).await
}

async fn get(app: &Router, path: &str) -> Reply {
    send(
        app,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await
}

fn chat_body(content: &str, max_tokens: u64) -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// Data payloads of an SSE body, checking it ends with `[DONE]`.
fn sse_events(body: &str) -> Vec<Value> {
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(
        data.last(),
        Some(&"[DONE]"),
        "stream ends with [DONE]: {body}"
    );
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

fn started_app(engine: EngineConfig) -> Router {
    let (state, worker) = common::app(engine);
    worker.spawn().expect("worker thread");
    router(state)
}

/// A normal request still succeeds (used after every error).
async fn still_serves(app: &Router) {
    let r = post(app, "/v1/chat/completions", chat_body("Hi", 2)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn health_and_models() {
    let app = started_app(EngineConfig::default());
    let r = get(&app, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = get(&app, "/v1/models").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], DEFAULT_MODEL_ID);
    assert_eq!(v["data"][0]["object"], "model");
    let r = get(&app, &format!("/v1/models/{DEFAULT_MODEL_ID}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.json()["id"].as_str(), r.json()["object"].as_str()),
        (Some(DEFAULT_MODEL_ID), Some("model"))
    );
    let r = get(&app, "/v1/models/gpt-4o").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn greedy_chat_is_deterministic_and_pinned() {
    let app = started_app(EngineConfig::default());
    let a = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 24)).await;
    let b = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 24)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (a, b) = (a.json(), b.json());
    let text = a["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    eprintln!("greedy chat completion: {text:?}");
    assert_eq!(
        text,
        b["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
    );
    assert!(text.starts_with(GREEDY_CHAT_START), "{text:?}");
    assert_eq!(a["object"], "chat.completion");
    assert_eq!(a["model"], DEFAULT_MODEL_ID);
    assert_eq!(a["choices"][0]["message"]["role"], "assistant");
}

#[tokio::test]
async fn chat_template_from_the_gguf_is_applied_and_usage_matches_the_tokenizer() {
    // The same pinned model, loaded apart: its template and tokenizer.
    let reference = common::load();
    let (state, worker) = common::app(EngineConfig::default());
    worker.spawn().expect("worker thread");
    let app = router(state);
    let rendered = reference
        .template
        .render(
            &[ChatMessage {
                role: "user".to_owned(),
                content: CHAT_PROMPT.to_owned(),
            }],
            true,
        )
        .expect("renders");
    // SmolLM2's template: default system prompt, ChatML turns, assistant opener.
    assert_eq!(
        rendered,
        format!(
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{CHAT_PROMPT}<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    let ids = reference.tokenizer.encode(&rendered).expect("encodes");
    assert_eq!(ids[0], 1, "<|im_start|> is one control token");
    let r = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 3)).await;
    let usage = &r.json()["usage"];
    assert_eq!(usage["prompt_tokens"], ids.len());
    assert_eq!(usage["completion_tokens"], 3);
    assert_eq!(usage["total_tokens"], ids.len() + 3);
    // The same text as a raw completion prompt gives the same tokens and the same greedy text.
    let c = post(
        &app,
        "/v1/completions",
        json!({"model": DEFAULT_MODEL_ID, "prompt": rendered, "max_tokens": 3, "temperature": 0}),
    )
    .await;
    let c = c.json();
    assert_eq!(c["usage"]["prompt_tokens"], ids.len());
    assert_eq!(
        c["choices"][0]["text"],
        r.json()["choices"][0]["message"]["content"]
    );
}

#[tokio::test]
async fn stream_concatenation_equals_non_stream() {
    let app = started_app(EngineConfig::default());
    let whole = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 40))
        .await
        .json();
    let mut body = chat_body(CHAT_PROMPT, 40);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&app, "/v1/chat/completions", body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let events = sse_events(&r.body);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
    );
    let finish = events
        .iter()
        .find_map(|e| e["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, whole["choices"][0]["finish_reason"].as_str());
    let last = events.last().expect("usage chunk");
    assert_eq!(last["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(last["usage"], whole["usage"]);
    assert!(events.iter().all(|e| e["id"] == events[0]["id"]));

    // Legacy completions too.
    let prompt = json!({"model": DEFAULT_MODEL_ID, "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0});
    let whole = post(&app, "/v1/completions", prompt.clone()).await.json();
    let mut streamed = prompt;
    streamed["stream"] = json!(true);
    let events = sse_events(&post(&app, "/v1/completions", streamed).await.body);
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, whole["choices"][0]["text"].as_str().expect("text"));
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 30);
}

#[tokio::test]
async fn max_tokens_and_stop_are_honoured() {
    let app = started_app(EngineConfig::default());
    let r = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 5))
        .await
        .json();
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["usage"]["completion_tokens"], 5);
    let mut newer = chat_body(CHAT_PROMPT, 100);
    newer["max_completion_tokens"] = json!(4);
    let r = post(&app, "/v1/chat/completions", newer).await.json();
    assert_eq!(
        r["usage"]["completion_tokens"], 4,
        "max_completion_tokens wins"
    );

    let full = post(&app, "/v1/chat/completions", chat_body(CHAT_PROMPT, 24))
        .await
        .json();
    let full = full["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    // Stop at the second word of the greedy answer: the text before it comes back.
    let word = full
        .split_whitespace()
        .nth(1)
        .expect("two words")
        .to_owned();
    let at = full.find(&word).expect("word in text");
    for stream in [false, true] {
        let mut body = chat_body(CHAT_PROMPT, 24);
        body["stop"] = json!([word.clone(), "never-appears-xyz"]);
        body["stream"] = json!(stream);
        let r = post(&app, "/v1/chat/completions", body).await;
        let (text, finish) = if stream {
            let ev = sse_events(&r.body);
            let t: String = ev
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect();
            (
                t,
                ev.iter()
                    .find_map(|e| e["choices"][0]["finish_reason"].as_str())
                    .map(str::to_owned),
            )
        } else {
            let v = r.json();
            (
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .expect("content")
                    .to_owned(),
                v["choices"][0]["finish_reason"].as_str().map(str::to_owned),
            )
        };
        assert_eq!(text, full[..at], "stream={stream}");
        assert_eq!(finish.as_deref(), Some("stop"));
    }
}

#[tokio::test]
async fn every_error_has_its_status_and_the_server_keeps_serving() {
    let (state, worker) = common::app_with(
        EngineConfig::default(),
        ApiConfig {
            allow_plaintext: true,
            max_body_bytes: 64 * 1024,
            ..ApiConfig::default()
        },
    );
    worker.spawn().expect("worker thread");
    let app = router(state);

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            b"{\"model\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "wrong shape",
            br#"{"model": "x", "messages": "not a list"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "unknown model",
            serde_json::to_vec(
                &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
            )
            .expect("json"),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            "body over the limit",
            serde_json::to_vec(&chat_body(&"a ".repeat(40_000), 4)).expect("json"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "context overflow (prompt)",
            serde_json::to_vec(&chat_body(&"1 ".repeat(9_000), 4)).expect("json"),
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
        ),
        (
            "context overflow (max_tokens)",
            serde_json::to_vec(&chat_body("Hi", 9_000)).expect("json"),
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = post_raw(&app, "/v1/chat/completions", body).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let err = &r.json()["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(err["type"].is_string(), "{what}");
        if !code.is_empty() {
            assert_eq!(err["code"], code, "{what}");
        }
        still_serves(&app).await;
    }
    for (what, body) in [
        (
            "n = 9",
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "n": 9}),
        ),
        (
            "temperature 3",
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "temperature": 3}),
        ),
        (
            "bad role",
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "robot", "content": "Hi"}]}),
        ),
        (
            "no messages",
            json!({"model": DEFAULT_MODEL_ID, "messages": []}),
        ),
        (
            "max_tokens 0",
            json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}),
        ),
    ] {
        let r = post(&app, "/v1/chat/completions", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        still_serves(&app).await;
    }
    let r = get(&app, "/v1/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_object());
}

#[tokio::test]
async fn error_messages_do_not_echo_request_content() {
    let app = started_app(EngineConfig::default());
    let secret = "zebra-secret-4711";
    let bodies = [
        format!(r#"{{"model": "{secret}", "messages": []}}"#),
        format!(r#"{{"model": 7, "messages": [{{"role": "user", "content": "{secret}"}}]}}"#),
        format!(
            r#"{{"model": "{DEFAULT_MODEL_ID}", "messages": [{{"role": "{secret}", "content": "x"}}]}}"#
        ),
        format!(
            r#"{{"model": "{DEFAULT_MODEL_ID}", "messages": [{{"role": "user", "content": "{secret}"}}], "max_tokens": "{secret}"}}"#
        ),
    ];
    for body in bodies {
        let r = post_raw(&app, "/v1/chat/completions", body.into_bytes()).await;
        assert!(r.status.is_client_error());
        assert!(!r.body.contains(secret), "{}", r.body);
    }
}

#[tokio::test]
async fn plaintext_is_refused_unless_allowed() {
    let (state, worker) = common::app_with(EngineConfig::default(), ApiConfig::default());
    worker.spawn().expect("worker thread");
    let app = router(state);
    let r = post(&app, "/v1/chat/completions", chat_body("Hi", 2)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], "plaintext_refused");
    assert_eq!(get(&app, "/v1/models").await.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn queue_full_answers_429_with_retry_after_then_recovers() {
    // The worker is not started yet, so queued requests stay queued.
    let (state, worker) = common::app(EngineConfig {
        max_batch: 1,
        queue_capacity: 1,
    });
    let app = router(state);
    let mut first = chat_body("Hi", 3);
    first["stream"] = json!(true);
    let queued = app
        .clone()
        .oneshot(
            Request::post("/v1/chat/completions")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&first).expect("json")))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(
        queued.status(),
        StatusCode::OK,
        "a stream answers once queued"
    );
    let r = post(&app, "/v1/chat/completions", chat_body("Hi", 2)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    // Start the worker: the queued stream completes, and new requests are served.
    worker.spawn().expect("worker thread");
    let body = queued.into_body().collect().await.expect("body").to_bytes();
    let events = sse_events(std::str::from_utf8(&body).expect("utf-8"));
    assert!(
        events
            .iter()
            .any(|e| e["choices"][0]["finish_reason"].is_string())
    );
    still_serves(&app).await;
}

#[tokio::test]
async fn stopped_engine_answers_503_with_retry_after() {
    let (state, worker) = common::app(EngineConfig::default());
    drop(worker); // the queue's receiving end is gone
    let app = router(state);
    let r = post(&app, "/v1/chat/completions", chat_body("Hi", 2)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn generation_stops_when_the_client_goes_away() {
    // One sequence at a time: if the abandoned stream kept generating its 4000 tokens,
    // the next request would wait for it (minutes); cancelled, it is served at once.
    let app = started_app(EngineConfig {
        max_batch: 1,
        queue_capacity: 4,
    });
    let mut body = chat_body("Tell me a long story.", 4000);
    body["stream"] = json!(true);
    body["ignore_eos"] = json!(true);
    let res = app
        .clone()
        .oneshot(
            Request::post("/v1/chat/completions")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let mut stream = res.into_body();
    let first = stream.frame().await.expect("a frame").expect("no error");
    assert!(first.is_data());
    drop(stream);
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(15), still_serves(&app))
        .await
        .expect("served while the abandoned generation would still run");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}
