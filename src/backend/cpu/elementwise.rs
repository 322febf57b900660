//! The `direct` stages: embedding lookup and scale, RMSNorm (per row or per head), bias adds, RoPE (NORM
//! and NEOX), KV-cache write, residual adds, SwiGLU, GeGLU, argmax.
//! Each row's result depends only on that row, so they are batch-invariant by construction.

use super::values::{Float, f32s};
use super::{bad, want};
use crate::backend::{BackendError, contract};
use crate::launch::{Params, Precision, Stage, Tensor};
use crate::model::quant;
use rayon::prelude::*;

macro_rules! by_precision {
    ($p:expr, $stage:expr, $f:ident ( $($arg:expr),* )) => {
        match $p {
            Precision::F32 => $f::<f32>($($arg),*),
            Precision::F64 => $f::<f64>($($arg),*),
            Precision::F16 => Err(bad($stage, "f16 is not a CPU route")),
        }
    };
}

/// embed: ids `i32[n]`, table `[V, dim]` → `[n, dim]`.
pub fn embed(p: Precision, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, Stage::Embed, embed_t(inputs))
}

fn embed_t<T: Float>(inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Embed;
    want(stage, inputs, 2)?;
    let (ids, w) = (inputs[0], inputs[1]);
    let (vocab, dim) = contract::embed_dims(stage, ids, w)?;
    let ids = ids
        .as_i32()
        .ok_or_else(|| bad(stage, "ids are i32 but not on the host"))?;
    let wb = w
        .host_bytes()
        .ok_or_else(|| bad(stage, "table is not on the host"))?
        .as_slice();
    let rb = quant::row_bytes(w.dtype, dim).ok_or_else(|| bad(stage, "table row size"))?;
    if wb.len() != rb * vocab {
        return Err(bad(stage, "table byte length does not match its shape"));
    }
    let mut out = vec![T::ZERO; ids.len() * dim];
    let mut row = vec![0f32; dim];
    for (i, &id) in ids.iter().enumerate() {
        let id = contract::token_row(stage, id, vocab)?;
        quant::dequantize(w.dtype, &wb[id * rb..(id + 1) * rb], &mut row)
            .map_err(|e| bad(stage, e.to_string()))?;
        for (o, &v) in out[i * dim..(i + 1) * dim].iter_mut().zip(&row) {
            *o = T::from_f64(v as f64);
        }
    }
    Ok(vec![T::tensor(vec![ids.len(), dim], out)])
}

/// RMSNorm: x `[n, dim]`, w `f32[dim]` → `x / sqrt(mean(x²) + eps) · w`.
pub fn rmsnorm(
    stage: Stage,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, stage, rmsnorm_t(stage, params, inputs))
}

fn rmsnorm_t<T: Float>(
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    let x = T::of(stage, inputs[0])?;
    let dim = contract::norm_dim(stage, inputs[0], inputs[1])?;
    let w = f32s(stage, inputs[1])?;
    if w.len() != dim {
        return Err(bad(
            stage,
            format!("norm weight holds {} values, its shape {dim}", w.len()),
        ));
    }
    let eps = T::from_f64(params.eps);
    let n = T::from_f64(dim as f64);
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(dim)
        .zip(x.par_chunks(dim))
        .for_each(|(o, r)| {
            let inv = T::ONE / (T::dot(r, r) / n + eps).sqrt();
            for d in 0..dim {
                o[d] = r[d] * inv * T::from_f64(w[d] as f64);
            }
        });
    Ok(vec![T::tensor(inputs[0].shape.clone(), out)])
}

/// embed_scale: every value times `params.scale` (Gemma's sqrt(n_embd), rounded to the route's type
/// first as llama.cpp's `ggml_scale` takes an f32 factor).
pub fn scale(
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, Stage::EmbedScale, scale_t(params, inputs))
}

fn scale_t<T: Float>(params: &Params, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::EmbedScale;
    want(stage, inputs, 1)?;
    let x = T::of(stage, inputs[0])?;
    let f = T::from_f64(params.scale);
    let out: Vec<T> = x.iter().map(|&v| v * f).collect();
    Ok(vec![T::tensor(inputs[0].shape.clone(), out)])
}

/// Bias add (q_bias, k_bias, v_bias): x `[n, d]` plus the bias `[d]` on every row.
pub fn bias(stage: Stage, p: Precision, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, stage, bias_t(stage, inputs))
}

fn bias_t<T: Float>(stage: Stage, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    let d = contract::bias_dim(stage, inputs[0], inputs[1])?;
    let x = T::of(stage, inputs[0])?;
    // The bias as stored (f32 in a GGUF), or already in the route's type; widened exactly.
    let b: Vec<T> = match (inputs[1].as_f32(), inputs[1].as_f64()) {
        (Some(b), _) => b.iter().map(|&v| T::from_f64(v as f64)).collect(),
        (_, Some(b)) => b.iter().map(|&v| T::from_f64(v)).collect(),
        _ => return Err(bad(stage, "bias is not on the host")),
    };
    let out: Vec<T> = x
        .chunks(d)
        .flat_map(|r| r.iter().zip(&b).map(|(&v, &c)| v + c))
        .collect();
    Ok(vec![T::tensor(inputs[0].shape.clone(), out)])
}

/// RoPE, llama.cpp's NORM (adjacent pairs `2j, 2j+1`) or NEOX (pairs `j, j + rope_dim/2`) mode
/// (`params.rope_mode`) within each head.
pub fn rope(
    stage: Stage,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, stage, rope_t(stage, params, inputs))
}

/// cos and sin of the rotation angle of pair `j` at `pos`: computed in f64 with libm on every route, so
/// the f32 route's only rounding is the final conversion.
pub fn rope_angle(pos: usize, j: usize, rope_dim: usize, theta: f64) -> (f64, f64) {
    let freq = libm::pow(theta, -2.0 * j as f64 / rope_dim as f64);
    let a = pos as f64 * freq;
    (libm::cos(a), libm::sin(a))
}

fn rope_t<T: Float>(
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let contract::RopeGeo { heads, hd, rd, .. } = contract::rope_geo(stage, params, inputs)?;
    let x = T::of(stage, inputs[0])?;
    let mut out = x.to_vec();
    let pos0 = params.pos as usize;
    out.par_chunks_mut(heads * hd)
        .enumerate()
        .for_each(|(i, row)| {
            for j in 0..rd / 2 {
                let (c, s) = rope_angle(pos0 + i, j, rd, params.rope_theta);
                let (c, s) = (T::from_f64(c), T::from_f64(s));
                // The pair's two elements within a head.
                let (ia, ib) = if params.rope_mode == crate::launch::ROPE_NEOX {
                    (j, j + rd / 2)
                } else {
                    (2 * j, 2 * j + 1)
                };
                for h in 0..heads {
                    let (a, b) = (row[h * hd + ia], row[h * hd + ib]);
                    row[h * hd + ia] = a * c - b * s;
                    row[h * hd + ib] = a * s + b * c;
                }
            }
        });
    Ok(vec![T::tensor(inputs[0].shape.clone(), out)])
}

/// kv_write: the rows written to the cache are the k and v inputs, unchanged (new tensors, same bytes).
pub fn kv_write(inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    want(Stage::KvWrite, inputs, 2)?;
    Ok(inputs
        .iter()
        .map(|t| Tensor {
            id: crate::launch::next_id(),
            ..(*t).clone()
        })
        .collect())
}

/// Residual add: `x + r`.
pub fn residual(
    stage: Stage,
    p: Precision,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, stage, zip_t(stage, inputs, |a, b| a + b))
}

/// SwiGLU: `g / (1 + exp(-g)) · u`.
pub fn swiglu(p: Precision, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, Stage::Swiglu, zip_t(Stage::Swiglu, inputs, silu_mul))
}

fn silu_mul<T: Float>(g: T, u: T) -> T {
    g / (T::ONE + (-g).exp()) * u
}

/// GeGLU: `gelu(g) · u`, GELU's tanh approximation written as ggml's `ggml_gelu_f32`:
/// `0.5·g·(1 + tanh(√(2/π)·g·(1 + 0.044715·g²)))`.
pub fn geglu(p: Precision, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    by_precision!(p, Stage::Geglu, zip_t(Stage::Geglu, inputs, gelu_mul))
}

fn gelu_mul<T: Float>(g: T, u: T) -> T {
    let half = T::from_f64(0.5);
    let c = T::from_f64(0.797_884_560_802_865_4); // √(2/π)
    let a = T::from_f64(0.044_715);
    half * g * (T::ONE + (c * g * (T::ONE + a * g * g)).tanh()) * u
}

fn zip_t<T: Float>(
    stage: Stage,
    inputs: &[&Tensor],
    f: fn(T, T) -> T,
) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    contract::same_shape(stage, inputs[0], inputs[1])?;
    let (a, b) = (T::of(stage, inputs[0])?, T::of(stage, inputs[1])?);
    let out: Vec<T> = a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    Ok(vec![T::tensor(inputs[0].shape.clone(), out)])
}

/// argmax: logits `[n, V]` (f32 or f64) → `i32[n]`, the first index of the maximum (NaN never wins).
pub fn argmax(inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Argmax;
    want(stage, inputs, 1)?;
    let t = inputs[0];
    let v = contract::row_len(stage, t, "logits")?;
    let vals: Vec<f64> = match (t.as_f32(), t.as_f64()) {
        (Some(x), _) => x.iter().map(|&a| a as f64).collect(),
        (_, Some(x)) => x.to_vec(),
        _ => {
            return Err(bad(
                stage,
                format!("logits are {}, expected f32 or f64", t.dtype),
            ));
        }
    };
    let ids: Vec<i32> = vals
        .chunks(v.max(1))
        .map(|row| {
            let mut best = 0usize;
            for (j, &x) in row.iter().enumerate() {
                if x > row[best] || row[best].is_nan() && !x.is_nan() {
                    best = j;
                }
            }
            best as i32
        })
        .collect();
    Ok(vec![Tensor::i32(vec![ids.len()], ids)])
}
