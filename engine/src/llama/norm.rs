//! RMS normalization with a learned scale, as candle's `RmsNorm` computes it (bit for bit,
//! by `veil_kernels::rms_norm`), on plain rows.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// A layer's (or the final) RMS norm: its scale row and epsilon.
#[derive(Debug)]
pub(super) struct Norm {
    alpha: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// From the scale vector and the model's epsilon (applied in f32, as candle does).
    pub(super) fn new(alpha: &Tensor, eps: f64) -> Result<Self> {
        Ok(Self {
            alpha: alpha.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            eps: eps as f32,
        })
    }

    /// Each row of `x` normalized into the same row of `out`.
    pub(super) fn rows(&self, x: &[f32], out: &mut [f32]) {
        veil_kernels::rms_norm(x, &self.alpha, self.eps, out);
    }
}
