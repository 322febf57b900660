//! [`HipBackend`]: one GPU, its kernel functions, its weight cache, and the [`Backend`] implementation
//! that dispatches each (stage, route) to a kernel in ops/.

use super::buffer::{HipBuffer, device_tensor, hip_buffer};
use super::ffi::{self, Arg, DevMem, DeviceProps, Function, LaunchDims};
use super::modules;
use super::ops;
use super::source::{self, Kernel};
use crate::backend::{Backend, BackendError};
use crate::launch::{DType, Params, Route, Stage, Tensor, TensorData, Variant};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The HIP backend on one device.
pub struct HipBackend {
    pub(super) ordinal: i32,
    pub(super) props: DeviceProps,
    driver: i32,
    runtime: i32,
    options: Vec<String>,
    /// Wall time of compiling (or fetching from the cache) every kernel at open.
    compile_ms: u128,
    functions: Mutex<HashMap<&'static str, Arc<Function>>>,
    /// Weights on the device in their GGUF formats, by `Tensor::id` (see weights.rs).
    pub(super) weights: Mutex<HashMap<u64, super::weights::DevWeight>>,
    /// Optional kernel files that failed to compile on this device, with the compiler's message: their
    /// routes are left out of `routes` and refused with that message.
    unavailable: HashMap<&'static str, String>,
    /// The last activation quantised to Q8_1 by `gemv_q8`: (tensor id, its quants, scales, sums). Tensors
    /// are immutable and ids never reused, so q, k and v (gate and up) share one quantisation.
    pub(super) q8_last: Mutex<Option<(u64, Arc<[DevMem; 3]>)>>,
    /// Digests of device buffers (hash-only recording), see digest.rs.
    pub(super) hasher: Option<Arc<super::digest::DeviceHasher>>,
    /// Device-to-host copies on a second stream (full capture), see copy.rs.
    copier: Arc<super::copy::Copier>,
    /// Wait for the device after every launch (`GRETA_HIP_SYNC=1`): exact per-launch wall times and
    /// errors reported by the launch that caused them. Off by default: launches are queued in order on
    /// the default stream and the host waits only where it reads results (a full capture's copies run on
    /// a second stream, so there too a device error surfaces later, when the recorder reads the bytes).
    sync: bool,
}

pub(super) fn dev_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Device(e.to_string())
}

impl HipBackend {
    /// Opens device `ordinal`: initialises the runtime, reads the device's properties and compiles every
    /// kernel (so a compiler error surfaces here, and the first launches' durations are the kernels').
    pub fn open(ordinal: i32) -> Result<HipBackend, BackendError> {
        ffi::init().map_err(|e| BackendError::NoDevice(e.to_string()))?;
        let n = ffi::device_count().map_err(|e| BackendError::NoDevice(e.to_string()))?;
        if ordinal < 0 || ordinal >= n {
            return Err(BackendError::NoDevice(format!(
                "device {ordinal} requested, {n} visible"
            )));
        }
        ffi::set_device(ordinal).map_err(dev_err)?;
        let props = ffi::device_props(ordinal).map_err(dev_err)?;
        let driver = ffi::driver_version().unwrap_or(0);
        let runtime = ffi::runtime_version().unwrap_or(0);
        let options = modules::options(&props.arch);
        let mut b = HipBackend {
            ordinal,
            props,
            driver,
            runtime,
            options,
            compile_ms: 0,
            functions: Mutex::new(HashMap::new()),
            weights: Mutex::new(HashMap::new()),
            unavailable: HashMap::new(),
            hasher: None,
            copier: Arc::new(super::copy::Copier::new(ordinal)),
            q8_last: Mutex::new(None),
            sync: std::env::var_os("GRETA_HIP_SYNC").is_some_and(|v| v != "0"),
        };
        let t0 = std::time::Instant::now();
        for k in source::ALL_KERNELS {
            match b.function(*k) {
                Ok(_) => {}
                Err(e) if k.file.optional() => {
                    b.unavailable.insert(k.name, e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        b.compile_ms = t0.elapsed().as_millis();
        b.hasher = Some(Arc::new(super::digest::DeviceHasher::new(
            ordinal,
            b.function(source::BLAKE3)?,
        )));
        Ok(b)
    }

    /// Lanes per warp/wavefront of the device (block sizes are multiples of it).
    pub fn warp(&self) -> u32 {
        self.props.warp_size
    }

    /// The compile options in use.
    pub fn compile_options(&self) -> &[String] {
        &self.options
    }

    /// Makes this device current on the calling thread.
    pub(super) fn select(&self) -> Result<(), BackendError> {
        ffi::set_device(self.ordinal).map_err(dev_err)
    }

    fn function(&self, kernel: Kernel) -> Result<Arc<Function>, BackendError> {
        if let Some(f) = self
            .functions
            .lock()
            .expect("function cache poisoned")
            .get(kernel.name)
        {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(modules::function(self.ordinal, kernel, &self.options).map_err(dev_err)?);
        self.functions
            .lock()
            .expect("function cache poisoned")
            .insert(kernel.name, Arc::clone(&f));
        Ok(f)
    }

    /// Launches `kernel`; in sync mode also waits for it, so that an error is reported by the launch that
    /// caused it and the launcher's wall time is the kernel's.
    pub(super) fn run(
        &self,
        kernel: Kernel,
        dims: LaunchDims,
        args: &[Arg],
    ) -> Result<(), BackendError> {
        let f = self.function(kernel)?;
        ffi::launch(&f, dims, args).map_err(dev_err)?;
        if self.sync {
            ffi::synchronize()
                .map_err(|e| BackendError::Device(format!("{}: {e}", kernel.name)))?;
        }
        Ok(())
    }

    /// A fresh output buffer of `numel` f32 (or i32) elements.
    pub(super) fn alloc(&self, numel: usize) -> Result<DevMem, BackendError> {
        DevMem::alloc(numel * 4).map_err(dev_err)
    }

    /// An output tensor over `mem`.
    pub(super) fn tensor(&self, mem: DevMem, dtype: DType, shape: Vec<usize>) -> Tensor {
        self.shared_tensor(Arc::new(mem), dtype, shape)
    }

    /// An output tensor over a buffer that other tensors may share (`kv_write` hands its inputs on).
    pub(super) fn shared_tensor(
        &self,
        mem: Arc<DevMem>,
        dtype: DType,
        shape: Vec<usize>,
    ) -> Tensor {
        device_tensor(
            mem,
            self.ordinal,
            self.hasher.clone(),
            Some(self.copier.clone()),
            dtype,
            shape,
        )
    }

    /// An activation input of `dtype` on this device: a device tensor of this backend is used as is, a host
    /// tensor is uploaded.
    pub(super) fn input(
        &self,
        stage: Stage,
        t: &Tensor,
        dtype: DType,
    ) -> Result<Arc<DevMem>, BackendError> {
        if t.dtype != dtype {
            return Err(bad(
                stage,
                format!("input is {} {:?}, expected {dtype}", t.dtype, t.shape),
            ));
        }
        let want = t.numel() * 4;
        let mem = match &t.data {
            TensorData::Host(b) => Arc::new(DevMem::upload(b.as_slice()).map_err(dev_err)?),
            TensorData::Device(_) => {
                let hb =
                    hip_buffer(t).ok_or_else(|| bad(stage, "device tensor of another backend"))?;
                if hb.device != self.ordinal {
                    return Err(bad(
                        stage,
                        format!(
                            "tensor on device {}, backend on {}",
                            hb.device, self.ordinal
                        ),
                    ));
                }
                Arc::clone(&hb.mem)
            }
        };
        if mem.len() != want {
            return Err(bad(
                stage,
                format!(
                    "{:?} {} has {} bytes, expected {want}",
                    t.shape,
                    t.dtype,
                    mem.len()
                ),
            ));
        }
        Ok(mem)
    }
}

pub(super) use crate::backend::contract::{bad, want};

impl Backend for HipBackend {
    fn name(&self) -> &'static str {
        "hip"
    }

    fn device(&self) -> String {
        let p = &self.props;
        format!(
            "{} (arch {}, cc {}.{}, warp {}, {} GiB, driver {}, runtime {}, hiprtc from {}, kernels compiled in {} ms)",
            p.name,
            p.arch,
            p.major,
            p.minor,
            p.warp_size,
            p.total_mem >> 30,
            self.driver,
            self.runtime,
            ffi::rtc::provider().unwrap_or("nowhere"),
            self.compile_ms
        )
    }

    fn preload(&self, weights: &[&Tensor]) -> Result<(), BackendError> {
        self.preload_weights(weights)
    }

    fn routes(&self, stage: Stage) -> Vec<Route> {
        super::routes(stage)
            .into_iter()
            .filter(|r| {
                !(r.variant == Variant::GemmMma
                    && self.unavailable.contains_key(source::GEMM_MMA.name))
            })
            .collect()
    }

    /// The engine-style routes by default: prefill matmuls on matrix cores (`gemm_mma`), one-row decode
    /// matmuls on block-quantized weights as integer dots (`gemv_q8`), as the engines greta's users debug
    /// run them. Other launches follow the policy's rule.
    fn preferred(&self, stage: Stage, inputs: &[&Tensor]) -> Option<Variant> {
        if !stage.is_matmul() || inputs.len() != 2 {
            return None;
        }
        let (x, w) = (inputs[0], inputs[1]);
        if x.rows() > 1 {
            (!self.unavailable.contains_key(source::GEMM_MMA.name)).then_some(Variant::GemmMma)
        } else {
            let inn = w.shape.last().copied().unwrap_or(0);
            (crate::backend::contract::q8_supported(w.dtype) && inn % 32 == 0)
                .then_some(Variant::GemvQ8)
        }
    }

    fn execute(
        &self,
        stage: Stage,
        route: Route,
        params: &Params,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, BackendError> {
        let unsupported = || BackendError::unsupported(self, stage, route);
        let p = route.precision;
        if let Some(e) = super::not_yet(stage, params) {
            return Err(e);
        }
        if !super::routes(stage).contains(&route) {
            return Err(unsupported());
        }
        if route.variant == Variant::GemmMma {
            if let Some(why) = self.unavailable.get(source::GEMM_MMA.name) {
                return Err(BackendError::Device(format!(
                    "gemm_mma is not available on this device: {why}"
                )));
            }
        }
        self.select()?;
        match (stage, route.variant) {
            (
                s,
                Variant::Gemv
                | Variant::GemmTiled
                | Variant::GemmInvariant
                | Variant::GemvQ8
                | Variant::GemmMma,
            ) if s.is_matmul() => ops::matmul::matmul(self, stage, route.variant, inputs),
            (Stage::Qk, Variant::Manual) => ops::attention::qk(self, p, params, inputs),
            (Stage::Softmax, Variant::Manual) => ops::attention::softmax(self, p, inputs),
            (Stage::Pv, Variant::Manual) => ops::attention::pv(self, p, params, inputs),
            (Stage::Attn, Variant::Fused) => ops::attention::fused(self, p, params, inputs),
            (_, Variant::Direct) => match stage {
                Stage::Embed => ops::direct::embed(self, inputs),
                Stage::AttnNorm | Stage::FfnNorm | Stage::FinalNorm => {
                    ops::direct::rmsnorm(self, stage, params, inputs)
                }
                Stage::RopeQ | Stage::RopeK => ops::direct::rope(self, stage, params, inputs),
                Stage::KvWrite => ops::direct::kv_write(self, inputs),
                Stage::AttnResidual | Stage::FfnResidual => ops::direct::add(self, stage, inputs),
                Stage::Swiglu => ops::direct::swiglu(self, inputs),
                Stage::Argmax => ops::direct::argmax(self, inputs),
                _ => Err(unsupported()),
            },
            _ => Err(unsupported()),
        }
    }

    /// Row ranges copied on the device (device parts) or uploaded (host parts) into one new device tensor.
    fn gather_rows(&self, parts: &[(&Tensor, usize, usize)]) -> Result<Tensor, BackendError> {
        let err = |what: String| BackendError::Device(format!("gather_rows: {what}"));
        let crate::backend::contract::GatherLayout {
            dtype,
            width,
            row_bytes: row,
            rows,
        } = crate::backend::contract::gather_layout(parts)?;
        self.select()?;
        let mut out = DevMem::alloc(rows * row).map_err(dev_err)?;
        let mut at = 0;
        for (t, r0, n) in parts {
            match (&t.data, hip_buffer(t)) {
                (TensorData::Host(b), _) => {
                    out.write(at, &b.as_slice()[r0 * row..(r0 + n) * row])
                        .map_err(dev_err)?;
                }
                (TensorData::Device(_), Some(HipBuffer { mem, device, .. }))
                    if *device == self.ordinal =>
                {
                    out.copy_from(at, mem, r0 * row, n * row).map_err(dev_err)?;
                }
                _ => return Err(err("a part lives on another device or backend".into())),
            }
            at += n * row;
        }
        Ok(self.tensor(out, dtype, vec![rows, width]))
    }

    fn kernel_hashes(&self) -> Vec<(String, String)> {
        source::hashes()
    }
}
