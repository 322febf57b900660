//! The first significant divergence: the first launch whose difference is out of proportion to what it
//! inherited from its inputs.
//!
//! The first flipped bit is often route noise (two reduction orders of the same matmul differ in the last
//! place) and says nothing about a defect further down. For every compared launch, in forward order:
//!
//! - `err` is the relative L2 error of its output, ||a - b|| / ||b|| (see [`Compare::rel_l2`]);
//! - `inherited` is the largest `err` among the launches that produced its inputs (followed through the
//!   tape's producer references and KV-cache row references; a launch that was not compared passes on what
//!   it inherited; inputs with no producer, such as weights and token ids, inherit nothing);
//! - the launch is **significant** when `err > max(envelope(precision), GROWTH × inherited)`, or when a
//!   value is finite on one side and not on the other while nothing non-finite was inherited.
//!
//! `envelope` is the relative error a route of that precision may add on its own, with identical inputs
//! (route noise): [`ENVELOPE_F64`], [`ENVELOPE_F32`], [`ENVELOPE_F16`]; the coarser of the two routes'
//! precisions applies. [`GROWTH`] bounds how much a healthy kernel amplifies its inputs' relative error
//! (matmul cancellation, softmax of large logits: tens; we allow a thousand). The rule is documented for
//! users in docs/DIAGNOSIS.md. Integer outputs (argmax) are not judged: a different token is total, so what
//! follows it inherits an infinite error.

use crate::analysis::Compare;
use crate::launch::{DType, Precision, Route};
use crate::tape::{Storage, TensorRef};
use serde::Serialize;
use std::collections::HashMap;

/// How much a healthy kernel may amplify the relative error of its inputs.
pub const GROWTH: f64 = 1000.0;
/// Relative L2 error an f64 route may add with identical inputs.
pub const ENVELOPE_F64: f64 = 1e-12;
/// Relative L2 error an f32 route may add with identical inputs (greta's own f32 routes stay near 1e-7;
/// this is the bound the test suite holds them to, `F32_LOCAL_MAX_REL_L2`).
pub const ENVELOPE_F32: f64 = 1e-5;
/// Relative L2 error an f16-accumulating route may add with identical inputs.
pub const ENVELOPE_F16: f64 = 1e-2;

/// The noise envelope of a precision.
pub fn envelope(p: Precision) -> f64 {
    match p {
        Precision::F64 => ENVELOPE_F64,
        Precision::F32 => ENVELOPE_F32,
        Precision::F16 => ENVELOPE_F16,
    }
}

pub use crate::analysis::bounds::{ENVELOPE_GEMM_MMA, ENVELOPE_GEMV_Q8, route_envelope};

/// The envelope for a comparison of two routes: the coarser route's.
pub fn envelope_of(a: Route, b: Route) -> f64 {
    route_envelope(a).max(route_envelope(b))
}

/// The verdict on one launch.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Significance {
    /// Relative L2 error of the output.
    pub err: f64,
    /// Largest relative error among its inputs' producers.
    pub inherited: f64,
    /// The noise envelope applied.
    pub envelope: f64,
    /// err / max(envelope, inherited): how far out of proportion.
    pub growth: f64,
    /// Why it is significant, in words.
    pub reason: String,
    /// The inputs whose bytes differ between the two sides (empty: byte-identical inputs, or not
    /// measured: prefill-vs-decode follows producers only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputDiff>,
    /// Set when the local-error rule named the launch (see [`super::local`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<super::local::LocalVerdict>,
}

/// An input of a compared launch whose bytes differ between the two sides (hashes compared, whether the
/// input was recorded as a copy, as KV-cache rows or as a reference to its producer: issue 28).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InputDiff {
    /// Its role.
    pub role: String,
    /// Relative L2 error between the two sides' bytes (None: not measurable: hash only, or the shapes or
    /// kinds differ).
    pub err: Option<f64>,
    /// The largest error among the launches that produced it, followed through either tape's references
    /// (None: neither side names a producer, e.g. both recorded it as a copy).
    pub produced: Option<f64>,
}

impl InputDiff {
    /// `k_cache (relative error 6.1e-1)`.
    pub fn describe(&self) -> String {
        match self.err {
            Some(e) => format!("{} (relative error {e:.2e})", self.role),
            None => format!("{} (bytes differ; not measurable)", self.role),
        }
    }
}

fn describe_all(d: &[InputDiff]) -> String {
    d.iter()
        .map(InputDiff::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Follows relative errors forward through the producers of a tape's launches.
#[derive(Default, Debug)]
pub struct Tracker {
    err: HashMap<u64, f64>,
    /// Launch in the other tape (B) → its aligned launch in the followed one (A).
    alias: HashMap<u64, u64>,
}

impl Tracker {
    /// The largest error among the producers of `inputs`.
    pub fn inherited(&self, inputs: &[TensorRef]) -> f64 {
        let mut m = 0.0f64;
        let mut take = |seq: u64| {
            if let Some(e) = self.err.get(&seq) {
                m = m.max(*e);
            }
        };
        for r in inputs {
            match &r.storage {
                Storage::Producer { seq, .. } => take(*seq),
                Storage::Rows(spans) => spans.iter().for_each(|s| take(s.seq)),
                _ => {}
            }
        }
        m
    }

    /// Records the error of launch `seq`'s output.
    pub fn set(&mut self, seq: u64, err: f64) {
        self.err.insert(seq, err);
    }

    /// Says that launch `seq_b` of the other tape is aligned with `seq_a` of the followed one, so that
    /// B's references can be followed too.
    pub fn align(&mut self, seq_a: u64, seq_b: u64) {
        self.alias.insert(seq_b, seq_a);
    }

    /// The largest error among the producers `r` names (None when it names none): in the followed tape,
    /// or with `other` in the other tape through [`Tracker::align`]. A producer whose outputs were
    /// identical (never set) counts as 0.
    pub fn produced(&self, r: &TensorRef, other: bool) -> Option<f64> {
        let seqs: Vec<u64> = match &r.storage {
            Storage::Producer { seq, .. } => vec![*seq],
            Storage::Rows(spans) => spans.iter().map(|s| s.seq).collect(),
            _ => return None,
        };
        let mut m = 0.0f64;
        for s in seqs {
            let a = if other { *self.alias.get(&s)? } else { s };
            m = m.max(self.err.get(&a).copied().unwrap_or(0.0));
        }
        Some(m)
    }

    /// Judges a compared launch (`seq` in the tape whose inputs are followed) and records its error.
    /// Returns the verdict when it is significant.
    pub fn judge(
        &mut self,
        seq: u64,
        inputs: &[TensorRef],
        dtype: DType,
        c: &Compare,
        envelope: f64,
        differ: &[InputDiff],
    ) -> Option<Significance> {
        let measured = differ.iter().filter_map(|d| d.err).fold(0.0, f64::max);
        let mut inherited = self.inherited(inputs).max(measured);
        if matches!(dtype, DType::I32) {
            self.set(seq, if c.differing > 0 { f64::INFINITY } else { 0.0 });
            return None;
        }
        let err = if c.nonfinite_mismatch > 0 {
            f64::INFINITY
        } else if c.differing == 0 {
            0.0
        } else {
            c.rel_l2
        };
        self.set(seq, err);
        // An input that differs by far more than the launches that produced it: it changed on its way
        // from producer to consumer (a stale KV row, a buffer overwritten), whatever this launch did.
        let transit = differ.iter().find(|d| {
            matches!((d.err, d.produced), (Some(e), Some(p)) if e > envelope.max(GROWTH * p) && e.is_finite())
        });
        if let Some(d) = transit {
            let (e, p) = (d.err.unwrap_or(0.0), d.produced.unwrap_or(0.0));
            return Some(Significance {
                err,
                inherited,
                envelope,
                growth: e / envelope.max(p),
                reason: format!(
                    "relative error {err:.2e}; its input {} differs between the tapes by {e:.2e}, though the launches \
                     that produced it differ by {}: the input changed between its producer and this launch",
                    d.role,
                    if p == 0.0 {
                        "nothing".to_string()
                    } else {
                        format!("only {p:.2e}")
                    }
                ),
                inputs: differ.to_vec(),
                local: None,
            });
        }
        // An input that differs by an amount nobody can measure (hash only): no verdict on this launch.
        if differ.iter().any(|d| d.err.is_none()) {
            inherited = inherited.max(err);
        }
        let bound = envelope.max(GROWTH * inherited);
        if c.nonfinite_mismatch > 0 && inherited.is_finite() {
            return Some(Significance {
                err,
                inherited,
                envelope,
                growth: f64::INFINITY,
                reason: format!(
                    "{} values finite on one side only, none inherited",
                    c.nonfinite_mismatch
                ),
                inputs: differ.to_vec(),
                local: None,
            });
        }
        (err > bound && err.is_finite()).then(|| Significance {
            err,
            inherited,
            envelope,
            growth: err / envelope.max(inherited),
            reason: if inherited == 0.0 {
                format!(
                    "relative error {err:.2e} with byte-identical inputs; the routes' noise envelope is {envelope:.0e}"
                )
            } else if inherited * GROWTH > envelope {
                format!(
                    "relative error {err:.2e} is {:.0}x what its inputs carried ({inherited:.2e}{}); the bound is {GROWTH}x",
                    err / inherited,
                    if differ.is_empty() {
                        String::new()
                    } else {
                        format!("; differing: {}", describe_all(differ))
                    }
                )
            } else {
                format!(
                    "relative error {err:.2e} with inputs within the noise envelope ({inherited:.2e}{}); the routes' envelope is {envelope:.0e}",
                    if differ.is_empty() {
                        String::new()
                    } else {
                        format!("; differing: {}", describe_all(differ))
                    }
                )
            },
            inputs: differ.to_vec(),
            local: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rel: f64) -> Compare {
        Compare {
            differing: usize::from(rel > 0.0),
            rel_l2: rel,
            ..Compare::default()
        }
    }

    fn from(seq: u64) -> TensorRef {
        TensorRef {
            role: "x".into(),
            dtype: DType::F32,
            shape: vec![1],
            len: 4,
            hash: [0; 32],
            storage: Storage::Producer { seq, index: 0 },
        }
    }

    #[test]
    fn noise_is_not_significant_and_a_jump_is() {
        let mut t = Tracker::default();
        let env = envelope(Precision::F32);
        // Route noise with identical inputs, then noise carried forward with modest growth.
        assert!(t.judge(1, &[], DType::F32, &c(2e-7), env, &[]).is_none());
        assert!(
            t.judge(2, &[from(1)], DType::F32, &c(3e-6), env, &[])
                .is_none()
        );
        // A launch not compared passes on what it inherited.
        let inh = t.inherited(&[from(2)]);
        t.set(3, inh);
        // Five orders of magnitude over its inputs: significant.
        let s = t
            .judge(4, &[from(3)], DType::F32, &c(0.3), env, &[])
            .unwrap();
        assert_eq!(s.inherited, 3e-6);
        assert!(s.growth > GROWTH, "{s:?}");
        // Inherited error passes through without a verdict.
        assert!(
            t.judge(5, &[from(4)], DType::F32, &c(0.5), env, &[])
                .is_none()
        );
        // Identical inputs but beyond the f32 envelope: significant.
        assert!(t.judge(6, &[], DType::F32, &c(1e-3), env, &[]).is_some());
        // The f16 envelope is wider.
        assert!(
            t.judge(7, &[], DType::F32, &c(1e-3), envelope(Precision::F16), &[])
                .is_none()
        );
        // A different token is not judged; what follows inherits an infinite error.
        assert!(t.judge(8, &[], DType::I32, &c(1.0), env, &[]).is_none());
        assert!(
            t.judge(9, &[from(8)], DType::F32, &c(1.0), env, &[])
                .is_none()
        );
    }
}
