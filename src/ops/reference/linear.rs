//! mul_mat, mul_mat_id, get_rows: sums in index order, in f64, over weights dequantised by definition.

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::Tensor;
use crate::ops::values::{f64s, ids, need, row};

pub(super) struct Mm {
    n: usize,
    k: usize,
    m: usize,
    out_shape: Vec<usize>,
}

pub(super) fn mul_mat_geo(a: &OpArgs) -> Result<Mm, ContractError> {
    let xs = shape(a, "x")?;
    let ws = shape(a, "w")?;
    let (n, k) = rows_cols(xs);
    let [m, wk] = ws[..] else {
        return Err(bad(a, format!("w has shape {ws:?}, expected [m, k]")));
    };
    if wk != k {
        return Err(bad(
            a,
            format!("x has {k} columns but w {ws:?} has rows of {wk}"),
        ));
    }
    if let Some(b) = a.get("b") {
        if b.shape.iter().product::<usize>() != m {
            return Err(bad(a, format!("b has shape {:?}, expected [{m}]", b.shape)));
        }
    }
    let mut out_shape = xs[..xs.len().saturating_sub(1)].to_vec();
    out_shape.push(m);
    Ok(Mm { n, k, m, out_shape })
}

pub(super) fn mul_mat(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = mul_mat_geo(a)?;
    let x = need(a, "x")?;
    let w = need(a, "w")?;
    let b = f64s(a, "b")?;
    let mut y = vec![0.0; g.n * g.m];
    for i in 0..g.n {
        for o in 0..g.m {
            let mut s = 0.0;
            for j in 0..g.k {
                s += x[i * g.k + j] * w[o * g.k + j];
            }
            if let Some(b) = &b {
                s += b[o];
            }
            y[i * g.m + o] = s;
        }
    }
    Ok(vec![out(g.out_shape, y)])
}

pub(super) struct MmId {
    n: usize,
    k: usize,
    m: usize,
    e: usize,
    t: usize,
}

pub(super) fn mul_mat_id_geo(a: &OpArgs) -> Result<MmId, ContractError> {
    let (n, k) = rows_cols(shape(a, "x")?);
    let ws = shape(a, "w")?;
    let [e, m, wk] = ws[..] else {
        return Err(bad(a, format!("w has shape {ws:?}, expected [E, m, k]")));
    };
    let is = shape(a, "ids")?;
    let (ni, t) = rows_cols(is);
    if wk != k || ni != n {
        return Err(bad(
            a,
            format!("x [{n}, {k}], w {ws:?} and ids {is:?} do not fit"),
        ));
    }
    Ok(MmId { n, k, m, e, t })
}

pub(super) fn mul_mat_id(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let g = mul_mat_id_geo(a)?;
    let x = need(a, "x")?;
    let w = need(a, "w")?;
    let ids = ids(a, "ids")?.unwrap_or_default();
    let mut y = vec![0.0; g.n * g.t * g.m];
    for i in 0..g.n {
        for s in 0..g.t {
            let ex = row(a, ids[i * g.t + s], g.e)?;
            for o in 0..g.m {
                let mut acc = 0.0;
                for j in 0..g.k {
                    acc += x[i * g.k + j] * w[(ex * g.m + o) * g.k + j];
                }
                y[(i * g.t + s) * g.m + o] = acc;
            }
        }
    }
    Ok(vec![out(vec![g.n, g.t, g.m], y)])
}

pub(super) fn get_rows_geo(a: &OpArgs) -> Result<(usize, usize, usize), ContractError> {
    let n: usize = shape(a, "ids")?.iter().product();
    let ts = shape(a, "table")?;
    let [v, d] = ts[..] else {
        return Err(bad(a, format!("table has shape {ts:?}, expected [V, d]")));
    };
    Ok((n, v, d))
}

pub(super) fn get_rows(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let (n, v, d) = get_rows_geo(a)?;
    let ids = ids(a, "ids")?.unwrap_or_default();
    let table = need(a, "table")?;
    let scale = a.p("scale")?;
    let mut y = Vec::with_capacity(n * d);
    for &id in &ids {
        let r = row(a, id, v)?;
        y.extend(table[r * d..(r + 1) * d].iter().map(|&t| t * scale));
    }
    Ok(vec![out(vec![n, d], y)])
}
