//! The Q8_0 kernel against candle's `QMatMul` on SmolLM2-135M's output projection shape
//! (49 152 × 576, tied to the embedding), at 1, 4 and 8 activation rows (decode of 1, 4, 8
//! sequences), in one run. Prints time per product and the kernel's speed over candle's.
//!
//! Run with: `CANDLE_NUM_THREADS=1 cargo bench -p veil-kernels --bench q8_0`.

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use veil_kernels::Q80Matrix;

fn main() -> candle_core::Result<()> {
    veil_kernels::settle_thread_count();
    let (n, k) = (49_152, 576);
    let dev = Device::Cpu;
    let mut seed = 1u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let w: Vec<f32> = (0..n * k).map(|_| next() * 0.1).collect();
    let q = || QTensor::quantize(&Tensor::from_vec(w.clone(), (n, k), &dev)?, GgmlDType::Q8_0);
    let Some(ours) = Q80Matrix::from_qtensor(&q()?)? else {
        println!("this CPU has no AVX-512 VNNI: nothing to compare");
        return Ok(());
    };
    let candle = QMatMul::from_qtensor(q()?)?;
    let iters = 40;
    for m in [1usize, 4, 8] {
        let x: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let xt = Tensor::from_vec(x.clone(), (m, k), &dev)?;
        let started = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(candle.forward(&xt)?);
        }
        let base = started.elapsed().as_secs_f64() / f64::from(iters);
        let mut dst = vec![0f32; m * n];
        let started = Instant::now();
        for _ in 0..iters {
            ours.matmul(std::hint::black_box(&x), &mut dst);
        }
        let t = started.elapsed().as_secs_f64() / f64::from(iters);
        println!(
            "m={m}: candle {:.0} µs, VNNI {:.0} µs ({:.2}x)",
            base * 1e6,
            t * 1e6,
            base / t
        );
    }
    Ok(())
}
