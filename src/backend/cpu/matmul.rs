//! Weight matmuls `y[n, out] = x[n, in] · W[out, in]ᵀ` on three routes:
//! - `gemv`: one input row at a time; each weight row is dequantised for every input row (a decode kernel).
//! - `gemm_tiled`: all input rows per weight row (the weight row is dequantised once), reduction in
//!   [`TILE_K`](super::dot::TILE_K) blocks — another summation order than gemv.
//! - `gemm_invariant`: tiled like gemm_tiled but with gemv's reduction order, so every row's result is
//!   bit-identical to what gemv gives for it alone: the batch-invariant route.
//!
//! Work is split over output columns; each output element is one task's one dot product, so the thread
//! count never changes the bits.
//!
//! Speed without changing a bit: with 4 or more input rows (prefill), each weight row is
//! dequantised once and dotted with four input rows a pass ([`fast::dot4_rows`]). Otherwise Q4_1, Q8_0 and Q4_0 weights are dequantised inside the dot product, four
//! weight rows a pass, on AVX2 ([`super::fast`]): the same weight values and the same reduction order as
//! dequantising the row and calling the route's dot product. Other dtypes are dequantised once per weight
//! row for all input rows (gemv's values do not depend on how often a row is dequantised), then dotted with
//! the AVX2 [`dot8`]/[`dot_blocked`].

use super::bad;
use super::dot::{dot_blocked, dot_blocked_f64, dot8, dot8_f64};
use super::fast::{self, FusedFloat};
use super::values::{f32s, f64s, out_f32, out_f64};
use crate::backend::BackendError;
use crate::backend::contract::{MatmulDims, matmul_dims};
use crate::launch::{DType, Precision, Stage, Tensor, Variant};
use crate::model::quant;
use rayon::prelude::*;

/// Output columns per task.
const COLS_PER_TASK: usize = 16;

/// Runs a matmul stage. Inputs: x `[n, in]` (f32 or f64 per route), W `[out, in]` (any weight dtype).
pub fn matmul(
    stage: Stage,
    variant: Variant,
    p: Precision,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let MatmulDims { n, out, inn } = matmul_dims(stage, inputs)?;
    let (x, w) = (inputs[0], inputs[1]);
    let wb = w
        .host_bytes()
        .ok_or_else(|| bad(stage, "weight is not on the host"))?
        .as_slice();
    let rb = quant::row_bytes(w.dtype, inn)
        .ok_or_else(|| bad(stage, format!("{} rows of {inn}", w.dtype)))?;
    if wb.len() != rb * out {
        return Err(bad(
            stage,
            format!("weight has {} bytes, expected {}", wb.len(), rb * out),
        ));
    }
    let wm = WeightRows {
        bytes: wb,
        dtype: w.dtype,
        row_bytes: rb,
        cols: inn,
    };
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a last dimension") = out;
    if matches!(variant, Variant::GemvQ8 | Variant::GemmMma) {
        if p != Precision::F32 {
            return Err(bad(stage, format!("{variant} is an f32 route")));
        }
        let f = if variant == Variant::GemvQ8 {
            super::q8::gemv_q8
        } else {
            super::q8::gemm_mma
        };
        return Ok(vec![out_f32(
            shape,
            f(
                stage,
                f32s(stage, x)?,
                n,
                inn,
                super::q8::WeightBlocks {
                    bytes: wb,
                    dtype: w.dtype,
                    row_bytes: rb,
                    rows: out,
                },
            )?,
        )]);
    }
    Ok(vec![match p {
        Precision::F32 => out_f32(
            shape,
            run(
                f32s(stage, x)?,
                n,
                out,
                &wm,
                variant,
                dequant_f32,
                pick_f32(variant),
            )?,
        ),
        Precision::F64 => out_f64(
            shape,
            run(
                f64s(stage, x)?,
                n,
                out,
                &wm,
                variant,
                dequant_f64,
                pick_f64(variant),
            )?,
        ),
        Precision::F16 => return Err(bad(stage, "f16 is not a CPU route")),
    }])
}

struct WeightRows<'a> {
    bytes: &'a [u8],
    dtype: DType,
    row_bytes: usize,
    cols: usize,
}

impl WeightRows<'_> {
    fn row(&self, o: usize) -> &[u8] {
        &self.bytes[o * self.row_bytes..(o + 1) * self.row_bytes]
    }
}

fn dequant_f32(
    w: &WeightRows,
    o: usize,
    buf: &mut [f32],
    _tmp: &mut Vec<f32>,
) -> Result<(), String> {
    quant::dequantize(w.dtype, w.row(o), buf).map_err(|e| e.to_string())
}

fn dequant_f64(
    w: &WeightRows,
    o: usize,
    buf: &mut [f64],
    tmp: &mut Vec<f32>,
) -> Result<(), String> {
    tmp.resize(w.cols, 0.0);
    quant::dequantize(w.dtype, w.row(o), tmp).map_err(|e| e.to_string())?;
    for (d, &s) in buf.iter_mut().zip(tmp.iter()) {
        *d = s as f64;
    }
    Ok(())
}

fn pick_f32(v: Variant) -> fn(&[f32], &[f32]) -> f32 {
    if v == Variant::GemmTiled {
        dot_blocked
    } else {
        dot8
    }
}

fn pick_f64(v: Variant) -> fn(&[f64], &[f64]) -> f64 {
    if v == Variant::GemmTiled {
        dot_blocked_f64
    } else {
        dot8_f64
    }
}

type Dequant<T> = fn(&WeightRows, usize, &mut [T], &mut Vec<f32>) -> Result<(), String>;

fn run<T: FusedFloat + Send + Sync>(
    x: &[T],
    n: usize,
    out: usize,
    w: &WeightRows,
    variant: Variant,
    dequant: Dequant<T>,
    dot: fn(&[T], &[T]) -> T,
) -> Result<Vec<T>, BackendError> {
    let inn = w.cols;
    let blocked = variant == Variant::GemmTiled;
    // Q4_1, Q8_0, Q4_0 on AVX2: dequantise inside the dot product, several weight rows a pass (the same
    // values and the same order as dequantising the row, then `dot`; see super::fast).
    let fused = fast::fused_supported(w.dtype, inn);
    // Column-major partial results per task, then one transpose into [n, out].
    let blocks: Vec<Result<Vec<T>, String>> = (0..out.div_ceil(COLS_PER_TASK))
        .into_par_iter()
        .map(|b| {
            let (c0, c1) = (b * COLS_PER_TASK, ((b + 1) * COLS_PER_TASK).min(out));
            let mut res = vec![T::default(); (c1 - c0) * n];
            if T::HAS_DOT4 && n >= 4 && fast::enabled() {
                // Prefill: each weight row dequantised once, then dotted with four input rows a pass.
                let mut wrow = vec![T::default(); inn];
                let mut tmp = Vec::new();
                for o in c0..c1 {
                    dequant(w, o, &mut wrow, &mut tmp)?;
                    let mut i = 0;
                    while i + 4 <= n {
                        let r = |k: usize| &x[(i + k) * inn..(i + k + 1) * inn];
                        let mut y = [T::default(); 4];
                        if !T::dot4(blocked, [r(0), r(1), r(2), r(3)], &wrow, &mut y) {
                            for (k, yk) in y.iter_mut().enumerate() {
                                *yk = dot(r(k), &wrow);
                            }
                        }
                        for k in 0..4 {
                            res[(o - c0) * n + i + k] = y[k];
                        }
                        i += 4;
                    }
                    for i in i..n {
                        res[(o - c0) * n + i] = dot(&x[i * inn..(i + 1) * inn], &wrow);
                    }
                }
            } else if fused {
                let mut rows: [&[u8]; COLS_PER_TASK] = [&[]; COLS_PER_TASK];
                for o in c0..c1 {
                    rows[o - c0] = w.row(o);
                }
                let mut y = [T::default(); COLS_PER_TASK];
                for i in 0..n {
                    T::fused(
                        w.dtype,
                        blocked,
                        &x[i * inn..(i + 1) * inn],
                        &rows[..c1 - c0],
                        &mut y[..c1 - c0],
                    );
                    for j in 0..c1 - c0 {
                        res[j * n + i] = y[j];
                    }
                }
            } else {
                // Each weight row dequantised once for all input rows: the gemv route's values are the same
                // as when it is dequantised again for each input row.
                let mut wrow = vec![T::default(); inn];
                let mut tmp = Vec::new();
                for o in c0..c1 {
                    dequant(w, o, &mut wrow, &mut tmp)?;
                    for i in 0..n {
                        res[(o - c0) * n + i] = dot(&x[i * inn..(i + 1) * inn], &wrow);
                    }
                }
            }
            Ok(res)
        })
        .collect();
    let mut y = vec![T::default(); n * out];
    for (b, r) in blocks.into_iter().enumerate() {
        let r = r.map_err(|e| BackendError::Device(format!("dequantising weight: {e}")))?;
        let c0 = b * COLS_PER_TASK;
        let cols = r.len() / n.max(1);
        for j in 0..cols {
            for i in 0..n {
                y[i * out + c0 + j] = r[j * n + i];
            }
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::super::dot::{dot_blocked_f64_ref, dot_blocked_ref, dot8_f64_ref, dot8_ref};
    use super::super::fast::tests::{Rng, random_rows};
    use super::*;

    /// Every weight dtype, every route, f32 and f64: the kernel's output is, bit for bit, the plain
    /// dequantise-then-dot (portable scalar reference order) of each input row with each weight row.
    #[test]
    fn matmul_matches_dequantize_then_reference_dot() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let dtypes = [
            DType::Q4_1,
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4K,
            DType::Q6K,
            DType::F32,
            DType::F16,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q2K,
            DType::Q3K,
            DType::Q5K,
            DType::IQ4NL,
            DType::IQ4XS,
        ];
        for dtype in dtypes {
            for cols in [32usize, 40, 256, 576, 768] {
                let Some(rb) = quant::row_bytes(dtype, cols) else {
                    continue;
                };
                let out = 37;
                let bytes = random_rows(&mut rng, dtype, cols, out);
                let wm = WeightRows {
                    bytes: &bytes,
                    dtype,
                    row_bytes: rb,
                    cols,
                };
                for n in [1usize, 3, 4, 9] {
                    let x: Vec<f32> = (0..n * cols).map(|_| rng.f() * 2.0).collect();
                    let x64: Vec<f64> = x.iter().map(|&v| v as f64 * 1.000_000_7).collect();
                    for variant in [Variant::Gemv, Variant::GemmTiled, Variant::GemmInvariant] {
                        let y =
                            run(&x, n, out, &wm, variant, dequant_f32, pick_f32(variant)).unwrap();
                        let y64 = run(&x64, n, out, &wm, variant, dequant_f64, pick_f64(variant))
                            .unwrap();
                        for o in 0..out {
                            let wr = quant::dequantize_to_vec(dtype, wm.row(o), cols).unwrap();
                            let wr64: Vec<f64> = wr.iter().map(|&v| v as f64).collect();
                            for i in 0..n {
                                let xi = &x[i * cols..(i + 1) * cols];
                                let xi64 = &x64[i * cols..(i + 1) * cols];
                                let (want, want64) = if variant == Variant::GemmTiled {
                                    (dot_blocked_ref(xi, &wr), dot_blocked_f64_ref(xi64, &wr64))
                                } else {
                                    (dot8_ref(xi, &wr), dot8_f64_ref(xi64, &wr64))
                                };
                                let at =
                                    format!("{dtype} cols={cols} n={n} {variant:?} o={o} i={i}");
                                assert_eq!(y[i * out + o].to_bits(), want.to_bits(), "{at}");
                                assert_eq!(
                                    y64[i * out + o].to_bits(),
                                    want64.to_bits(),
                                    "f64 {at}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
