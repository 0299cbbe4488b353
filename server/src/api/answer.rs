//! Chat and completions from checked request to answer: plan, queue, then the whole answer
//! (every choice collected) or a stream (`super::stream`); the caller is charged at the end.

use axum::Json;
use axum::response::{IntoResponse, Response};
use veil_engine::{FinishReason, TokenLogprobs, Usage};

use super::Shared;
use super::auth::{Caller, put_budget};
use super::choices::Choices;
use super::error::ApiError;
use super::generation::Step;
use super::logprobs;
use super::plan::{Started, plan, start};
use super::stream::{ChunkWriter, Endpoint, sse};
use super::tools::{self, Tools};
use super::types::{
    AssistantMessage, ChatChoice, ChatCompletion, Completion, CompletionChoice, GenerationFields,
    usage,
};
use crate::keys::Ticket;

/// What a chat or completions request asks, once parsed and tokenized.
#[derive(Debug)]
pub(super) struct Ask<'a> {
    pub(super) endpoint: Endpoint,
    /// Chat: the tools the answer may call (`super::tools`).
    pub(super) tools: Option<Tools>,
    pub(super) fields: &'a GenerationFields,
    pub(super) prompt: Vec<u32>,
    /// The tokens asked for, if any, and the field that asked.
    pub(super) max_tokens: (Option<u64>, &'static str),
    /// The endpoint's default (else the server's limit).
    pub(super) default_max: Option<usize>,
    /// The logged bucket of the body's size.
    pub(super) body_bytes_at_most: usize,
}

/// Validates, admits under the caller's limits, queues, answers, and charges the caller.
pub(super) async fn run(
    state: &Shared,
    caller: Option<&Caller>,
    id: &str,
    ask: Ask<'_>,
) -> Result<Response, ApiError> {
    let filtered = state.config.output_filter.is_some();
    let logprobs = match ask.endpoint {
        Endpoint::Chat => logprobs::chat(ask.fields, filtered)?,
        Endpoint::Completion => logprobs::completion(ask.fields, filtered)?,
    };
    // Log probabilities of the tool format's JSON would not be those of what is returned.
    if ask.tools.is_some() && logprobs.is_some() {
        return Err(ApiError::invalid_param(
            "logprobs",
            "logprobs cannot be combined with tools",
        ));
    }
    let asked = super::format::response_format(ask.fields.response_format.as_ref())?;
    let format = super::format::or_tools(asked, ask.tools.as_ref())?;
    let plan = plan(
        state,
        ask.fields,
        ask.prompt.len(),
        ask.max_tokens,
        ask.default_max,
        logprobs,
        format.as_ref(),
    )?;
    let Started {
        choices,
        ticket,
        budget,
    } = start(state, caller, id, &plan, ask.prompt, ask.body_bytes_at_most)?;
    let writer = ChunkWriter {
        endpoint: ask.endpoint,
        id: id.to_owned(),
        created: unix_now(),
        model: state.model_id.clone(),
        tokenizer: state.tokenizer.clone(),
        logprobs: logprobs.is_some(),
        tools: ask.tools.is_some(),
    };
    let mut response = if plan.stream {
        sse(choices, writer, plan.include_usage, ticket).into_response()
    } else {
        whole(&writer, collect_charged(choices, ticket).await?)
    };
    if let Some(b) = &budget {
        put_budget(response.headers_mut(), b);
    }
    Ok(response)
}

/// One choice, read to its end.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) reason: FinishReason,
    pub(crate) logprobs: Vec<TokenLogprobs>,
}

/// Every choice, and the request's counts (the prompt once, the completions summed).
#[derive(Debug, Clone)]
pub(crate) struct Collected {
    pub(crate) answers: Vec<Answer>,
    pub(crate) usage: Usage,
}

/// Reads every choice to its end (through the output filter), then charges the caller: its
/// counts, or nothing when the generation failed.
pub(crate) async fn collect_charged(
    choices: Choices,
    mut ticket: Option<Ticket>,
) -> Result<Collected, ApiError> {
    match collect(choices, ticket.as_mut()).await {
        Ok(c) => {
            if let Some(t) = ticket {
                t.finish(c.usage.prompt_tokens, c.usage.completion_tokens);
            }
            Ok(c)
        }
        Err(e) => {
            if let Some(t) = ticket {
                t.release();
            }
            Err(e)
        }
    }
}

async fn collect(
    mut choices: Choices,
    mut ticket: Option<&mut Ticket>,
) -> Result<Collected, ApiError> {
    let mut answers: Vec<Option<Answer>> = vec![None; choices.n()];
    let mut parts: Vec<(String, Vec<TokenLogprobs>)> = vec![Default::default(); choices.n()];
    let mut usage = Usage::default();
    while let Some((i, step)) = choices.next().await {
        let i = i as usize;
        match step {
            Step::Text(t, lps) => {
                parts[i].0.push_str(&t);
                parts[i].1.extend(lps);
                if let Some(t) = ticket.as_deref_mut() {
                    t.sent_text();
                }
            }
            Step::Done(rest, reason, u, lps) => {
                let (mut text, mut logprobs) = std::mem::take(&mut parts[i]);
                text.push_str(&rest);
                logprobs.extend(lps);
                usage.prompt_tokens = u.prompt_tokens;
                usage.completion_tokens += u.completion_tokens;
                answers[i] = Some(Answer {
                    text,
                    reason,
                    logprobs,
                });
            }
            Step::Failed => return Err(ApiError::internal()),
            Step::Drained => return Err(ApiError::shutting_down()),
        }
    }
    let answers = answers
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(ApiError::internal)?;
    Ok(Collected { answers, usage })
}

/// The non-streamed answer.
fn whole(writer: &ChunkWriter, collected: Collected) -> Response {
    let usage = usage(collected.usage);
    let answers = collected.answers.into_iter().zip(0u32..);
    match writer.endpoint {
        Endpoint::Chat => Json(ChatCompletion {
            id: writer.id.clone(),
            object: "chat.completion".to_owned(),
            created: writer.created,
            model: writer.model.clone(),
            choices: answers
                .map(|(a, index)| {
                    let logprobs = writer
                        .logprobs
                        .then(|| logprobs::chat_shape(&writer.tokenizer, &a.logprobs));
                    let (content, call, finish) = if writer.tools {
                        tools::answer(a.text, a.reason)
                    } else {
                        (Some(a.text), None, a.reason.as_str())
                    };
                    ChatChoice {
                        index,
                        logprobs,
                        message: AssistantMessage {
                            role: "assistant".to_owned(),
                            content,
                            tool_calls: call.map(|c| vec![c]),
                        },
                        finish_reason: Some(finish.to_owned()),
                    }
                })
                .collect(),
            usage: Some(usage),
            ..Default::default()
        })
        .into_response(),
        Endpoint::Completion => Json(Completion {
            id: writer.id.clone(),
            object: "text_completion".to_owned(),
            created: writer.created,
            model: writer.model.clone(),
            choices: answers
                .map(|(a, index)| CompletionChoice {
                    index,
                    logprobs: writer
                        .logprobs
                        .then(|| logprobs::text_shape(&writer.tokenizer, &a.logprobs, &mut 0)),
                    text: a.text,
                    finish_reason: Some(a.reason.as_str().to_owned()),
                })
                .collect(),
            usage: Some(usage),
            ..Default::default()
        })
        .into_response(),
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
