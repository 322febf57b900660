//! Weights on the device, uploaded once per weight tensor (cached by `Tensor::id`) **in their GGUF
//! format**: the bytes of the memory-mapped file go to the device as they are, and the kernels dequantise
//! each element when they read it (prelude.h `greta_wload`), with exactly the host's formula.
//!
//! Why blocks and not host-dequantised f32: device memory equals the GGUF's tensor bytes (an 8B Q4_K
//! model takes 4.9 GB, not 32 GB of f32) and loading is a copy, not a dequantisation. The bits do not
//! change: `greta_wload` is a line-for-line port of `model::quant` (one f32 rounding per operation, no
//! contraction), so a route on blocks gives what it gave on host-dequantised f32 weights; the self-test
//! proves it per format and route (`weights_in_blocks`).
//!
//! Norm vectors go through [`HipBackend::weight_f32`]: f32 (the stage contract, `contract::norm_dim`).

use super::device::{HipBackend, bad, dev_err};
use super::ffi::DevMem;
use super::source::weight_format;
use crate::backend::BackendError;
use crate::launch::{DType, Origin, Stage, Tensor, TensorData};
use crate::model::quant;
use std::sync::Arc;

/// A weight matrix on the device in its storage format.
#[derive(Clone, Debug)]
pub struct DevWeight {
    /// The bytes, `rows * row_bytes`.
    pub mem: Arc<DevMem>,
    /// Storage format.
    pub dtype: DType,
    /// Bytes per row.
    pub row_bytes: usize,
}

impl DevWeight {
    /// The kernels' `fmt` code.
    pub fn format(&self) -> u32 {
        weight_format(self.dtype).expect("checked at upload")
    }
}

impl HipBackend {
    /// A weight-like `[rows, cols]` input (matmul weight, embedding table) on the device in its GGUF
    /// format. Device tensors (f32 values of an earlier launch) are used as they are.
    pub(super) fn weight_blocks(
        &self,
        stage: Stage,
        t: &Tensor,
    ) -> Result<DevWeight, BackendError> {
        let cols = *t
            .shape
            .last()
            .ok_or_else(|| bad(stage, "weight has no shape"))?;
        if let TensorData::Device(_) = t.data {
            return Ok(DevWeight {
                mem: self.input(stage, t, DType::F32)?,
                dtype: DType::F32,
                row_bytes: cols * 4,
            });
        }
        let rb = quant::row_bytes(t.dtype, cols)
            .filter(|_| weight_format(t.dtype).is_some())
            .ok_or_else(|| {
                bad(
                    stage,
                    format!("{} is not a weight format for rows of {cols}", t.dtype),
                )
            })?;
        let cached = matches!(t.origin, Origin::Weight(_));
        if cached {
            if let Some(w) = self.cache().get(&t.id) {
                return Ok(w.clone());
            }
        }
        let bytes = t
            .host_bytes()
            .ok_or_else(|| bad(stage, "weight is not on the host"))?
            .as_slice();
        if bytes.len() != rb * t.rows() {
            return Err(bad(
                stage,
                format!(
                    "weight {:?} {} has {} bytes, expected {}",
                    t.shape,
                    t.dtype,
                    bytes.len(),
                    rb * t.rows()
                ),
            ));
        }
        let w = DevWeight {
            mem: Arc::new(DevMem::upload(bytes).map_err(dev_err)?),
            dtype: t.dtype,
            row_bytes: rb,
        };
        if cached {
            self.cache().insert(t.id, w.clone());
        }
        Ok(w)
    }

    /// A norm-weight vector (f32, checked by the caller against the stage contract) on the device.
    pub(super) fn weight_f32(&self, stage: Stage, t: &Tensor) -> Result<Arc<DevMem>, BackendError> {
        if t.dtype != DType::F32 && !matches!(t.data, TensorData::Device(_)) {
            return Err(bad(
                stage,
                format!("norm weight is {}, expected f32", t.dtype),
            ));
        }
        Ok(self.weight_blocks(stage, t)?.mem)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, DevWeight>> {
        self.weights.lock().expect("weight cache poisoned")
    }

    /// Bytes of device memory held by cached weights.
    pub fn weight_bytes(&self) -> usize {
        self.cache().values().map(|w| w.mem.len()).sum()
    }
}

impl HipBackend {
    /// Uploads every weight in its GGUF format (a progress bar on a terminal for models over 256 MiB), then
    /// hashes each on the device and records the digests ([`crate::launch::known_digests`]), so a recorder
    /// does not hash gigabytes of weights again on the host.
    pub(super) fn preload_weights(&self, weights: &[&Tensor]) -> Result<(), BackendError> {
        self.select()?;
        let total: usize = weights
            .iter()
            .filter_map(|t| t.host_bytes().map(|b| b.as_slice().len()))
            .sum();
        let bar = (total > 256 << 20).then(|| {
            indicatif::ProgressBar::new(total as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} uploading weights {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .expect("template"),
            )
        });
        let mut mems = Vec::with_capacity(weights.len());
        for t in weights {
            if !matches!(t.origin, Origin::Weight(_)) || !matches!(t.data, TensorData::Host(_)) {
                continue;
            }
            let w = self.weight_blocks(Stage::Embed, t)?;
            if let Some(b) = &bar {
                b.inc(w.mem.len() as u64);
            }
            mems.push((t.id, w.mem));
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if let Some(h) = &self.hasher {
            let pending = mems
                .iter()
                .map(|(id, m)| h.digest(m).map(|p| (*id, p)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(BackendError::Device)?;
            for (id, p) in pending {
                crate::launch::known_digests::remember(id, p.wait().map_err(BackendError::Device)?);
            }
        }
        Ok(())
    }
}
