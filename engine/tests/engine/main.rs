//! The engine's integration tests, on the real pinned model: one test binary (each binary
//! links candle, so one per crate keeps link time and disk down).

mod common;
mod grammar;
mod llama;
mod load;
mod safetensors;
mod sampling;
mod tokenizer_golden;
