//! Log probabilities, `n` choices, `seed` and structured outputs over the HTTP API,
//! in-process against the real model.

use crate::common;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use veil_engine::EngineConfig;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::router;

const CHAT_PROMPT: &str = "What is the capital of France?";

fn app() -> Router {
    let (state, worker) = common::app(EngineConfig::default());
    worker.spawn().expect("worker thread");
    router(state)
}

async fn post_ok(app: &Router, path: &str, body: &Value) -> String {
    let (status, raw) = common::post(app, path, body).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    raw
}

/// The chunks of an SSE body, checking it ends with `[DONE]`.
fn chunks(raw: &str) -> Vec<Value> {
    let data: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{raw}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect()
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": DEFAULT_MODEL_ID, "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": CHAT_PROMPT}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

/// Checks one chat `logprobs.content` entry: at most 0, `k` alternatives, most likely first,
/// and (greedy) the token is the first alternative with the same value.
fn check_chat_entry(e: &Value, k: usize, greedy: bool) {
    let lp = f(&e["logprob"]);
    assert!(lp <= 0.0, "{e}");
    let bytes: Vec<u8> = e["bytes"]
        .as_array()
        .expect("bytes")
        .iter()
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        e["token"].as_str().expect("token")
    );
    let top = e["top_logprobs"].as_array().expect("top_logprobs");
    assert_eq!(top.len(), k, "{e}");
    assert!(
        top.iter()
            .all(|t| f(&t["logprob"]) <= 0.0 && t["bytes"].is_array())
    );
    assert!(
        top.windows(2)
            .all(|w| f(&w[0]["logprob"]) >= f(&w[1]["logprob"]))
    );
    if greedy && k > 0 {
        assert_eq!(top[0]["token"], e["token"], "{e}");
        assert_eq!(f(&top[0]["logprob"]), lp, "{e}");
        let max = top
            .iter()
            .map(|t| f(&t["logprob"]))
            .fold(f64::MIN, f64::max);
        assert_eq!(lp, max);
    }
}

#[tokio::test]
async fn chat_logprobs_whole_and_streamed() {
    let app = app();
    let body = chat(json!({"logprobs": true, "top_logprobs": 3}));
    let v: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &body).await).expect("JSON");
    let content = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    assert_eq!(
        content.len() as u64,
        v["usage"]["completion_tokens"].as_u64().expect("usage"),
        "one entry per token: {v}"
    );
    for e in content {
        check_chat_entry(e, 3, true);
    }
    // The tokens' bytes spell the answer (a character may span tokens).
    let joined: Vec<u8> = content
        .iter()
        .flat_map(|e| e["bytes"].as_array().expect("bytes").clone())
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&joined),
        v["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
    );

    // Without top_logprobs: the token's own only; without logprobs: null.
    let plain: Value = serde_json::from_str(
        &post_ok(
            &app,
            "/v1/chat/completions",
            &chat(json!({"logprobs": true})),
        )
        .await,
    )
    .expect("JSON");
    for e in plain["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("content")
    {
        check_chat_entry(e, 0, true);
    }
    let none: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &chat(json!({}))).await)
            .expect("JSON");
    assert!(none["choices"][0]["logprobs"].is_null(), "{none}");

    // Streamed: the chunks carry the same entries, in order.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let raw = post_ok(&app, "/v1/chat/completions", &streamed).await;
    let entries: Vec<Value> = chunks(&raw)
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array().cloned())
        .flatten()
        .collect();
    assert_eq!(&entries, content, "{raw}");
}

#[tokio::test]
async fn completion_logprobs_whole_and_streamed() {
    let app = app();
    let body = json!({"model": DEFAULT_MODEL_ID, "prompt": "The capital of France is",
        "max_tokens": 5, "temperature": 0, "logprobs": 2, "ignore_eos": true});
    let v: Value =
        serde_json::from_str(&post_ok(&app, "/v1/completions", &body).await).expect("JSON");
    let lp = &v["choices"][0]["logprobs"];
    let tokens = lp["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 5, "{v}");
    let text: String = tokens.iter().map(|t| t.as_str().expect("token")).collect();
    assert_eq!(text, v["choices"][0]["text"].as_str().expect("text"));
    let mut offset = 0;
    for (i, t) in tokens.iter().enumerate() {
        let t = t.as_str().expect("token");
        assert_eq!(lp["text_offset"][i], offset);
        offset += t.chars().count();
        let chosen = f(&lp["token_logprobs"][i]);
        assert!(chosen <= 0.0);
        let top = lp["top_logprobs"][i].as_object().expect("top");
        // The two most likely, and the token (greedy: one of them).
        assert!((1..=2).contains(&top.len()), "{top:?}");
        assert_eq!(f(&top[t]), chosen);
        assert!(top.values().all(|l| f(l) <= chosen));
    }
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let raw = post_ok(&app, "/v1/completions", &streamed).await;
    let mut got = (Vec::new(), Vec::new(), Vec::new());
    for c in chunks(&raw) {
        let lp = &c["choices"][0]["logprobs"];
        if lp.is_object() {
            got.0
                .extend(lp["tokens"].as_array().expect("tokens").clone());
            got.1
                .extend(lp["token_logprobs"].as_array().expect("lps").clone());
            got.2
                .extend(lp["text_offset"].as_array().expect("offsets").clone());
        }
    }
    assert_eq!(&got.0, tokens, "{raw}");
    assert_eq!(&got.1, lp["token_logprobs"].as_array().expect("lps"));
    assert_eq!(&got.2, lp["text_offset"].as_array().expect("offsets"));
}

#[tokio::test]
async fn n_choices_are_indexed_whole_and_streamed() {
    let app = app();
    let sampled = json!({"n": 3, "temperature": 1.0, "seed": 5, "max_tokens": 8,
                         "ignore_eos": true});
    let v: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &chat(sampled.clone())).await)
            .expect("JSON");
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{v}");
    let texts: Vec<&str> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["index"], i, "{v}");
            assert_eq!(c["finish_reason"], "length");
            c["message"]["content"].as_str().expect("text")
        })
        .collect();
    // Each choice has its own seed: the draws differ.
    assert!(texts[0] != texts[1] || texts[1] != texts[2], "{texts:?}");
    // The prompt is counted once, the completions summed.
    assert_eq!(v["usage"]["completion_tokens"], 24, "{v}");
    let one: Value = serde_json::from_str(
        &post_ok(
            &app,
            "/v1/chat/completions",
            &chat(json!({"temperature": 1.0, "seed": 5,
            "max_tokens": 8, "ignore_eos": true})),
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(one["usage"]["prompt_tokens"], v["usage"]["prompt_tokens"]);
    assert_eq!(
        one["choices"][0]["message"]["content"], texts[0],
        "choice 0 keeps the seed"
    );

    // Streamed: every chunk names its choice; each choice's text and end are the same.
    let mut streamed = chat(sampled);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let raw = post_ok(&app, "/v1/chat/completions", &streamed).await;
    let mut got = vec![String::new(); 3];
    let mut finished = [0; 3];
    let mut usage = None;
    for c in chunks(&raw) {
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
            continue;
        }
        let choice = &c["choices"][0];
        let i = choice["index"].as_u64().expect("index") as usize;
        got[i].push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        if choice["finish_reason"].is_string() {
            finished[i] += 1;
        }
    }
    assert_eq!(got, texts, "{raw}");
    assert_eq!(finished, [1, 1, 1], "{raw}");
    assert_eq!(usage.expect("a usage chunk")["completion_tokens"], 24);

    // Completions too.
    let body = json!({"model": DEFAULT_MODEL_ID, "prompt": "Once upon a time", "n": 2,
        "max_tokens": 4, "temperature": 0, "ignore_eos": true});
    let v: Value =
        serde_json::from_str(&post_ok(&app, "/v1/completions", &body).await).expect("JSON");
    assert_eq!(v["choices"][1]["index"], 1, "{v}");
    // Greedy: the same text twice.
    assert_eq!(v["choices"][0]["text"], v["choices"][1]["text"]);
    assert_eq!(v["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn a_seed_gives_the_same_answer_alone_and_under_load() {
    let app = app();
    let seeded = chat(json!({"temperature": 1.0, "seed": 1234, "max_tokens": 16,
                             "ignore_eos": true}));
    let alone = post_ok(&app, "/v1/chat/completions", &seeded).await;
    let text = |raw: &str| -> String {
        let v: Value = serde_json::from_str(raw).expect("JSON");
        v["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
            .to_owned()
    };
    // The same request again, while three others (other prompts, other lengths) share the
    // batch with it.
    let others: Vec<_> = ["Tell me a story.", "Name three colours.", "Count to ten."]
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let app = app.clone();
            let body = json!({"model": DEFAULT_MODEL_ID, "temperature": 0.9, "seed": i,
                "max_tokens": 12 + 4 * i, "messages": [{"role": "user", "content": p}]});
            tokio::spawn(async move { post_ok(&app, "/v1/chat/completions", &body).await })
        })
        .collect();
    let loaded = post_ok(&app, "/v1/chat/completions", &seeded).await;
    for o in others {
        o.await.expect("task");
    }
    assert_eq!(text(&loaded), text(&alone));
    // Another seed draws something else.
    let mut other = seeded.clone();
    other["seed"] = json!(4321);
    let v = post_ok(&app, "/v1/chat/completions", &other).await;
    assert_ne!(text(&v), text(&alone));
}

fn city_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "country": {"type": "string", "maxLength": 24},
            "founded": {"type": "integer", "minimum": -3000, "maximum": 2025}
        },
        "required": ["name", "country", "founded"],
        "additionalProperties": false
    })
}

/// Checks `v` against [`city_schema`] by hand.
fn is_city(v: &Value) -> bool {
    let short = |k: &str| v[k].as_str().is_some_and(|s| s.chars().count() <= 24);
    v.as_object().is_some_and(|o| o.len() == 3)
        && short("name")
        && short("country")
        && v["founded"]
            .as_i64()
            .is_some_and(|y| (-3000..=2025).contains(&y))
}

fn json_schema_format() -> Value {
    json!({"type": "json_schema",
        "json_schema": {"name": "city", "strict": true, "schema": city_schema()}})
}

#[tokio::test]
async fn json_schema_answers_validate_whole_streamed_and_in_every_choice() {
    let app = app();
    let body = chat(
        json!({"max_tokens": 96, "n": 3, "seed": 11, "temperature": 1,
        "response_format": json_schema_format(),
        "messages": [{"role": "user", "content": "Tell me about Paris."}]}),
    );
    let r: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &body).await).expect("JSON");
    let choices = r["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{r}");
    for c in choices {
        assert_eq!(c["finish_reason"], "stop", "{c}");
        let text = c["message"]["content"].as_str().expect("content");
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert!(is_city(&v), "{v}");
    }
    // Streamed, the deltas add up to the same answer as whole (greedy).
    let greedy = chat(
        json!({"max_tokens": 96, "response_format": json_schema_format(),
        "messages": [{"role": "user", "content": "Tell me about Rome."}]}),
    );
    let whole: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &greedy).await).expect("JSON");
    let mut streamed = greedy.clone();
    streamed["stream"] = json!(true);
    let raw = post_ok(&app, "/v1/chat/completions", &streamed).await;
    let text: String = chunks(&raw)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
    );
    assert!(
        is_city(&serde_json::from_str(&text).expect("JSON")),
        "{text}"
    );
}

#[tokio::test]
async fn json_object_on_completions_and_text_format_on_responses() {
    let app = app();
    let body = json!({"model": DEFAULT_MODEL_ID, "max_tokens": 96, "temperature": 0,
        "prompt": "A JSON object describing a cat:", "response_format": {"type": "json_object"}});
    let r: Value =
        serde_json::from_str(&post_ok(&app, "/v1/completions", &body).await).expect("JSON");
    let text = r["choices"][0]["text"].as_str().expect("text");
    // Any object is allowed: one cut by max_tokens is an object's beginning.
    if r["choices"][0]["finish_reason"] == "stop" {
        assert!(
            serde_json::from_str::<Value>(text)
                .expect("JSON")
                .is_object(),
            "{text}"
        );
    } else {
        assert!(text.starts_with('{'), "{r}");
    }

    let format = json!({"type": "json_schema", "name": "city", "schema": city_schema()});
    let body = json!({"model": DEFAULT_MODEL_ID, "max_output_tokens": 96, "temperature": 0,
        "input": "Tell me about Paris.", "text": {"format": format}});
    let r: Value =
        serde_json::from_str(&post_ok(&app, "/v1/responses", &body).await).expect("JSON");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["text"]["format"], format, "the format served is echoed");
    let text = r["output"][0]["content"][0]["text"].as_str().expect("text");
    assert!(
        is_city(&serde_json::from_str(text).expect("JSON")),
        "{text}"
    );
}

#[tokio::test]
async fn formats_that_cannot_be_served_are_400s_naming_the_field() {
    let app = app();
    let never = json!({"type": "integer", "minimum": 5, "maximum": 1});
    for (extra, param, says) in [
        (
            json!({"response_format": {"type": "json_schema",
                "json_schema": {"name": "n", "schema": never}}}),
            "response_format",
            "nsatisfiable",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n",
                "schema": {"$ref": "https://example.com/schema.json"}}}}),
            "response_format",
            "example.com",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}),
            "response_format.json_schema.schema",
            "is required",
        ),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format",
            "not served",
        ),
        (
            json!({"response_format": {"type": "json_object"}, "ignore_eos": true}),
            "ignore_eos",
            "structured output",
        ),
    ] {
        let (status, raw) = common::post(&app, "/v1/chat/completions", &chat(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {raw}");
        let e: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(e["error"]["param"], param, "{raw}");
        assert!(
            e["error"]["message"]
                .as_str()
                .expect("message")
                .contains(says),
            "{raw}"
        );
    }
    // The server keeps serving.
    post_ok(&app, "/v1/chat/completions", &chat(json!({}))).await;
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 32},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": false}}}])
}

fn weather_question(extra: Value) -> Value {
    let mut body = chat(json!({"max_tokens": 96, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}));
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

/// Checks one tool call: OpenAI's shape, arguments valid against the weather schema.
fn check_weather_call(call: &Value) {
    assert!(
        call["id"].as_str().expect("id").starts_with("call_"),
        "{call}"
    );
    assert_eq!(call["type"], "function", "{call}");
    assert_eq!(call["function"]["name"], "get_weather", "{call}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("a string"))
            .expect("arguments are JSON");
    assert!(
        args["city"]
            .as_str()
            .is_some_and(|c| c.chars().count() <= 32),
        "{args}"
    );
    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().expect("unit")));
    assert_eq!(args.as_object().expect("object").len(), 2, "{args}");
}

#[tokio::test]
async fn a_required_tool_call_is_made_whole_and_streamed() {
    let app = app();
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let body = weather_question(json!({"tool_choice": choice}));
        let r: Value = serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &body).await)
            .expect("JSON");
        let c = &r["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls", "{r}");
        assert!(c["message"]["content"].is_null(), "{r}");
        let calls = c["message"]["tool_calls"].as_array().expect("tool_calls");
        assert_eq!(calls.len(), 1, "{r}");
        check_weather_call(&calls[0]);
    }
    // Streamed: no text, one tool call delta (index 0), then the finish.
    let body = weather_question(json!({"tool_choice": "required", "stream": true}));
    let raw = post_ok(&app, "/v1/chat/completions", &body).await;
    let chunks = chunks(&raw);
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(deltas.len(), 1, "{raw}");
    assert_eq!(deltas[0]["index"], 0, "{raw}");
    check_weather_call(deltas[0]);
    assert!(
        chunks.iter().all(|c| c["choices"][0]["delta"]["content"]
            .as_str()
            .is_none_or(str::is_empty)),
        "{raw}"
    );
    let last = &chunks.last().expect("chunks")["choices"][0];
    assert_eq!(last["finish_reason"], "tool_calls", "{raw}");
}

#[tokio::test]
async fn a_tool_result_in_the_history_is_answered_and_auto_may_answer_in_text() {
    let app = app();
    let body = chat(
        json!({"max_tokens": 48, "tools": weather_tools(), "tool_choice": "auto",
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"},
        ]}),
    );
    let r: Value =
        serde_json::from_str(&post_ok(&app, "/v1/chat/completions", &body).await).expect("JSON");
    let c = &r["choices"][0];
    match c["finish_reason"].as_str().expect("finish") {
        "tool_calls" => check_weather_call(&c["message"]["tool_calls"][0]),
        "stop" => {
            let text = c["message"]["content"].as_str().expect("content");
            assert!(!text.is_empty() && !text.contains("\"response\""), "{r}");
        }
        other => panic!("{other}: {r}"),
    }
    // tool_choice none: plain text, no call.
    let r: Value = serde_json::from_str(
        &post_ok(
            &app,
            "/v1/chat/completions",
            &weather_question(json!({"tool_choice": "none"})),
        )
        .await,
    )
    .expect("JSON");
    assert!(r["choices"][0]["message"]["tool_calls"].is_null(), "{r}");
    assert_ne!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");
}

#[tokio::test]
async fn tool_requests_that_cannot_be_served_are_400s_naming_the_field() {
    let app = app();
    for (extra, param) in [
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "other"}}}),
            "tool_choice",
        ),
        (json!({"tool_choice": "sometimes"}), "tool_choice"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (json!({"logprobs": true}), "logprobs"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools",
        ),
        (json!({"tools": [{"type": "code_interpreter"}]}), "tools"),
    ] {
        let (status, raw) = common::post(
            &app,
            "/v1/chat/completions",
            &weather_question(extra.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {raw}");
        let e: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(e["error"]["param"], param, "{raw}");
    }
}
