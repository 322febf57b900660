//! One launch as an op sees it: inputs by role (dtype and shape always; the tensor when its values are
//! at hand), scalar params by name, and the recorded outputs' types (a cast's target). Built by
//! [`super::stages`] from a greta launch, or by the capture API from another engine's.

use super::{ContractError, Op};
use crate::launch::{DType, Tensor};

/// One input.
#[derive(Clone, Debug)]
pub struct Input {
    /// Role name.
    pub role: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// The values, when at hand (the contract check needs only dtype and shape).
    pub tensor: Option<Tensor>,
}

/// An op call: what [`super::check`] checks and [`super::reference`] computes.
#[derive(Clone, Debug)]
pub struct OpArgs {
    /// The op.
    pub op: Op,
    /// Inputs, in the order given.
    pub inputs: Vec<Input>,
    /// Scalar params, by name, in the order given.
    pub params: Vec<(String, f64)>,
    /// Types of the outputs as recorded (empty when unknown): the target of a [`Op::Cpy`].
    pub output_dtypes: Vec<DType>,
}

impl OpArgs {
    /// An empty call of `op`.
    pub fn new(op: Op) -> OpArgs {
        OpArgs {
            op,
            inputs: Vec::new(),
            params: Vec::new(),
            output_dtypes: Vec::new(),
        }
    }

    /// Adds input `role` with its values.
    pub fn input(&mut self, role: &str, t: Tensor) -> &mut Self {
        self.inputs.push(Input {
            role: role.to_string(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            tensor: Some(t),
        });
        self
    }

    /// Adds input `role` by dtype and shape only (a contract check at capture).
    pub fn declare(&mut self, role: &str, dtype: DType, shape: Vec<usize>) -> &mut Self {
        self.inputs.push(Input {
            role: role.to_string(),
            dtype,
            shape,
            tensor: None,
        });
        self
    }

    /// Sets param `name` (a later value for the same name replaces an earlier one).
    pub fn param(&mut self, name: &str, v: f64) -> &mut Self {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(p) => p.1 = v,
            None => self.params.push((name.to_string(), v)),
        }
        self
    }

    /// The input of `role`, if given.
    pub fn get(&self, role: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.role == role)
    }

    /// Param `name`: as given, else the contract's default; an error when it is required and absent
    /// (never a silent default).
    pub fn p(&self, name: &str) -> Result<f64, ContractError> {
        if let Some(&(_, v)) = self.params.iter().find(|(k, _)| k == name) {
            return Ok(v);
        }
        let spec = self.op.spec();
        match spec.params.iter().find(|p| p.name == name) {
            Some(p) => p.default.ok_or_else(|| ContractError::MissingParam {
                op: self.op.name(),
                param: name.to_string(),
                expected: spec.params.iter().map(|p| p.name).collect(),
            }),
            None => Err(ContractError::MissingParam {
                op: self.op.name(),
                param: name.to_string(),
                expected: spec.params.iter().map(|p| p.name).collect(),
            }),
        }
    }

    /// Param `name` as a count: a whole number in 0 ..= `max`.
    pub fn count(&self, name: &str, max: usize) -> Result<usize, ContractError> {
        let v = self.p(name)?;
        if v.fract() != 0.0 || !(0.0..=max as f64).contains(&v) {
            return Err(ContractError::BadParam {
                op: self.op.name(),
                param: name.to_string(),
                what: format!("{v} is not a whole number in 0..={max}"),
            });
        }
        Ok(v as usize)
    }
}
