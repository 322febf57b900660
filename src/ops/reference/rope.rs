//! rope: the rotation of ggml's ROPE (NORM and NEOX pairings, partial rotary dims, frequency factors,
//! linear scaling and YaRN), written from its definition: for pair j of each head at position p,
//! θ = p · base^(−2j/rope_dim) / freq_factors[j], interpolated by freq_scale and mixed by YaRN's ramp;
//! (a, b) → (a cos θ − b sin θ, a sin θ + b cos θ) · mscale. Transcendentals from `libm` (the same bits
//! on every machine, so f64 goldens hold across hosts).

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::Tensor;
use crate::ops::values::{f64s, ids, need};
use std::f64::consts::PI;

pub(super) struct Geo {
    n: usize,
    heads: usize,
    hd: usize,
    rd: usize,
}

pub(super) fn geo(a: &OpArgs) -> Result<Geo, ContractError> {
    let (n, width) = rows_cols(shape(a, "x")?);
    let heads = a.count("n_heads", 1 << 20)?;
    let hd = a.count("head_dim", 1 << 20)?;
    let rd = match a.count("rope_dim", 1 << 20)? {
        0 => hd,
        r => r,
    };
    if heads * hd != width {
        return Err(bad(
            a,
            format!("x rows hold {width} values, not n_heads {heads} × head_dim {hd}"),
        ));
    }
    if rd % 2 != 0 || rd > hd {
        return Err(bad(
            a,
            format!("rope_dim {rd} must be even and at most head_dim {hd}"),
        ));
    }
    let mode = a.p("mode")?;
    if mode != 0.0 && mode != 2.0 {
        return Err(ContractError::BadParam {
            op: a.op.name(),
            param: "mode".into(),
            what: format!("{mode}: greta knows 0 (NORM) and 2 (NEOX)"),
        });
    }
    if let Some(f) = a.get("freq_factors") {
        if f.shape.iter().product::<usize>() != rd / 2 {
            return Err(bad(
                a,
                format!(
                    "freq_factors has shape {:?}, expected [{}]",
                    f.shape,
                    rd / 2
                ),
            ));
        }
    }
    if let Some(p) = a.get("positions") {
        if p.shape.iter().product::<usize>() != n {
            return Err(bad(
                a,
                format!("positions has shape {:?}, expected [{n}]", p.shape),
            ));
        }
    }
    Ok(Geo { n, heads, hd, rd })
}

/// YaRN's correction range (ggml_rope_yarn_corr_dims).
fn corr_dims(rd: usize, n_ctx_orig: f64, base: f64, beta_fast: f64, beta_slow: f64) -> [f64; 2] {
    let dim =
        |rot: f64| rd as f64 * libm::log(n_ctx_orig / (rot * 2.0 * PI)) / (2.0 * libm::log(base));
    let start = libm::floor(dim(beta_fast)).max(0.0);
    let end = libm::ceil(dim(beta_slow)).min(rd as f64 - 1.0);
    [start, end]
}

pub(super) fn rope(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = geo(a)?;
    let x = need(a, "x")?;
    let ff = f64s(a, "freq_factors")?;
    let positions = ids(a, "positions")?;
    let pos0 = a.p("pos")?;
    let base = a.p("rope_theta")?;
    let neox = a.p("mode")? == 2.0;
    let freq_scale = a.p("freq_scale")?;
    let ext = a.p("ext_factor")?;
    let corr = corr_dims(
        g.rd,
        a.p("n_ctx_orig")?,
        base,
        a.p("beta_fast")?,
        a.p("beta_slow")?,
    );
    let mut mscale = a.p("attn_factor")?;
    if ext != 0.0 {
        mscale *= 1.0 + 0.1 * libm::log(1.0 / freq_scale);
    }
    let mut y = x.clone();
    for i in 0..g.n {
        let p = match &positions {
            Some(ps) => ps[i] as f64,
            None => pos0 + i as f64,
        };
        for j in 0..g.rd / 2 {
            let mut extrap = p * libm::pow(base, -2.0 * j as f64 / g.rd as f64);
            if let Some(ff) = &ff {
                extrap /= ff[j];
            }
            let interp = freq_scale * extrap;
            let theta = if ext != 0.0 {
                let ramp =
                    1.0 - ((j as f64 - corr[0]) / (corr[1] - corr[0]).max(0.001)).clamp(0.0, 1.0);
                let mix = ramp * ext;
                interp * (1.0 - mix) + extrap * mix
            } else {
                interp
            };
            let (c, s) = (libm::cos(theta) * mscale, libm::sin(theta) * mscale);
            for h in 0..g.heads {
                let base_i = i * g.heads * g.hd + h * g.hd;
                let (ia, ib) = if neox {
                    (base_i + j, base_i + j + g.rd / 2)
                } else {
                    (base_i + 2 * j, base_i + 2 * j + 1)
                };
                let (va, vb) = (x[ia], x[ib]);
                y[ia] = va * c - vb * s;
                y[ib] = va * s + vb * c;
            }
        }
    }
    Ok(vec![out(
        a.get("x").map(|i| i.shape.clone()).unwrap_or_default(),
        y,
    )])
}
