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

/// How the fused route runs on the device. Both ways compute the same order and give the same bits (the
/// self-test compares them); they differ only in how many thread blocks work at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedExec {
    /// Split when few (row, head) blocks would leave the device idle (one-row decode), else single.
    Auto,
    /// One launch, one thread block per (row, head), key blocks in a loop (`attn_fused_*`).
    Single,
    /// Two launches: every key block in its own thread block (`attn_part_*`), then the in-order merge
    /// (`attn_merge_*`). Decode at context 530 on an 8B shape: 32 thread blocks become 544.
    Split,
}

/// (row, head) blocks below which `Auto` splits: a few per compute unit.
const SPLIT_BELOW: usize = 1024;
/// Scratch the split may use at most (per-key-block partials); beyond it `Auto` runs single.
const SPLIT_SCRATCH_MAX: usize = 256 << 20;

/// The fused route: q `[n, H*hd]`, K and V `[ctx, kvd]` → `[n, H*hd]`.
pub fn fused(
    b: &HipBackend,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    fused_with(b, p, params, inputs, FusedExec::Auto)
}

/// The fused route, run as `exec` says.
pub fn fused_with(
    b: &HipBackend,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
    exec: FusedExec,
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
    // Key blocks of the longest row (the last one: pos + n keys).
    let nkb = (g.pos + g.n).div_ceil(blk);
    let scratch = g.n * g.h * nkb * (2 + g.hd);
    let split = match exec {
        FusedExec::Single => false,
        FusedExec::Split => true,
        FusedExec::Auto => g.n * g.h < SPLIT_BELOW && scratch * 4 <= SPLIT_SCRATCH_MAX,
    };
    if split {
        let part = b.alloc(scratch)?;
        let nkb32 = u32::try_from(nkb).map_err(|_| bad(stage, format!("{nkb} key blocks")))?;
        let args = [
            Arg::Buf(&q),
            Arg::Buf(&k),
            Arg::Buf(&v),
            Arg::Buf(&part),
            n,
            ctx,
            h,
            hk,
            hd,
            pos,
            Arg::F32(params.scale as f32),
            Arg::U32(blk as u32),
            Arg::U32(nkb32),
        ];
        let d = LaunchDims {
            grid: [nkb32, g.n as u32, g.h as u32],
            block: [geom::FUSED_THREADS, 1, 1],
            shared: (blk * 4) as u32,
        };
        b.run(pick(p, source::PART_F32, source::PART_F16), d, &args)?;
        let args = [
            Arg::Buf(&part),
            Arg::Buf(&o),
            h,
            hd,
            pos,
            Arg::U32(blk as u32),
            Arg::U32(nkb32),
        ];
        let d = LaunchDims {
            grid: [g.h as u32, g.n as u32, 1],
            block: [geom::FUSED_THREADS, 1, 1],
            shared: 0,
        };
        b.run(pick(p, source::MERGE_F32, source::MERGE_F16), d, &args)?;
    } else {
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
        let d = LaunchDims {
            grid: [g.h as u32, g.n as u32, 1],
            block: [geom::FUSED_THREADS, 1, 1],
            shared,
        };
        b.run(pick(p, source::FUSED_F32, source::FUSED_F16), d, &args)?;
    }
    Ok(vec![b.tensor(o, DType::F32, vec![g.n, g.h * g.hd])])
}

/// Self-test: the fused route split (`attn_part` + `attn_merge`) against the same route in one launch,
/// bit for bit, on f32 and f16 accumulation, one and several rows, contexts below, at and across key-block
/// edges, grouped-query heads. Returns (bit-identical cases, cases); a case that fails to run counts as
/// different.
pub fn split_matches_single(b: &HipBackend) -> (usize, usize) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        ((seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    // (rows, pos, heads, kv heads, head dim, kv_block)
    let geos: &[(usize, usize, usize, usize, usize, u32)] = &[
        (1, 0, 4, 2, 16, 32),
        (1, 31, 4, 2, 16, 32),
        (1, 32, 8, 2, 64, 32),
        (1, 529, 32, 8, 128, 32),
        (1, 100, 6, 3, 48, 5),
        (3, 40, 4, 1, 32, 7),
        (5, 0, 2, 2, 160, 16),
    ];
    let mut same = 0;
    let mut tried = 0;
    for &(n, pos, h, hk, hd, blk) in geos {
        let ctx = pos + n;
        let mut t = |rows: usize, cols: usize| {
            let v: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
            Tensor::from_le_bytes(
                DType::F32,
                vec![rows, cols],
                bytemuck::cast_slice(&v).to_vec(),
                crate::launch::Origin::Value,
            )
        };
        let (q, k, v) = (t(n, h * hd), t(ctx, hk * hd), t(ctx, hk * hd));
        let params = Params {
            rows: n as u32,
            pos: pos as u32,
            n_heads: h as u32,
            n_kv_heads: hk as u32,
            head_dim: hd as u32,
            scale: 1.0 / (hd as f64).sqrt(),
            kv_block: blk,
            ..Params::default()
        };
        for p in [Precision::F32, Precision::F16] {
            tried += 1;
            let run = |exec| -> Result<Vec<u8>, String> {
                let out =
                    fused_with(b, p, &params, &[&q, &k, &v], exec).map_err(|e| e.to_string())?;
                Ok(out[0].to_host_bytes()?.into_owned())
            };
            if let (Ok(a), Ok(c)) = (run(FusedExec::Single), run(FusedExec::Split))
                && a == c
            {
                same += 1;
            }
        }
    }
    (same, tried)
}
