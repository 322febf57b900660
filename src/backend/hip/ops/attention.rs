//! Attention launches: the manual route's qk, softmax and pv, and the fused route (kernels/attention.cu
//! documents the orders), each with f32 or f16 accumulation.

use super::{blocks, dims};
use crate::backend::BackendError;
use crate::backend::contract::{
    AttnGeo, attn_geo as geo, check_probs, check_q, check_v, kv_block, row_len,
};
use crate::backend::hip::device::{HipBackend, bad, want};
use crate::backend::hip::ffi::{Arg, LaunchDims};
use crate::backend::hip::source::{self, Kernel, geom};
use crate::launch::{DType, Params, Precision, Stage, Tensor};

/// The geometry as kernel arguments (n, ctx, h, hk, hd, pos).
fn u32s(g: &AttnGeo) -> [Arg<'static>; 6] {
    [g.n, g.ctx, g.h, g.hk, g.hd, g.pos].map(|v| Arg::U32(v as u32))
}

fn pick(p: Precision, f32k: Kernel, f16k: Kernel) -> Kernel {
    if p == Precision::F16 { f16k } else { f32k }
}

/// qk: q `[n, H*hd]`, K `[ctx, kvd]` → scores `[H, n, ctx]`.
pub fn qk(
    b: &HipBackend,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Qk;
    want(stage, inputs, 2)?;
    let g = geo(stage, params, inputs[1])?;
    check_q(stage, inputs[0], &g)?;
    let (q, k) = (
        b.input(stage, inputs[0], DType::F32)?,
        b.input(stage, inputs[1], DType::F32)?,
    );
    let s = b.alloc(g.h * g.n * g.ctx)?;
    let [n, ctx, h, hk, hd, pos] = u32s(&g);
    let args = [
        Arg::Buf(&q),
        Arg::Buf(&k),
        Arg::Buf(&s),
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
        Arg::F32(params.scale as f32),
    ];
    let grid = [blocks(g.ctx, geom::ATT_WPB), g.n as u32, g.h as u32];
    b.run(
        pick(p, source::QK_F32, source::QK_F16),
        dims(grid, geom::ATT_WPB * b.warp()),
        &args,
    )?;
    Ok(vec![b.tensor(s, DType::F32, vec![g.h, g.n, g.ctx])])
}

/// softmax: scores `[.., ctx]` → probabilities of the same shape, per row.
pub fn softmax(
    b: &HipBackend,
    p: Precision,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Softmax;
    want(stage, inputs, 1)?;
    let t = inputs[0];
    let ctx = row_len(stage, t, "scores")?;
    let s = b.input(stage, t, DType::F32)?;
    let out = b.alloc(t.numel())?;
    let rows = t.numel().checked_div(ctx).unwrap_or(0);
    let args = [Arg::Buf(&s), Arg::Buf(&out), Arg::U32(ctx as u32)];
    b.run(
        pick(p, source::SOFTMAX_F32, source::SOFTMAX_F16),
        dims([rows as u32, 1, 1], geom::BLOCK),
        &args,
    )?;
    Ok(vec![b.tensor(out, DType::F32, t.shape.clone())])
}

/// pv: probabilities `[H, n, ctx]`, V `[ctx, kvd]` → `[n, H*hd]`.
pub fn pv(
    b: &HipBackend,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Pv;
    want(stage, inputs, 2)?;
    let g = geo(stage, params, inputs[1])?;
    check_probs(stage, inputs[0], &g)?;
    let (pr, v) = (
        b.input(stage, inputs[0], DType::F32)?,
        b.input(stage, inputs[1], DType::F32)?,
    );
    let o = b.alloc(g.n * g.h * g.hd)?;
    let [n, ctx, h, hk, hd, pos] = u32s(&g);
    let args = [
        Arg::Buf(&pr),
        Arg::Buf(&v),
        Arg::Buf(&o),
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
    ];
    let grid = [blocks(g.h * g.hd, geom::PV_THREADS), g.n as u32, 1];
    b.run(
        pick(p, source::PV_F32, source::PV_F16),
        dims(grid, geom::PV_THREADS),
        &args,
    )?;
    Ok(vec![b.tensor(o, DType::F32, vec![g.n, g.h * g.hd])])
}

/// The fused route: q `[n, H*hd]`, K and V `[ctx, kvd]` → `[n, H*hd]`.
pub fn fused(
    b: &HipBackend,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Attn;
    want(stage, inputs, 3)?;
    let g = geo(stage, params, inputs[1])?;
    check_q(stage, inputs[0], &g)?;
    check_v(stage, inputs[1], inputs[2])?;
    let blk = kv_block(params);
    let q = b.input(stage, inputs[0], DType::F32)?;
    let (k, v) = (
        b.input(stage, inputs[1], DType::F32)?,
        b.input(stage, inputs[2], DType::F32)?,
    );
    let o = b.alloc(g.n * g.h * g.hd)?;
    let [n, ctx, h, hk, hd, pos] = u32s(&g);
    let args = [
        Arg::Buf(&q),
        Arg::Buf(&k),
        Arg::Buf(&v),
        Arg::Buf(&o),
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
        Arg::F32(params.scale as f32),
        Arg::U32(blk as u32),
    ];
    let shared = ((blk + g.hd) * 4) as u32;
    if shared > 48 * 1024 {
        return Err(bad(
            stage,
            format!(
                "kv_block {blk} + head dim {} need {shared} bytes of shared memory",
                g.hd
            ),
        ));
    }
    let d = LaunchDims {
        grid: [g.h as u32, g.n as u32, 1],
        block: [geom::FUSED_THREADS, 1, 1],
        shared,
    };
    b.run(pick(p, source::FUSED_F32, source::FUSED_F16), d, &args)?;
    Ok(vec![b.tensor(o, DType::F32, vec![g.n, g.h * g.hd])])
}
