//! The bodies as the server writes them (OpenAI's shapes, field for field) and as a client
//! reads them (unknown fields kept, missing ones defaulted).

use serde_json::json;
use veil_openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Completion,
    CompletionChoice, Delta, FunctionCall, ToolCall, Usage,
};

#[test]
fn a_chat_completion_is_written_in_openais_shape() {
    let body = ChatCompletion {
        id: "chatcmpl-1".to_owned(),
        object: "chat.completion".to_owned(),
        created: 7,
        model: "m".to_owned(),
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".to_owned(),
                content: None,
                tool_calls: Some(vec![ToolCall {
                    index: None,
                    id: "call_1".to_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: "f".to_owned(),
                        arguments: "{}".to_owned(),
                    },
                }]),
            },
            logprobs: None,
            finish_reason: Some("tool_calls".to_owned()),
        }],
        usage: Some(Usage::new(3, 2)),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&body).expect("serializes"),
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
    );
}

#[test]
fn stream_chunks_leave_out_what_openai_leaves_out() {
    let chunk = ChatCompletionChunk {
        id: "c".to_owned(),
        object: "chat.completion.chunk".to_owned(),
        choices: vec![ChunkChoice {
            delta: Delta {
                content: Some("Hi".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let v = serde_json::to_value(&chunk).expect("serializes");
    assert_eq!(v["choices"][0]["delta"], json!({"content": "Hi"}));
    assert_eq!(v["choices"][0]["finish_reason"], json!(null));
    assert!(v.get("usage").is_none(), "{v}");
    let text = Completion {
        choices: vec![CompletionChoice::default()],
        ..Default::default()
    };
    let v = serde_json::to_value(&text).expect("serializes");
    assert_eq!(v["choices"][0]["logprobs"], json!(null));
    assert!(v.get("usage").is_none(), "{v}");
}

#[test]
fn a_client_keeps_unknown_fields_and_defaults_missing_ones() {
    let read: ChatCompletion = serde_json::from_value(json!({
        "id": "x",
        "choices": [{"message": {"role": "assistant", "content": "Paris"}}],
        "system_fingerprint": "fp_1",
    }))
    .expect("reads");
    assert_eq!(read.text(), Some("Paris"));
    assert_eq!(read.extra["system_fingerprint"], json!("fp_1"));
    assert_eq!(read.usage, None);
    assert_eq!(read.choices[0].finish_reason, None);
    // Written back, the unknown field goes with it.
    let again = serde_json::to_value(&read).expect("serializes");
    assert_eq!(again["system_fingerprint"], json!("fp_1"));
}

#[test]
fn a_log_probability_of_minus_infinity_is_written_null_and_read_back() {
    use veil_openai::{ChatLogprobs, ChatTokenLogprob, TextLogprobs};
    let chat = ChatLogprobs {
        content: vec![ChatTokenLogprob {
            token: "a".to_owned(),
            logprob: f32::NEG_INFINITY,
            ..Default::default()
        }],
    };
    let text = serde_json::to_string(&chat).expect("serializes");
    assert!(text.contains(r#""logprob":null"#), "{text}");
    let back: ChatLogprobs = serde_json::from_str(&text).expect("reads");
    assert_eq!(back.content[0].logprob, f32::NEG_INFINITY);
    let completion: TextLogprobs = serde_json::from_value(json!({
        "tokens": ["a", "b"],
        "token_logprobs": [-0.5, null],
        "top_logprobs": [{"a": -0.5}, {"b": null}],
        "text_offset": [0, 1],
    }))
    .expect("reads");
    assert_eq!(completion.token_logprobs, [-0.5, f32::NEG_INFINITY]);
    assert_eq!(completion.top_logprobs[1]["b"], f32::NEG_INFINITY);
}
