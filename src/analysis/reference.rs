//! The f64 reference of a recorded launch: its op ([`crate::ops`], from its stage) computed on its exact
//! recorded inputs by the op's plain-maths kernel. This is the "local" column of `replay --reference f64`
//! and of the sub-stage and plugin reports: a launch's own error, with what it inherited taken out.
//!
//! It never runs a backend route (before issue 28 it ran the launch's own route in f64, so a fused
//! attention that skipped a key row was "confirmed" by a reference running the same fused code).

use super::exec::ReplayError;
use crate::launch::{Params, Stage, Tensor};
use crate::ops::{self, Op, OpArgs};
use crate::tape::Launch;

/// The op call of launch `l` on `inputs` (its recorded inputs, in order).
pub fn op_args(l: &Launch, inputs: &[Tensor]) -> Result<OpArgs, ReplayError> {
    let b = &l.begin;
    let mut a = ops::stages::op_args(b.stage, &b.params, b.foreign.as_ref())
        .ok_or_else(|| ReplayError::NoReference(b.stage_name().to_string()))?;
    for (r, t) in b.inputs.iter().zip(inputs) {
        a.input(
            &r.role,
            ops::stages::op_input(b.stage, &b.params, &r.role, t.clone()),
        );
    }
    if let Some(e) = &l.end {
        a.output_dtypes = e.outputs.iter().map(|o| o.dtype).collect();
    }
    Ok(a)
}

/// The f64 reference outputs of launch `l` on its recorded `inputs`.
pub fn reference(l: &Launch, inputs: &[Tensor]) -> Result<Vec<Tensor>, ReplayError> {
    let a = op_args(l, inputs)?;
    let mut out = ops::reference(&a).map_err(|source| ReplayError::Reference {
        seq: l.begin.seq,
        source,
    })?;
    // The op's view may be another shape of the same elements (q_norm's `[n·heads, head_dim]`): the
    // reference is reported in the launch's own shapes.
    if let Some(e) = &l.end {
        for (t, o) in out.iter_mut().zip(&e.outputs) {
            let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
            if shape.iter().product::<usize>() == t.numel() {
                t.shape = shape;
            }
        }
    }
    Ok(out)
}

/// The f64 reference of one stage with greta's params on `inputs` given by role (the sub-stages of a
/// fused attention launch: scores, softmax, pv on the inputs the derived sub-stage had).
pub fn of_stage(
    seq: u64,
    stage: Stage,
    params: &Params,
    inputs: &[(&str, &Tensor)],
) -> Result<Tensor, ReplayError> {
    let mut a = ops::stages::op_args(stage, params, None)
        .ok_or_else(|| ReplayError::NoReference(stage.name().to_string()))?;
    for (r, t) in inputs {
        a.input(r, ops::stages::op_input(stage, params, r, (*t).clone()));
    }
    let mut out = ops::reference(&a).map_err(|source| ReplayError::Reference { seq, source })?;
    Ok(out.remove(0))
}

/// The op a launch of `stage` computes, for reports (None: greta does not know it).
pub fn op_of(stage: Stage) -> Option<Op> {
    ops::stages::op_of(stage)
}
