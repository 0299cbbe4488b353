//! Veil inference server: an OpenAI-compatible HTTP API over the `veil-engine` inference
//! engine, serving a model whose files are pinned by a manifest.
//!
//! The flow: obtain the model (`veil_engine::fetch::default_model` or a
//! `veil_engine::model::ModelSource`), verify and load it
//! (`veil_engine::model::LoadedModel::load`), start the engine's worker, and serve
//! [`api::router`]. `/v1/*` needs an API key from a [`keys::KeyStore`] (see [`api::Auth`]
//! and [`serve::app_state_with_auth`]). `veil-server serve` accepts connections through
//! [`listen::serve`] (slow-client timeouts, header and connection limits, graceful shutdown)
//! and disables core dumps at start ([`core_dumps`]). Logs carry request ids, key ids, sizes,
//! token counts and timings; never a prompt, a completion or a key.
//!
//! ```no_run
//! use veil_engine::{EngineConfig, fetch, model::LoadedModel};
//! use veil_server::{api, serve};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = fetch::default_model(&mut |line| eprintln!("{line}"))?;
//! let model = LoadedModel::load(&source, &veil_engine::device()?)?;
//! let api = api::ApiConfig { allow_plaintext: true, ..Default::default() };
//! let (state, worker) = serve::app_state(model, EngineConfig::default(), api);
//! worker.spawn()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, api::router(state)).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod confidential;
pub mod core_dumps;
mod deadline;
pub mod endorsements;
pub mod keys;
pub mod listen;
pub mod metrics;
pub mod serve;
