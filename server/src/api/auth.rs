//! API keys on `/v1/*`: the `Authorization: Bearer veil_sk_…` check, per-key admission, and
//! the `x-ratelimit-*-tokens` headers.
//!
//! The check runs on plain and sealed requests alike: the OHTTP gateway runs each inner
//! request (whose headers carry the key, encrypted on the wire) through this same router.
//! `/healthz`, `/v1/attestation` and the gateway's key configurations need no key: a client
//! attests the server before its key leaves it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::keys::{AuthError, KeyRecord, Limiter, Ticket, TokenBudget};

/// Who may call `/v1/*`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Every `/v1/*` request needs an active key of the limiter's store; its limits apply.
    ApiKeys(Arc<Limiter>),
    /// No API keys and no limits: anyone who reaches the server is served (`serve --no-auth`,
    /// local demos, tests, benchmarks).
    Disabled,
}

/// The authenticated caller of a request (a request extension set by [`require_key`]).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) key: KeyRecord,
    limiter: Arc<Limiter>,
}

impl Caller {
    /// Admits a request with `prompt_tokens` under the key's limits, or refuses it (429).
    pub(crate) fn admit(&self, prompt_tokens: usize) -> Result<Ticket, ApiError> {
        let tokens = u64::try_from(prompt_tokens).unwrap_or(u64::MAX);
        self.limiter.admit(&self.key, tokens).map_err(|e| {
            tracing::info!(key_id = %self.key.id, reason = %e, "request over the key's limits");
            ApiError::rate_limited(&e)
        })
    }
}

/// Middleware: refuses `/v1/*` requests without an active key (401), else marks them with
/// their [`Caller`].
pub(super) async fn require_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Auth::ApiKeys(limiter) = &state.0.auth else {
        return next.run(req).await;
    };
    let found = match bearer(req.headers()) {
        Some(key) => limiter.store().authenticate(key),
        None => Err(AuthError::Missing),
    };
    match found {
        Ok(key) => {
            req.extensions_mut().insert(Caller {
                key,
                limiter: limiter.clone(),
            });
            next.run(req).await
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "key store failed");
            ApiError::internal().into_response()
        }
        Err(e) => {
            tracing::info!(path = req.uri().path(), reason = %e, "request without a valid API key");
            ApiError::invalid_api_key(&e).into_response()
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Sets `x-ratelimit-limit-tokens`, `x-ratelimit-remaining-tokens` and
/// `x-ratelimit-reset-tokens` (OpenAI's names and duration format).
pub(crate) fn put_budget(headers: &mut HeaderMap, budget: &TokenBudget) {
    headers.insert("x-ratelimit-limit-tokens", HeaderValue::from(budget.limit));
    headers.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from(budget.remaining),
    );
    if let Ok(v) = HeaderValue::from_str(&duration_text(budget.reset)) {
        headers.insert("x-ratelimit-reset-tokens", v);
    }
}

/// OpenAI's duration format: `12ms` below a second, else whole seconds rounded up (`17s`,
/// `6m0s`).
pub(crate) fn duration_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = whole_seconds(d);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// `d` in whole seconds, rounded up.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai_ones() {
        assert_eq!(duration_text(Duration::from_millis(12)), "12ms");
        assert_eq!(duration_text(Duration::ZERO), "0ms");
        assert_eq!(duration_text(Duration::from_millis(16_001)), "17s");
        assert_eq!(duration_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(duration_text(Duration::from_millis(61_500)), "1m2s");
    }

    #[test]
    fn only_bearer_tokens_are_read() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("ascii"),
            );
            bearer(&h).map(str::to_owned)
        };
        assert_eq!(with("Bearer veil_sk_x").as_deref(), Some("veil_sk_x"));
        assert_eq!(with("bearer  veil_sk_x ").as_deref(), Some("veil_sk_x"));
        assert_eq!(with("Basic dXNlcjpwYXNz"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("veil_sk_x"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
