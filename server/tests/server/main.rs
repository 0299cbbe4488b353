//! veil-server's integration tests, one binary: each test binary links candle and the
//! server, so one binary instead of fourteen saves their links (and the disk they filled).
//! Each module is what was a binary of its own; `common` is their shared setup.

mod common;

mod api;
mod canary;
mod endorsements;
mod evidence_command;
mod image_model;
mod input_limits;
mod keys;
mod keys_cli;
mod openai_python;
mod output_filter;
mod rate_limits;
mod responses_api;
mod sampling_api;
mod shutdown;
