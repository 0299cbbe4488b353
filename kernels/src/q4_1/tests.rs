use super::quantize::{quantize_block, quantize_block_portable};
use super::*;
use crate::test_rng::lcg;
use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};

/// Decode (one row) and prefill (several rows) shapes of SmolLM2's matrices, and a
/// multiple-of-8 row count that is not a multiple of candle's 4-column quads' worth.
#[test]
fn equals_candle_bit_for_bit() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut seed = 7u64;
    for (m, n, k) in [
        (1, 64, 576),
        (8, 64, 576),
        (9, 192, 576),
        (3, 1536, 576),
        (1, 576, 1536),
        (7, 192, 576),
        (2, 8, 64),
        // Every tile size: 4, 5, 6, and 8 + 5.
        (4, 64, 576),
        (5, 64, 576),
        (6, 64, 576),
        (13, 64, 576),
    ] {
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0).collect();
        let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &dev)?, GgmlDType::Q4_1)?;
        let xt = Tensor::from_vec(x.clone(), (m, k), &dev)?;
        let mut mats = Vec::new();
        for kernel in [Q41Kernel::Avx2, Q41Kernel::Avx512Vnni] {
            match Q41Matrix::from_qtensor_with(&q, kernel)? {
                Some(mat) => mats.push(mat),
                None => assert_ne!(kernel, Q41Kernel::Avx2, "x86-64-v3 is the build target"),
            }
        }
        let mat = Q41Matrix::from_qtensor(&q)?.expect("a kernel");
        let want: Vec<f32> = QMatMul::from_qtensor(q)?
            .forward(&xt)?
            .flatten_all()?
            .to_vec1()?;
        let mut got = vec![0f32; m * n];
        let mut ran = 0;
        for mat in &mats {
            let kernel = mat.kernel();
            got.fill(f32::NAN);
            mat.matmul(&x, &mut got);
            let differing = want
                .iter()
                .zip(&got)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differing, 0,
                "{kernel:?} ({m},{n},{k}): {differing} outputs differ"
            );
            ran += 1;
        }
        let vnni = Q41Kernel::detect() == Some(Q41Kernel::Avx512Vnni);
        assert_eq!(
            ran,
            if vnni { 2 } else { 1 },
            "every kernel this CPU has ran"
        );
        mat.matmul(&x, &mut got);
        // The scalar statement of the order of operations agrees as well.
        let acts = quantize_rows(&x, m, k);
        let kb = k / QK;
        let scalar = dot8_scalar(&mat.blocks[..kb], &acts[..kb]);
        assert!(
            scalar
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[test]
fn vector_rounding_is_f32_round() {
    let Some(cpu) = crate::cpu::cpu().avx2() else {
        return; // no AVX2 here: nothing rounds on vectors
    };
    let mut xs: Vec<f32> = Vec::new();
    // Every half from -300.5 to 300.5, and the floats either side of each.
    for k in -300..=300 {
        let h = k as f32 + 0.5;
        xs.extend([
            h,
            f32::from_bits(h.to_bits() + 1),
            f32::from_bits(h.to_bits() - 1),
        ]);
    }
    xs.extend([
        0.0,
        -0.0,
        0.499_999_97,
        -0.499_999_97,
        8_388_607.5,
        16_777_215.0,
    ]);
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e30,
    ]);
    let mut bits = 12_345u32;
    for _ in 0..1_000_000 {
        bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        xs.push(f32::from_bits(bits));
    }
    while !xs.len().is_multiple_of(8) {
        xs.push(1.5);
    }
    for c in xs.chunks_exact(8) {
        let Ok(c) = <[f32; 8]>::try_from(c) else {
            unreachable!("chunks of eight")
        };
        let got = avx2::round_half_away_8(cpu, c);
        for (&x, &g) in c.iter().zip(&got) {
            let want = x.round();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{x:e}: {g:e} != {want:e}"
            );
        }
    }
}

#[test]
fn vector_and_portable_quantization_agree() {
    let mut seed = 17u64;
    for i in 0..5000 {
        let scale = [1e-38f32, 1e-6, 1.0, 300.0, 3e38][i % 5];
        let mut xs: Vec<f32> = (0..QK).map(|_| lcg(&mut seed) * scale).collect();
        match i % 7 {
            0 => xs[i % QK] = f32::NAN,
            1 => xs[i % QK] = f32::INFINITY,
            2 => xs[i % QK] = f32::NEG_INFINITY,
            3 => xs.fill(f32::NAN),
            _ => {}
        }
        let (a, b) = (
            quantize_block(crate::cpu::cpu().avx2(), &xs),
            quantize_block_portable(&xs),
        );
        assert_eq!(a.qs, b.qs, "{xs:?}");
        assert_eq!(a.d.to_bits(), b.d.to_bits(), "{xs:?}");
        assert_eq!(a.s.to_bits(), b.s.to_bits(), "{xs:?}");
    }
}

#[test]
fn quantizes_activations_as_candle_does() -> candle_core::Result<()> {
    let mut seed = 9u64;
    let mut rows: Vec<Vec<f32>> = (0..200)
        .map(|i| {
            let scale = [1e-3f32, 1.0, 37.0, 1e4][i % 4];
            (0..QK).map(|_| lcg(&mut seed) * scale).collect()
        })
        .collect();
    // Ties: elements at exact halves of the step, zeros, and a block of zeros.
    rows.push((0..QK).map(|j| (j as f32 - 16.0) * 0.5).collect());
    rows.push(
        (0..QK)
            .map(|j| if j == 3 { 127.0 } else { j as f32 + 0.5 })
            .collect(),
    );
    rows.push(vec![0.0; QK]);
    // A NaN (ignored by the largest magnitude), and negative zeros.
    let mut odd: Vec<f32> = (0..QK).map(|j| j as f32 - 20.0).collect();
    odd[7] = f32::NAN;
    odd[QK - 1] = f32::NAN;
    odd[1] = -0.0;
    rows.push(odd);
    rows.push(vec![-0.0; QK]);
    for row in &rows {
        // candle's `BlockQ8_1::from_float`, as stored: `d: f16, s: f16, qs: [i8; 32]`.
        let t = Tensor::from_slice(row.as_slice(), (1, QK), &Device::Cpu)?;
        let b = QTensor::quantize(&t, GgmlDType::Q8_1)?.data()?.to_vec();
        assert_eq!(b.len(), 36);
        let got = quantize_block(crate::cpu::cpu().avx2(), row);
        let qs: Vec<i8> = b[4..].iter().map(|&x| x as i8).collect();
        assert_eq!(got.qs.as_slice(), qs.as_slice(), "{row:?}");
        assert_eq!(
            got.d.to_bits(),
            f16::from_le_bytes([b[0], b[1]]).to_f32().to_bits()
        );
        assert_eq!(
            got.s.to_bits(),
            f16::from_le_bytes([b[2], b[3]]).to_f32().to_bits()
        );
    }
    Ok(())
}

#[test]
fn many_matrices_at_once_and_into_new_vectors_equal_each_alone() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut seed = 5u64;
    let k = 576;
    let mats: Vec<Q41Matrix> = [576usize, 192, 192]
        .iter()
        .map(|&n| {
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
            let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &dev)?, GgmlDType::Q4_1)?;
            Ok(Q41Matrix::from_qtensor(&q)?.expect("a kernel"))
        })
        .collect::<candle_core::Result<_>>()?;
    for m in [1usize, 5, 8] {
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) * 3.0).collect();
        let mut outs: Vec<Vec<f32>> = mats.iter().map(|a| vec![f32::NAN; m * a.n]).collect();
        let mut dsts: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        let refs: Vec<&Q41Matrix> = mats.iter().collect();
        Q41Matrix::matmul_many(&refs, &x, &mut dsts);
        // The same products into new vectors (never zero-filled: all written).
        let fresh = Q41Matrix::products(&refs, &x);
        for ((mat, got), fresh) in mats.iter().zip(&outs).zip(&fresh) {
            let mut alone = vec![0f32; m * mat.n];
            mat.matmul(&x, &mut alone);
            assert_eq!(got, &alone, "{m} rows, {} outputs", mat.n);
            assert_eq!(fresh, &alone, "{m} rows, {} outputs, new vectors", mat.n);
        }
    }
    Ok(())
}

#[test]
fn declines_what_it_cannot_compute() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let w = Tensor::zeros((12, 64), candle_core::DType::F32, &dev)?;
    // 12 rows: not a multiple of 8.
    assert!(Q41Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q4_1)?)?.is_none());
    // Another block type.
    let w = Tensor::zeros((16, 64), candle_core::DType::F32, &dev)?;
    assert!(Q41Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0)?)?.is_none());
    Ok(())
}
