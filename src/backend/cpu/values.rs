//! Typed views of activation tensors: the CPU kernels are written once per precision over `&[f32]` or
//! `&[f64]`; this module does the dispatch and the dtype checks.

use super::bad;
use crate::backend::BackendError;
use crate::launch::{Stage, Tensor};

/// f32 input or a typed error.
pub fn f32s(stage: Stage, t: &Tensor) -> Result<&[f32], BackendError> {
    t.as_f32().ok_or_else(|| {
        bad(
            stage,
            format!("input is {} {:?}, expected host f32", t.dtype, t.shape),
        )
    })
}

/// f64 input or a typed error.
pub fn f64s(stage: Stage, t: &Tensor) -> Result<&[f64], BackendError> {
    t.as_f64().ok_or_else(|| {
        bad(
            stage,
            format!("input is {} {:?}, expected host f64", t.dtype, t.shape),
        )
    })
}

/// Builds an output tensor of the route's precision from f64 values computed by an f64 kernel, or f32.
pub fn out_f32(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor::f32(shape, v)
}

/// An f64 output tensor.
pub fn out_f64(shape: Vec<usize>, v: Vec<f64>) -> Tensor {
    Tensor::f64(shape, v)
}

/// The arithmetic the kernels need, for f32 and f64, with transcendentals from `libm`.
pub trait Float:
    Copy
    + Default
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// -inf (masked attention score).
    const NEG_INF: Self;
    /// exp.
    fn exp(self) -> Self;
    /// sqrt (correctly rounded in IEEE 754).
    fn sqrt(self) -> Self;
    /// tanh.
    fn tanh(self) -> Self;
    /// From f64, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// The 8-lane dot product of [`super::dot`].
    fn dot(a: &[Self], b: &[Self]) -> Self;
    /// The 8-lane sum of [`super::dot`].
    fn sum(a: &[Self]) -> Self;
    /// A tensor of this precision.
    fn tensor(shape: Vec<usize>, v: Vec<Self>) -> Tensor;
    /// The values of a tensor of this precision.
    fn of(stage: Stage, t: &Tensor) -> Result<&[Self], BackendError>;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn exp(self) -> f32 {
        libm::expf(self)
    }
    fn sqrt(self) -> f32 {
        libm::sqrtf(self)
    }
    fn tanh(self) -> f32 {
        libm::tanhf(self)
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot::dot8(a, b)
    }
    fn sum(a: &[f32]) -> f32 {
        super::dot::sum8(a)
    }
    fn tensor(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::f32(shape, v)
    }
    fn of(stage: Stage, t: &Tensor) -> Result<&[f32], BackendError> {
        f32s(stage, t)
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const NEG_INF: f64 = f64::NEG_INFINITY;
    fn exp(self) -> f64 {
        libm::exp(self)
    }
    fn sqrt(self) -> f64 {
        libm::sqrt(self)
    }
    fn tanh(self) -> f64 {
        libm::tanh(self)
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        super::dot::dot8_f64(a, b)
    }
    fn sum(a: &[f64]) -> f64 {
        super::dot::sum8_f64(a)
    }
    fn tensor(shape: Vec<usize>, v: Vec<f64>) -> Tensor {
        Tensor::f64(shape, v)
    }
    fn of(stage: Stage, t: &Tensor) -> Result<&[f64], BackendError> {
        f64s(stage, t)
    }
}
