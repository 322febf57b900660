//! Attention, straight: scores for every key a row sees, one softmax over all of them, a weighted sum —
//! no key blocks, no online softmax, no rescaled merges (the fused routes' algorithm, which this judges).
//! Masks: causal (query row i is at position pos + i and sees keys 0 ..= pos + i) and a sliding window
//! (only the last `window` of those). Grouped-query: query head h reads kv head h / (n_heads / n_kv_heads).

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::Tensor;
use crate::ops::Op;
use crate::ops::values::{f64s, need};

pub(super) struct Geo {
    n: usize,
    ctx: usize,
    h: usize,
    hk: usize,
    hd: usize,
    pos: usize,
    window: usize,
}

impl Geo {
    /// The keys query row i sees.
    fn keys(&self, i: usize) -> std::ops::Range<usize> {
        let p = self.pos + i;
        let first = if self.window > 0 {
            (p + 1).saturating_sub(self.window)
        } else {
            0
        };
        first..p + 1
    }
}

pub(super) fn geo(a: &OpArgs) -> Result<Geo, ContractError> {
    let h = a.count("n_heads", 1 << 16)?;
    let hk = a.count("n_kv_heads", 1 << 16)?;
    let hd = a.count("head_dim", 1 << 20)?;
    let pos = a.count("pos", u32::MAX as usize)?;
    let window = if a.op == Op::Pv {
        0
    } else {
        a.count("window", u32::MAX as usize)?
    };
    if h == 0 || hk == 0 || h % hk != 0 {
        return Err(bad(
            a,
            format!("n_heads {h} is not a whole multiple of n_kv_heads {hk}"),
        ));
    }
    let kv_role = if a.op == Op::Pv { "v_cache" } else { "k_cache" };
    let (ctx, kvw) = rows_cols(shape(a, kv_role)?);
    if kvw != hk * hd {
        return Err(bad(
            a,
            format!("{kv_role} rows hold {kvw} values, not n_kv_heads {hk} × head_dim {hd}"),
        ));
    }
    let n = if a.op == Op::Pv {
        let ps = shape(a, "probs")?;
        match ps[..] {
            [ph, n, pc] if ph == h && pc == ctx => n,
            _ => {
                return Err(bad(
                    a,
                    format!("probs has shape {ps:?}, expected [{h}, n, {ctx}]"),
                ));
            }
        }
    } else {
        let (n, qw) = rows_cols(shape(a, "q")?);
        if qw != h * hd {
            return Err(bad(
                a,
                format!("q rows hold {qw} values, not n_heads {h} × head_dim {hd}"),
            ));
        }
        n
    };
    if a.op == Op::Attention {
        let vs = shape(a, "v_cache")?;
        if rows_cols(vs) != (ctx, kvw) {
            return Err(bad(
                a,
                format!("v_cache has shape {vs:?}, k_cache [{ctx}, {kvw}]"),
            ));
        }
        if let Some(s) = a.get("sinks") {
            if s.shape.iter().product::<usize>() != h {
                return Err(bad(
                    a,
                    format!("sinks has shape {:?}, expected [{h}]", s.shape),
                ));
            }
        }
    }
    if pos.checked_add(n).is_none_or(|end| end > ctx) {
        return Err(bad(
            a,
            format!(
                "rows at positions {pos}..{pos}+{n} need {} keys, the cache has {ctx}",
                pos.saturating_add(n)
            ),
        ));
    }
    Ok(Geo {
        n,
        ctx,
        h,
        hk,
        hd,
        pos,
        window,
    })
}

/// Scaled, soft-capped scores of row i, head h, over all ctx keys (−inf where the row does not see).
fn score_row(g: &Geo, q: &[f64], k: &[f64], i: usize, h: usize, scale: f64, cap: f64) -> Vec<f64> {
    let kh = h / (g.h / g.hk);
    let qv = &q[(i * g.h + h) * g.hd..][..g.hd];
    let mut s = vec![f64::NEG_INFINITY; g.ctx];
    for j in g.keys(i) {
        let kv = &k[(j * g.hk + kh) * g.hd..][..g.hd];
        let mut d = 0.0;
        for t in 0..g.hd {
            d += qv[t] * kv[t];
        }
        let mut v = d * scale;
        if cap > 0.0 {
            v = cap * libm::tanh(v / cap);
        }
        s[j] = v;
    }
    s
}

/// exp(s − max) / Σ exp(s − max), with −inf giving 0 and `sink` (a logit) only in the denominator.
fn softmax_row(s: &[f64], sink: Option<f64>) -> Vec<f64> {
    let m = s
        .iter()
        .copied()
        .chain(sink)
        .fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return vec![0.0; s.len()];
    }
    let e: Vec<f64> = s.iter().map(|&v| libm::exp(v - m)).collect();
    let total: f64 = e.iter().sum::<f64>() + sink.map_or(0.0, |k| libm::exp(k - m));
    e.iter().map(|v| v / total).collect()
}

/// Σ_j p[j]·v[j, kvh(h)] over the keys row i sees.
fn weighted(g: &Geo, p: &[f64], v: &[f64], i: usize, h: usize, out: &mut [f64]) {
    let kh = h / (g.h / g.hk);
    for j in g.keys(i) {
        let vv = &v[(j * g.hk + kh) * g.hd..][..g.hd];
        for t in 0..g.hd {
            out[t] += p[j] * vv[t];
        }
    }
}

pub(super) fn scores(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = geo(a)?;
    let (q, k) = (need(a, "q")?, need(a, "k_cache")?);
    let (scale, cap) = (a.p("scale")?, a.p("softcap")?);
    let mut y = Vec::with_capacity(g.h * g.n * g.ctx);
    for h in 0..g.h {
        for i in 0..g.n {
            y.extend(score_row(&g, &q, &k, i, h, scale, cap));
        }
    }
    Ok(vec![out(vec![g.h, g.n, g.ctx], y)])
}

pub(super) fn pv(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = geo(a)?;
    let (p, v) = (need(a, "probs")?, need(a, "v_cache")?);
    let mut y = vec![0.0; g.n * g.h * g.hd];
    for i in 0..g.n {
        for h in 0..g.h {
            let row = &p[(h * g.n + i) * g.ctx..][..g.ctx];
            weighted(&g, row, &v, i, h, &mut y[(i * g.h + h) * g.hd..][..g.hd]);
        }
    }
    Ok(vec![out(vec![g.n, g.h * g.hd], y)])
}

pub(super) fn attention(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = geo(a)?;
    let (q, k, v) = (need(a, "q")?, need(a, "k_cache")?, need(a, "v_cache")?);
    let sinks = f64s(a, "sinks")?;
    let (scale, cap) = (a.p("scale")?, a.p("softcap")?);
    let mut y = vec![0.0; g.n * g.h * g.hd];
    for i in 0..g.n {
        for h in 0..g.h {
            let s = score_row(&g, &q, &k, i, h, scale, cap);
            let p = softmax_row(&s, sinks.as_ref().map(|k| k[h]));
            weighted(&g, &p, &v, i, h, &mut y[(i * g.h + h) * g.hd..][..g.hd]);
        }
    }
    Ok(vec![out(vec![g.n, g.h * g.hd], y)])
}

pub(super) fn softmax_geo(a: &OpArgs) -> Result<(usize, usize), ContractError> {
    let (n, c) = rows_cols(shape(a, "scores")?);
    if let Some(m) = a.get("mask") {
        let (mr, mc) = rows_cols(&m.shape);
        if mc != c || mr == 0 || n % mr != 0 {
            return Err(bad(
                a,
                format!(
                    "mask has shape {:?}; its rows must have {c} values and divide {n} rows",
                    m.shape
                ),
            ));
        }
    }
    Ok((n, c))
}

pub(super) fn softmax(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let (n, c) = softmax_geo(a)?;
    let x = need(a, "scores")?;
    let mask = f64s(a, "mask")?;
    let scale = a.p("scale")?;
    let mut y = Vec::with_capacity(n * c);
    for i in 0..n {
        let row: Vec<f64> = (0..c)
            .map(|j| {
                let m = mask
                    .as_ref()
                    .map_or(0.0, |m| m[(i % (m.len() / c)) * c + j]);
                x[i * c + j] * scale + m
            })
            .collect();
        y.extend(softmax_row(&row, None));
    }
    Ok(vec![out(
        a.get("scores").map(|i| i.shape.clone()).unwrap_or_default(),
        y,
    )])
}
