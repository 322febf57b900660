//! Strict contracts: a launch is checked against its op's [`Spec`](super::Spec) before anything runs —
//! every input role known and of an accepted type, every required role and param present, shapes that
//! fit each other (the op's geometry, shared with its reference kernel). Capture (Rust, C, Python)
//! refuses a launch that fails; replay says why it cannot judge one.

use super::vocab::Kinds;
use super::{Op, OpArgs};
use crate::launch::DType;

/// A launch that does not fit its op's contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContractError {
    /// An op name greta does not know.
    #[error("unknown op `{0}`: greta's ops are {list}", list = Op::ALL.iter().map(|o| o.name()).collect::<Vec<_>>().join(", "))]
    UnknownOp(String),
    /// An input role the op does not have.
    #[error("{op}: unknown input role `{role}`; expected {expected:?}")]
    UnknownRole {
        /// The op.
        op: &'static str,
        /// The role given.
        role: String,
        /// The op's roles.
        expected: Vec<&'static str>,
    },
    /// A required input missing.
    #[error("{op}: missing input `{role}`; expected {expected:?}")]
    MissingRole {
        /// The op.
        op: &'static str,
        /// The role.
        role: &'static str,
        /// The op's roles.
        expected: Vec<&'static str>,
    },
    /// The same role twice.
    #[error("{op}: input `{role}` given twice")]
    DuplicateRole {
        /// The op.
        op: &'static str,
        /// The role.
        role: String,
    },
    /// An input of a type the role does not take.
    #[error("{op}: input `{role}` is {dtype}, expected {kinds}")]
    WrongType {
        /// The op.
        op: &'static str,
        /// The role.
        role: String,
        /// Its type.
        dtype: DType,
        /// What the role takes.
        kinds: &'static str,
    },
    /// A required param missing.
    #[error(
        "{op}: missing required param `{param}` (params: {expected:?}); greta never assumes a default for it"
    )]
    MissingParam {
        /// The op.
        op: &'static str,
        /// The param.
        param: String,
        /// The op's params.
        expected: Vec<&'static str>,
    },
    /// A param the op does not have.
    #[error("{op}: unknown param `{param}`; expected {expected:?}")]
    UnknownParam {
        /// The op.
        op: &'static str,
        /// The param given.
        param: String,
        /// The op's params.
        expected: Vec<&'static str>,
    },
    /// A param out of its range.
    #[error("{op}: param `{param}`: {what}")]
    BadParam {
        /// The op.
        op: &'static str,
        /// The param.
        param: String,
        /// What is wrong.
        what: String,
    },
    /// Shapes that do not fit.
    #[error("{op}: {what}")]
    Shape {
        /// The op.
        op: &'static str,
        /// What does not fit, with the shapes.
        what: String,
    },
}

fn accepts(k: Kinds, d: DType) -> bool {
    match k {
        Kinds::Float => matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16),
        Kinds::Weight => d != DType::I32,
        Kinds::Ids => d == DType::I32,
    }
}

/// Checks `a` against its op's contract: roles, types, params (strict: unknown names are refused too,
/// so a misspelt param is not silently replaced by its default), then the shapes.
pub fn check(a: &OpArgs) -> Result<(), ContractError> {
    let spec = a.op.spec();
    let op = a.op.name();
    let roles: Vec<&'static str> = spec.inputs.iter().map(|r| r.name).collect();
    for (i, inp) in a.inputs.iter().enumerate() {
        let Some(r) = spec.inputs.iter().find(|r| r.name == inp.role) else {
            return Err(ContractError::UnknownRole {
                op,
                role: inp.role.clone(),
                expected: roles,
            });
        };
        if a.inputs[..i].iter().any(|p| p.role == inp.role) {
            return Err(ContractError::DuplicateRole {
                op,
                role: inp.role.clone(),
            });
        }
        if !accepts(r.kinds, inp.dtype) {
            return Err(ContractError::WrongType {
                op,
                role: inp.role.clone(),
                dtype: inp.dtype,
                kinds: r.kinds.name(),
            });
        }
    }
    if let Some(r) = spec
        .inputs
        .iter()
        .find(|r| r.required && a.get(r.name).is_none())
    {
        return Err(ContractError::MissingRole {
            op,
            role: r.name,
            expected: roles,
        });
    }
    let names: Vec<&'static str> = spec.params.iter().map(|p| p.name).collect();
    if let Some((k, _)) = a.params.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        return Err(ContractError::UnknownParam {
            op,
            param: k.clone(),
            expected: names,
        });
    }
    for p in spec.params {
        let v = a.p(p.name)?;
        if !v.is_finite() {
            return Err(ContractError::BadParam {
                op,
                param: p.name.into(),
                what: format!("{v} is not finite"),
            });
        }
    }
    super::reference::shapes(a)
}

/// Checks a launch described by names (the capture API's view): the op by name, inputs as (role, dtype,
/// shape), params by name.
pub fn check_declared(
    op: &str,
    inputs: &[(&str, DType, Vec<usize>)],
    params: &[(String, f64)],
) -> Result<Op, ContractError> {
    let o = Op::from_name(op).ok_or_else(|| ContractError::UnknownOp(op.to_string()))?;
    let mut a = OpArgs::new(o);
    for (r, d, s) in inputs {
        a.declare(r, *d, s.clone());
    }
    for (k, v) in params {
        a.param(k, *v);
    }
    check(&a)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_does_not_fit() {
        let x = ("x", DType::F32, vec![2, 8]);
        // A rope without its base frequency: refused, naming it.
        let e = check_declared(
            "rope",
            std::slice::from_ref(&x),
            &[
                ("pos".into(), 0.0),
                ("n_heads".into(), 2.0),
                ("head_dim".into(), 4.0),
            ],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("missing required param `rope_theta`"),
            "{e}"
        );
        // swiglu's roles are gate and up, not g and u.
        let e = check_declared(
            "swiglu",
            &[("g", DType::F32, vec![2, 8]), ("u", DType::F32, vec![2, 8])],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown input role `g`"), "{e}");
        // A misspelt param is refused, not replaced by a default.
        let e = check_declared(
            "rms_norm",
            std::slice::from_ref(&x),
            &[("epsilon".into(), 1e-5)],
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown param `epsilon`"), "{e}");
        assert!(
            check_declared(
                "rms_norm",
                std::slice::from_ref(&x),
                &[("eps".into(), 1e-5)]
            )
            .is_ok()
        );
        assert!(matches!(
            check_declared("frobnicate", &[], &[]),
            Err(ContractError::UnknownOp(_))
        ));
        // Shapes that do not fit: 8 is not 3 heads of 4.
        let e = check_declared(
            "rope",
            &[x],
            &[
                ("pos".into(), 0.0),
                ("n_heads".into(), 3.0),
                ("head_dim".into(), 4.0),
                ("rope_theta".into(), 1e4),
            ],
        )
        .unwrap_err();
        assert!(matches!(e, ContractError::Shape { .. }), "{e}");
    }
}
