//! The elementwise ops (add, mul, scale, activations, GLUs), kv_write, cpy and argmax.

use super::{ContractError, OpArgs, OpError, bad, out, rows_cols, shape};
use crate::launch::{DType, Tensor};
use crate::ops::Op;
use crate::ops::values::{fail, need};
use std::f64::consts::PI;

/// The second operand of a binary op, and of a GLU.
fn pair(op: Op) -> Option<(&'static str, &'static str)> {
    match op {
        Op::Add => Some(("x", "r")),
        Op::Mul => Some(("x", "y")),
        Op::Swiglu | Op::Geglu | Op::GegluErf => Some(("gate", "up")),
        _ => None,
    }
}

pub(super) fn geo(a: &OpArgs) -> Result<(), ContractError> {
    match a.op {
        Op::KvWrite => {
            let (k, v) = (shape(a, "k")?, shape(a, "v")?);
            if k != v {
                return Err(bad(a, format!("k {k:?} and v {v:?} differ")));
            }
        }
        Op::Argmax => {
            rows_cols(shape(a, "logits")?);
        }
        op => {
            if let Some((x, y)) = pair(op) {
                let (xs, ys) = (shape(a, x)?, shape(a, y)?);
                let glu = !matches!(op, Op::Add | Op::Mul);
                let row = rows_cols(xs).1;
                let fits = xs == ys || (!glu && ys.iter().product::<usize>() == row);
                if !fits {
                    return Err(bad(
                        a,
                        format!("`{y}` {ys:?} is neither `{x}`'s shape {xs:?} nor one row of it"),
                    ));
                }
            }
            if op == Op::Softcap && a.p("cap")? <= 0.0 {
                return Err(ContractError::BadParam {
                    op: a.op.name(),
                    param: "cap".into(),
                    what: "must be > 0".into(),
                });
            }
            if op == Op::Cpy {
                if let Some(&d) = a.output_dtypes.first() {
                    if !matches!(
                        d,
                        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::Q8_0
                    ) {
                        return Err(bad(a, format!("cannot judge a copy to {d}")));
                    }
                    if d == DType::Q8_0 && rows_cols(shape(a, "x")?).1 % 32 != 0 {
                        return Err(bad(a, "q8_0 rows must be whole blocks of 32"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::tanh((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)))
}

fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

fn silu(x: f64) -> f64 {
    x / (1.0 + libm::exp(-x))
}

pub(super) fn run(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    match a.op {
        Op::KvWrite => Ok(["k", "v"]
            .iter()
            .map(|r| {
                let t = a.get(r).and_then(|i| i.tensor.clone()).expect("checked");
                Tensor {
                    id: crate::launch::next_id(),
                    ..t
                }
            })
            .collect()),
        Op::Argmax => argmax(a),
        Op::Cpy => cpy(a),
        op => {
            if let Some((xr, yr)) = pair(op) {
                let (x, y) = (need(a, xr)?, need(a, yr)?);
                let f: fn(f64, f64) -> f64 = match op {
                    Op::Add => |x, y| x + y,
                    Op::Mul => |x, y| x * y,
                    Op::Swiglu => |g, u| silu(g) * u,
                    Op::Geglu => |g, u| gelu(g) * u,
                    _ => |g, u| gelu_erf(g) * u,
                };
                let v = x
                    .iter()
                    .enumerate()
                    .map(|(i, &xv)| f(xv, y[i % y.len()]))
                    .collect();
                return Ok(vec![out(a.get(xr).expect("checked").shape.clone(), v)]);
            }
            let x = need(a, "x")?;
            let v: Vec<f64> = match op {
                Op::Scale => {
                    let (s, b) = (a.p("scale")?, a.p("bias")?);
                    x.iter().map(|v| v * s + b).collect()
                }
                Op::Silu => x.iter().map(|&v| silu(v)).collect(),
                Op::Gelu => x.iter().map(|&v| gelu(v)).collect(),
                Op::GeluErf => x.iter().map(|&v| gelu_erf(v)).collect(),
                Op::Sigmoid => x.iter().map(|&v| 1.0 / (1.0 + libm::exp(-v))).collect(),
                Op::Tanh => x.iter().map(|&v| libm::tanh(v)).collect(),
                Op::Softcap => {
                    let c = a.p("cap")?;
                    x.iter().map(|&v| c * libm::tanh(v / c)).collect()
                }
                _ => return Err(fail(a, "no reference kernel")),
            };
            Ok(vec![out(a.get("x").expect("checked").shape.clone(), v)])
        }
    }
}

fn argmax(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let x = need(a, "logits")?;
    let (n, c) = rows_cols(&a.get("logits").expect("checked").shape);
    let ids = (0..n)
        .map(|i| {
            let row = &x[i * c..(i + 1) * c];
            let mut best = 0usize;
            for j in 1..c {
                if row[j] > row[best] || (row[best].is_nan() && !row[j].is_nan()) {
                    best = j;
                }
            }
            best as i32
        })
        .collect();
    Ok(vec![Tensor::i32(vec![n], ids)])
}

/// ggml's reference Q8_0 quantisation of one block (quantize_row_q8_0_ref), in f32 as it is defined:
/// d = max|x| / 127, q = round(x / d) (half away from zero), d stored as f16.
fn q8_0_block(x: &[f32], dst: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    dst.extend(half::f16::from_f32(d).to_bits().to_le_bytes());
    dst.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

fn cpy(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    let x = need(a, "x")?;
    let shape = a.get("x").expect("checked").shape.clone();
    let to = a.output_dtypes.first().copied().unwrap_or(DType::F32);
    let bytes: Vec<u8> = match to {
        DType::F64 => return Ok(vec![out(shape, x)]),
        DType::F32 => {
            return Ok(vec![Tensor::f32(
                shape,
                x.iter().map(|&v| v as f32).collect(),
            )]);
        }
        DType::F16 => x
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => x
            .iter()
            .flat_map(|&v| half::bf16::from_f64(v).to_bits().to_le_bytes())
            .collect(),
        DType::Q8_0 => {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut b = Vec::new();
            xf.chunks(32).for_each(|c| q8_0_block(c, &mut b));
            b
        }
        d => return Err(fail(a, format!("cannot judge a copy to {d}"))),
    };
    Ok(vec![Tensor::from_le_bytes(
        to,
        shape,
        bytes,
        crate::launch::Origin::Value,
    )])
}
