//! The `direct` stages: embed, RMSNorm, RoPE, kv_write, residual add, SwiGLU, argmax.

use super::{blocks, dims};
use crate::backend::BackendError;
use crate::backend::contract::{embed_dims, norm_dim, row_len, same_shape, token_row};
use crate::backend::hip::device::{HipBackend, bad, want};
use crate::backend::hip::ffi::Arg;
use crate::backend::hip::source::{self, geom};
use crate::launch::{DType, Params, Stage, Tensor, TensorData};

/// embed: ids `i32[n]` (host or device), table `[V, dim]` → `[n, dim]`.
pub fn embed(b: &HipBackend, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Embed;
    want(stage, inputs, 2)?;
    let (ids, table) = (inputs[0], inputs[1]);
    let (vocab, dim) = embed_dims(stage, ids, table)?;
    // Range-check the ids on the host (a few bytes) so the kernel never reads outside the table.
    let raw = ids.to_host_bytes().map_err(|e| bad(stage, e))?;
    for c in raw.chunks_exact(4) {
        token_row(
            stage,
            i32::from_le_bytes(c.try_into().expect("chunks of 4")),
            vocab,
        )?;
    }
    let n = ids.numel();
    let idd = b.input(stage, ids, DType::I32)?;
    let t = b.weight_blocks(stage, table)?;
    let y = b.alloc(n * dim)?;
    let args = [
        Arg::Buf(&idd),
        Arg::Buf(&t.mem),
        Arg::Buf(&y),
        Arg::U32(n as u32),
        Arg::U32(dim as u32),
        Arg::U32(t.format()),
        Arg::U32(t.row_bytes as u32),
    ];
    b.run(
        source::EMBED,
        dims(
            [blocks(dim, geom::EW_THREADS), n as u32, 1],
            geom::EW_THREADS,
        ),
        &args,
    )?;
    Ok(vec![b.tensor(y, DType::F32, vec![n, dim])])
}

/// RMSNorm: x `[n, dim]`, w `f32[dim]` → `[n, dim]`.
pub fn rmsnorm(
    b: &HipBackend,
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    let (x, w) = (inputs[0], inputs[1]);
    let dim = norm_dim(stage, x, w)?;
    let n = x.rows();
    let (xd, wd) = (b.input(stage, x, DType::F32)?, b.weight_f32(stage, w)?);
    let y = b.alloc(n * dim)?;
    let args = [
        Arg::Buf(&xd),
        Arg::Buf(&wd),
        Arg::Buf(&y),
        Arg::U32(n as u32),
        Arg::U32(dim as u32),
        Arg::F32(params.eps as f32),
    ];
    b.run(source::RMSNORM, dims([n as u32, 1, 1], geom::BLOCK), &args)?;
    Ok(vec![b.tensor(y, DType::F32, x.shape.clone())])
}

/// RoPE (llama.cpp NORM pairing) on `[n, heads*hd]`.
pub fn rope(
    b: &HipBackend,
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let crate::backend::contract::RopeGeo { n, heads, hd, rd } =
        crate::backend::contract::rope_geo(stage, params, inputs)?;
    let x = inputs[0];
    let xd = b.input(stage, x, DType::F32)?;
    let y = b.alloc(x.numel())?;
    let args = [
        Arg::Buf(&xd),
        Arg::Buf(&y),
        Arg::U32(n as u32),
        Arg::U32(heads as u32),
        Arg::U32(hd as u32),
        Arg::U32(rd as u32),
        Arg::U32(params.pos),
        Arg::F64(params.rope_theta),
    ];
    b.run(
        source::ROPE,
        dims(
            [blocks(heads * hd / 2, geom::ROPE_THREADS), n as u32, 1],
            geom::ROPE_THREADS,
        ),
        &args,
    )?;
    Ok(vec![b.tensor(y, DType::F32, x.shape.clone())])
}

/// kv_write: the k and v rows, unchanged, as new device tensors (shared buffers: device tensors are
/// immutable; host inputs are uploaded).
pub fn kv_write(b: &HipBackend, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::KvWrite;
    want(stage, inputs, 2)?;
    inputs
        .iter()
        .map(|t| {
            let mem = b
                .input(stage, t, t.dtype)
                .and_then(|m| match (&t.data, t.dtype) {
                    (TensorData::Host(_), DType::F32) | (TensorData::Device(_), _) => Ok(m),
                    _ => Err(bad(
                        stage,
                        format!("k/v rows are {}, expected f32", t.dtype),
                    )),
                })?;
            Ok(b.shared_tensor(mem, t.dtype, t.shape.clone()))
        })
        .collect()
}

fn zip(
    b: &HipBackend,
    stage: Stage,
    kernel: source::Kernel,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    want(stage, inputs, 2)?;
    same_shape(stage, inputs[0], inputs[1])?;
    let count = inputs[0].numel();
    let (a, c) = (
        b.input(stage, inputs[0], DType::F32)?,
        b.input(stage, inputs[1], DType::F32)?,
    );
    let y = b.alloc(count)?;
    let args = [
        Arg::Buf(&a),
        Arg::Buf(&c),
        Arg::Buf(&y),
        Arg::U32(count as u32),
    ];
    b.run(
        kernel,
        dims([blocks(count, geom::EW_THREADS), 1, 1], geom::EW_THREADS),
        &args,
    )?;
    Ok(vec![b.tensor(y, DType::F32, inputs[0].shape.clone())])
}

/// Residual add `x + r`.
pub fn add(b: &HipBackend, stage: Stage, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    zip(b, stage, source::ADD, inputs)
}

/// SwiGLU `g / (1 + exp(-g)) * u`.
pub fn swiglu(b: &HipBackend, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    zip(b, Stage::Swiglu, source::SWIGLU, inputs)
}

/// argmax: logits `[.., V]` → `i32[rows]`, the first index of each row's maximum.
pub fn argmax(b: &HipBackend, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Argmax;
    want(stage, inputs, 1)?;
    let t = inputs[0];
    let v = row_len(stage, t, "logits")?;
    let rows = t.numel().checked_div(v).unwrap_or(0);
    let x = b.input(stage, t, DType::F32)?;
    let ids = b.alloc(rows)?;
    let args = [
        Arg::Buf(&x),
        Arg::Buf(&ids),
        Arg::U32(rows as u32),
        Arg::U32(v as u32),
    ];
    b.run(
        source::ARGMAX,
        dims([rows as u32, 1, 1], geom::BLOCK),
        &args,
    )?;
    Ok(vec![b.tensor(ids, DType::I32, vec![rows])])
}
