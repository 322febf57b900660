//! Weight matmuls `y[n, out] = x[n, in] · W[out, in]ᵀ` on three routes:
//! - `gemv`: one input row at a time; each weight row is dequantised for every input row (a decode kernel).
//! - `gemm_tiled`: all input rows per weight row (the weight row is dequantised once), reduction in
//!   [`TILE_K`](super::dot::TILE_K) blocks — another summation order than gemv.
//! - `gemm_invariant`: tiled like gemm_tiled but with gemv's reduction order, so every row's result is
//!   bit-identical to what gemv gives for it alone: the batch-invariant route.
//!
//! Work is split over output columns; each output element is one task's one dot product, so the thread
//! count never changes the bits.

use super::dot::{dot_blocked, dot_blocked_f64, dot8, dot8_f64};
use super::values::{f32s, f64s, out_f32, out_f64};
use super::{bad, want};
use crate::backend::BackendError;
use crate::launch::{DType, Precision, Stage, Tensor, Variant};
use crate::model::quant;
use rayon::prelude::*;

/// Output columns per task.
const COLS_PER_TASK: usize = 16;

/// Runs a matmul stage. Inputs: x `[n, in]` (f32 or f64 per route), W `[out, in]` (any weight dtype).
pub fn matmul(stage: Stage, variant: Variant, p: Precision, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    let (x, w) = (inputs[0], inputs[1]);
    let &[out, inn] = w.shape.as_slice() else {
        return Err(bad(stage, format!("weight has shape {:?}, expected [out, in]", w.shape)));
    };
    if x.shape.last() != Some(&inn) {
        return Err(bad(stage, format!("x has shape {:?}, weight {:?}: inner dimensions differ", x.shape, w.shape)));
    }
    let n = x.rows();
    let wb = w.host_bytes().ok_or_else(|| bad(stage, "weight is not on the host"))?.as_slice();
    let rb = quant::row_bytes(w.dtype, inn).ok_or_else(|| bad(stage, format!("{} rows of {inn}", w.dtype)))?;
    if wb.len() != rb * out {
        return Err(bad(stage, format!("weight has {} bytes, expected {}", wb.len(), rb * out)));
    }
    let wm = WeightRows { bytes: wb, dtype: w.dtype, row_bytes: rb, cols: inn };
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a last dimension") = out;
    Ok(vec![match p {
        Precision::F32 => out_f32(shape, run(f32s(stage, x)?, n, out, &wm, variant, dequant_f32, pick_f32(variant))?),
        Precision::F64 => out_f64(shape, run(f64s(stage, x)?, n, out, &wm, variant, dequant_f64, pick_f64(variant))?),
        Precision::F16 => return Err(bad(stage, "f16 is not a CPU route")),
    }])
}

struct WeightRows<'a> {
    bytes: &'a [u8],
    dtype: DType,
    row_bytes: usize,
    cols: usize,
}

fn dequant_f32(w: &WeightRows, o: usize, buf: &mut [f32]) -> Result<(), String> {
    quant::dequantize(w.dtype, &w.bytes[o * w.row_bytes..(o + 1) * w.row_bytes], buf).map_err(|e| e.to_string())
}

fn dequant_f64(w: &WeightRows, o: usize, buf: &mut [f64]) -> Result<(), String> {
    let mut tmp = vec![0f32; w.cols];
    dequant_f32(w, o, &mut tmp)?;
    for (d, s) in buf.iter_mut().zip(tmp) {
        *d = s as f64;
    }
    Ok(())
}

fn pick_f32(v: Variant) -> fn(&[f32], &[f32]) -> f32 {
    if v == Variant::GemmTiled { dot_blocked } else { dot8 }
}

fn pick_f64(v: Variant) -> fn(&[f64], &[f64]) -> f64 {
    if v == Variant::GemmTiled { dot_blocked_f64 } else { dot8_f64 }
}

fn run<T: Copy + Default + Send + Sync>(
    x: &[T],
    n: usize,
    out: usize,
    w: &WeightRows,
    variant: Variant,
    dequant: fn(&WeightRows, usize, &mut [T]) -> Result<(), String>,
    dot: fn(&[T], &[T]) -> T,
) -> Result<Vec<T>, BackendError> {
    let inn = w.cols;
    // Column-major partial results per task, then one transpose into [n, out].
    let blocks: Vec<Result<Vec<T>, String>> = (0..out.div_ceil(COLS_PER_TASK))
        .into_par_iter()
        .map(|b| {
            let (c0, c1) = (b * COLS_PER_TASK, ((b + 1) * COLS_PER_TASK).min(out));
            let mut res = vec![T::default(); (c1 - c0) * n];
            let mut wrow = vec![T::default(); inn];
            if variant == Variant::Gemv {
                // A decode kernel: one input row at a time, the weight row re-read for each.
                for i in 0..n {
                    for o in c0..c1 {
                        dequant(w, o, &mut wrow)?;
                        res[(o - c0) * n + i] = dot(&x[i * inn..(i + 1) * inn], &wrow);
                    }
                }
            } else {
                for o in c0..c1 {
                    dequant(w, o, &mut wrow)?;
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
