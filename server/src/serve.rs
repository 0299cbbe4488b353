//! Assembling a server from a loaded model: engine, worker, router state.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use veil_engine::model::LoadedModel;
use veil_engine::{Engine, EngineConfig, Worker};

use crate::api::{ApiConfig, AppState, Auth, Shared};

/// Which trusted-execution platform the server reports (attestation comes later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TeeMode {
    /// Software-simulated platform: NO hardware protection.
    Simulated,
    /// Detect the platform the machine has.
    Auto,
}

/// The router state and the engine worker for `model`, with NO API keys ([`Auth::Disabled`]:
/// tests, benchmarks, `serve --no-auth`); spawn the worker, serve the state.
pub fn app_state(model: LoadedModel, engine: EngineConfig, api: ApiConfig) -> (AppState, Worker) {
    app_state_with_auth(model, engine, api, Auth::Disabled)
}

/// As [`app_state`], with the given API key policy.
pub fn app_state_with_auth(
    model: LoadedModel,
    engine: EngineConfig,
    api: ApiConfig,
    auth: Auth,
) -> (AppState, Worker) {
    let context_length = model.llama.config().context_length;
    let tokenizer = Arc::new(model.tokenizer);
    let (engine, worker) = Engine::new(Arc::new(model.llama), tokenizer.clone(), engine);
    crate::metrics::global().watch_engine(engine.load_probe());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let state = AppState(Arc::new(Shared {
        engine,
        tokenizer,
        template: model.template,
        model_id: model.manifest.id,
        context_length,
        created,
        config: api,
        auth,
        drain: crate::api::Drain::default(),
    }));
    (state, worker)
}
