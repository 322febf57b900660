//! rms_norm and norm (layer norm), per row, in f64.

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::Tensor;
use crate::ops::Op;
use crate::ops::values::{f64s, need};

pub(super) fn geo(a: &OpArgs) -> Result<(usize, usize), ContractError> {
    let (n, d) = rows_cols(shape(a, "x")?);
    for r in ["w", "b"] {
        if let Some(i) = a.get(r) {
            if i.shape.iter().product::<usize>() != d {
                return Err(bad(
                    a,
                    format!("`{r}` has shape {:?}, expected [{d}]", i.shape),
                ));
            }
        }
    }
    Ok((n, d))
}

pub(super) fn rms_norm(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    normalise(a)
}

pub(super) fn norm(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    normalise(a)
}

fn normalise(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let (n, d) = geo(a)?;
    let x = need(a, "x")?;
    let w = f64s(a, "w")?;
    let b = f64s(a, "b")?;
    let eps = a.p("eps")?;
    let mut y = vec![0.0; n * d];
    for i in 0..n {
        let r = &x[i * d..(i + 1) * d];
        let mean = if a.op == Op::Norm {
            r.iter().sum::<f64>() / d as f64
        } else {
            0.0
        };
        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..d {
            let mut v = (r[j] - mean) * inv;
            if let Some(w) = &w {
                v *= w[j];
            }
            if let Some(b) = &b {
                v += b[j];
            }
            y[i * d + j] = v;
        }
    }
    Ok(vec![out(
        a.get("x").map(|i| i.shape.clone()).unwrap_or_default(),
        y,
    )])
}
