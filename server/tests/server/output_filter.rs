//! The output filter (deny list) against the real model, in-process: whole and streamed
//! answers, chat and legacy completions.

use crate::common;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use veil_engine::EngineConfig;
use veil_engine::chat::ChatMessage;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::{ApiConfig, DenyList, router};

/// As in `tests/api.rs`: the pinned greedy answer to `CHAT_PROMPT` starts with this.
const GREEDY_CHAT_START: &str = "L'Étoile, la Marseillaise, la femme";
const CHAT_PROMPT: &str = "What is the capital of France?";
/// A word of the greedy answer, several tokens long, configured in another case.
const DENIED: &str = "MARSEILLAISE";
/// What comes before it.
const BEFORE_DENIED: &str = "L'Étoile, la ";

/// The app with a deny list of `words`, and the chat prompt rendered as a raw prompt.
fn filtered_app(words: &[&str]) -> (Router, String) {
    let list = DenyList::new(words.iter().copied()).expect("deny list");
    let model = common::load();
    let rendered = model
        .template
        .render(
            &[ChatMessage {
                role: "user".to_owned(),
                content: CHAT_PROMPT.to_owned(),
            }],
            true,
        )
        .expect("renders");
    let (state, worker) = veil_server::serve::app_state(
        model,
        EngineConfig::default(),
        ApiConfig {
            allow_plaintext: true,
            output_filter: Some(Arc::new(list)),
            ..ApiConfig::default()
        },
    );
    worker.spawn().expect("worker thread");
    (router(state), rendered)
}

/// One answer, whole or streamed: its text, finish reason and completion tokens.
struct Answer {
    text: String,
    finish: String,
    completion_tokens: u64,
    raw: String,
}

/// Asks `path` (chat or completions) for 24 greedy tokens of the chat prompt.
async fn ask(app: &Router, rendered: &str, path: &str, stream: bool) -> Answer {
    let chat = path == "/v1/chat/completions";
    let mut body = if chat {
        json!({"model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": CHAT_PROMPT}]})
    } else {
        json!({"model": DEFAULT_MODEL_ID, "prompt": rendered})
    };
    body["max_tokens"] = json!(24);
    body["temperature"] = json!(0);
    body["stream"] = json!(stream);
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    let (status, raw) = common::post(app, path, &body).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let text_of = |choice: &Value| -> String {
        let t = if chat {
            if stream {
                &choice["delta"]["content"]
            } else {
                &choice["message"]["content"]
            }
        } else {
            &choice["text"]
        };
        t.as_str().unwrap_or_default().to_owned()
    };
    if !stream {
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        return Answer {
            text: text_of(&v["choices"][0]),
            finish: v["choices"][0]["finish_reason"]
                .as_str()
                .expect("finish")
                .to_owned(),
            completion_tokens: v["usage"]["completion_tokens"].as_u64().expect("usage"),
            raw,
        };
    }
    let data: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{raw}");
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    Answer {
        text: events.iter().map(|e| text_of(&e["choices"][0])).collect(),
        finish: events
            .iter()
            .find_map(|e| e["choices"][0]["finish_reason"].as_str())
            .expect("a finish reason")
            .to_owned(),
        completion_tokens: events
            .iter()
            .find_map(|e| e["usage"]["completion_tokens"].as_u64())
            .expect("usage chunk"),
        raw,
    }
}

#[tokio::test]
async fn a_denied_word_ends_the_completion_before_it_streamed_or_not() {
    let (app, rendered) = filtered_app(&[DENIED, "never-generated-xyz"]);
    for path in ["/v1/chat/completions", "/v1/completions"] {
        for stream in [false, true] {
            let what = format!("{path} stream={stream}");
            let a = ask(&app, &rendered, path, stream).await;
            assert_eq!(a.finish, "content_filter", "{what}");
            assert_eq!(a.text, BEFORE_DENIED, "{what}");
            assert!(
                !a.raw.to_lowercase().contains(&DENIED.to_lowercase()),
                "{what}: the denied word left the server: {}",
                a.raw
            );
            // Generation stopped at the match, well before the 24 tokens asked for.
            assert!(
                (1..24).contains(&a.completion_tokens),
                "{what}: {}",
                a.completion_tokens
            );
        }
    }
}

#[tokio::test]
async fn a_deny_list_without_a_match_changes_nothing() {
    let (app, rendered) = filtered_app(&["never-generated-xyz", "marseille-x"]);
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let whole = ask(&app, &rendered, path, false).await;
        let streamed = ask(&app, &rendered, path, true).await;
        for a in [&whole, &streamed] {
            assert!(
                a.text.starts_with(GREEDY_CHAT_START),
                "{path}: {:?}",
                a.text
            );
            assert_eq!(a.finish, "length", "{path}");
            assert_eq!(a.completion_tokens, 24, "{path}");
        }
        assert_eq!(whole.text, streamed.text, "{path}");
    }
}

/// Log probabilities would show what the filter withholds (the tokens of a withheld passage,
/// and alternatives the filter never screened): with a filter configured they are refused
/// by name, on both endpoints.
#[tokio::test]
async fn log_probabilities_are_refused_while_a_filter_is_configured() {
    let (app, rendered) = filtered_app(&["never-generated-xyz"]);
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": DEFAULT_MODEL_ID, "max_tokens": 2, "logprobs": true,
                   "messages": [{"role": "user", "content": CHAT_PROMPT}]}),
        ),
        (
            "/v1/completions",
            json!({"model": DEFAULT_MODEL_ID, "max_tokens": 2, "logprobs": 1, "prompt": rendered}),
        ),
    ] {
        let (status, raw) = common::post(&app, path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {raw}");
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(v["error"]["param"], "logprobs", "{raw}");
        assert_eq!(v["error"]["code"], "unsupported_parameter", "{raw}");
    }
}

/// `serve --deny-word` and `--deny-list` configure the same filter in the real binary; a
/// list without entries, or one that cannot be read, stops the server from starting.
#[test]
fn serve_flags_configure_the_deny_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("deny.txt");
    std::fs::write(&list, "\nnever-generated-xyz\n  marseillaise \n").expect("write");
    let list = list.to_str().expect("UTF-8");
    let log = dir.path().join("server.log");
    let server = common::binary::start(
        &[
            "--allow-plaintext",
            "--no-auth",
            "--deny-word",
            "zanzibar",
            "--deny-list",
            list,
        ],
        dir.path(),
        &log,
        "info",
    );
    let body = json!({"model": DEFAULT_MODEL_ID, "max_tokens": 24, "temperature": 0,
        "messages": [{"role": "user", "content": CHAT_PROMPT}]});
    let answer = common::binary::http(
        server.addr,
        &common::binary::post("/v1/chat/completions", &body.to_string(), None),
    );
    assert_eq!(common::binary::status(&answer), 200, "{answer}");
    let v: Value =
        serde_json::from_str(answer.split_once("\r\n\r\n").expect("body").1).expect("JSON");
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], BEFORE_DENIED);
    assert!(
        server.log_text().contains("entries=3"),
        "{}",
        server.log_text()
    );
    drop(server);

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n \n").expect("write");
    let absent = dir.path().join("absent.txt");
    for (file, why) in [(&empty, "no entries"), (&absent, "absent.txt")] {
        let out = common::binary::run(
            &[
                "serve",
                "--tee",
                "simulated",
                "--no-auth",
                "--deny-list",
                file.to_str().expect("UTF-8"),
            ],
            dir.path(),
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
}
