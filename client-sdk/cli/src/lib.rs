//! The library half of the `veil` command: the router of `veil proxy`, a plain
//! OpenAI-compatible endpoint that forwards every request sealed to an attested server.
//!
//! It lives here, not in `veil-client`, so that the SDK carries no HTTP server: an
//! application that only talks to Veil links `veil-client` alone. The command itself
//! (`src/bin/veil/`) parses arguments and prints; tests serve this router in-process.

pub mod proxy;
