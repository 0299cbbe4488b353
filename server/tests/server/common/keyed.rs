//! HTTP helpers of the API key tests: requests with an `Authorization` header, against a
//! router whose keys come from a key database.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_engine::{EngineConfig, Worker};
use veil_server::api::{ApiConfig, Auth, router};
use veil_server::keys::{KeyStore, Limiter, Limits, SecretKey};

/// Ten prompt tokens, exactly (token ids, so no tokenizer is involved).
pub const PROMPT_IDS: [u32; 10] = [504, 3485, 253, 655, 665, 750, 253, 1345, 30, 216];

/// A whole response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii"))
    }

    pub fn number(&self, name: &str) -> f64 {
        self.header(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number"))
    }

    /// `x-ratelimit-reset-tokens` (`12ms`, `17s`, `2m30s`) in seconds.
    pub fn reset_secs(&self) -> f64 {
        let v = self
            .header("x-ratelimit-reset-tokens")
            .expect("reset header");
        if let Some(ms) = v.strip_suffix("ms") {
            return ms.parse::<f64>().expect("ms") / 1000.0;
        }
        let v = v.strip_suffix('s').expect("ends in s");
        match v.split_once('m') {
            Some((m, s)) => m.parse::<f64>().expect("m") * 60.0 + s.parse::<f64>().expect("s"),
            None => v.parse().expect("s"),
        }
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
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

pub fn request(
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    let body = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(v).expect("json"))
        }
        None => Body::empty(),
    };
    b.body(body).expect("request")
}

pub fn bearer(key: &SecretKey) -> String {
    format!("Bearer {}", key.expose())
}

/// A completion of exactly `PROMPT_IDS` and `max_tokens` generated tokens.
pub fn completion_body(max_tokens: u64, stream: bool) -> Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "prompt": PROMPT_IDS,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": stream,
    })
}

pub async fn complete(app: &Router, key: &SecretKey, max_tokens: u64) -> Reply {
    let body = completion_body(max_tokens, false);
    send(
        app,
        request("POST", "/v1/completions", Some(&bearer(key)), Some(&body)),
    )
    .await
}

pub fn limits(rate: Option<u64>, concurrent: Option<u32>) -> Limits {
    Limits {
        tokens_per_minute: rate.and_then(std::num::NonZeroU64::new),
        max_concurrent: concurrent.and_then(std::num::NonZeroU32::new),
    }
}

pub fn create(store: &KeyStore, name: &str, limits: Limits) -> SecretKey {
    store
        .create(name, limits, &mut rand::rng())
        .expect("key created")
        .1
}

/// A router with API keys from the store at `db`, its worker not yet started.
pub fn keyed_app(db: &Path, api: ApiConfig, engine: EngineConfig) -> (Router, Worker) {
    let store = Arc::new(KeyStore::open(db).expect("key store"));
    let (state, worker) = super::app_with_auth(engine, api, Auth::ApiKeys(Limiter::new(store)));
    (router(state), worker)
}

pub fn plaintext() -> ApiConfig {
    ApiConfig {
        allow_plaintext: true,
        ..ApiConfig::default()
    }
}

pub fn assert_401(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
    let err = &r.json()["error"];
    assert_eq!(err["code"], "invalid_api_key", "{what}");
    assert_eq!(err["type"], "invalid_request_error", "{what}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
}
