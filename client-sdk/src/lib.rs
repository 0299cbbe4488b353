//! Veil client SDK: verify a confidential-computing inference server's attestation, then
//! talk to it through Oblivious HTTP sealed to the attested key only.
//!
//! [`Client::connect`] fetches the attestation with a fresh nonce and verifies the
//! evidence, the binding of the gateway key, the nonce and the server manifest into
//! REPORT_DATA, and the manifest against the [`Policy`]; nothing else is sent before it
//! succeeds. Every request is then one Binary HTTP message sealed to the attested key;
//! every response is authenticated, streams chunk by chunk, and a stream that ends
//! without its authenticated final chunk ends with [`Error::Truncated`].
//!
//! ```no_run
//! use futures_util::StreamExt as _;
//! use veil_client::{ChatMessage, ChatRequest, Client, Policy};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The release's policy (`veil policy from-manifest`): a missing file is an error, never
//! // "accept any image"; a policy that pins no launch measurement is refused by `connect`.
//! let policy = Policy::from_toml(&std::fs::read_to_string("policy.toml")?)?;
//! let client = Client::connect("https://veil.example", policy).await?;
//! let attested = client.attested();
//! println!("attested: {}", attested.verdict.platform);
//! for w in &attested.verdict.warnings {
//!     eprintln!("warning: {w}");
//! }
//! let req = ChatRequest::new("smollm2-135m", vec![ChatMessage::user("Hello")]);
//! let mut stream = client.chat_stream(&req).await?;
//! while let Some(chunk) = stream.next().await {
//!     print!("{}", chunk?.text().unwrap_or_default());
//! }
//! # Ok(()) }
//! ```

mod api;
mod attestation;
mod client;
mod error;
mod http;
pub use http::install_crypto_provider;
pub mod openai;
mod sse;
mod stream;

pub use api::EventStream;
pub use attestation::{Attested, fetch_attestation, fresh_nonce, system_now, verify_attestation};
pub use client::{Client, Request, Response};
pub use error::Error;
pub use openai::{ChatMessage, ChatRequest, CompletionRequest, Sampling};
pub use stream::{DONE, ResponseStream};
pub use veil_attest::{Attestation, Platform, Policy, Reference, UnixTime, Verdict, VerifyError};
pub use veil_openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatLogprobs, ChunkChoice,
    Completion, CompletionChoice, Delta, FunctionCall, Model, ModelList, TextLogprobs, ToolCall,
    Usage,
};

/// Not part of the API: the fuzz entry point of the incremental inner-response parser
/// (`fuzz/src/client.rs`). Feeds `pieces` of decrypted chunked-OHTTP plaintext in order,
/// then ends the stream; returns the status, the header fields and the content, or why the
/// inner response was refused.
#[doc(hidden)]
pub fn fuzz_inner_response(
    pieces: &[&[u8]],
) -> Result<veil_protocol::DecodedResponse, veil_protocol::Error> {
    veil_protocol::decode_pieces(pieces)
}
