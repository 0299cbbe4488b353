//! The OpenAI-compatible HTTP API: [`router`] over an [`AppState`].
//!
//! Plain requests to `/v1/*` are refused with 403 unless the server allows plaintext;
//! the encrypted (OHTTP) path marks the requests it opened with [`Sealed`]. Then, plain or
//! sealed alike, `/v1/*` needs an active API key unless [`Auth::Disabled`] (401), and the
//! key's limits apply (429). `/healthz` always answers.
//!
//! Input limits ([`ApiConfig`]): the body size (413), the number of chat messages (400), a
//! ceiling on `max_tokens` (400). Generated text passes the [`OutputFilter`], if one is
//! configured, before it leaves (`finish_reason: "content_filter"` on a match).

mod answer;
mod auth;
mod choices;
mod deny_list;
mod drain;
mod error;
mod filter;
mod format;
mod generation;
mod handlers;
mod logprobs;
mod messages;
mod penalties;
mod plan;
mod responses;
mod stream;
mod tools;
mod types;
mod unsupported;

pub use auth::Auth;
pub use deny_list::{DenyList, DenyListError};
pub use drain::Drain;
pub(crate) use error::ApiError;
pub use filter::OutputFilter;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use veil_engine::Engine;
use veil_engine::chat::ChatTemplate;
use veil_engine::tokenizer::Tokenizer;

/// Request extension set by the encrypted transport on requests it decapsulated.
#[derive(Debug, Clone, Copy)]
pub struct Sealed;

/// Policy knobs of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Serve unencrypted requests (development, tests).
    pub allow_plaintext: bool,
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most messages in one chat request (400 above).
    pub max_messages: usize,
    /// Most tokens one request may ask to generate (400 above); also the default when a
    /// chat request names no `max_tokens`.
    pub max_tokens_limit: usize,
    /// The filter generated text passes before it is sent (none by default).
    pub output_filter: Option<Arc<dyn OutputFilter>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            allow_plaintext: false,
            max_body_bytes: 1 << 20,
            max_messages: 256,
            max_tokens_limit: 4096,
            output_filter: None,
        }
    }
}

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The engine's queue.
    pub(crate) engine: Engine,
    /// The model's tokenizer (prompts are tokenized on the request path).
    pub(crate) tokenizer: Arc<Tokenizer>,
    /// The model's chat template.
    pub(crate) template: ChatTemplate,
    /// The model id clients name.
    pub(crate) model_id: String,
    /// The model's context length, in tokens.
    pub(crate) context_length: usize,
    /// When the model was loaded (Unix seconds), for `/v1/models`.
    pub(crate) created: u64,
    /// API policy.
    pub(crate) config: ApiConfig,
    /// Who may call `/v1/*`, and their limits.
    pub(crate) auth: Auth,
    /// Started when the shutdown grace period is over: ends the answers still generating.
    pub(crate) drain: Drain,
}

/// Shared state of the router (built by [`crate::serve::app_state`]).
#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Shared>);

impl AppState {
    /// The model id clients name.
    pub fn model_id(&self) -> &str {
        &self.0.model_id
    }

    /// The drain that ends the answers still generating when a shutdown's grace is over
    /// (hand it to [`crate::listen::serve`]).
    pub fn drain(&self) -> Drain {
        self.0.drain.clone()
    }

    /// Builds the vocabulary's token trie for structured outputs and tools now, on a
    /// background thread, so that the first request with a format does not wait for it.
    pub fn prepare_constraints(&self) -> std::io::Result<()> {
        let engine = self.0.engine.clone();
        std::thread::Builder::new()
            .name("veil-grammar".to_owned())
            .spawn(move || {
                if let Err(e) = engine.constraint(&veil_engine::OutputFormat::JsonObject) {
                    tracing::warn!(error = %e, "structured outputs are unavailable");
                }
            })
            .map(drop)
    }
}

/// The application: every route, the body limit, the plaintext policy, the API keys.
pub fn router(state: AppState) -> Router {
    // The last layer runs first: plaintext policy, then the key.
    let v1 = Router::new()
        .route("/v1/models", get(handlers::models))
        .route("/v1/models/{id}", get(handlers::model))
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/responses", post(responses::create))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_plaintext,
        ))
        .route_layer(middleware::from_fn(crate::metrics::track));
    Router::new()
        .merge(v1)
        .route("/healthz", get(handlers::healthz))
        .fallback(|| async { ApiError::route_not_found() })
        .layer(DefaultBodyLimit::max(state.0.config.max_body_bytes))
        .with_state(state)
}

async fn refuse_plaintext(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.0.config.allow_plaintext || req.extensions().get::<Sealed>().is_some() {
        next.run(req).await
    } else {
        tracing::info!(path = req.uri().path(), "plaintext request refused");
        ApiError::plaintext_refused().into_response()
    }
}
