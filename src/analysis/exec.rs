//! Re-executing one recorded launch: resolve its inputs, adapt them to the route's precision, run the
//! kernel on a backend, compare with what was recorded.
//!
//! Lives in analysis/ (not replay/) because `greta replay` is not its only user: the prefill-vs-decode
//! diff and `show`/`export --substages` resolve a launch's inputs and run sub-stages through the same
//! code, and diff must not import replay (docs/ARCHITECTURE.md).

use super::{Compare, compare};
use super::{Source, SourceError};
use crate::backend::{Backend, BackendError};
use crate::launch::{DType, Origin, Precision, Route, RoutePolicy, Stage, Tensor, Variant};
use crate::tape::{Launch, Storage};

/// Replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input could not be resolved.
    #[error("launch {seq}: input `{role}`: {source}")]
    Input {
        /// Launch.
        seq: u64,
        /// Input role.
        role: String,
        /// Why.
        source: Box<SourceError>,
    },
    /// The kernel failed.
    #[error("launch {seq}: {source}")]
    Backend {
        /// Launch.
        seq: u64,
        /// Why.
        source: BackendError,
    },
    /// The f64 reference refused the launch (its op's contract) or could not compute it.
    #[error("launch {seq}: f64 reference: {source}")]
    Reference {
        /// Launch.
        seq: u64,
        /// Why.
        source: crate::ops::OpError,
    },
    /// A stage greta does not know (recorded by another engine): no kernel, no reference.
    #[error(
        "no reference for `{0}`: greta has no kernel for this stage (it is kept, listed and diffed by hash)"
    )]
    NoReference(String),
    /// An input's bytes are on the tape but cannot be read back: the tape is damaged (exit 1).
    #[error("{DAMAGED}launch {seq}: input `{role}`: {source} (run `greta verify`)")]
    DamagedInput {
        /// Launch.
        seq: u64,
        /// Input role.
        role: String,
        /// Why.
        source: Box<SourceError>,
    },
    /// A recorded output could not be read (memory budget, file system).
    #[error("launch {seq}: recorded output `{role}`: {source}")]
    Output {
        /// Launch.
        seq: u64,
        /// Output role.
        role: String,
        /// Why.
        source: Box<SourceError>,
    },
    /// A recorded output's bytes are on the tape but cannot be read back (issue 21: they were then
    /// compared by hash alone, and the launch called bit-exact). `replay` exits 1 on it, as `verify`.
    #[error("{DAMAGED}launch {seq}: recorded output `{role}`: {source} (run `greta verify`)")]
    Damaged {
        /// Launch.
        seq: u64,
        /// Output role.
        role: String,
        /// Why.
        source: Box<SourceError>,
    },
    /// The launch has no recorded outputs (it crashed or the tape was cut inside it).
    #[error("launch {0} has no recorded outputs (the run crashed or the tape was cut inside it)")]
    Incomplete(u64),
}

/// The recorded inputs of a launch as host tensors.
pub fn inputs(src: &Source, l: &Launch) -> Result<Vec<Tensor>, ReplayError> {
    l.begin
        .inputs
        .iter()
        .map(|r| {
            src.tensor(r).map_err(|e| {
                let (seq, role, source) = (l.begin.seq, r.role.clone(), Box::new(e));
                if is_damage(&source) {
                    ReplayError::DamagedInput { seq, role, source }
                } else {
                    ReplayError::Input { seq, role, source }
                }
            })
        })
        .collect()
}

/// Converts activation inputs to the precision a route computes in (weights and ids stay as they are).
/// Widening f32 to f64 is exact; narrowing rounds to nearest.
pub fn adapt(t: &Tensor, p: Precision) -> Tensor {
    if matches!(t.origin, Origin::Weight(_)) {
        return t.clone();
    }
    match (p, t.as_f32(), t.as_f64()) {
        (Precision::F64, Some(v), _) => {
            Tensor::f64(t.shape.clone(), v.iter().map(|&x| x as f64).collect())
        }
        (Precision::F32 | Precision::F16, _, Some(v)) => {
            Tensor::f32(t.shape.clone(), v.iter().map(|&x| x as f32).collect())
        }
        _ => t.clone(),
    }
}

/// Runs launch `l` on `backend` and `route` from host `inputs`; returns the outputs as host tensors.
pub fn execute(
    l: &Launch,
    inputs: &[Tensor],
    backend: &dyn Backend,
    route: Route,
) -> Result<Vec<Tensor>, ReplayError> {
    // Weights keep their stored type. A weight stored on the tape (embedded, or sent by another engine
    // as host bytes) is known by its role: `w` (norms, matmuls) or `table` (embed).
    let adapted: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(
            |(i, t)| match l.begin.inputs.get(i).map(|r| r.role.as_str()) {
                Some("w" | "table") => t.clone(),
                _ => adapt(t, route.precision),
            },
        )
        .collect();
    let refs: Vec<&Tensor> = adapted.iter().collect();
    let b = &l.begin;
    let outs = backend
        .execute(b.stage, route, &b.params, &refs)
        .map_err(|source| ReplayError::Backend { seq: b.seq, source })?;
    outs.into_iter()
        .map(|t| match t.to_host_bytes() {
            Ok(bytes) => Ok(Tensor::from_le_bytes(
                t.dtype,
                t.shape.clone(),
                bytes.into_owned(),
                Origin::Value,
            )),
            Err(e) => Err(ReplayError::Backend {
                seq: b.seq,
                source: BackendError::Device(e),
            }),
        })
        .collect()
}

/// The route greta's default rule picks for `stage` over `rows` rows, at precision `p`. Attention stages
/// keep their own family member (`attn` is the fused route, `qk`/`softmax`/`pv` the manual one).
pub fn greta_route(stage: Stage, rows: usize, p: Precision) -> Route {
    let variant = match stage {
        Stage::Attn => Variant::Fused,
        Stage::Qk | Stage::Softmax | Stage::Pv => Variant::Manual,
        s => RoutePolicy::new(p).choose(s, rows).variant,
    };
    Route::new(variant, p)
}

/// The f64 reference outputs of launch `l` on its recorded `inputs` (as [`inputs`] returns them): the
/// op's plain-maths kernel ([`super::reference`], `crate::ops`), never a route. Every
/// local error greta reports (`replay --reference f64`, the local-error rule of `diff`'s significance,
/// `--kernels` plugins' `vs_f64`) is measured against this one function, so that the reference can be
/// replaced in one place (issue 28: a reference that shares the route's algorithm shares its bugs).
pub fn reference(l: &Launch, inputs: &[Tensor]) -> Result<Vec<Tensor>, ReplayError> {
    super::reference::reference(l, inputs)
}

/// A recorded output with its bytes when they were captured.
pub struct Recorded {
    /// dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// blake3.
    pub hash: [u8; 32],
    /// Bytes (None when only the hash was captured).
    pub bytes: Option<Vec<u8>>,
}

/// How a damage error's message starts: a replay row whose error starts so is damage (exit 1), not a
/// failure to run (exit 2).
pub const DAMAGED: &str = "damaged: ";

/// Whether a tensor could not be read because the tape is damaged (not because of the memory budget,
/// a missing model or the file system: those are errors, and a larger `--max-tensor-bytes` or the
/// right `--model` reads it).
fn is_damage(e: &SourceError) -> bool {
    matches!(e, SourceError::Tape(crate::tape::TapeError::Corrupt { .. }))
}

/// The recorded outputs of `l`. An output stored on the tape whose bytes cannot be read back because
/// the tape is damaged is [`ReplayError::Damaged`]; one stored as a weight of a model that is not at
/// hand has no bytes (it is compared by hash).
pub fn recorded(src: &Source, l: &Launch) -> Result<Vec<Recorded>, ReplayError> {
    let end = l.end.as_ref().ok_or(ReplayError::Incomplete(l.begin.seq))?;
    end.outputs
        .iter()
        .map(|r| {
            let bytes = match r.storage {
                Storage::HashOnly => None,
                Storage::Weight { .. } => src.bytes(r).ok(),
                _ => match src.bytes(r) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        let (seq, role, source) = (l.begin.seq, r.role.clone(), Box::new(e));
                        return Err(if is_damage(&source) {
                            ReplayError::Damaged { seq, role, source }
                        } else {
                            ReplayError::Output { seq, role, source }
                        });
                    }
                },
            };
            Ok(Recorded {
                dtype: r.dtype,
                shape: r.shape.clone(),
                hash: r.hash,
                bytes,
            })
        })
        .collect()
}

/// Compares a recorded output with a computed tensor: by bytes when captured, else by hash.
pub fn against(rec: &Recorded, t: &Tensor) -> Compare {
    let bytes = t
        .host_bytes()
        .map(|b| b.as_slice().to_vec())
        .unwrap_or_default();
    match &rec.bytes {
        Some(rb) => compare(rec.dtype, rb, t.dtype, &bytes, &rec.shape),
        None => {
            let same = rec.dtype == t.dtype && blake3::hash(&bytes).as_bytes() == &rec.hash;
            Compare {
                n: t.numel(),
                bit_exact: same,
                differing: usize::from(!same),
                ..Compare::default()
            }
        }
    }
}
