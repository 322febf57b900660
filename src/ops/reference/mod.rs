//! The f64 reference kernel of every op: the textbook formula in the plainest loop, on f64 values
//! (inputs widened exactly; weights dequantised by their format's definition). Nothing here is shared
//! with a route: no online softmax, no key blocks, no lanes, no fused shortcut — a reference that repeats
//! a route's algorithm repeats its bugs (issue 28). Speed is the routes' job; these run once per judged
//! launch, single-threaded.
//!
//! Each file also holds its ops' geometry (how the shapes must fit), which the contract check
//! ([`super::check`]) runs before anything is computed.

mod attention;
mod linear;
mod moe;
mod norm;
mod pointwise;
mod rope;

use super::contract::ContractError;
use super::{Op, OpArgs, OpError};
use crate::launch::Tensor;

/// The f64 reference outputs of `a` (after its contract check): f64 values, i32 ids, or for
/// [`Op::Cpy`] the target type's bytes.
pub fn reference(a: &OpArgs) -> Result<Vec<Tensor>, OpError> {
    super::check(a)?;
    match a.op {
        Op::MulMat => linear::mul_mat(a),
        Op::MulMatId => linear::mul_mat_id(a),
        Op::GetRows => linear::get_rows(a),
        Op::RmsNorm => norm::rms_norm(a),
        Op::Norm => norm::norm(a),
        Op::Rope => rope::rope(a),
        Op::Scores => attention::scores(a),
        Op::Softmax => attention::softmax(a),
        Op::Pv => attention::pv(a),
        Op::Attention => attention::attention(a),
        Op::MoeRoute => moe::route(a),
        _ => pointwise::run(a),
    }
}

/// The shape part of the contract check.
pub(super) fn shapes(a: &OpArgs) -> Result<(), ContractError> {
    match a.op {
        Op::MulMat => linear::mul_mat_geo(a).map(drop),
        Op::MulMatId => linear::mul_mat_id_geo(a).map(drop),
        Op::GetRows => linear::get_rows_geo(a).map(drop),
        Op::RmsNorm | Op::Norm => norm::geo(a).map(drop),
        Op::Rope => rope::geo(a).map(drop),
        Op::Scores | Op::Pv | Op::Attention => attention::geo(a).map(drop),
        Op::Softmax => attention::softmax_geo(a).map(drop),
        Op::MoeRoute => moe::geo(a).map(drop),
        _ => pointwise::geo(a),
    }
}

/// The shape of input `role` (the contract check has made sure required ones exist).
fn shape<'a>(a: &'a OpArgs, role: &str) -> Result<&'a [usize], ContractError> {
    a.get(role)
        .map(|i| i.shape.as_slice())
        .ok_or_else(|| bad(a, format!("missing input `{role}`")))
}

/// (rows, last dimension) of a shape; a scalar is one row of one.
fn rows_cols(s: &[usize]) -> (usize, usize) {
    match s.split_last() {
        Some((&c, rest)) => (rest.iter().product(), c),
        None => (1, 1),
    }
}

fn bad(a: &OpArgs, what: impl Into<String>) -> ContractError {
    ContractError::Shape {
        op: a.op.name(),
        what: what.into(),
    }
}

/// An f64 output.
fn out(shape: Vec<usize>, v: Vec<f64>) -> Tensor {
    Tensor::f64(shape, v)
}

#[cfg(test)]
mod tests;
