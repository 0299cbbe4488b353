//! Route handlers: parse, validate, tokenize, queue, answer (whole or streamed).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;

use veil_engine::chat::ChatMessage;

use super::answer::{Ask, run};
use super::auth::Caller;
use super::error::ApiError;
use super::messages::chat_messages;
use super::stream::Endpoint;
use super::tools::Tools;
use super::types::{
    ChatCompletionRequest, CompletionRequest, GenerationFields, Model, ModelList, Prompt,
};
use super::{AppState, Shared};

/// Tokens generated when a legacy completion request names no `max_tokens` (OpenAI's default).
const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn models(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".to_owned(),
        data: vec![served_model(&state, state.0.model_id.clone())],
    })
}

/// The served model's entry.
fn served_model(state: &AppState, id: String) -> Model {
    Model {
        id,
        object: "model".to_owned(),
        created: state.0.created,
        owned_by: "veil".to_owned(),
        ..Default::default()
    }
}

/// `GET /v1/models/{id}`: the served model, or 404 for any other id.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    if id != state.0.model_id {
        return Err(ApiError::model_not_found(id.chars().count()));
    }
    Ok(Json(served_model(&state, id)))
}

pub(super) async fn chat(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = format!(
        "chatcmpl-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let caller = caller.map(|Extension(c)| c);
    let res = chat_inner(&state, caller.as_ref(), body, &id).await;
    respond(&id, res)
}

async fn chat_inner(
    state: &AppState,
    caller: Option<&Caller>,
    body: Result<Bytes, BytesRejection>,
    id: &str,
) -> Result<Response, ApiError> {
    {
        let (req, body_bytes) = parse::<ChatCompletionRequest>(body)?;
        check_model(&state.0, &req.fields)?;
        let tools = Tools::from_request(req.tools, req.tool_choice.as_ref())?;
        let mut messages = chat_messages(req.messages, state.0.config.max_messages)?;
        if let Some(t) = &tools {
            t.describe_in(&mut messages);
        }
        let prompt = chat_prompt(&state.0, &messages, "messages")?;
        let ask = Ask {
            endpoint: Endpoint::Chat,
            tools,
            fields: &req.fields,
            prompt,
            max_tokens: match req.fields.max_completion_tokens {
                Some(n) => (Some(n), "max_completion_tokens"),
                None => (req.fields.max_tokens, "max_tokens"),
            },
            default_max: None,
            body_bytes_at_most: size_bucket(body_bytes),
        };
        run(&state.0, caller, id, ask).await
    }
}

/// A conversation as the model's prompt tokens; `param` names the request field in errors.
pub(super) fn chat_prompt(
    state: &Shared,
    messages: &[ChatMessage],
    param: &'static str,
) -> Result<Vec<u32>, ApiError> {
    // Rendered as segments so that control tokens come only from the template: text such
    // as `<|im_start|>` inside a message is tokenized as text (no forged turns).
    let segments = state.template.render_prompt(messages, true).map_err(|_| {
        ApiError::invalid_param(param, "the messages do not fit the model's chat template")
    })?;
    state
        .tokenizer
        .encode_prompt(&segments)
        .map_err(|_| ApiError::invalid_param(param, "the messages could not be tokenized"))
}

pub(super) async fn completions(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = format!(
        "cmpl-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let caller = caller.map(|Extension(c)| c);
    let res = completions_inner(&state, caller.as_ref(), body, &id).await;
    respond(&id, res)
}

async fn completions_inner(
    state: &AppState,
    caller: Option<&Caller>,
    body: Result<Bytes, BytesRejection>,
    id: &str,
) -> Result<Response, ApiError> {
    {
        let (req, body_bytes) = parse::<CompletionRequest>(body)?;
        check_model(&state.0, &req.fields)?;
        let one = |n: usize| {
            (n == 1).then_some(()).ok_or_else(|| {
                ApiError::invalid_param("prompt", "exactly one prompt is served per request")
            })
        };
        let prompt = match req.prompt {
            Prompt::Text(t) => encode(&state.0, &t)?,
            Prompt::Texts(mut v) => {
                one(v.len())?;
                encode(&state.0, &v.remove(0))?
            }
            Prompt::Tokens(ids) => ids,
            Prompt::TokenLists(mut v) => {
                one(v.len())?;
                v.remove(0)
            }
        };
        let vocab = state.0.tokenizer.vocab_size();
        if prompt.iter().any(|&t| t as usize >= vocab) {
            return Err(ApiError::invalid_param(
                "prompt",
                "token id outside the vocabulary",
            ));
        }
        let ask = Ask {
            endpoint: Endpoint::Completion,
            tools: None,
            fields: &req.fields,
            prompt,
            max_tokens: (req.fields.max_tokens, "max_tokens"),
            default_max: Some(COMPLETION_DEFAULT_MAX_TOKENS),
            body_bytes_at_most: size_bucket(body_bytes),
        };
        run(&state.0, caller, id, ask).await
    }
}

pub(super) fn respond(id: &str, res: Result<Response, ApiError>) -> Response {
    let mut response = match res {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(
                request_id = id,
                status = e.status.as_u16(),
                code = e.code,
                "request refused"
            );
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

pub(super) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<(T, usize), ApiError> {
    let body = body.map_err(|r| {
        if crate::deadline::timed_out(&r) {
            ApiError::request_timeout()
        } else {
            ApiError::from_status(r.status(), r.body_text())
        }
    })?;
    let req = serde_json::from_slice(&body).map_err(|e| ApiError::malformed_json(&e))?;
    Ok((req, body.len()))
}

pub(super) fn check_model(state: &Shared, fields: &GenerationFields) -> Result<(), ApiError> {
    if fields.model == state.model_id {
        Ok(())
    } else {
        Err(ApiError::model_not_found(fields.model.chars().count()))
    }
}

/// A body size as the log keeps it: the next power of two, at least 1 KiB. Operators bill by
/// token counts (logged exactly); an exact byte count would tell a log reader more about the
/// content than they need.
pub(super) fn size_bucket(bytes: usize) -> usize {
    bytes.max(1).next_power_of_two().max(1024)
}

fn encode(state: &Shared, text: &str) -> Result<Vec<u32>, ApiError> {
    state
        .tokenizer
        .encode(text)
        .map_err(|_| ApiError::invalid_param("prompt", "the prompt could not be tokenized"))
}

#[cfg(test)]
mod tests {
    use super::size_bucket;

    #[test]
    fn logged_body_sizes_are_buckets() {
        assert_eq!(size_bucket(0), 1024);
        assert_eq!(size_bucket(1000), 1024);
        assert_eq!(size_bucket(1025), 2048);
        assert_eq!(size_bucket(70_000), 131_072);
    }
}
