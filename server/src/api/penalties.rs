//! The sampling adjustments a request may ask for: `presence_penalty`, `frequency_penalty`
//! and `logit_bias`, checked against OpenAI's ranges and the model's vocabulary.

use super::Shared;
use super::error::ApiError;
use super::types::GenerationFields;

/// `logit_bias` entries accepted at most.
const MAX_LOGIT_BIAS: usize = 1024;

/// A request's checked penalties and biases, for `veil_engine::SamplingParams`.
pub(super) struct Penalties {
    pub(super) presence: f32,
    pub(super) frequency: f32,
    pub(super) bias: Vec<(u32, f32)>,
}

impl Penalties {
    /// `presence_penalty`, `frequency_penalty` (each -2 to 2) and `logit_bias` (token ids of
    /// this model, biases -100 to 100, at most [`MAX_LOGIT_BIAS`] of them), checked; the 400
    /// names the parameter.
    pub(super) fn check(state: &Shared, fields: &GenerationFields) -> Result<Self, ApiError> {
        let penalty = |v: Option<f64>, name: &'static str| match v {
            None => Ok(0.0),
            Some(p) if (-2.0..=2.0).contains(&p) => Ok(p as f32),
            Some(_) => Err(ApiError::invalid_param(
                name,
                format!("{name} must be between -2 and 2"),
            )),
        };
        let presence = penalty(fields.presence_penalty, "presence_penalty")?;
        let frequency = penalty(fields.frequency_penalty, "frequency_penalty")?;
        let bias_map = fields.logit_bias.as_ref();
        if bias_map.is_some_and(|m| m.len() > MAX_LOGIT_BIAS) {
            return Err(ApiError::invalid_param(
                "logit_bias",
                format!("at most {MAX_LOGIT_BIAS} token biases"),
            ));
        }
        let vocab = state.tokenizer.vocab_size();
        let mut bias = Vec::new();
        for (token, &b) in bias_map.into_iter().flatten() {
            let id = token
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocab)
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "logit_bias",
                        format!(
                            "logit_bias keys must be token ids of this model (0 to {})",
                            vocab.saturating_sub(1)
                        ),
                    )
                })?;
            if !(-100.0..=100.0).contains(&b) {
                return Err(ApiError::invalid_param(
                    "logit_bias",
                    "logit_bias values must be between -100 and 100",
                ));
            }
            bias.push((id, b as f32));
        }
        Ok(Self {
            presence,
            frequency,
            bias,
        })
    }
}
