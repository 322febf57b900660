//! Tensors as the seam sees them: dtype, shape, bytes, and an identity for capture-once recording.
//!
//! Every tensor gets a process-unique `id` when it is made. A tensor handed unchanged from the launch that
//! produced it to a later launch keeps its id, so the recorder knows it already hashed (and stored) those
//! bytes and records a reference to the producer instead of hashing and copying them again.

use super::names::named;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

named! {
    /// Element type of a tensor. Quantized types are GGML block formats (weights only). Names parse
    /// case-insensitively (`F32`, `Q4_K`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum DType ("dtype", "dtypes", ignore_case) {
        /// IEEE binary32.
        F32 = "f32",
        /// IEEE binary64.
        F64 = "f64",
        /// IEEE binary16.
        F16 = "f16",
        /// bfloat16.
        BF16 = "bf16",
        /// Signed 32-bit integer (token ids).
        I32 = "i32",
        /// GGML Q8_0: blocks of 32, one f16 scale.
        Q8_0 = "q8_0",
        /// GGML Q4_0: blocks of 32, one f16 scale.
        Q4_0 = "q4_0",
        /// GGML Q4_1: blocks of 32, f16 scale and min.
        Q4_1 = "q4_1",
        /// GGML Q4_K: super-blocks of 256.
        Q4K = "q4_k",
        /// GGML Q6_K: super-blocks of 256.
        Q6K = "q6_k",
        // Format 5 (issue 22): appended, so no serde index above moved (the enum has no unlisted
        // variants, so the first list's end is the enum's end).
        /// GGML Q5_0: blocks of 32, one f16 scale, 5-bit quants.
        Q5_0 = "q5_0",
        /// GGML Q5_1: blocks of 32, f16 scale and min, 5-bit quants.
        Q5_1 = "q5_1",
        /// GGML Q2_K: super-blocks of 256, 2-bit quants, 4-bit scales and mins per 16.
        Q2K = "q2_k",
        /// GGML Q3_K: super-blocks of 256, 3-bit quants, 6-bit scales per 16.
        Q3K = "q3_k",
        /// GGML Q5_K: super-blocks of 256, 5-bit quants, Q4_K's scales and mins.
        Q5K = "q5_k",
        /// GGML IQ4_NL: blocks of 32, one f16 scale, 4-bit indexes into a non-linear table.
        IQ4NL = "iq4_nl",
        /// GGML IQ4_XS: super-blocks of 256, IQ4_NL's table with 6-bit scales per 32.
        IQ4XS = "iq4_xs",
    }
}

impl DType {
    /// Every type a GGUF weight may have here.
    pub const WEIGHT_TYPES: [DType; 15] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q4K,
        DType::Q6K,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q2K,
        DType::Q3K,
        DType::Q5K,
        DType::IQ4NL,
        DType::IQ4XS,
    ];

    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            DType::F32 | DType::I32 => (1, 4),
            DType::F64 => (1, 8),
            DType::F16 | DType::BF16 => (1, 2),
            DType::Q8_0 => (32, 34),
            DType::Q4_0 => (32, 18),
            DType::Q4_1 => (32, 20),
            DType::Q4K => (256, 144),
            DType::Q6K => (256, 210),
            DType::Q5_0 => (32, 22),
            DType::Q5_1 => (32, 24),
            DType::Q2K => (256, 84),
            DType::Q3K => (256, 110),
            DType::Q5K => (256, 176),
            DType::IQ4NL => (32, 18),
            DType::IQ4XS => (256, 136),
        }
    }

    /// Bytes needed for `n` elements, or None when n is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        let (be, bb) = self.block();
        if n % be != 0 {
            return None;
        }
        (n / be).checked_mul(bb)
    }

    /// True for the GGML block formats.
    pub fn is_quantized(self) -> bool {
        self.block().0 > 1
    }
}

/// Bytes of a tensor, shared and immutable. Typed variants keep f32/f64/i32 data aligned for compute;
/// `Mapped` points into a memory-mapped file (model weights) without copying.
#[derive(Clone)]
pub enum Bytes {
    /// f32 elements.
    F32(Arc<Vec<f32>>),
    /// f64 elements.
    F64(Arc<Vec<f64>>),
    /// i32 elements.
    I32(Arc<Vec<i32>>),
    /// Untyped bytes (quantized blocks, f16, data read back from a tape).
    Raw(Arc<Vec<u8>>),
    /// A range of a mapped file.
    Mapped {
        /// The mapping.
        map: Arc<memmap2::Mmap>,
        /// Byte offset of the range.
        offset: usize,
        /// Byte length of the range.
        len: usize,
    },
}

impl Bytes {
    /// The bytes, little-endian as stored on x86-64 and in GGUF.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::F32(v) => bytemuck::cast_slice(v),
            Bytes::F64(v) => bytemuck::cast_slice(v),
            Bytes::I32(v) => bytemuck::cast_slice(v),
            Bytes::Raw(v) => v,
            Bytes::Mapped { map, offset, len } => &map[*offset..*offset + *len],
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.as_slice().len())
    }
}

/// Where a tensor's bytes live. The GPU backend adds device buffers behind this enum.
#[derive(Clone, Debug)]
pub enum TensorData {
    /// Host memory.
    Host(Bytes),
    /// Device memory (GPU backends); read back to the host on demand.
    Device(Arc<dyn DeviceBuffer>),
}

/// A buffer on a device. Implemented by GPU backends.
pub trait DeviceBuffer: Send + Sync + fmt::Debug {
    /// Copies the buffer's bytes to the host (blocking).
    fn to_host(&self) -> Result<Vec<u8>, String>;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The backend-specific handle, for kernels of the same backend.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Starts computing the blake3 digest of the bytes where they are (on the device), when the backend
    /// can: the handle yields the digest later, on any thread, and the bytes never cross to the host.
    /// None: the caller copies the bytes and hashes them itself.
    fn digest(&self) -> Option<Result<PendingDigest, String>> {
        None
    }
    /// Starts copying the bytes to the host without waiting for them, when the backend can (a copy
    /// engine working beside the kernels): the handle yields, on any thread, exactly the bytes the buffer
    /// holds now. Buffers are immutable once a launch has returned them, and the handle keeps this one
    /// alive (and out of any allocation pool) until its bytes have arrived.
    /// None: the caller copies synchronously with [`DeviceBuffer::to_host`].
    fn to_host_async(&self) -> Option<Result<PendingBytes, String>> {
        None
    }
}

/// Digests of tensors that are already known, by tensor id (process-unique): a backend that hashed a
/// weight where it uploaded it says so here, and the recorder does not hash the same bytes again.
/// Only exact digests of the tensor's bytes may be recorded here.
pub mod known_digests {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn map() -> &'static Mutex<HashMap<u64, [u8; 32]>> {
        static M: OnceLock<Mutex<HashMap<u64, [u8; 32]>>> = OnceLock::new();
        M.get_or_init(|| Mutex::new(HashMap::new()))
    }

    /// Records the blake3 digest of tensor `id`'s bytes.
    pub fn remember(id: u64, digest: [u8; 32]) {
        if let Ok(mut m) = map().lock() {
            m.insert(id, digest);
        }
    }

    /// The digest of tensor `id`'s bytes, if known.
    pub fn get(id: u64) -> Option<[u8; 32]> {
        map().lock().ok()?.get(&id).copied()
    }
}

/// A blake3 digest being computed on a device; [`PendingDigest::wait`] blocks until it is known.
pub struct PendingDigest(Box<dyn FnOnce() -> Result<[u8; 32], String> + Send>);

impl PendingDigest {
    /// A digest that `f` yields when called.
    pub fn new(f: impl FnOnce() -> Result<[u8; 32], String> + Send + 'static) -> PendingDigest {
        PendingDigest(Box::new(f))
    }

    /// The digest (blocks until the device has computed it).
    pub fn wait(self) -> Result<[u8; 32], String> {
        (self.0)()
    }
}

impl fmt::Debug for PendingDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingDigest")
    }
}

/// A device-to-host copy in flight ([`DeviceBuffer::to_host_async`]); [`PendingBytes::wait`] blocks
/// until the bytes have arrived. A backend's closure owns what the copy uses (source buffer, host
/// staging memory) and must not release it before the copy has run, also when the handle is dropped
/// without a wait.
pub struct PendingBytes(Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>);

impl PendingBytes {
    /// Bytes that `f` yields when called.
    pub fn new(f: impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static) -> PendingBytes {
        PendingBytes(Box::new(f))
    }

    /// The bytes (blocks until the copy has run).
    pub fn wait(self) -> Result<Vec<u8>, String> {
        (self.0)()
    }
}

impl fmt::Debug for PendingBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingBytes")
    }
}

/// What a tensor is, for provenance on the tape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A model weight, by GGUF tensor name.
    Weight(Arc<str>),
    /// Made by a launch or by the engine (token ids).
    Value,
    /// Rows copied out of earlier tensors (a KV cache view, prefill's last row): `(tensor id, first row,
    /// rows)` in order. The recorder stores such a tensor as references to the rows it came from.
    Gathered(Arc<Vec<(u64, usize, usize)>>),
}

/// A tensor handed across the launch seam.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Process-unique identity of these exact bytes (see the module doc).
    pub id: u64,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first (row-major; the last dimension is contiguous).
    pub shape: Vec<usize>,
    /// The bytes.
    pub data: TensorData,
    /// Weight or value.
    pub origin: Origin,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh tensor id.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl Tensor {
    /// A host tensor with a fresh id.
    pub fn host(dtype: DType, shape: Vec<usize>, bytes: Bytes, origin: Origin) -> Tensor {
        Tensor {
            id: next_id(),
            dtype,
            shape,
            data: TensorData::Host(bytes),
            origin,
        }
    }

    /// An f32 value tensor.
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), v.len());
        Tensor::host(DType::F32, shape, Bytes::F32(Arc::new(v)), Origin::Value)
    }

    /// An f64 value tensor.
    pub fn f64(shape: Vec<usize>, v: Vec<f64>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), v.len());
        Tensor::host(DType::F64, shape, Bytes::F64(Arc::new(v)), Origin::Value)
    }

    /// An i32 value tensor.
    pub fn i32(shape: Vec<usize>, v: Vec<i32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), v.len());
        Tensor::host(DType::I32, shape, Bytes::I32(Arc::new(v)), Origin::Value)
    }

    /// A tensor of `dtype` from little-endian bytes (as read back from a tape). f32/f64/i32 become typed.
    pub fn from_le_bytes(
        dtype: DType,
        shape: Vec<usize>,
        bytes: Vec<u8>,
        origin: Origin,
    ) -> Tensor {
        let b = match dtype {
            DType::F32 => Bytes::F32(Arc::new(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )),
            DType::F64 => Bytes::F64(Arc::new(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )),
            DType::I32 => Bytes::I32(Arc::new(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )),
            _ => Bytes::Raw(Arc::new(bytes)),
        };
        Tensor::host(dtype, shape, b, origin)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rows = product of all but the last dimension.
    pub fn rows(&self) -> usize {
        let n = self.shape.len();
        if n == 0 {
            1
        } else {
            self.shape[..n - 1].iter().product()
        }
    }

    /// Host bytes, or None for a device tensor (use [`Tensor::to_host_bytes`]).
    pub fn host_bytes(&self) -> Option<&Bytes> {
        match &self.data {
            TensorData::Host(b) => Some(b),
            TensorData::Device(_) => None,
        }
    }

    /// The bytes on the host, copied from the device when needed.
    pub fn to_host_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match &self.data {
            TensorData::Host(b) => Ok(std::borrow::Cow::Borrowed(b.as_slice())),
            TensorData::Device(d) => d.to_host().map(std::borrow::Cow::Owned),
        }
    }

    /// f32 elements of a host f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match (&self.data, self.dtype) {
            (TensorData::Host(Bytes::F32(v)), DType::F32) => Some(v),
            (TensorData::Host(b @ Bytes::Mapped { .. }), DType::F32) => {
                bytemuck::try_cast_slice(b.as_slice()).ok()
            }
            _ => None,
        }
    }

    /// f64 elements of a host f64 tensor.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match (&self.data, self.dtype) {
            (TensorData::Host(Bytes::F64(v)), DType::F64) => Some(v),
            _ => None,
        }
    }

    /// i32 elements of a host i32 tensor.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match (&self.data, self.dtype) {
            (TensorData::Host(Bytes::I32(v)), DType::I32) => Some(v),
            _ => None,
        }
    }

    /// The GGUF name of a weight tensor.
    pub fn weight_name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Weight(n) => Some(n),
            _ => None,
        }
    }
}
