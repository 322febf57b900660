//! Weights on the device: uploaded once per weight tensor (cached by `Tensor::id`), dequantised on the
//! host to f32 with `crate::model::quant` and kept as f32 on the device.
//!
//! Why f32 and not the GGUF blocks or f16: the dequantised f32 values are then bit-identical to the ones
//! the CPU reference multiplies with (same function, same bits), so a GPU-vs-CPU difference is always
//! the kernels' arithmetic, never the weights. f16 storage would add a rounding step the CPU does not
//! have; kernels that read Q4_K/Q6_K directly would be a second dequantiser to keep bit-exact. The cost
//! is memory: 4 bytes per weight (a 135M-parameter model takes 0.5 GiB, an 8B one 32 GiB).

use super::device::{HipBackend, bad, dev_err};
use super::ffi::DevMem;
use crate::backend::BackendError;
use crate::launch::{DType, Origin, Stage, Tensor, TensorData};
use crate::model::quant;
use std::sync::Arc;

impl HipBackend {
    /// A weight-like input (`[out, in]` matrix, embedding table, norm vector) as f32 on the device.
    /// Host tensors of any GGUF dtype are dequantised; those with `Origin::Weight` are cached by id.
    pub(super) fn weight(&self, stage: Stage, t: &Tensor) -> Result<Arc<DevMem>, BackendError> {
        if let TensorData::Device(_) = t.data {
            return self.input(stage, t, DType::F32);
        }
        let cached = matches!(t.origin, Origin::Weight(_));
        if cached {
            if let Some(m) = self
                .weights
                .lock()
                .expect("weight cache poisoned")
                .get(&t.id)
            {
                return Ok(Arc::clone(m));
            }
        }
        let mem = Arc::new(DevMem::upload(&dequantize(stage, t)?).map_err(dev_err)?);
        if cached {
            self.weights
                .lock()
                .expect("weight cache poisoned")
                .insert(t.id, Arc::clone(&mem));
        }
        Ok(mem)
    }

    /// Bytes of device memory held by cached weights.
    pub fn weight_bytes(&self) -> usize {
        self.weights
            .lock()
            .expect("weight cache poisoned")
            .values()
            .map(|m| m.len())
            .sum()
    }
}

/// The tensor's elements as little-endian f32 bytes, dequantised row by row like the CPU kernels do.
fn dequantize(stage: Stage, t: &Tensor) -> Result<Vec<u8>, BackendError> {
    let bytes = t
        .host_bytes()
        .ok_or_else(|| bad(stage, "weight is not on the host"))?
        .as_slice();
    let cols = *t
        .shape
        .last()
        .ok_or_else(|| bad(stage, "weight has no shape"))?;
    let rows = t.rows();
    if t.dtype == DType::F32 {
        if bytes.len() != rows * cols * 4 {
            return Err(bad(
                stage,
                format!("f32 weight {:?} has {} bytes", t.shape, bytes.len()),
            ));
        }
        return Ok(bytes.to_vec());
    }
    let rb = quant::row_bytes(t.dtype, cols)
        .ok_or_else(|| bad(stage, format!("{} rows of {cols}", t.dtype)))?;
    if bytes.len() != rb * rows {
        return Err(bad(
            stage,
            format!(
                "weight {:?} {} has {} bytes, expected {}",
                t.shape,
                t.dtype,
                bytes.len(),
                rb * rows
            ),
        ));
    }
    let mut out = Vec::with_capacity(rows * cols * 4);
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        quant::dequantize(t.dtype, &bytes[r * rb..(r + 1) * rb], &mut row)
            .map_err(|e| bad(stage, format!("dequantising {} row {r}: {e}", t.dtype)))?;
        out.extend(row.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(out)
}
