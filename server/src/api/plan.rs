//! From a request's checked parameters to generations queued on the engine: [`plan`]
//! validates what every generation endpoint shares, [`start`] admits the request under the
//! caller's limits and queues its `n` sequences at once.

use veil_engine::{Constraint, GenRequest, SamplingParams, SubmitError};

use super::Shared;
use super::auth::Caller;
use super::choices::Choices;
use super::error::ApiError;
use super::format::{self, Format};
use super::generation::Generation;
use super::penalties::Penalties;
use super::types::GenerationFields;
use crate::keys::{Ticket, TokenBudget};

/// Stop strings accepted at most (OpenAI's limit).
const MAX_STOP_STRINGS: usize = 4;
/// Choices one request may ask for at most (`n`).
pub(crate) const MAX_CHOICES: u64 = 8;

/// A request ready to queue.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The sampling of choice 0 (the others differ only by their seed: [`choice_seed`]).
    pub(crate) params: SamplingParams,
    /// Choices to generate.
    pub(crate) n: usize,
    /// Stream the answer.
    pub(crate) stream: bool,
    /// Streaming: end with a usage chunk.
    pub(crate) include_usage: bool,
    /// The grammar every choice follows (each choice walks its own copy).
    pub(crate) constraint: Option<Constraint>,
}

/// Checks the parameters every generation endpoint shares (refusing by name those Veil does
/// not implement) for a prompt of `prompt_len` tokens. `max_tokens`: what the request asks
/// for, in the field `max_param` names; `default_max`: the endpoint's default (else the
/// server's limit); `logprobs`: the endpoint's own check of them; `format`: the output format
/// the endpoint read (`super::format`), compiled here once the cheaper checks passed.
pub(crate) fn plan(
    state: &Shared,
    fields: &GenerationFields,
    prompt_len: usize,
    (max_tokens, max_param): (Option<u64>, &'static str),
    default_max: Option<usize>,
    logprobs: Option<usize>,
    format: Option<&Format>,
) -> Result<Plan, ApiError> {
    super::unsupported::refuse(&fields.other)?;
    if format.is_some() && fields.ignore_eos {
        return Err(ApiError::invalid_param(
            "ignore_eos",
            "ignore_eos cannot be combined with a structured output format",
        ));
    }
    let n = fields.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&n) {
        return Err(ApiError::invalid_param(
            "n",
            format!("n must be from 1 to {MAX_CHOICES}"),
        ));
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
    if prompt_len == 0 {
        return Err(ApiError::invalid_param("prompt", "the prompt is empty"));
    }
    let context = state.context_length;
    let room = context.saturating_sub(prompt_len);
    let limit = state.config.max_tokens_limit;
    let max_tokens = match max_tokens {
        Some(0) => {
            return Err(ApiError::invalid_param(
                max_param,
                format!("{max_param} must be at least 1"),
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => default_max.unwrap_or(limit).min(limit).min(room),
    };
    if room == 0 || max_tokens > room {
        return Err(ApiError::context_overflow(
            context,
            prompt_len,
            max_tokens.max(1),
        ));
    }
    if max_tokens > limit {
        return Err(ApiError {
            param: Some(max_param),
            ..ApiError::max_tokens_too_large(limit)
        });
    }
    let include_usage = fields
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let constraint = format.map(|f| format::compile(state, f)).transpose()?;
    Ok(Plan {
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
            logprobs,
        },
        n: n as usize,
        stream: fields.stream.unwrap_or(false),
        include_usage,
        constraint,
    })
}

/// The seed of choice `index` of a request seeded with `seed`: choice 0 keeps it (so `n: 1`
/// and the first of `n` choices agree), the others get distinct seeds derived from it
/// (SplitMix64 of `seed + index · φ`).
pub(crate) fn choice_seed(seed: u64, index: usize) -> u64 {
    if index == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A queued request.
#[derive(Debug)]
pub(crate) struct Started {
    /// Its choices' generations.
    pub(crate) choices: Choices,
    /// The caller's admission, charged when the answer ends.
    pub(crate) ticket: Option<Ticket>,
    /// The caller's token budget, for the response headers.
    pub(crate) budget: Option<TokenBudget>,
}

/// Admits the request under the caller's limits (its prompt is charged once, whatever `n`)
/// and queues its `n` sequences on the engine together, or none of them.
pub(crate) fn start(
    state: &Shared,
    caller: Option<&Caller>,
    id: &str,
    plan: &Plan,
    prompt: Vec<u32>,
    body_bytes_at_most: usize,
) -> Result<Started, ApiError> {
    let prompt_tokens = prompt.len();
    let requests: Vec<GenRequest> = (0..plan.n)
        .map(|i| GenRequest {
            id: id.to_owned(),
            prompt: prompt.clone(),
            params: SamplingParams {
                seed: choice_seed(plan.params.seed, i),
                ..plan.params.clone()
            },
            constraint: plan.constraint.clone(),
        })
        .collect();
    // Prompt tokens are known here; the completion is charged when it ends.
    let ticket = caller.map(|c| c.admit(prompt_tokens)).transpose()?;
    let budget = ticket.as_ref().and_then(Ticket::budget);
    let receivers = match state.engine.submit_all(requests) {
        Ok(r) => r,
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
        body_bytes_at_most,
        prompt_tokens,
        max_tokens = plan.params.max_tokens,
        n = plan.n,
        stream = plan.stream,
        constrained = plan.constraint.is_some(),
        "request queued"
    );
    let generations = receivers
        .into_iter()
        .map(|events| {
            Generation::new(
                id,
                events,
                state.config.output_filter.clone(),
                state.drain.clone(),
                prompt_tokens,
            )
        })
        .collect();
    Ok(Started {
        choices: Choices::new(generations),
        ticket,
        budget,
    })
}

#[cfg(test)]
mod tests {
    use super::choice_seed;

    #[test]
    fn choice_seeds_are_distinct_and_the_first_is_the_request_seed() {
        for seed in [0, 1, 42, u64::MAX] {
            let seeds: Vec<u64> = (0..8).map(|i| choice_seed(seed, i)).collect();
            assert_eq!(seeds[0], seed);
            let mut sorted = seeds.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 8, "{seeds:?}");
        }
        assert_eq!(choice_seed(42, 3), choice_seed(42, 3));
    }
}
