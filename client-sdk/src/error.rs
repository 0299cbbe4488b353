//! The one error type of the SDK: every way a request can fail, each variant naming the
//! check or step that failed. No variant carries a prompt, a completion or an API key:
//! inner bodies are reduced to the server's own error message, JSON errors to their
//! position.

use veil_attest::{CheckName, VerifyError};

/// Why connecting, sending or receiving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL is not an absolute `http` or `https` URL.
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
    /// The HTTP connection or exchange with the server failed (no answer, reset, TLS).
    #[error("transport: {0}")]
    Transport(String),
    /// `GET /v1/attestation` did not answer 200 (e.g. 429/503 when asked too often).
    #[error("attestation request refused: HTTP {status}: {message}")]
    AttestationUnavailable {
        /// Outer HTTP status.
        status: u16,
        /// The server's short text (truncated).
        message: String,
    },
    /// The attestation was rejected: the evidence, the binding of key, nonce and manifest
    /// into REPORT_DATA, or the manifest against the policy. [`Error::check`] names the rule.
    #[error("attestation rejected: {0}")]
    Verification(#[from] VerifyError),
    /// The attested key configuration cannot be used (malformed, no common suite).
    #[error("attested key configuration unusable: {0}")]
    KeyConfig(veil_protocol::Error),
    /// The policy says `require_post_quantum` and the server's attested key configurations
    /// offer no post-quantum KEM (X-Wing, 0x647A).
    #[error(
        "the policy requires a post-quantum key exchange (X-Wing, KEM 0x647a); the server's \
         attested keys offer only KEM {}",
        kem_list(.offered)
    )]
    PostQuantumRequired {
        /// The KEM identifiers of the attested configurations this SDK implements.
        offered: Vec<u16>,
    },
    /// Sealing the request failed.
    #[error("sealing the request failed: {0}")]
    Seal(veil_protocol::Error),
    /// The gateway refused the encapsulated request (replay, stale Date, unknown key,
    /// altered request), with its outer HTTP status and short text.
    #[error("gateway refused the request: HTTP {status}: {message}")]
    GatewayRefused {
        /// Outer HTTP status.
        status: u16,
        /// The gateway's short text (truncated).
        message: String,
    },
    /// The gateway said it does not hold the key the request was sealed to, but a fresh
    /// attestation shows the same key: the request is not sent again. A relay can forward a
    /// request and then answer "unknown key"; re-sending would run it twice (two answers,
    /// billed twice). The first request may have run.
    #[error(
        "the gateway refused the attested key as unknown, yet a fresh attestation shows the \
         same key; the request was not re-sent (it may have run once)"
    )]
    KeyNotRotated,
    /// The gateway answered with a media type other than the encapsulated response's.
    #[error("gateway answered {got:?} instead of {expected}")]
    UnexpectedMediaType {
        /// The media type expected.
        expected: &'static str,
        /// The media type received.
        got: String,
    },
    /// The encapsulated response failed authentication: altered, reordered, or not sealed
    /// for this request.
    #[error("response integrity: {0}")]
    ResponseIntegrity(veil_protocol::Error),
    /// The streamed response ended without its authenticated final chunk.
    #[error("response truncated: the stream ended without its authenticated final chunk")]
    Truncated,
    /// The decrypted inner response is not a well-formed Binary HTTP response.
    #[error("malformed inner response: {0}")]
    InnerResponse(veil_protocol::Error),
    /// The inner response's body is not the event stream or JSON its head announced.
    #[error("malformed inner response: {0}")]
    MalformedResponse(String),
    /// The server answered the inner request with an error status (OpenAI error body).
    #[error("server error: HTTP {status}: {message}")]
    Api {
        /// Inner HTTP status.
        status: u16,
        /// OpenAI `error.type`, if given.
        kind: Option<String>,
        /// OpenAI `error.message` (the server's text).
        message: String,
    },
    /// An inner body is not the JSON expected (position only, never content).
    #[error("unexpected JSON in the response: {0}")]
    Json(String),
    /// The system clock is before 1970.
    #[error("system clock is before 1970")]
    Clock,
}

impl Error {
    /// The stable name of the failed check: the attestation check for
    /// [`Error::Verification`], otherwise the step (`transport`, `gateway`,
    /// `response_integrity`, `truncated`, …).
    pub fn check(&self) -> &'static str {
        match self {
            Self::Verification(e) => e.check().as_str(),
            Self::InvalidUrl(_) => "url",
            Self::Transport(_) => "transport",
            Self::AttestationUnavailable { .. } => "attestation_unavailable",
            Self::KeyConfig(_) => "key_config",
            Self::PostQuantumRequired { .. } => "post_quantum",
            Self::Seal(_) => "seal",
            Self::GatewayRefused { .. } => "gateway",
            Self::KeyNotRotated => "key_not_rotated",
            Self::UnexpectedMediaType { .. } => "media_type",
            Self::ResponseIntegrity(_) => "response_integrity",
            Self::Truncated => "truncated",
            Self::InnerResponse(_) | Self::MalformedResponse(_) => "inner_response",
            Self::Api { .. } => "api",
            Self::Json(_) => "json",
            Self::Clock => "clock",
        }
    }

    /// The attestation check that failed, for [`Error::Verification`].
    pub fn verify_check(&self) -> Option<CheckName> {
        match self {
            Self::Verification(e) => Some(e.check()),
            _ => None,
        }
    }

    /// Whether this error means the attested server could not be trusted or the data
    /// in flight was altered (as opposed to an ordinary server or network error).
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            Self::Verification(_)
                | Self::KeyConfig(_)
                | Self::PostQuantumRequired { .. }
                | Self::KeyNotRotated
                | Self::ResponseIntegrity(_)
                | Self::Truncated
                | Self::InnerResponse(_)
                | Self::MalformedResponse(_)
        )
    }

    pub(crate) fn transport(e: &reqwest::Error) -> Self {
        // reqwest's Display carries the URL and the cause, never a body.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        Self::Transport(msg)
    }

    /// Maps a chunked-opening failure: truncation is its own variant.
    pub(crate) fn opening(e: veil_protocol::Error) -> Self {
        match e {
            veil_protocol::Error::Truncated => Self::Truncated,
            e => Self::ResponseIntegrity(e),
        }
    }

    /// A JSON error reduced to its category and position (serde_json messages can quote
    /// the input, which may be a completion).
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        Self::Json(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

fn kem_list(ids: &[u16]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| format!("0x{id:04x}")).collect();
    if ids.is_empty() {
        "(none)".to_owned()
    } else {
        ids.join(", ")
    }
}

/// Keeps at most 200 characters of a short server text, on a character boundary.
pub(crate) fn short(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}
