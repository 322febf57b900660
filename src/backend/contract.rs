//! Checks of the stage contracts (docs/STAGES.md) shared by every backend: input counts, matmul shapes,
//! attention geometry. Kept in one place so the CPU reference and the GPU backend reject exactly the same
//! inputs with the same messages.

use super::BackendError;
use crate::launch::{Params, Precision, Route, Stage, Tensor, Variant};

pub use crate::launch::{GatherLayout, gather_layout};

/// A bad-inputs error for `stage`.
pub fn bad(stage: Stage, what: impl Into<String>) -> BackendError {
    BackendError::BadInputs {
        stage,
        what: what.into(),
    }
}

/// The routes of `stage` on a backend that runs `precisions`: every variant the stage has
/// ([`Variant::of_stage`]) on each precision, variant-major.
pub fn routes(stage: Stage, precisions: &[Precision]) -> Vec<Route> {
    Variant::of_stage(stage)
        .iter()
        .flat_map(|&v| precisions.iter().map(move |&p| Route::new(v, p)))
        .collect()
}

/// Checks the input count of a stage.
pub fn want(stage: Stage, inputs: &[&Tensor], n: usize) -> Result<(), BackendError> {
    if inputs.len() != n {
        return Err(bad(
            stage,
            format!("expected {n} inputs, got {}", inputs.len()),
        ));
    }
    Ok(())
}

/// Shapes of a weight matmul: x `[.., inn]` (n rows) times W `[out, inn]`.
#[derive(Clone, Copy, Debug)]
pub struct MatmulDims {
    /// Input rows.
    pub n: usize,
    /// Output columns (weight rows).
    pub out: usize,
    /// Inner dimension.
    pub inn: usize,
}

/// Checks a matmul's two inputs (x, W) and returns its dimensions.
pub fn matmul_dims(stage: Stage, inputs: &[&Tensor]) -> Result<MatmulDims, BackendError> {
    want(stage, inputs, 2)?;
    let (x, w) = (inputs[0], inputs[1]);
    let &[out, inn] = w.shape.as_slice() else {
        return Err(bad(
            stage,
            format!("weight has shape {:?}, expected [out, in]", w.shape),
        ));
    };
    if x.shape.last() != Some(&inn) {
        return Err(bad(
            stage,
            format!(
                "x has shape {:?}, weight {:?}: inner dimensions differ",
                x.shape, w.shape
            ),
        ));
    }
    Ok(MatmulDims {
        n: x.rows(),
        out,
        inn,
    })
}

/// Attention geometry of a launch: rows `pos..pos+n` attend to keys `0..ctx`.
#[derive(Clone, Copy, Debug)]
pub struct AttnGeo {
    /// Query rows.
    pub n: usize,
    /// Keys visible to the last row (`pos + n`).
    pub ctx: usize,
    /// Query heads.
    pub h: usize,
    /// Key/value heads.
    pub hk: usize,
    /// Head dimension.
    pub hd: usize,
    /// Position of the first row.
    pub pos: usize,
}

/// Checks the head geometry of `params` and the shape of a KV-cache input `[ctx, hk*hd]`.
pub fn attn_geo(stage: Stage, params: &Params, kv: &Tensor) -> Result<AttnGeo, BackendError> {
    let (h, hk, hd) = (
        params.n_heads as usize,
        params.n_kv_heads as usize,
        params.head_dim as usize,
    );
    if h == 0 || hk == 0 || hd == 0 || h % hk != 0 {
        return Err(bad(
            stage,
            format!("bad head geometry: {h} heads, {hk} kv heads, head dim {hd}"),
        ));
    }
    let (n, pos) = (params.rows as usize, params.pos as usize);
    let ctx = pos + n;
    if kv.shape != [ctx, hk * hd] {
        return Err(bad(
            stage,
            format!(
                "kv cache has shape {:?}, expected {:?}",
                kv.shape,
                [ctx, hk * hd]
            ),
        ));
    }
    Ok(AttnGeo {
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
    })
}

/// Geometry of a RoPE launch: `heads` heads of `hd` values over `n` rows, the first `rd` of each rotated.
#[derive(Clone, Copy, Debug)]
pub struct RopeGeo {
    /// Rows.
    pub n: usize,
    /// Heads (query heads for rope_q, kv heads for rope_k).
    pub heads: usize,
    /// Head dimension.
    pub hd: usize,
    /// Rotated dimensions per head.
    pub rd: usize,
}

/// Checks a RoPE launch's one input `[n, heads*hd]` and its rope dimensions (even, at most hd).
pub fn rope_geo(
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<RopeGeo, BackendError> {
    want(stage, inputs, 1)?;
    let heads = if stage == Stage::RopeQ {
        params.n_heads
    } else {
        params.n_kv_heads
    } as usize;
    let (hd, rd, n) = (
        params.head_dim as usize,
        params.rope_dim as usize,
        params.rows as usize,
    );
    if hd == 0 || hd % 2 != 0 || rd > hd || rd % 2 != 0 || inputs[0].shape != [n, heads * hd] {
        return Err(bad(
            stage,
            format!(
                "x {:?} with {heads} heads of {hd}, rope dim {rd}, {n} rows",
                inputs[0].shape
            ),
        ));
    }
    Ok(RopeGeo { n, heads, hd, rd })
}

/// Checks a launch's inputs against its stage contract by shape alone: the input count of the stage's
/// roles (docs/STAGES.md), matmul shapes, attention geometry and RoPE geometry — the same checks the
/// backends make before running, so `verify` flags a recorded launch that no backend would accept and
/// replay refuses it before running. Stages without a contract here (foreign stages) pass.
pub fn check_launch(stage: Stage, params: &Params, inputs: &[&Tensor]) -> Result<(), BackendError> {
    let roles = stage.input_roles();
    if !roles.is_empty() {
        want(stage, inputs, roles.len())?;
    }
    match stage {
        s if s.is_matmul() => matmul_dims(stage, inputs).map(|_| ()),
        Stage::Qk | Stage::Pv => attn_geo(stage, params, inputs[1]).map(|_| ()),
        Stage::Attn => {
            attn_geo(stage, params, inputs[1])?;
            if inputs[2].shape != inputs[1].shape {
                return Err(bad(
                    stage,
                    format!("V has shape {:?}, K {:?}", inputs[2].shape, inputs[1].shape),
                ));
            }
            Ok(())
        }
        Stage::RopeQ | Stage::RopeK => rope_geo(stage, params, inputs).map(|_| ()),
        _ => Ok(()),
    }
}
