//! Attention on two routes:
//! - `manual`: three launches. qk writes scaled scores `[H, n, ctx]` with `-inf` above the causal
//!   diagonal; softmax normalises each row (masked entries exactly 0); pv sums `p·V` over keys in order.
//!   Each row's result depends only on that row: the route is batch-invariant.
//! - `fused`: one launch, flash-decoding style: keys in blocks of `kv_block`, an online softmax per block
//!   (block max, block sum, block accumulator), blocks merged with rescaling. Mathematically equal to
//!   manual, numerically not: the kind of difference greta exists to find.
//!
//! Grouped-query attention: query head `h` reads key/value head `h / (H / Hk)`. A sliding window
//! (`params.window`, Mistral, Gemma's local layers) masks keys before `pos + i + 1 - window` as the
//! causal mask masks later ones: qk writes `-inf` there, fused starts its first block at the window.

use super::values::Float;
use super::{bad, want};
use crate::backend::BackendError;
use crate::backend::contract::{self, AttnGeo, attn_geo};
use crate::launch::{Params, Precision, Stage, Tensor};
use rayon::prelude::*;

/// Default key block of the fused route (defined with the contract, which both backends share).
pub use crate::backend::contract::DEFAULT_KV_BLOCK;

struct Geo {
    n: usize,
    ctx: usize,
    h: usize,
    hk: usize,
    hd: usize,
    pos: usize,
    scale: f64,
}

impl Geo {
    /// The contract's view of this geometry.
    fn attn(&self) -> AttnGeo {
        AttnGeo {
            n: self.n,
            ctx: self.ctx,
            h: self.h,
            hk: self.hk,
            hd: self.hd,
            pos: self.pos,
        }
    }
}

/// The shared contract checks, plus the query shape for the stages that take q.
fn geo(stage: Stage, params: &Params, q: &Tensor, kv: &Tensor) -> Result<Geo, BackendError> {
    let g = attn_geo(stage, params, kv)?;
    if !(stage == Stage::Softmax || stage == Stage::Pv) {
        contract::check_q(stage, q, &g)?;
    }
    let AttnGeo {
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
    } = g;
    Ok(Geo {
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
        scale: params.scale,
    })
}

/// One of the manual route's three launches.
pub fn manual(
    stage: Stage,
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    match p {
        Precision::F32 => manual_t::<f32>(stage, params, inputs),
        Precision::F64 => manual_t::<f64>(stage, params, inputs),
        Precision::F16 => Err(bad(stage, "f16 is not a CPU route")),
    }
}

fn manual_t<T: Float>(
    stage: Stage,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    match stage {
        Stage::Qk => {
            want(stage, inputs, 2)?;
            let g = geo(stage, params, inputs[0], inputs[1])?;
            let (q, k) = (T::of(stage, inputs[0])?, T::of(stage, inputs[1])?);
            let scale = T::from_f64(g.scale);
            let mut s = vec![T::NEG_INF; g.h * g.n * g.ctx];
            s.par_chunks_mut(g.ctx).enumerate().for_each(|(hi, row)| {
                let (h, i) = (hi / g.n, hi % g.n);
                let kh = h / (g.h / g.hk);
                let qv = &q[i * g.h * g.hd + h * g.hd..][..g.hd];
                // Keys the row sees: causal, and within the sliding window when there is one.
                let first = params.first_key(g.pos + i);
                for (j, sj) in row.iter_mut().enumerate().take(g.pos + i + 1).skip(first) {
                    let kv = &k[j * g.hk * g.hd + kh * g.hd..][..g.hd];
                    *sj = T::dot(qv, kv) * scale;
                }
            });
            Ok(vec![T::tensor(vec![g.h, g.n, g.ctx], s)])
        }
        Stage::Softmax => {
            want(stage, inputs, 1)?;
            let t = inputs[0];
            let ctx = contract::row_len(stage, t, "scores")?;
            let s = T::of(stage, t)?;
            let mut out = vec![T::ZERO; s.len()];
            out.par_chunks_mut(ctx.max(1))
                .zip(s.par_chunks(ctx.max(1)))
                .for_each(|(o, r)| softmax_row(r, o));
            Ok(vec![T::tensor(t.shape.clone(), out)])
        }
        Stage::Pv => {
            want(stage, inputs, 2)?;
            let (pt, vt) = (inputs[0], inputs[1]);
            let g = geo(stage, params, pt, vt)?;
            contract::check_probs(stage, pt, &g.attn())?;
            let (pr, v) = (T::of(stage, pt)?, T::of(stage, vt)?);
            let mut out = vec![T::ZERO; g.n * g.h * g.hd];
            out.par_chunks_mut(g.hd).enumerate().for_each(|(ih, o)| {
                let (i, h) = (ih / g.h, ih % g.h);
                let kh = h / (g.h / g.hk);
                let prow = &pr[(h * g.n + i) * g.ctx..][..g.ctx];
                for (j, &pj) in prow.iter().enumerate().take(g.pos + i + 1) {
                    let vj = &v[j * g.hk * g.hd + kh * g.hd..][..g.hd];
                    for d in 0..g.hd {
                        o[d] += pj * vj[d];
                    }
                }
            });
            Ok(vec![T::tensor(vec![g.n, g.h * g.hd], out)])
        }
        _ => Err(bad(stage, "not a manual attention stage")),
    }
}

fn softmax_row<T: Float>(r: &[T], o: &mut [T]) {
    let mut m = T::NEG_INF;
    for &v in r {
        if v > m {
            m = v;
        }
    }
    if m == T::NEG_INF {
        return; // fully masked row: all zero
    }
    for (oj, &v) in o.iter_mut().zip(r) {
        *oj = if v == T::NEG_INF {
            T::ZERO
        } else {
            (v - m).exp()
        };
    }
    let inv = T::ONE / T::sum(o);
    for oj in o.iter_mut() {
        *oj = *oj * inv;
    }
}

/// The fused route: inputs q `[n, H*hd]`, K `[ctx, kvd]`, V `[ctx, kvd]`; output `[n, H*hd]`.
pub fn fused(
    p: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, BackendError> {
    match p {
        Precision::F32 => fused_t::<f32>(params, inputs),
        Precision::F64 => fused_t::<f64>(params, inputs),
        Precision::F16 => Err(bad(Stage::Attn, "f16 is not a CPU route")),
    }
}

fn fused_t<T: Float>(params: &Params, inputs: &[&Tensor]) -> Result<Vec<Tensor>, BackendError> {
    let stage = Stage::Attn;
    want(stage, inputs, 3)?;
    let g = geo(stage, params, inputs[0], inputs[1])?;
    contract::check_v(stage, inputs[1], inputs[2])?;
    let (q, k, v) = (
        T::of(stage, inputs[0])?,
        T::of(stage, inputs[1])?,
        T::of(stage, inputs[2])?,
    );
    let blk = contract::kv_block(params);
    let scale = T::from_f64(g.scale);
    let mut out = vec![T::ZERO; g.n * g.h * g.hd];
    out.par_chunks_mut(g.hd).enumerate().for_each(|(ih, o)| {
        let (i, h) = (ih / g.h, ih % g.h);
        let kh = h / (g.h / g.hk);
        let qv = &q[i * g.h * g.hd + h * g.hd..][..g.hd];
        let last = g.pos + i + 1;
        // Running merge of blocks: m = max so far, l = sum of exp(s - m), acc = sum of exp(s - m)·v.
        let mut m = T::NEG_INF;
        let mut l = T::ZERO;
        let mut acc = vec![T::ZERO; g.hd];
        let mut s = vec![T::ZERO; blk];
        let mut bacc = vec![T::ZERO; g.hd];
        for b0 in (params.first_key(g.pos + i)..last).step_by(blk) {
            let b1 = (b0 + blk).min(last);
            let mut bm = T::NEG_INF;
            for j in b0..b1 {
                let sj = T::dot(qv, &k[j * g.hk * g.hd + kh * g.hd..][..g.hd]) * scale;
                s[j - b0] = sj;
                if sj > bm {
                    bm = sj;
                }
            }
            let mut bl = T::ZERO;
            bacc.iter_mut().for_each(|a| *a = T::ZERO);
            for j in b0..b1 {
                let e = (s[j - b0] - bm).exp();
                bl += e;
                let vj = &v[j * g.hk * g.hd + kh * g.hd..][..g.hd];
                for d in 0..g.hd {
                    bacc[d] += e * vj[d];
                }
            }
            let nm = if bm > m { bm } else { m };
            let (ca, cb) = ((m - nm).exp(), (bm - nm).exp());
            l = l * ca + bl * cb;
            for d in 0..g.hd {
                acc[d] = acc[d] * ca + bacc[d] * cb;
            }
            m = nm;
        }
        let inv = T::ONE / l;
        for d in 0..g.hd {
            o[d] = acc[d] * inv;
        }
    });
    Ok(vec![T::tensor(vec![g.n, g.h * g.hd], out)])
}
