//! Veil's inference engine: a model pinned by a manifest, verified and loaded; its tokenizer
//! and chat template; a batched Llama forward pass on candle and Veil's kernels; and the
//! worker that runs every request through it (continuous batching), behind the [`Engine`]
//! handle. No HTTP, no encryption, no keys: `veil-server` serves this.
//!
//! The modules depend on each other in one direction only, lowest first:
//! [`error`](Error); [`tokenizer`] (GGUF or `tokenizer.json`; [`tokenizer::PromptSegment`]);
//! [`chat`] (the template, rendered into prompt segments); `llama` ([`Llama`], [`KvCache`],
//! [`HfConfig`]); sampling, the request types and text streaming; the worker and its
//! handle ([`Engine`], [`Worker`]); [`model`] (manifest, verification, [`model::LoadedModel`],
//! which puts tokenizer, template and network together); [`fetch`] (the default model).
//!
//! ```no_run
//! use std::sync::Arc;
//! use veil_engine::{Engine, EngineConfig, GenEvent, GenRequest, SamplingParams};
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = veil_engine::fetch::default_model(&mut |line| eprintln!("{line}"))?;
//! let model = veil_engine::model::LoadedModel::load(&source, &veil_engine::device()?)?;
//! let prompt = model.tokenizer.encode("The capital of France is")?;
//! let (engine, worker) =
//!     Engine::new(Arc::new(model.llama), Arc::new(model.tokenizer), EngineConfig::default());
//! worker.spawn()?;
//! let params = SamplingParams::greedy(8);
//! let request = GenRequest { id: "demo".into(), prompt, params, constraint: None };
//! let mut events = engine.submit(request)?;
//! while let Some(event) = events.blocking_recv() {
//!     match event {
//!         GenEvent::Text(text) => print!("{text}"),
//!         GenEvent::Logprobs(_) => {}
//!         GenEvent::Done(..) | GenEvent::Failed(_) => break,
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod chat;
mod engine;
mod error;
pub mod fetch;
mod grammar;
mod llama;
mod load;
pub mod model;
mod request;
mod sampling;
mod text;
pub mod tokenizer;
mod worker;

pub use engine::{Engine, EngineConfig, SubmitError};
pub use error::{Error, Result};
pub use grammar::{Constraint, Grammars, OutputFormat};
pub use llama::{HfConfig, KvCache, Llama, LlamaConfig, WeightFormat, argmax, argmax_rows};
pub use load::{Load, LoadProbe};
pub use request::{FinishReason, GenEvent, GenRequest, TokenLogprobs, Usage};
pub use sampling::SamplingParams;
pub use text::{Delta, TextStream};
pub use worker::{PREFILL_CHUNK, Worker};

/// The device to run on: the first CUDA GPU when built with the `cuda` feature and one is
/// present, else the CPU.
pub fn device() -> Result<candle_core::Device> {
    Ok(candle_core::Device::cuda_if_available(0)?)
}
