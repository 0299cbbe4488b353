//! Log probabilities: the request's `logprobs` / `top_logprobs` checked per endpoint, and
//! the engine's [`TokenLogprobs`] in OpenAI's response shapes.
//!
//! The values are the log-softmax of the logits the token was sampled from: after
//! `logit_bias`, `presence_penalty` and `frequency_penalty`, divided by the temperature
//! (temperature 0, greedy, counts as 1), over the whole vocabulary (`top_p` does not cut
//! it). They are refused when the operator configured an output filter: the alternatives
//! and the tokens of a withheld passage would show what the filter withholds.

use std::collections::BTreeMap;

use serde_json::Value;
use veil_engine::TokenLogprobs;
use veil_engine::tokenizer::Tokenizer;
use veil_openai::{ChatLogprobs, ChatTokenLogprob, TextLogprobs, TopLogprob};

use super::error::ApiError;
use super::types::GenerationFields;

/// Most `top_logprobs` on chat (OpenAI's limit).
pub(crate) const MAX_CHAT_TOP: u64 = 20;
/// Most `logprobs` on completions (OpenAI's limit).
pub(crate) const MAX_COMPLETION_TOP: u64 = 5;

/// Chat: `logprobs` (a boolean) and `top_logprobs` (0 to 20, only with `logprobs: true`);
/// the number of alternatives to report, or `None` for no log probabilities. `filtered`:
/// whether an output filter is configured (then log probabilities are refused).
pub(crate) fn chat(fields: &GenerationFields, filtered: bool) -> Result<Option<usize>, ApiError> {
    let on = match &fields.logprobs {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "logprobs",
                "logprobs must be a boolean on chat completions",
            ));
        }
    };
    let top = match &fields.top_logprobs {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|&k| k <= MAX_CHAT_TOP).ok_or_else(|| {
            ApiError::invalid_param(
                "top_logprobs",
                format!("top_logprobs must be an integer from 0 to {MAX_CHAT_TOP}"),
            )
        })?),
    };
    if !on {
        if top.is_some_and(|k| k > 0) {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                "top_logprobs needs logprobs: true",
            ));
        }
        return Ok(None);
    }
    allowed(filtered)?;
    Ok(Some(top.unwrap_or(0) as usize))
}

/// Completions: `logprobs`, 0 to 5 alternatives (`null` for none); `top_logprobs` is not
/// a parameter of this endpoint and is refused unless 0.
pub(crate) fn completion(
    fields: &GenerationFields,
    filtered: bool,
) -> Result<Option<usize>, ApiError> {
    if fields
        .top_logprobs
        .as_ref()
        .is_some_and(|v| !(v.is_null() || v.as_u64() == Some(0)))
    {
        return Err(ApiError {
            code: Some("unsupported_parameter"),
            ..ApiError::invalid_param(
                "top_logprobs",
                "completions take logprobs (0 to 5) for the alternatives, not top_logprobs",
            )
        });
    }
    let top = match &fields.logprobs {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&k| k <= MAX_COMPLETION_TOP)
            .ok_or_else(|| {
                ApiError::invalid_param(
                    "logprobs",
                    format!("logprobs must be an integer from 0 to {MAX_COMPLETION_TOP}"),
                )
            })?,
    };
    allowed(filtered)?;
    Ok(Some(top as usize))
}

/// `filtered`: whether an output filter is configured.
fn allowed(filtered: bool) -> Result<(), ApiError> {
    if filtered {
        return Err(ApiError {
            code: Some("unsupported_parameter"),
            ..ApiError::invalid_param(
                "logprobs",
                "log probabilities are not served while an output filter is configured: \
                 they would show the text it withholds",
            )
        });
    }
    Ok(())
}

fn token_text(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer.token_bytes(id).to_vec();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// Chat's shape of `lps`.
pub(crate) fn chat_shape(tokenizer: &Tokenizer, lps: &[TokenLogprobs]) -> ChatLogprobs {
    let content = lps
        .iter()
        .map(|lp| {
            let (token, bytes) = token_text(tokenizer, lp.token);
            let top_logprobs = lp
                .top
                .iter()
                .map(|&(id, logprob)| {
                    let (token, bytes) = token_text(tokenizer, id);
                    TopLogprob {
                        token,
                        logprob,
                        bytes,
                    }
                })
                .collect();
            ChatTokenLogprob {
                token,
                logprob: lp.logprob,
                bytes,
                top_logprobs,
            }
        })
        .collect();
    ChatLogprobs { content }
}

/// Completions' shape of `lps`; `offset` is the characters of the completion before them,
/// advanced past them.
pub(crate) fn text_shape(
    tokenizer: &Tokenizer,
    lps: &[TokenLogprobs],
    offset: &mut usize,
) -> TextLogprobs {
    let mut out = TextLogprobs::default();
    for lp in lps {
        let (token, _) = token_text(tokenizer, lp.token);
        let mut top: BTreeMap<String, f32> = lp
            .top
            .iter()
            .map(|&(id, l)| (token_text(tokenizer, id).0, l))
            .collect();
        top.entry(token.clone()).or_insert(lp.logprob);
        out.text_offset.push(*offset);
        *offset += token.chars().count();
        out.tokens.push(token);
        out.token_logprobs.push(lp.logprob);
        out.top_logprobs.push(top);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> GenerationFields {
        serde_json::from_value(v).expect("fields")
    }

    #[test]
    fn chat_and_completion_rules() {
        let chat_ok = |v: Value| chat(&fields(v), false);
        let m = |v: Value| {
            let mut v = v;
            v["model"] = "m".into();
            v
        };
        assert_eq!(chat_ok(m(serde_json::json!({}))).ok(), Some(None));
        assert_eq!(
            chat_ok(m(serde_json::json!({"logprobs": false, "top_logprobs": 0}))).ok(),
            Some(None)
        );
        assert_eq!(
            chat_ok(m(serde_json::json!({"logprobs": true}))).ok(),
            Some(Some(0))
        );
        assert_eq!(
            chat_ok(m(serde_json::json!({"logprobs": true, "top_logprobs": 20}))).ok(),
            Some(Some(20))
        );
        for (body, param) in [
            (
                serde_json::json!({"logprobs": true, "top_logprobs": 21}),
                "top_logprobs",
            ),
            (
                serde_json::json!({"logprobs": true, "top_logprobs": -1}),
                "top_logprobs",
            ),
            (serde_json::json!({"top_logprobs": 3}), "top_logprobs"),
            (serde_json::json!({"logprobs": 3}), "logprobs"),
        ] {
            let e = chat_ok(m(body.clone())).expect_err("refused");
            assert_eq!(e.param, Some(param), "{body}");
        }
        let comp = |v: Value| completion(&fields(m(v)), false);
        assert_eq!(comp(serde_json::json!({"logprobs": 0})).ok(), Some(Some(0)));
        assert_eq!(comp(serde_json::json!({"logprobs": 5})).ok(), Some(Some(5)));
        assert_eq!(comp(serde_json::json!({"logprobs": null})).ok(), Some(None));
        for (body, param) in [
            (serde_json::json!({"logprobs": 6}), "logprobs"),
            (serde_json::json!({"logprobs": true}), "logprobs"),
            (serde_json::json!({"top_logprobs": 2}), "top_logprobs"),
        ] {
            let e = comp(body.clone()).expect_err("refused");
            assert_eq!(e.param, Some(param), "{body}");
        }
        // With an output filter, asking is refused; not asking is fine.
        let e = chat(&fields(m(serde_json::json!({"logprobs": true}))), true).expect_err("no");
        assert_eq!(e.param, Some("logprobs"));
        assert_eq!(
            chat(&fields(m(serde_json::json!({}))), true).ok(),
            Some(None)
        );
        let e = completion(&fields(m(serde_json::json!({"logprobs": 1}))), true).expect_err("no");
        assert_eq!(e.code, Some("unsupported_parameter"));
    }
}
