//! Route handlers: parse, validate, tokenize, queue, answer (whole or streamed).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use veil_engine::{FinishReason, GenRequest, SamplingParams, SubmitError, Usage};

use super::auth::{Caller, put_budget};
use super::error::ApiError;
use super::generation::{Generation, Step};
use super::messages::chat_messages;
use super::penalties::Penalties;
use super::stream::{ChunkWriter, Endpoint, sse};
use super::types::{
    ChatChoice, ChatCompletion, ChatCompletionRequest, CompletionRequest, GenerationFields,
    ModelEntry, ModelList, Prompt, ResponseMessage, TextChoice, TextCompletion, UsageBody,
};
use super::{AppState, Shared};
use crate::keys::Ticket;

/// Tokens generated when a legacy completion request names no `max_tokens` (OpenAI's default).
const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;
/// Stop strings accepted at most (OpenAI's limit).
const MAX_STOP_STRINGS: usize = 4;

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn models(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelEntry {
            id: state.0.model_id.clone(),
            object: "model",
            created: state.0.created,
            owned_by: "veil",
        }],
    })
}

/// `GET /v1/models/{id}`: the served model, or 404 for any other id.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelEntry>, ApiError> {
    if id != state.0.model_id {
        return Err(ApiError::model_not_found(id.chars().count()));
    }
    Ok(Json(ModelEntry {
        id,
        object: "model",
        created: state.0.created,
        owned_by: "veil",
    }))
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
        let messages = chat_messages(req.messages, state.0.config.max_messages)?;
        // Rendered as segments so that control tokens come only from the template: text
        // such as `<|im_start|>` inside a message is tokenized as text (no forged turns).
        let segments = state
            .0
            .template
            .render_prompt(&messages, true)
            .map_err(|_| {
                ApiError::invalid_param(
                    "messages",
                    "the messages do not fit the model's chat template",
                )
            })?;
        let prompt = state.0.tokenizer.encode_prompt(&segments).map_err(|_| {
            ApiError::invalid_param("messages", "the messages could not be tokenized")
        })?;
        let max = req.fields.max_completion_tokens.or(req.fields.max_tokens);
        run(
            &state.0,
            caller,
            id,
            Endpoint::Chat,
            &req.fields,
            prompt,
            max,
            None,
            body_bytes,
        )
        .await
    }
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
        let max = req.fields.max_tokens;
        let default = Some(COMPLETION_DEFAULT_MAX_TOKENS);
        run(
            &state.0,
            caller,
            id,
            Endpoint::Completion,
            &req.fields,
            prompt,
            max,
            default,
            body_bytes,
        )
        .await
    }
}

fn respond(id: &str, res: Result<Response, ApiError>) -> Response {
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

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<(T, usize), ApiError> {
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

fn check_model(state: &Shared, fields: &GenerationFields) -> Result<(), ApiError> {
    if fields.model == state.model_id {
        Ok(())
    } else {
        Err(ApiError::model_not_found(fields.model.chars().count()))
    }
}

/// A body size as the log keeps it: the next power of two, at least 1 KiB. Operators bill by
/// token counts (logged exactly); an exact byte count would tell a log reader more about the
/// content than they need.
fn size_bucket(bytes: usize) -> usize {
    bytes.max(1).next_power_of_two().max(1024)
}

fn encode(state: &Shared, text: &str) -> Result<Vec<u32>, ApiError> {
    state
        .tokenizer
        .encode(text)
        .map_err(|_| ApiError::invalid_param("prompt", "the prompt could not be tokenized"))
}

/// Validates the parameters, admits the request under the caller's limits, queues the
/// generation, answers, and charges the caller its tokens.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, passed from two handlers"
)]
async fn run(
    state: &Shared,
    caller: Option<&Caller>,
    id: &str,
    endpoint: Endpoint,
    fields: &GenerationFields,
    prompt: Vec<u32>,
    max_tokens: Option<u64>,
    default_max: Option<usize>,
    body_bytes: usize,
) -> Result<Response, ApiError> {
    super::unsupported::refuse(&fields.other)?;
    if fields.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_param("n", "only n = 1 is served"));
    }
    let temperature = fields.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid_param(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    let top_p = fields.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid_param("top_p", "top_p must be in (0, 1]"));
    }
    let penalties = Penalties::check(state, fields)?;
    let stop = fields
        .stop
        .clone()
        .map(|s| s.into_vec())
        .unwrap_or_default();
    if stop.len() > MAX_STOP_STRINGS {
        return Err(ApiError::invalid_param("stop", "at most 4 stop sequences"));
    }
    if prompt.is_empty() {
        return Err(ApiError::invalid_param("prompt", "the prompt is empty"));
    }
    let context = state.context_length;
    let room = context.saturating_sub(prompt.len());
    let limit = state.config.max_tokens_limit;
    let max_tokens = match max_tokens {
        Some(0) => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                "max_tokens must be at least 1",
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => default_max.unwrap_or(limit).min(limit).min(room),
    };
    if room == 0 || max_tokens > room {
        return Err(ApiError::context_overflow(
            context,
            prompt.len(),
            max_tokens.max(1),
        ));
    }
    if max_tokens > limit {
        return Err(ApiError::max_tokens_too_large(limit));
    }
    let stream = fields.stream.unwrap_or(false);
    let include_usage = fields
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let prompt_tokens = prompt.len();
    let request = GenRequest {
        id: id.to_owned(),
        prompt,
        params: SamplingParams {
            max_tokens,
            temperature,
            top_p,
            seed: fields.seed.map_or_else(rand::random, |s| s as u64),
            stop,
            ignore_eos: fields.ignore_eos,
            presence_penalty: penalties.presence,
            frequency_penalty: penalties.frequency,
            logit_bias: penalties.bias,
        },
    };
    // Prompt tokens are known here; the completion is charged when it ends.
    let mut ticket = caller.map(|c| c.admit(prompt_tokens)).transpose()?;
    let budget = ticket.as_ref().and_then(Ticket::budget);
    let events = match state.engine.submit(request) {
        Ok(events) => events,
        Err(e) => {
            if let Some(t) = ticket {
                t.release();
            }
            return Err(match e {
                SubmitError::QueueFull => ApiError::queue_full(),
                SubmitError::Stopped => ApiError::unavailable(),
            });
        }
    };
    tracing::info!(
        request_id = id,
        key_id = caller.map(|c| c.key.id.0),
        body_bytes_at_most = size_bucket(body_bytes),
        prompt_tokens,
        max_tokens,
        stream,
        "request queued"
    );
    let writer = ChunkWriter {
        endpoint,
        id: id.to_owned(),
        created: unix_now(),
        model: state.model_id.clone(),
    };
    let generation = Generation::new(
        id,
        events,
        state.config.output_filter.clone(),
        state.drain.clone(),
        prompt_tokens,
    );
    let mut response = if stream {
        sse(generation, writer, include_usage, ticket).into_response()
    } else {
        let (text, reason, usage) = match collect(generation, ticket.as_mut()).await {
            Ok(done) => done,
            Err(e) => {
                if let Some(t) = ticket {
                    t.release();
                }
                return Err(e);
            }
        };
        if let Some(t) = ticket {
            t.finish(usage.prompt_tokens, usage.completion_tokens);
        }
        whole(endpoint, writer, text, reason, usage)
    };
    if let Some(b) = &budget {
        put_budget(response.headers_mut(), b);
    }
    Ok(response)
}

/// The non-streamed answer.
fn whole(
    endpoint: Endpoint,
    writer: ChunkWriter,
    text: String,
    reason: FinishReason,
    usage: Usage,
) -> Response {
    match endpoint {
        Endpoint::Chat => Json(ChatCompletion {
            id: writer.id,
            object: "chat.completion",
            created: writer.created,
            model: writer.model,
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant",
                    content: text,
                },
                logprobs: None,
                finish_reason: reason.as_str(),
            }],
            usage: usage.into(),
        })
        .into_response(),
        Endpoint::Completion => Json(TextCompletion {
            id: writer.id,
            object: "text_completion",
            created: writer.created,
            model: writer.model,
            choices: vec![TextChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: Some(reason.as_str()),
            }],
            usage: Some(UsageBody::from(usage)),
        })
        .into_response(),
    }
}

/// Reads the generation to its end, through the output filter.
async fn collect(
    mut generation: Generation,
    mut ticket: Option<&mut Ticket>,
) -> Result<(String, FinishReason, Usage), ApiError> {
    let mut text = String::new();
    while let Some(step) = generation.next().await {
        match step {
            Step::Text(t) => {
                text.push_str(&t);
                if let Some(t) = ticket.as_deref_mut() {
                    t.sent_text();
                }
            }
            Step::Done(rest, reason, usage) => {
                text.push_str(&rest);
                return Ok((text, reason, usage));
            }
            Step::Failed => return Err(ApiError::internal()),
            Step::Drained => return Err(ApiError::shutting_down()),
        }
    }
    Err(ApiError::internal())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
