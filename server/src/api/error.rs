//! API errors in OpenAI's JSON shape, each with its HTTP status.
//!
//! Messages name limits, counts and field names only: never request content.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::keys::{AuthError, RateLimited, TokenBudget};

/// An error answered to the client as `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Human-readable message.
    pub(crate) message: String,
    /// OpenAI error type (`invalid_request_error`, …).
    pub(crate) kind: &'static str,
    /// Machine-readable code, if any.
    pub(crate) code: Option<&'static str>,
    /// The offending request field, if any.
    pub(crate) param: Option<&'static str>,
    /// Seconds for `Retry-After`, on 429 and 503.
    pub(crate) retry_after: Option<u32>,
    /// The caller's token budget, for the `x-ratelimit-*-tokens` headers.
    pub(crate) budget: Option<TokenBudget>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code: None,
            param: None,
            retry_after: None,
            budget: None,
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the offending field.
    pub(crate) fn invalid_param(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param),
            ..Self::invalid(message)
        }
    }

    /// 400: the body is not JSON of the expected shape.
    pub(crate) fn malformed_json(detail: &serde_json::Error) -> Self {
        // Category and position only: serde's own message can quote the input.
        let what = match detail.classify() {
            serde_json::error::Category::Data => "JSON of the wrong shape for this endpoint",
            _ => "not valid JSON",
        };
        Self {
            code: Some("invalid_json"),
            ..Self::invalid(format!(
                "request body is {what} (line {}, column {})",
                detail.line(),
                detail.column()
            ))
        }
    }

    /// 400: prompt plus completion exceed the context length.
    pub(crate) fn context_overflow(context: usize, prompt: usize, completion: usize) -> Self {
        Self {
            code: Some("context_length_exceeded"),
            param: Some("messages"),
            ..Self::invalid(format!(
                "This model's maximum context length is {context} tokens. However, you requested \
                 {} tokens ({prompt} in the prompt, {completion} for the completion). Please reduce \
                 the length of the prompt or of max_tokens.",
                prompt + completion
            ))
        }
    }

    /// 400: more generated tokens asked for than this server allows per request.
    pub(crate) fn max_tokens_too_large(limit: usize) -> Self {
        Self {
            code: Some("max_tokens_too_large"),
            ..Self::invalid_param(
                "max_tokens",
                format!(
                    "max_tokens is too large: this server generates at most {limit} tokens per request"
                ),
            )
        }
    }

    /// 400: more chat messages than this server accepts.
    pub(crate) fn too_many_messages(limit: usize) -> Self {
        Self {
            code: Some("too_many_messages"),
            ..Self::invalid_param(
                "messages",
                format!("too many messages: at most {limit} per request"),
            )
        }
    }

    /// 408: the request body did not arrive in time.
    pub(crate) fn request_timeout() -> Self {
        Self {
            code: Some("request_timeout"),
            ..Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "the request body was not received in time",
            )
        }
    }

    /// 403: plaintext requests are refused by this server.
    pub(crate) fn plaintext_refused() -> Self {
        Self {
            code: Some("plaintext_refused"),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "this server refuses unencrypted requests; send them through the encrypted \
                 (Oblivious HTTP) endpoint",
            )
        }
    }

    /// 401: no API key, or not an active one. The message never quotes the key.
    pub(crate) fn invalid_api_key(why: &AuthError) -> Self {
        let message = match why {
            AuthError::Missing => {
                "You didn't provide an API key. Send it in the Authorization header: \
                 Authorization: Bearer veil_sk_..."
            }
            AuthError::Revoked => "The API key provided has been revoked.",
            _ => "Incorrect API key provided.",
        };
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
        }
    }

    /// 429: over the key's token rate or concurrency (OpenAI's `tokens`/`requests` types).
    pub(crate) fn rate_limited(why: &RateLimited) -> Self {
        let (kind, budget, retry) = match why {
            RateLimited::Tokens {
                budget,
                retry_after,
                ..
            } => (
                "tokens",
                Some(*budget),
                Some(super::auth::whole_seconds(*retry_after).max(1)),
            ),
            RateLimited::TooLarge { budget, .. } => ("tokens", Some(*budget), None),
            RateLimited::Concurrency { budget, .. } => ("requests", *budget, Some(1)),
        };
        let mut message = format!("{why}.");
        if let Some(secs) = retry {
            message.push_str(&format!(" Please try again in {secs}s."));
        }
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after: retry.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
            budget,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, kind, message)
        }
    }

    /// 404: no such model.
    pub(crate) fn model_not_found(model_len: usize) -> Self {
        Self {
            code: Some("model_not_found"),
            param: Some("model"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "the requested model ({model_len} characters) does not exist; see /v1/models"
                ),
            )
        }
    }

    /// 404: no such route.
    pub(crate) fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown URL",
        )
    }

    /// 429: the queue is full.
    pub(crate) fn queue_full() -> Self {
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                "the server is at capacity; retry after the time in Retry-After",
            )
        }
    }

    /// 503: the engine is not running.
    pub(crate) fn unavailable() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the engine is not running",
            )
        }
    }

    /// 503: the server is shutting down (its grace period for answers is over).
    pub(crate) fn shutting_down() -> Self {
        Self {
            code: Some("server_shutting_down"),
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the server is shutting down; retry after the time in Retry-After",
            )
        }
    }

    /// 500: generation failed.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "inference failed",
        )
    }

    /// Any other status from a body rejection (413 body too large, …).
    pub(crate) fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        Self::new(status, kind, message)
    }

    /// The JSON body as a string (also used for SSE error events).
    pub(crate) fn json(&self) -> String {
        serde_json::to_string(&Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        })
        .unwrap_or_else(|_| r#"{"error":{"message":"error","type":"server_error"}}"#.to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.json(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(budget) = &self.budget {
            super::auth::put_budget(res.headers_mut(), budget);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
