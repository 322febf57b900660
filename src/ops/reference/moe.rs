//! moe_route: the router of a mixture-of-experts layer. Gating probabilities (softmax over the experts,
//! or a sigmoid each), the top_k experts by probability (ties: the lower expert id first), their
//! weights (renormalised to sum 1 when `norm` is 1), times `weight_scale`.

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::Tensor;
use crate::ops::values::need;

pub(super) fn geo(a: &OpArgs) -> Result<(usize, usize, usize), ContractError> {
    let (n, e) = rows_cols(shape(a, "logits")?);
    let k = a.count("top_k", 1 << 16)?;
    if k == 0 || k > e {
        return Err(bad(a, format!("top_k {k} is not in 1..={e} experts")));
    }
    Ok((n, e, k))
}

pub(super) fn route(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let (n, e, k) = geo(a)?;
    let x = need(a, "logits")?;
    let sigmoid = a.p("gating")? == 1.0;
    let (norm, ws) = (a.p("norm")? == 1.0, a.p("weight_scale")?);
    let (mut ids, mut weights) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    for i in 0..n {
        let row = &x[i * e..(i + 1) * e];
        let p: Vec<f64> = if sigmoid {
            row.iter().map(|&v| 1.0 / (1.0 + libm::exp(-v))).collect()
        } else {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ex: Vec<f64> = row.iter().map(|&v| libm::exp(v - m)).collect();
            let s: f64 = ex.iter().sum();
            ex.iter().map(|v| v / s).collect()
        };
        let mut order: Vec<usize> = (0..e).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let chosen = &order[..k];
        let total: f64 = chosen.iter().map(|&j| p[j]).sum();
        for &j in chosen {
            ids.push(j as i32);
            weights.push(if norm { p[j] / total } else { p[j] } * ws);
        }
    }
    Ok(vec![Tensor::i32(vec![n, k], ids), out(vec![n, k], weights)])
}
