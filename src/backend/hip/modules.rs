//! Compiled kernel modules, cached per device and keyed by blake3(source + compile options).
//!
//! Why: hiprtc/NVRTC compilation takes tens to hundreds of milliseconds per file; a run compiles each
//! file once per device, on first use. The key includes the options (architecture, contraction), so a
//! module is never reused for a device or flag set it was not compiled for. The cache is per process and
//! shared by every backend opened on the same device (replay opens several).

use super::ffi::{self, Function, Module};
use super::source::{Kernel, KernelFile};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Compile options for a device: its own architecture, and no floating-point contraction (so
/// `a * b + c` rounds twice, as on the CPU reference). On the HIP-on-CUDA shim `--gpu-architecture=sm_XX`
/// passes through to NVRTC and `-ffp-contract=off` becomes `--fmad=false`.
pub fn options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "-ffp-contract=off".to_string(),
        "-O3".to_string(),
    ]
}

/// The cache key of a file under options.
pub fn key(file: KernelFile, options: &[String]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(file.compiled_source().as_bytes());
    for o in options {
        h.update(b"\0");
        h.update(o.as_bytes());
    }
    *h.finalize().as_bytes()
}

type Cache = Mutex<HashMap<(i32, [u8; 32]), Arc<Module>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Why a kernel could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The compiler rejected a file.
    #[error("compiling {file} with {options:?}: {source}")]
    Compile {
        /// The kernel file.
        file: &'static str,
        /// The options.
        options: Vec<String>,
        /// Status and log.
        source: ffi::rtc::CompileError,
    },
    /// Loading the module or finding the function failed.
    #[error("loading {file}: {source}")]
    Load {
        /// The kernel file.
        file: &'static str,
        /// The runtime error.
        source: ffi::HipError,
    },
}

/// The module of `file` for device `ordinal`, compiled on first use. The current device must be
/// `ordinal` (modules load into the current device's context).
pub fn module(
    ordinal: i32,
    file: KernelFile,
    options: &[String],
) -> Result<Arc<Module>, ModuleError> {
    let k = (ordinal, key(file, options));
    if let Some(m) = cache().lock().expect("module cache poisoned").get(&k) {
        return Ok(Arc::clone(m));
    }
    let name = file.path().trim_start_matches("kernels/");
    let code = ffi::rtc::compile(&file.compiled_source(), name, options).map_err(|source| {
        ModuleError::Compile {
            file: file.path(),
            options: options.to_vec(),
            source,
        }
    })?;
    let m = Module::load(&code).map_err(|source| ModuleError::Load {
        file: file.path(),
        source,
    })?;
    // A racing thread may have inserted the same module meanwhile; either copy is equivalent.
    Ok(Arc::clone(
        cache()
            .lock()
            .expect("module cache poisoned")
            .entry(k)
            .or_insert(m),
    ))
}

/// The function of `kernel` for device `ordinal`.
pub fn function(ordinal: i32, kernel: Kernel, options: &[String]) -> Result<Function, ModuleError> {
    let m = module(ordinal, kernel.file, options)?;
    m.function(kernel.name, kernel.sig)
        .map_err(|source| ModuleError::Load {
            file: kernel.file.path(),
            source,
        })
}
