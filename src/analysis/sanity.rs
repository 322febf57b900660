//! Does a recorded launch make sense before anything is run or written from it? A tape whose checksums
//! all pass can still lie (issue 14: rewritten through greta's own writer): a tensor whose shape and
//! dtype disagree with its byte length, or inputs no backend would accept for the stage. `verify` lists
//! these; `replay` and `export` refuse such a launch (exit 2) instead of panicking in a kernel or
//! writing an .npy whose header claims bytes it does not hold.
//!
//! In analysis/ because replay (refuses), inspect (`verify` lists) and the CLI (`show`, `export`) all ask
//! the same question; none of them may import another (docs/ARCHITECTURE.md).

use crate::backend::contract;
use crate::launch::{Bytes, Origin, Tensor};
use crate::tape::{Launch, TapeReader, TensorRef};
use std::sync::Arc;

/// A tensor with `r`'s dtype and shape and no bytes: enough for the shape-only contract checks.
fn shape_only(r: &TensorRef) -> Tensor {
    Tensor::host(
        r.dtype,
        r.shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect(),
        Bytes::Raw(Arc::new(Vec::new())),
        Origin::Value,
    )
}

/// Everything that is wrong with `l`'s tensor layouts and stage contract (empty: nothing found).
pub fn launch_problems(l: &Launch) -> Vec<String> {
    let b = &l.begin;
    let outs = l.end.as_ref().map(|e| e.outputs.as_slice()).unwrap_or(&[]);
    let mut problems: Vec<String> = b
        .inputs
        .iter()
        .chain(outs)
        .filter_map(TensorRef::layout_problem)
        .collect();
    // Another engine's launch names a greta stage to be judged by it, but its tensors are its own: a
    // launch that does not fit greta's contract is not damage, it only has no reference (replay says so).
    if problems.is_empty() && b.foreign.is_none() {
        problems.extend(contract_problem(l));
    }
    problems
}

/// Why `l`'s inputs do not fit its stage's contract (None: they do, as far as shapes tell).
///
/// A foreign launch that names its op (`rope` with its positions, `pv` over a padded cache, a `cpy` that
/// yields the attention output) answers to that op's contract (docs/OPS.md), which capture enforced and
/// the f64 reference checks again, not to the contract of greta's kernels for the stage it sits at.
pub fn contract_problem(l: &Launch) -> Option<String> {
    let b = &l.begin;
    if b.foreign.as_ref().is_some_and(|f| f.op.is_some()) {
        return None;
    }
    let ts: Vec<Tensor> = b.inputs.iter().map(shape_only).collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    contract::check_launch(b.stage, &b.params, &refs)
        .err()
        .map(|e| format!("stage contract: {e}"))
}

/// The most tensors one launch may record on each side (inputs, outputs). greta's stages take at most
/// 4 inputs and write at most 2 outputs, and the engines captured so far stay under 16; `export` writes
/// a file per tensor (issue 21: a launch with 100,000 outputs verified clean, and export wrote 100,003
/// files).
pub const MAX_TENSORS_PER_LAUNCH: usize = 256;

/// Whether `l`'s tensor references can be followed without damage showing, checked the way `verify`
/// checks them but for one launch and without decoding tensor bytes (issue 21: `replay --seq` called
/// launches bit-exact whose outputs could not be read, because it then compared hashes only): no more
/// than [`MAX_TENSORS_PER_LAUNCH`] tensors a side; a reference to a producer only to an earlier launch
/// (a reference to itself or a later launch is a loop); chunks that hold exactly the bytes the tensor
/// claims (frame headers only). Empty: nothing found.
pub fn reference_problems(t: &TapeReader, l: &Launch) -> Vec<String> {
    use crate::tape::Storage;
    let b = &l.begin;
    let outs = l.end.as_ref().map(|e| e.outputs.as_slice()).unwrap_or(&[]);
    let mut problems = Vec::new();
    for (side, n) in [("inputs", b.inputs.len()), ("outputs", outs.len())] {
        if n > MAX_TENSORS_PER_LAUNCH {
            problems.push(format!(
                "{n} {side}, more than a launch may have ({MAX_TENSORS_PER_LAUNCH})"
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let earlier = |seq: u64, r: &TensorRef| {
        (seq >= b.seq).then(|| {
            format!(
                "`{}` refers to launch {seq}, not an earlier one (a reference loop)",
                r.role
            )
        })
    };
    for r in b.inputs.iter().chain(outs) {
        let p = match &r.storage {
            Storage::Producer { seq, .. } => earlier(*seq, r),
            Storage::Rows(spans) => spans.iter().find_map(|s| earlier(s.seq, r)),
            Storage::Chunks(hs) => chunk_problem(t, r, hs),
            Storage::Weight { .. } | Storage::HashOnly => None,
        };
        problems.extend(p);
    }
    problems
}

/// Why chunks `hs` cannot hold `r`'s bytes: a chunk missing, or lengths that do not add up to `r.len`.
fn chunk_problem(t: &TapeReader, r: &TensorRef, hs: &[crate::tape::Hash]) -> Option<String> {
    let mut total = 0u64;
    for h in hs {
        match t.chunk_len(h) {
            Ok(Some(n)) => total = total.saturating_add(n),
            Ok(None) => return Some(format!("`{}`: a chunk is not on the tape", r.role)),
            Err(e) => return Some(format!("`{}`: {e}", r.role)),
        }
        if total > r.len {
            break;
        }
    }
    (total != r.len).then(|| {
        format!(
            "`{}` claims {} bytes but its {} chunks hold {}{total}",
            r.role,
            r.len,
            hs.len(),
            if total > r.len { "more than " } else { "" }
        )
    })
}
