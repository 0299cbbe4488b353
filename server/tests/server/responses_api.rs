//! `POST /v1/responses` in-process against the real model: the same answer as chat for the
//! same conversation, the streamed event sequence, and every refusal by name.

use crate::common;

use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use veil_engine::EngineConfig;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::router;

const QUESTION: &str = "What is the capital of France?";
const INSTRUCTIONS: &str = "Answer in one short sentence.";

fn app() -> Router {
    let (state, worker) = common::app(EngineConfig::default());
    worker.spawn().expect("worker thread");
    router(state)
}

async fn post_json(app: &Router, path: &str, body: &Value) -> Value {
    let (status, raw) = common::post(app, path, body).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    serde_json::from_str(&raw).expect("JSON")
}

fn request(extra: Value) -> Value {
    let mut body = json!({"model": DEFAULT_MODEL_ID, "input": QUESTION,
        "instructions": INSTRUCTIONS, "max_output_tokens": 8, "temperature": 0});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn a_response_is_the_chat_answer_to_the_same_conversation() {
    let app = app();
    let r = post_json(&app, "/v1/responses", &request(json!({}))).await;
    let chat = post_json(
        &app,
        "/v1/chat/completions",
        &json!({"model": DEFAULT_MODEL_ID, "max_tokens": 8, "temperature": 0, "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": QUESTION},
        ]}),
    )
    .await;
    assert_eq!(r["object"], "response", "{r}");
    assert!(r["id"].as_str().expect("id").starts_with("resp_"));
    let item = &r["output"][0];
    assert_eq!(
        (&item["type"], &item["role"]),
        (&json!("message"), &json!("assistant"))
    );
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(
        item["content"][0]["text"], chat["choices"][0]["message"]["content"],
        "{r} {chat}"
    );
    assert_eq!(r["usage"]["input_tokens"], chat["usage"]["prompt_tokens"]);
    assert_eq!(
        r["usage"]["output_tokens"],
        chat["usage"]["completion_tokens"]
    );
    assert_eq!(
        r["usage"]["total_tokens"], chat["usage"]["total_tokens"],
        "{r}"
    );
    // Stopped by max_output_tokens: incomplete, as OpenAI says it.
    if chat["choices"][0]["finish_reason"] == "length" {
        assert_eq!(r["status"], "incomplete", "{r}");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    } else {
        assert_eq!(r["status"], "completed", "{r}");
    }
    assert_eq!(r["store"], false);

    // Message items (string or part content, developer for system) are the same conversation.
    let items = post_json(
        &app,
        "/v1/responses",
        &request(json!({"instructions": null, "input": [
            {"type": "message", "role": "developer", "content": INSTRUCTIONS},
            {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
        ]})),
    )
    .await;
    assert_eq!(
        items["output"][0]["content"][0]["text"],
        item["content"][0]["text"]
    );
}

#[tokio::test]
async fn a_streamed_response_sends_the_event_sequence() {
    let app = app();
    let whole = post_json(&app, "/v1/responses", &request(json!({}))).await;
    let (status, raw) =
        common::post(&app, "/v1/responses", &request(json!({"stream": true}))).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let names: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    let events: Vec<Value> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event JSON"))
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(names, types, "each event names its type");
    let n = types.len();
    assert_eq!(
        types[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert!(
        types[4..n - 4]
            .iter()
            .all(|t| *t == "response.output_text.delta"),
        "{types:?}"
    );
    let last = if whole["status"] == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    assert_eq!(
        types[n - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            last
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    let text = whole["output"][0]["content"][0]["text"]
        .as_str()
        .expect("text");
    let deltas: String = events.iter().filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(deltas, text);
    assert_eq!(events[n - 4]["text"], text);
    assert_eq!(events[0]["response"]["status"], "in_progress");
    let done = &events[n - 1]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], text);
    assert_eq!(done["usage"], whole["usage"]);
    assert_eq!(done["id"], events[0]["response"]["id"]);
}

#[tokio::test]
async fn what_responses_cannot_serve_is_refused_by_name() {
    let app = app();
    for (extra, param) in [
        (json!({"store": true}), "store"),
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"tools": [{"type": "web_search"}]}), "tools"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (json!({"reasoning": {"effort": "low"}}), "reasoning"),
        (
            json!({"include": ["message.output_text.logprobs"]}),
            "include",
        ),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"truncation": "auto"}), "truncation"),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
        (json!({"n": 2}), "n"),
        (json!({"max_tokens": 4}), "max_tokens"),
        (
            json!({"input": [{"type": "reasoning", "summary": []}]}),
            "input",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}),
            "input",
        ),
    ] {
        let (status, raw) = common::post(&app, "/v1/responses", &request(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {raw}");
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(v["error"]["param"], param, "{extra}: {raw}");
        assert_eq!(
            v["error"]["code"], "unsupported_parameter",
            "{extra}: {raw}"
        );
    }
    for (extra, param) in [
        (json!({"temperature": 3}), "temperature"),
        (json!({"top_p": 0}), "top_p"),
        (json!({"max_output_tokens": 0}), "max_output_tokens"),
        (json!({"max_output_tokens": 5000}), "max_output_tokens"),
        (json!({"input": []}), "input"),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input",
        ),
    ] {
        let (status, raw) = common::post(&app, "/v1/responses", &request(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {raw}");
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(v["error"]["param"], param, "{extra}: {raw}");
    }
    let (status, raw) =
        common::post(&app, "/v1/responses", &request(json!({"model": "gpt-5"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{raw}");
    // The neutral values SDKs send, and fields that change nothing, are accepted.
    let neutral = json!({"store": false, "tools": [], "tool_choice": "auto",
        "text": {"format": {"type": "text"}}, "truncation": "disabled", "metadata": {"k": "v"},
        "parallel_tool_calls": true, "user": "u", "max_output_tokens": 2});
    let (status, raw) = common::post(&app, "/v1/responses", &request(neutral)).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 32}},
            "required": ["city"], "additionalProperties": false}}])
}

fn check_call(item: &Value) {
    assert_eq!(item["type"], "function_call", "{item}");
    assert_eq!(item["status"], "completed", "{item}");
    assert_eq!(item["name"], "get_weather", "{item}");
    assert!(
        item["id"].as_str().expect("id").starts_with("fc_"),
        "{item}"
    );
    assert!(
        item["call_id"]
            .as_str()
            .expect("call_id")
            .starts_with("call_"),
        "{item}"
    );
    let args: Value =
        serde_json::from_str(item["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(args["city"].is_string(), "{args}");
}

#[tokio::test]
async fn function_tools_make_a_call_whole_and_streamed_and_take_its_output_back() {
    let app = app();
    let body = request(
        json!({"input": "What is the weather in Paris?", "max_output_tokens": 96,
        "tools": weather_tool(), "tool_choice": "required"}),
    );
    let r = post_json(&app, "/v1/responses", &body).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["tools"], weather_tool(), "{r}");
    assert_eq!(r["tool_choice"], "required", "{r}");
    let output = r["output"].as_array().expect("output");
    assert_eq!(output.len(), 1, "{r}");
    check_call(&output[0]);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, raw) = common::post(&app, "/v1/responses", &streamed).await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    let events = events(&raw);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
        "{raw}"
    );
    check_call(&events[5]["item"]);
    assert_eq!(
        events[4]["arguments"], events[5]["item"]["arguments"],
        "{raw}"
    );
    assert_eq!(
        events[6]["response"]["output"][0], events[5]["item"],
        "{raw}"
    );

    // The call and its output in the input: the model answers (a call or a message).
    let call = &output[0];
    let body = request(
        json!({"max_output_tokens": 32, "tools": weather_tool(), "input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call["call_id"], "name": "get_weather",
                "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "18 C, sunny"},
        ]}),
    );
    let r = post_json(&app, "/v1/responses", &body).await;
    let kind = r["output"][0]["type"].as_str().expect("type");
    assert!(["message", "function_call"].contains(&kind), "{r}");

    // Invalid combinations are 400s naming the field.
    for (extra, param) in [
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tools": weather_tool(), "text": {"format": {"type": "json_object"}}}),
            "text.format",
        ),
        (
            json!({"tools": weather_tool(), "tool_choice": {"type": "function", "name": "other"}}),
            "tool_choice",
        ),
    ] {
        let (status, raw) = common::post(&app, "/v1/responses", &request(extra)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
        let e: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(e["error"]["param"], param, "{raw}");
    }
}

/// The data of every event of an SSE body.
fn events(raw: &str) -> Vec<Value> {
    raw.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event JSON"))
        .collect()
}
