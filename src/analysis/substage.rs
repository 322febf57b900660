//! Sub-stages of fused attention launches: `qk`, `softmax` and `pv` derived from a fused `attn` launch's
//! recorded inputs.
//!
//! Decode runs fused attention (one `attn` launch), so a decode tape has no `qk`, `softmax` or `pv`
//! launch — yet those are exactly what an engine team compares. A fused launch records `q`, `K` and `V`
//! and its params, so greta runs the manual route (qk → softmax → pv, docs/STAGES.md) on those inputs,
//! on the replay backend, and reports each sub-stage next to the fused output. Everything reported this
//! way says route `fused→manual`: derived from the fused launch's inputs, not recorded.
//!
//! Each sub-stage's local error (`--reference f64`) is the f64 CPU reference of that sub-stage on the same
//! inputs the derived sub-stage had: qk on the recorded q, K; softmax on the derived scores; pv on the
//! derived probabilities and the recorded V.
//!
//! In analysis/ because replay (`--stage qk`), diff (`--substages`, `--stage` on fused tapes) and the
//! CLI's `show`/`export --substages` all derive the same sub-stages; none of them may import another
//! (docs/ARCHITECTURE.md).

use super::exec::ReplayError;
use super::{Compare, compare};
use crate::backend::{Backend, BackendError};
use crate::launch::{Origin, Params, Precision, Route, Stage, Tensor, Variant};
use crate::tape::Launch;

/// What a derived row says about where its values came from.
pub const DERIVED_ROUTE: &str = "fused→manual";

/// True for the stages that can be derived from a fused `attn` launch.
pub fn is_substage(s: Stage) -> bool {
    matches!(s, Stage::Qk | Stage::Softmax | Stage::Pv)
}

/// Whether a launch of `recorded` stage answers a selection of `wanted`: itself, or a sub-stage derived
/// from a fused attention launch. Returns the derived sub-stage in the second case.
pub fn selects(recorded: Stage, wanted: Stage) -> Option<Option<Stage>> {
    if recorded == wanted {
        Some(None)
    } else if recorded == Stage::Attn && is_substage(wanted) {
        Some(Some(wanted))
    } else {
        None
    }
}

/// The three sub-stages of one fused launch.
pub struct Derived {
    /// Scores `[H, n, ctx]`.
    pub qk: Tensor,
    /// Probabilities `[H, n, ctx]`.
    pub softmax: Tensor,
    /// Attention output `[n, H*hd]`.
    pub pv: Tensor,
}

impl Derived {
    /// The tensor of sub-stage `s`.
    pub fn get(&self, s: Stage) -> Option<&Tensor> {
        match s {
            Stage::Qk => Some(&self.qk),
            Stage::Softmax => Some(&self.softmax),
            Stage::Pv => Some(&self.pv),
            _ => None,
        }
    }
}

/// The params the manual route runs with: the fused launch's, without its key block.
pub fn manual_params(p: &Params) -> Params {
    Params { kv_block: 0, ..*p }
}

/// Runs one manual-route stage and brings its single output to the host.
fn run(
    seq: u64,
    backend: &dyn Backend,
    stage: Stage,
    precision: Precision,
    params: &Params,
    inputs: &[&Tensor],
) -> Result<Tensor, ReplayError> {
    let adapted: Vec<Tensor> = inputs
        .iter()
        .map(|t| super::exec::adapt(t, precision))
        .collect();
    let refs: Vec<&Tensor> = adapted.iter().collect();
    let route = Route::new(Variant::Manual, precision);
    let outs = backend
        .execute(stage, route, params, &refs)
        .map_err(|source| ReplayError::Backend { seq, source })?;
    let t = outs.into_iter().next().ok_or(ReplayError::Backend {
        seq,
        source: BackendError::Device(format!("{stage}: no output")),
    })?;
    let bytes = t.to_host_bytes().map_err(|e| ReplayError::Backend {
        seq,
        source: BackendError::Device(e),
    })?;
    Ok(Tensor::from_le_bytes(
        t.dtype,
        t.shape.clone(),
        bytes.into_owned(),
        Origin::Value,
    ))
}

fn not_fused(l: &Launch) -> ReplayError {
    ReplayError::Backend {
        seq: l.begin.seq,
        source: BackendError::Device(format!(
            "sub-stages are derived from fused attn launches; launch {} is {}",
            l.begin.seq, l.begin.stage
        )),
    }
}

/// Derives qk, softmax and pv from fused launch `l`'s recorded inputs `ins` (q, K, V) on `backend` at
/// `precision`.
pub fn derive(
    l: &Launch,
    ins: &[Tensor],
    backend: &dyn Backend,
    precision: Precision,
) -> Result<Derived, ReplayError> {
    let [q, k, v] = ins else {
        return Err(not_fused(l));
    };
    if l.begin.stage != Stage::Attn {
        return Err(not_fused(l));
    }
    let p = manual_params(&l.begin.params);
    let seq = l.begin.seq;
    let qk = run(seq, backend, Stage::Qk, precision, &p, &[q, k])?;
    let softmax = run(seq, backend, Stage::Softmax, precision, &p, &[&qk])?;
    let pv = run(seq, backend, Stage::Pv, precision, &p, &[&softmax, v])?;
    Ok(Derived { qk, softmax, pv })
}

/// The f64 reference (the ops' plain maths, [`super::reference`]) of sub-stage `s` on the inputs the
/// derived sub-stage had.
pub fn reference(l: &Launch, ins: &[Tensor], d: &Derived, s: Stage) -> Result<Tensor, ReplayError> {
    let [q, k, v] = ins else {
        return Err(not_fused(l));
    };
    let p = manual_params(&l.begin.params);
    let seq = l.begin.seq;
    let of = super::reference::of_stage;
    match s {
        Stage::Qk => of(seq, Stage::Qk, &p, &[("q", q), ("k_cache", k)]),
        Stage::Softmax => of(seq, Stage::Softmax, &p, &[("scores", &d.qk)]),
        Stage::Pv => of(seq, Stage::Pv, &p, &[("probs", &d.softmax), ("v_cache", v)]),
        _ => Err(not_fused(l)),
    }
}

/// Compares two host tensors (ULPs in `a`'s format).
pub fn compare_tensors(a: &Tensor, b: &Tensor) -> Compare {
    let bytes = |t: &Tensor| {
        t.host_bytes()
            .map(|b| b.as_slice().to_vec())
            .unwrap_or_default()
    };
    let shape: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
    compare(a.dtype, &bytes(a), b.dtype, &bytes(b), &shape)
}
