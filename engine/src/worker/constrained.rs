//! The rows of a step's constrained sequences, made ready to sample from: biased and
//! penalised, and masked by the sequence's grammar as far as its pick needs.
//!
//! A grammar's mask is the costly part of a constrained step (a walk of the token trie:
//! tens to a couple of hundred microseconds for a 49k vocabulary, against a few for the
//! rest). Two things keep it off the batch's path:
//!
//! - **Check first.** The token is picked from the unmasked row and the grammar asked
//!   whether it allows it (one token: microseconds); only if it refuses is the mask computed
//!   and the token picked again from the masked row, as llama.cpp's sampler does. Greedy,
//!   this is the masked row's pick: masking lowers forbidden logits to `-inf` and leaves the
//!   others, so an allowed best token is also the masked row's best (ties go to the first
//!   index either way). Sampled from the whole distribution `p` at a temperature, it is
//!   exactly sampling from the masked one: a token `x` the grammar allows (set `A`) comes
//!   either from the first draw (`p(x)`) or, after a refused first draw (`1 - p(A)`), from
//!   the masked draw (`p(x) / p(A)`): `p(x) + (1 - p(A)) p(x) / p(A) = p(x) / p(A)`. The
//!   draws differ from masking first, but a seed still fixes them. Top-p truncates
//!   differently with and without the mask, and log probabilities need the whole mask: those
//!   sequences mask first.
//! - **Over the pool.** The masks a step needs are computed on candle's pool, whose other
//!   threads would otherwise wait for the next pass while the engine thread masked one row
//!   after another.
//!
//! Biases and penalties add finite amounts, and masking sets `-inf`: either order gives the
//! same row, so the biases come first here and are not applied again.

use candle_core::{Device, Tensor};

use crate::grammar::Constraint;

use super::{Active, Feed};

/// A constrained sequence's step, made ready.
pub(super) enum Prepared {
    /// Its token, picked and allowed by its grammar.
    Picked(u32),
    /// Its row, biased and masked: the token is picked from it.
    Row(Vec<f32>),
}

/// One row to mask.
struct Job<'a> {
    constraint: &'a mut Constraint,
    row: Vec<f32>,
    out: &'a mut Option<crate::Result<Prepared>>,
}

/// For each sequence of `active` (in order), its step prepared if it is constrained and
/// samples this step, else `None`.
pub(super) fn prepared_rows(
    active: &mut [Active],
    feeds: &[Feed],
    logits: &Tensor,
) -> Vec<Option<crate::Result<Prepared>>> {
    let mut out: Vec<Option<crate::Result<Prepared>>> = active.iter().map(|_| None).collect();
    let mut jobs = Vec::new();
    let mut r = 0;
    for ((a, f), slot) in active.iter_mut().zip(feeds).zip(out.iter_mut()) {
        if *f == Feed::Skip {
            continue;
        }
        let row = r;
        r += 1;
        // A prompt still being fed samples nothing this step.
        if a.constraint.is_none() || a.cache.len() < a.prompt.len() {
            continue;
        }
        match check_first(a, logits, row) {
            Ok(Ok(token)) => *slot = Some(Ok(Prepared::Picked(token))),
            Ok(Err(row)) => {
                if let Some(constraint) = a.constraint.as_mut() {
                    jobs.push(Job {
                        constraint,
                        row,
                        out: slot,
                    });
                }
            }
            Err(e) => *slot = Some(Err(e)),
        }
    }
    veil_kernels::for_each_mut(&mut jobs, |job| {
        let masked = job.constraint.mask(&mut job.row);
        *job.out = Some(masked.map(|()| Prepared::Row(std::mem::take(&mut job.row))));
    });
    out
}

/// `a`'s row of `logits`, biased; then, where `a` may check first, its pick from that row
/// if the grammar allows it (`Ok(Ok(token))`). Otherwise the row, to be masked.
fn check_first(
    a: &mut Active,
    logits: &Tensor,
    row: usize,
) -> crate::Result<Result<u32, Vec<f32>>> {
    let mut v = row_f32(logits, row)?;
    if let Some(adjust) = &a.adjust {
        adjust.apply(&mut v);
    }
    let Some(constraint) = a.constraint.as_mut().filter(|_| a.check_first) else {
        return Ok(Err(v));
    };
    let token = if a.temperature <= 0.0 {
        veil_kernels::argmax(&v)
    } else {
        // A row the processor cannot sample from unmasked (a non-finite logit where the
        // grammar would put `-inf`) goes to the mask, as it would have without the check.
        let n = v.len();
        let sampled =
            Tensor::from_slice(&v, n, &Device::Cpu).and_then(|row| a.processor.sample(&row));
        match sampled {
            Ok(t) => t,
            Err(_) => return Ok(Err(v)),
        }
    };
    Ok(if constraint.allows(token)? {
        Ok(token)
    } else {
        Err(v)
    })
}

/// Row `row` of `logits` as `f32`s.
pub(super) fn row_f32(logits: &Tensor, row: usize) -> crate::Result<Vec<f32>> {
    Ok(logits
        .get(row)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}
