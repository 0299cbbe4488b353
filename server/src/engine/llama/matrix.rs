//! A layer's weight matrix, and the products the engine takes with it: on candle tensors
//! (a prompt) or on plain rows of activations (a decode step).

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

    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Candle(q) => q.forward(x),
            Self::Dense(l) => l.forward(x),
            Self::Q4_1(_) | Self::Q8_0(_) => {
                let mut shape = x.dims().to_vec();
                let width = shape.last().copied().unwrap_or(1).max(1);
                let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let out = self.rows(&xs, width, x.device())?;
                if let Some(last) = shape.last_mut() {
                    *last = out.len() / (xs.len() / width).max(1);
                }
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }

    /// `x · Wᵀ` for `x` given as rows of `width` floats, as rows. Matrices that are not
    /// Veil's take the rows as a `[rows, 1, width]` tensor on `device`: the shape a decode
    /// step gives them on the tensor path, so the same product (and the same bits).
    pub(super) fn rows(
        &self,
        x: &[f32],
        width: usize,
        device: &Device,
    ) -> candle_core::Result<Vec<f32>> {
        let m = x.len() / width.max(1);
        match self {
            Self::Q4_1(w) => {
                let mut out = vec![0f32; m * w.rows()];
                w.matmul(x, &mut out);
                Ok(out)
            }
            Self::Q8_0(w) => {
                let mut out = vec![0f32; m * w.rows()];
                w.matmul(x, &mut out);
                Ok(out)
            }
            Self::Candle(_) | Self::Dense(_) => self
                .forward(&Tensor::from_slice(x, (m, 1, width), device)?)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1(),
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
            Some(q4) => {
                let m = x.len() / width.max(1);
                let mut outs: Vec<Vec<f32>> = q4.iter().map(|w| vec![0f32; m * w.rows()]).collect();
                let mut dsts: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
                Q41Matrix::matmul_many(&q4, x, &mut dsts);
                outs
            }
            None => mats
                .iter()
                .map(|w| w.rows(x, width, device))
                .collect::<candle_core::Result<_>>()?,
        };
        outs.try_into()
            .map_err(|_| candle_core::Error::Msg("one output per matrix".to_owned()))
    }

    /// [`Matrix::rows_many`] on a tensor `[.., width]`, as tensors shaped like `x` with each
    /// matrix's output width (a prompt's projections).
    pub(super) fn forward_many<const N: usize>(
        mats: [&Self; N],
        x: &Tensor,
    ) -> candle_core::Result<[Tensor; N]> {
        let all_q4 = mats.iter().all(|m| matches!(m, Self::Q4_1(_)));
        let mut tensors = Vec::with_capacity(N);
        if all_q4 {
            let width = x.dims().last().copied().unwrap_or(1).max(1);
            let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let rows = xs.len() / width;
            for out in Self::rows_many(mats, &xs, width, x.device())? {
                let mut shape = x.dims().to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = out.len() / rows.max(1);
                }
                tensors.push(Tensor::from_vec(out, shape, x.device())?);
            }
        } else {
            for m in mats {
                tensors.push(m.forward(x)?);
            }
        }
        tensors
            .try_into()
            .map_err(|_| candle_core::Error::Msg("one output per matrix".to_owned()))
    }
}
