//! A layer's weight matrix, and the products the engine takes with it on plain rows of
//! activations.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use veil_kernels::{Q41Matrix, Q80Matrix};

use super::WeightFormat;
use crate::error::Result;

/// A weight matrix: candle's `QMatMul`, Veil's Q4_1 or Q8_0 kernel where it applies (same
/// results as `QMatMul`, bit for bit; see `veil-kernels`), or dense f32 (safetensors).
#[derive(Debug)]
pub(super) enum Matrix {
    Candle(QMatMul),
    Q4_1(Q41Matrix),
    Q8_0(Q80Matrix),
    Dense(candle_nn::Linear),
}

impl Matrix {
    /// A weight matrix, re-encoded if `format` asks for it; on the CPU, Q4_1 (with AVX2) and
    /// Q8_0 (with AVX-512 VNNI) go to Veil's kernels, which give candle's results bit for bit.
    pub(super) fn load(t: QTensor, format: WeightFormat, device: &Device) -> Result<Self> {
        if format == WeightFormat::Stored
            && device.is_cpu()
            && let Some(m) = Q41Matrix::from_qtensor(&t)?
        {
            return Ok(Self::Q4_1(m));
        }
        let t = match format {
            WeightFormat::Q8_0 if t.dtype() == GgmlDType::Q4_1 => {
                QTensor::quantize(&t.dequantize(device)?, GgmlDType::Q8_0)?
            }
            _ => t,
        };
        if device.is_cpu()
            && let Some(m) = Q80Matrix::from_qtensor(&t)?
        {
            return Ok(Self::Q8_0(m));
        }
        Ok(Self::Candle(QMatMul::from_qtensor(t)?))
    }

    /// `x · Wᵀ` for `x` given as rows of `width` floats, as rows. Matrices that are not
    /// Veil's take the rows as a `[rows, 1, width]` tensor on `device`: one product per row
    /// (for dense weights too), so a row's result never depends on the rest of the batch.
    pub(super) fn rows(
        &self,
        x: &[f32],
        width: usize,
        device: &Device,
    ) -> candle_core::Result<Vec<f32>> {
        let m = x.len() / width.max(1);
        match self {
            Self::Q4_1(w) => Ok(Q41Matrix::products(&[w], x).pop().unwrap_or_default()),
            Self::Q8_0(w) => Ok(w.product(x)),
            Self::Candle(w) => {
                let x = Tensor::from_slice(x, (m, 1, width), device)?;
                w.forward(&x)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1()
            }
            Self::Dense(w) => {
                let x = Tensor::from_slice(x, (m, 1, width), device)?;
                w.forward(&x)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1()
            }
        }
    }

    /// Several matrices applied to the same rows (a layer's query/key/value projections, its
    /// gate/up projections): with Veil's Q4_1 kernel the input is quantized once and the
    /// products run in one pass over the pool; otherwise one after the other.
    pub(super) fn rows_many<const N: usize>(
        mats: [&Self; N],
        x: &[f32],
        width: usize,
        device: &Device,
    ) -> candle_core::Result<[Vec<f32>; N]> {
        let q4: Option<Vec<&Q41Matrix>> = mats
            .iter()
            .map(|m| match m {
                Self::Q4_1(q) => Some(q),
                _ => None,
            })
            .collect();
        let outs: Vec<Vec<f32>> = match q4 {
            Some(q4) => Q41Matrix::products(&q4, x),
            None => mats
                .iter()
                .map(|w| w.rows(x, width, device))
                .collect::<candle_core::Result<_>>()?,
        };
        outs.try_into()
            .map_err(|_| candle_core::Error::Msg("one output per matrix".to_owned()))
    }
}
