//! Input values as the reference computes on them: every float type widened to f64 exactly, GGUF block
//! formats dequantised by their definition (`model::quant`, bit-exact with gguf-py), ids as i32.

use super::{OpArgs, OpError};
use crate::launch::{DType, Tensor};
use crate::model::quant;

fn err(a: &OpArgs, what: impl Into<String>) -> OpError {
    OpError::Value {
        op: a.op.name(),
        what: what.into(),
    }
}

fn bytes<'a>(a: &OpArgs, role: &str, t: &'a Tensor) -> Result<std::borrow::Cow<'a, [u8]>, OpError> {
    t.to_host_bytes()
        .map_err(|e| err(a, format!("input `{role}`: {e}")))
}

/// The values of input `role` as f64 (None when the role was not given).
pub fn f64s(a: &OpArgs, role: &str) -> Result<Option<Vec<f64>>, OpError> {
    let Some(inp) = a.get(role) else {
        return Ok(None);
    };
    let t = inp
        .tensor
        .as_ref()
        .ok_or_else(|| err(a, format!("input `{role}` has no values")))?;
    let n: usize = t.shape.iter().product();
    if let Some(v) = t.as_f64() {
        return Ok(Some(v.to_vec()));
    }
    if let Some(v) = t.as_f32() {
        return Ok(Some(v.iter().map(|&x| x as f64).collect()));
    }
    let b = bytes(a, role, t)?;
    let want = t.dtype.bytes_for(n);
    if want != Some(b.len()) {
        return Err(err(
            a,
            format!(
                "input `{role}`: {} bytes for {n} {} values",
                b.len(),
                t.dtype
            ),
        ));
    }
    let v = match t.dtype {
        DType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        DType::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| quant::f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16) as f64)
            .collect(),
        DType::I32 => return Err(err(a, format!("input `{role}` is i32, expected values"))),
        d => quant::dequantize_to_vec(d, &b, n)
            .map_err(|e| err(a, format!("input `{role}`: {e}")))?
            .into_iter()
            .map(f64::from)
            .collect(),
    };
    Ok(Some(v))
}

/// The values of a required float input.
pub fn need(a: &OpArgs, role: &str) -> Result<Vec<f64>, OpError> {
    f64s(a, role)?.ok_or_else(|| err(a, format!("missing input `{role}`")))
}

/// The ids of input `role` (None when not given).
pub fn ids(a: &OpArgs, role: &str) -> Result<Option<Vec<i32>>, OpError> {
    let Some(inp) = a.get(role) else {
        return Ok(None);
    };
    let t = inp
        .tensor
        .as_ref()
        .ok_or_else(|| err(a, format!("input `{role}` has no values")))?;
    if let Some(v) = t.as_i32() {
        return Ok(Some(v.to_vec()));
    }
    let b = bytes(a, role, t)?;
    if t.dtype != DType::I32 || b.len() % 4 != 0 {
        return Err(err(a, format!("input `{role}` is not i32")));
    }
    Ok(Some(
        b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}

/// A row index from an id, checked against the table's rows.
pub fn row(a: &OpArgs, id: i32, rows: usize) -> Result<usize, OpError> {
    usize::try_from(id)
        .ok()
        .filter(|&r| r < rows)
        .ok_or_else(|| err(a, format!("id {id} is outside 0..{rows}")))
}

/// A value error of op `a`.
pub fn fail(a: &OpArgs, what: impl Into<String>) -> OpError {
    err(a, what)
}
