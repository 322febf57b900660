//! Device tensors: a [`DevMem`] of this backend behind the launch seam's [`DeviceBuffer`] trait.
//!
//! Buffers are immutable once a launch has returned them (kernels only write fresh outputs), so they are
//! shared by `Arc`: `kv_write` hands its inputs on without a copy, and the engine's KV-cache views are
//! device-to-device copies made by `gather_rows`. The same immutability lets a recorder copy a buffer to
//! the host later, on another stream (`to_host_async`): the bytes cannot change meanwhile.

use super::copy::Copier;
use super::digest::DeviceHasher;
use super::ffi::{self, DevMem};
use crate::launch::{
    DType, DeviceBuffer, Origin, PendingBytes, PendingDigest, Tensor, TensorData, next_id,
};
use std::sync::Arc;

/// Bytes on one device.
#[derive(Debug, Clone)]
pub struct HipBuffer {
    /// The allocation.
    pub mem: Arc<DevMem>,
    /// The device ordinal it lives on.
    pub device: i32,
    /// Device hashing, for recorders that want digests only.
    pub hasher: Option<Arc<DeviceHasher>>,
    /// Copies to the host beside the kernels, for recorders that store bytes.
    pub copier: Option<Arc<Copier>>,
}

impl DeviceBuffer for HipBuffer {
    fn to_host(&self) -> Result<Vec<u8>, String> {
        // The calling thread may be a recorder thread that never selected the device.
        ffi::set_device(self.device).map_err(|e| e.to_string())?;
        self.mem.read().map_err(|e| e.to_string())
    }

    fn len(&self) -> usize {
        self.mem.len()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn digest(&self) -> Option<Result<PendingDigest, String>> {
        self.hasher.as_ref().map(|h| h.digest(&self.mem))
    }

    fn to_host_async(&self) -> Option<Result<PendingBytes, String>> {
        self.copier.as_ref().map(|c| c.start(&self.mem))
    }
}

/// A value tensor over `mem`.
pub fn device_tensor(
    mem: Arc<DevMem>,
    device: i32,
    hasher: Option<Arc<DeviceHasher>>,
    copier: Option<Arc<Copier>>,
    dtype: DType,
    shape: Vec<usize>,
) -> Tensor {
    Tensor {
        id: next_id(),
        dtype,
        shape,
        data: TensorData::Device(Arc::new(HipBuffer {
            mem,
            device,
            hasher,
            copier,
        })),
        origin: Origin::Value,
    }
}

/// The HIP buffer behind a tensor, if it is one.
pub fn hip_buffer(t: &Tensor) -> Option<&HipBuffer> {
    match &t.data {
        TensorData::Device(d) => d.as_any().downcast_ref::<HipBuffer>(),
        TensorData::Host(_) => None,
    }
}
