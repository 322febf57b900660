//! Checks of the stage contracts (docs/STAGES.md) shared by every backend: input counts, matmul shapes,
//! attention geometry, and the per-stage layout checks (embed ids and table, norm weight, same-shape
//! pairs, query/probability/value shapes, the row length of scores and logits, the fused key block).
//! Kept in one place so the CPU reference and the GPU backend reject exactly the same inputs with the
//! same messages: a backend calls these before touching data, and adds only what is its own (the CPU's
//! host-byte checks, the GPU's shared-memory limit).

use super::BackendError;
use crate::launch::{DType, Params, Precision, Route, Stage, Tensor, Variant};

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

/// Whether `gemv_q8` (Q8_1 activations, integer block dots) runs on weights stored as `dtype`: the block
/// formats kernels/q8.cu (and its CPU emulation, `backend/cpu/q8.rs`) has a block dot for. The other
/// block formats (Q5_0, Q5_1, the other K-quants, IQ4_*) are refused with a contract error, and the
/// GPU's default route falls back to the routes that read any format through `greta_wload`.
pub fn q8_supported(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q4K | DType::Q6K
    )
}

/// Checks a `gemv_q8` launch's weight: a block format ([`q8_supported`]) and rows of whole 32-blocks.
pub fn q8_weight(stage: Stage, dtype: DType, inn: usize) -> Result<(), BackendError> {
    if !q8_supported(dtype) {
        return Err(bad(
            stage,
            format!(
                "gemv_q8 needs weights in a format kernels/q8.cu has a block dot for (q8_0, q4_0, q4_1, q4_k, q6_k), not {dtype}"
            ),
        ));
    }
    if inn % 32 != 0 {
        return Err(bad(
            stage,
            format!("gemv_q8 needs rows of whole 32-blocks, not {inn}"),
        ));
    }
    Ok(())
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

/// Default key block of the fused attention route (`Params::kv_block == 0`).
pub const DEFAULT_KV_BLOCK: usize = 32;

/// The key block a fused attention launch runs with: `params.kv_block`, or [`DEFAULT_KV_BLOCK`] when 0.
pub fn kv_block(params: &Params) -> usize {
    if params.kv_block == 0 {
        DEFAULT_KV_BLOCK
    } else {
        params.kv_block as usize
    }
}

/// Checks a query input `[n, H*hd]` against the attention geometry (qk, fused attn).
pub fn check_q(stage: Stage, q: &Tensor, g: &AttnGeo) -> Result<(), BackendError> {
    if q.shape != [g.n, g.h * g.hd] {
        return Err(bad(
            stage,
            format!(
                "q has shape {:?}, expected {:?}",
                q.shape,
                [g.n, g.h * g.hd]
            ),
        ));
    }
    Ok(())
}

/// Checks pv's probabilities input `[H, n, ctx]` against the attention geometry.
pub fn check_probs(stage: Stage, probs: &Tensor, g: &AttnGeo) -> Result<(), BackendError> {
    if probs.shape != [g.h, g.n, g.ctx] {
        return Err(bad(
            stage,
            format!(
                "probs have shape {:?}, expected {:?}",
                probs.shape,
                [g.h, g.n, g.ctx]
            ),
        ));
    }
    Ok(())
}

/// Checks that fused attention's V has K's shape.
pub fn check_v(stage: Stage, k: &Tensor, v: &Tensor) -> Result<(), BackendError> {
    if v.shape != k.shape {
        return Err(bad(
            stage,
            format!("V has shape {:?}, K {:?}", v.shape, k.shape),
        ));
    }
    Ok(())
}

/// The length of the last dimension of a row-wise input (softmax's scores, argmax's logits); `what`
/// names the input in the error (`scores`, `logits`).
pub fn row_len(stage: Stage, t: &Tensor, what: &str) -> Result<usize, BackendError> {
    t.shape
        .last()
        .copied()
        .ok_or_else(|| bad(stage, format!("{what} have no shape")))
}

/// Checks that the two inputs of an elementwise pair (residual add, SwiGLU) have the same shape.
pub fn same_shape(stage: Stage, a: &Tensor, b: &Tensor) -> Result<(), BackendError> {
    if a.shape != b.shape {
        return Err(bad(
            stage,
            format!("shapes differ: {:?} vs {:?}", a.shape, b.shape),
        ));
    }
    Ok(())
}

/// Checks embed's inputs, ids `i32[n]` and table `[vocab, dim]`, and returns `(vocab, dim)`.
pub fn embed_dims(
    stage: Stage,
    ids: &Tensor,
    table: &Tensor,
) -> Result<(usize, usize), BackendError> {
    if ids.dtype != DType::I32 {
        return Err(bad(stage, format!("ids are {}, expected i32", ids.dtype)));
    }
    let &[vocab, dim] = table.shape.as_slice() else {
        return Err(bad(stage, format!("table has shape {:?}", table.shape)));
    };
    Ok((vocab, dim))
}

/// A token id as a table row: `0 <= id < vocab`, else an error naming the id (checked on the host
/// before any kernel reads the table).
pub fn token_row(stage: Stage, id: i32, vocab: usize) -> Result<usize, BackendError> {
    usize::try_from(id)
        .ok()
        .filter(|&v| v < vocab)
        .ok_or_else(|| bad(stage, format!("token id {id} out of range (vocab {vocab})")))
}

/// Checks an RMSNorm's weight (`f32[dim]`, dim > 0) against x `[.., dim]` and returns dim.
pub fn norm_dim(stage: Stage, x: &Tensor, w: &Tensor) -> Result<usize, BackendError> {
    if w.dtype != DType::F32 {
        return Err(bad(
            stage,
            format!("norm weight is {}, expected f32", w.dtype),
        ));
    }
    let dim = w.numel();
    if dim == 0 || x.shape.last() != Some(&dim) {
        return Err(bad(stage, format!("x {:?} vs weight [{dim}]", x.shape)));
    }
    Ok(dim)
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
            check_v(stage, inputs[1], inputs[2])
        }
        Stage::RopeQ | Stage::RopeK => rope_geo(stage, params, inputs).map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        match dtype {
            DType::I32 => Tensor::i32(shape.to_vec(), vec![0; n]),
            _ => Tensor::f32(shape.to_vec(), vec![0.0; n]),
        }
    }

    fn msg(r: Result<impl std::fmt::Debug, BackendError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn layout_checks_name_what_is_wrong() {
        let ids = t(DType::I32, &[3]);
        let table = t(DType::F32, &[10, 4]);
        assert_eq!(embed_dims(Stage::Embed, &ids, &table).unwrap(), (10, 4));
        assert!(
            msg(embed_dims(Stage::Embed, &table, &table)).contains("ids are f32, expected i32")
        );
        assert!(msg(embed_dims(Stage::Embed, &ids, &ids)).contains("table has shape [3]"));
        assert_eq!(token_row(Stage::Embed, 9, 10).unwrap(), 9);
        assert!(
            msg(token_row(Stage::Embed, 10, 10)).contains("token id 10 out of range (vocab 10)")
        );
        assert!(msg(token_row(Stage::Embed, -1, 10)).contains("token id -1"));

        let x = t(DType::F32, &[2, 4]);
        assert_eq!(
            norm_dim(Stage::AttnNorm, &x, &t(DType::F32, &[4])).unwrap(),
            4
        );
        assert!(msg(norm_dim(Stage::AttnNorm, &x, &t(DType::F32, &[5]))).contains("vs weight [5]"));
        assert!(msg(norm_dim(Stage::AttnNorm, &x, &t(DType::I32, &[4]))).contains("expected f32"));

        assert!(same_shape(Stage::Up, &x, &x).is_ok());
        assert!(msg(same_shape(Stage::Up, &x, &table)).contains("shapes differ"));
        assert_eq!(row_len(Stage::Argmax, &x, "logits").unwrap(), 4);
        assert!(
            msg(row_len(Stage::Argmax, &t(DType::F32, &[]), "logits"))
                .contains("logits have no shape")
        );

        let g = AttnGeo {
            n: 2,
            ctx: 5,
            h: 4,
            hk: 2,
            hd: 3,
            pos: 3,
        };
        assert!(check_q(Stage::Qk, &t(DType::F32, &[2, 12]), &g).is_ok());
        assert!(msg(check_q(Stage::Qk, &x, &g)).contains("q has shape [2, 4], expected [2, 12]"));
        assert!(check_probs(Stage::Pv, &t(DType::F32, &[4, 2, 5]), &g).is_ok());
        assert!(msg(check_probs(Stage::Pv, &x, &g)).contains("probs have shape"));
        assert!(msg(check_v(Stage::Attn, &x, &table)).contains("V has shape [10, 4], K [2, 4]"));

        let p = Params {
            kv_block: 0,
            ..Params::default()
        };
        assert_eq!(kv_block(&p), DEFAULT_KV_BLOCK);
        assert_eq!(kv_block(&Params { kv_block: 8, ..p }), 8);
    }
}
