//! Structured outputs on the real model: an answer constrained by a JSON Schema parses and
//! validates whether decoded greedily or sampled, with log probabilities that leave out
//! what the grammar forbids; a schema the compiler cannot serve is refused by name.

use std::sync::Arc;

use serde_json::{Value, json};
use veil_engine::chat::ChatMessage;
use veil_engine::{
    Constraint, Engine, EngineConfig, FinishReason, GenEvent, GenRequest, OutputFormat,
    SamplingParams, TokenLogprobs,
};

use crate::common;

struct Run {
    engine: Engine,
    model: Arc<veil_engine::tokenizer::Tokenizer>,
    prompt: Vec<u32>,
}

struct Answer {
    text: String,
    logprobs: Vec<TokenLogprobs>,
    finish: FinishReason,
}

impl Run {
    fn start(question: &str) -> Self {
        let model = common::load();
        let messages = [ChatMessage {
            role: "user".to_owned(),
            content: question.to_owned(),
        }];
        let segments = model
            .template
            .render_prompt(&messages, true)
            .expect("renders");
        let prompt = model.tokenizer.encode_prompt(&segments).expect("encodes");
        let tokenizer = Arc::new(model.tokenizer);
        let (engine, worker) = Engine::new(
            Arc::new(model.llama),
            tokenizer.clone(),
            EngineConfig::default(),
        );
        worker.spawn().expect("worker");
        Self {
            engine,
            model: tokenizer,
            prompt,
        }
    }

    fn answer(&self, params: SamplingParams, constraint: Option<Constraint>) -> Answer {
        let mut rx = self
            .engine
            .submit(GenRequest {
                id: "t".to_owned(),
                prompt: self.prompt.clone(),
                params,
                constraint,
            })
            .expect("queued");
        let (mut text, mut logprobs) = (String::new(), Vec::new());
        loop {
            match rx.blocking_recv().expect("event") {
                GenEvent::Text(t) => text.push_str(&t),
                GenEvent::Logprobs(lp) => logprobs.push(lp),
                GenEvent::Done(finish, _) => {
                    return Answer {
                        text,
                        logprobs,
                        finish,
                    };
                }
                GenEvent::Failed(e) => panic!("failed: {e}"),
            }
        }
    }
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]}
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false
    })
}

/// Checks `v` against [`person_schema`] by hand (the test does not trust the compiler it
/// tests to say what valid means).
fn is_person(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let name_ok = o
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|s| s.chars().count() <= 24);
    let age_ok = o
        .get("age")
        .and_then(Value::as_i64)
        .is_some_and(|a| (0..=150).contains(&a));
    let city_ok = o
        .get("city")
        .and_then(Value::as_str)
        .is_some_and(|c| ["Paris", "London", "Tokyo"].contains(&c));
    o.len() == 3 && name_ok && age_ok && city_ok
}

#[test]
fn answers_follow_the_schema_greedy_and_sampled() {
    let run = Run::start("Describe a person who lives in a big city.");
    let format = OutputFormat::JsonSchema(person_schema());
    let unconstrained = run.answer(SamplingParams::greedy(48), None);
    assert!(
        serde_json::from_str::<Value>(&unconstrained.text).is_err(),
        "the model answers in prose unless constrained: {:?}",
        unconstrained.text
    );
    let mut sampled = Vec::new();
    for seed in [None, Some(1), Some(2), Some(3)] {
        let params = match seed {
            None => SamplingParams::greedy(96),
            Some(seed) => SamplingParams {
                temperature: 1.0,
                seed,
                ..SamplingParams::greedy(96)
            },
        };
        let constraint = run.engine.constraint(&format).expect("compiles");
        let a = run.answer(params, Some(constraint));
        assert_eq!(a.finish, FinishReason::Stop, "{seed:?}: {:?}", a.text);
        let v: Value = serde_json::from_str(&a.text)
            .unwrap_or_else(|e| panic!("{seed:?}: not JSON ({e}): {:?}", a.text));
        assert!(is_person(&v), "{seed:?}: {v}");
        sampled.push(a.text);
    }
    sampled.dedup();
    assert!(sampled.len() > 1, "sampling varies the answer: {sampled:?}");
}

#[test]
fn a_json_object_is_an_object_and_copies_walk_apart() {
    let run = Run::start("Give me a JSON object with two colors.");
    let constraint = run
        .engine
        .constraint(&OutputFormat::JsonObject)
        .expect("compiles");
    // One constraint cloned for two sequences (the `n` choices of a request): each walks its
    // own grammar, so both answers are whole objects.
    let params = |seed| SamplingParams {
        temperature: 0.8,
        seed,
        ..SamplingParams::greedy(160)
    };
    for (seed, c) in [(7, constraint.clone()), (8, constraint)] {
        let a = run.answer(params(seed), Some(c));
        // Any object is allowed, so one may run to max_tokens (on another CPU's logits):
        // then the text is an object's beginning; an answer that stopped is a whole object.
        if a.finish == FinishReason::Stop {
            let v: Value = serde_json::from_str(&a.text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", a.text));
            assert!(v.is_object(), "{v}");
        } else {
            assert!(a.text.starts_with('{'), "{:?}", a.text);
        }
    }
}

/// A greedy constrained pick checks the unmasked best token first and masks only when the
/// grammar refuses it; asking for log probabilities makes the worker mask every step. Both
/// must pick the same tokens, with and without penalties (applied before the check).
#[test]
fn a_greedy_pick_checked_first_is_the_masked_pick() {
    let run = Run::start("Describe a person who lives in a big city.");
    let format = OutputFormat::JsonSchema(person_schema());
    for penalty in [0.0, 1.5] {
        let params = SamplingParams {
            frequency_penalty: penalty,
            ..SamplingParams::greedy(64)
        };
        let constraint = || Some(run.engine.constraint(&format).expect("compiles"));
        let checked = run.answer(params.clone(), constraint());
        let masked = run.answer(
            SamplingParams {
                logprobs: Some(0),
                ..params
            },
            constraint(),
        );
        assert_eq!(checked.text, masked.text, "penalty {penalty}");
        assert_eq!(checked.finish, masked.finish);
        assert!(
            !masked.logprobs.is_empty(),
            "the masked run reports log probabilities"
        );
        assert!(checked.logprobs.is_empty());
        assert!(is_person(
            &serde_json::from_str(&checked.text).expect("JSON")
        ));
    }
}

#[test]
fn logprobs_leave_out_what_the_grammar_forbids() {
    let run = Run::start("Describe a person.");
    let constraint = run
        .engine
        .constraint(&OutputFormat::JsonSchema(person_schema()))
        .expect("compiles");
    let a = run.answer(
        SamplingParams {
            logprobs: Some(20),
            ..SamplingParams::greedy(96)
        },
        Some(constraint),
    );
    assert!(is_person(&serde_json::from_str(&a.text).expect("JSON")));
    // The first token can only be `{`-led: every alternative reported is one the grammar
    // allows, and the sampled token's probability is renormalised over them.
    let first = &a.logprobs[0];
    assert!(!first.top.is_empty());
    for &(t, lp) in &first.top {
        let text = String::from_utf8_lossy(run.model.token_bytes(t)).into_owned();
        assert!(text.starts_with('{'), "{text:?} offered at the start");
        assert!(lp.is_finite() && lp <= 0.0);
    }
    assert!(a.logprobs.iter().all(|l| l.logprob.is_finite()));
    let total: f32 = first.top.iter().map(|&(_, lp)| lp.exp()).sum();
    assert!(total <= 1.0001, "{total}");
}

#[test]
fn a_schema_the_compiler_cannot_serve_is_refused_by_name() {
    let run = Run::start("Hi");
    let bad =
        json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}});
    let e = run
        .engine
        .constraint(&OutputFormat::JsonSchema(bad))
        .expect_err("a remote $ref is not fetched");
    assert!(e.to_string().contains("example.com"), "{e}");
    let never = json!({"type": "integer", "minimum": 5, "maximum": 1});
    let e = run
        .engine
        .constraint(&OutputFormat::JsonSchema(never))
        .expect_err("no integer is at least 5 and at most 1");
    assert!(
        e.to_string().to_lowercase().contains("unsatisfiable"),
        "{e}"
    );
}

#[test]
fn hostile_schemas_are_refused_or_served_never_a_panic() {
    // A schema comes from the client: whatever it is, compiling it returns (quickly) a
    // constraint or an error, and the engine goes on serving.
    let run = Run::start("Hi");
    let mut nested = json!({"type": "string"});
    for _ in 0..100 {
        nested = json!({"type": "array", "items": nested});
    }
    let many: Vec<String> = (0..5000).map(|i| format!("value-{i}")).collect();
    let schemas = [
        json!({"$ref": "#"}),
        json!({"$ref": "#/$defs/missing"}),
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        json!({"type": "nonsense"}),
        json!({"type": "string", "pattern": "(((("}),
        json!({"type": "string", "pattern": "(a|aa)*b{1000}"}),
        json!({"type": "string", "minLength": 10, "maxLength": 2}),
        json!({"type": "integer", "multipleOf": 0}),
        json!({"type": "number", "minimum": 1e308, "maximum": -1e308}),
        json!({"enum": many}),
        json!({"anyOf": []}),
        json!({"allOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"properties": {"a": false}, "required": ["a"]}),
        json!({"type": "object", "minProperties": 1000000}),
        json!({"type": "array", "minItems": 4000000000_u64}),
        nested,
    ];
    for schema in schemas {
        let started = std::time::Instant::now();
        let text = schema.to_string();
        let shown = &text[..text.len().min(80)];
        match run.engine.constraint(&OutputFormat::JsonSchema(schema)) {
            Ok(_) => {}
            Err(e) => assert!(!e.to_string().is_empty(), "{shown}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{shown}: {:?}",
            started.elapsed()
        );
    }
    // Still serving, constrained or not.
    let a = run.answer(SamplingParams::greedy(4), None);
    assert!(!a.text.is_empty());
}
