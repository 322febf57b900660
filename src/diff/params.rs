//! Launch descriptions compared: scalar params, route, and the dtype and shape of every input and output.
//!
//! A wrong epsilon, RoPE base, scale or position that happens not to change any f32 bit is invisible to
//! an output comparison; it shows here ("params differ at seq 412 decode0 - final_norm: eps 9.99e-6 vs
//! 1e-6"). `greta diff` runs this over every aligned pair, equal outputs included.

use crate::launch::{Params, float_text, same_float};
use crate::tape::{LaunchBegin, TensorRef};
use serde::Serialize;

/// One aligned pair whose descriptions differ.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ParamDiff {
    /// Phase.
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: String,
    /// Launch in A.
    pub seq_a: u64,
    /// Launch in B.
    pub seq_b: u64,
    /// Each difference, e.g. `eps 9.99e-6 vs 1e-6`, `route gemv/f32 vs gemm_tiled/f32`,
    /// `input x shape [7, 64] vs [8, 64]`.
    pub what: Vec<String>,
}

impl std::fmt::Display for ParamDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "params differ at seq {} {} {} {}: {}",
            self.seq_a,
            self.phase,
            self.layer.map_or("-".into(), |l| l.to_string()),
            self.stage,
            self.what.join("; ")
        )
    }
}

/// A param value as people read it: integers plain, floats in shortest round-trip scientific form.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => float_text(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

/// The fields of two `Params` that differ, as `name a vs b`. Generic over the struct's fields (through
/// serde), so a field added later is compared without touching this code.
pub fn params(a: &Params, b: &Params) -> Vec<String> {
    let (Ok(serde_json::Value::Object(ma)), Ok(serde_json::Value::Object(mb))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return if a == b {
            vec![]
        } else {
            vec!["params differ".into()]
        };
    };
    let mut out = Vec::new();
    for (k, va) in &ma {
        let vb = mb.get(k).unwrap_or(&serde_json::Value::Null);
        // Floats: compare bits, so 1e-6 vs 1.0000000000000002e-6 is a difference too; but the f32 1e-5 a
        // model stores and the f64 1e-5 another engine passes are one value given twice.
        let same = match (va.as_f64(), vb.as_f64()) {
            (Some(x), Some(y)) if va.is_f64() || vb.is_f64() => same_float(x, y),
            _ => va == vb,
        };
        if !same {
            out.push(format!("{k} {} vs {}", show(va), show(vb)));
        }
    }
    out
}

/// `follow`: activations of two routes of different precisions (f32 vs f64) differ in dtype by design;
/// such pairs are not reported (the route's precision already says it).
fn tensors(kind: &str, a: &[TensorRef], b: &[TensorRef], follow: bool, out: &mut Vec<String>) {
    if a.len() != b.len() {
        out.push(format!("{} {kind}s vs {}", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(b) {
        let float = |d: crate::launch::DType| {
            matches!(d, crate::launch::DType::F32 | crate::launch::DType::F64)
        };
        if x.dtype != y.dtype && !(follow && float(x.dtype) && float(y.dtype)) {
            out.push(format!(
                "{kind} {} dtype {} vs {}",
                x.role, x.dtype, y.dtype
            ));
        }
        if x.shape != y.shape {
            out.push(format!(
                "{kind} {} shape {:?} vs {:?}",
                x.role, x.shape, y.shape
            ));
        }
    }
}

/// Everything that differs between two launches' descriptions (not their data): route, params, and the
/// dtypes and shapes of inputs and outputs. Empty when they describe the same computation.
pub fn describe_diff(
    a: &LaunchBegin,
    b: &LaunchBegin,
    outs_a: &[TensorRef],
    outs_b: &[TensorRef],
) -> Vec<String> {
    let mut out = Vec::new();
    let (ra, rb) = (a.route_name(), b.route_name());
    // Another engine's kernel name against greta's route name is naming, not a difference in what was
    // computed (issue 28: a foreign tape against greta's own said "params differ" at every launch).
    let foreign = [a, b]
        .iter()
        .any(|x| x.route.variant == crate::launch::Variant::Engine);
    if ra != rb && !foreign {
        out.push(format!("route {ra} vs {rb}"));
    }
    out.extend(params(&a.params, &b.params));
    let follow = a.route.precision != b.route.precision;
    tensors("input", &a.inputs, &b.inputs, follow, &mut out);
    tensors("output", outs_a, outs_b, follow, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_epsilon_is_named_with_both_values() {
        let a = Params {
            eps: 9.99e-6,
            rows: 1,
            ..Params::default()
        };
        let b = Params {
            eps: 1e-6,
            rows: 1,
            ..Params::default()
        };
        assert_eq!(params(&a, &b), vec!["eps 9.99e-6 vs 1e-6".to_string()]);
        assert!(params(&a, &a).is_empty());
        // The f32 eps a model stores, widened, and the f64 1e-5 another engine passes: one value.
        let f = Params {
            eps: f64::from(1e-5f32),
            ..a
        };
        let g = Params { eps: 1e-5, ..a };
        assert!(params(&f, &g).is_empty(), "{:?}", params(&f, &g));
        assert_eq!(params(&f, &a), vec!["eps 1e-5 vs 9.99e-6".to_string()]);
        let c = Params { pos: 3, ..a };
        assert_eq!(params(&a, &c), vec!["pos 0 vs 3".to_string()]);
        let d = ParamDiff {
            phase: "decode0".into(),
            layer: None,
            stage: "final_norm".into(),
            seq_a: 412,
            seq_b: 412,
            what: params(&a, &b),
        };
        assert_eq!(
            d.to_string(),
            "params differ at seq 412 decode0 - final_norm: eps 9.99e-6 vs 1e-6"
        );
    }
}
