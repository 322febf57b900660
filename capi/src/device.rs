//! Device tensors: bytes behind a HIP device pointer, copied to the host on the caller's stream.
//!
//! With the `hip` feature the copy is a `hipMemcpyAsync` queued on the engine's stream (so it runs after
//! the kernels queued before it, without a device-wide sync) followed by a wait on that stream; the bytes
//! then go to greta's worker like host bytes. (Not yet overlapped with the engine: the call returns once
//! the copy is done. Not run on a GPU in CI; compiled against ROCm's headers there.) Without the
//! feature: `GRETA_NO_GPU_SUPPORT`.

use crate::error::{Error, GretaStatus};
use std::ffi::c_void;

/// Copies `n` bytes at device pointer `ptr` to the host, after the work queued on `stream`.
///
/// # Safety
/// With the `hip` feature: `ptr` is NULL only when `n` is 0, else a device allocation of at least `n`
/// bytes on the current device; `stream` is a valid HIP stream (or NULL: the default stream) on which
/// the producer of those bytes was queued, and the allocation is not freed before this returns. Without
/// the feature nothing is dereferenced (it returns `GRETA_NO_GPU_SUPPORT`).
#[cfg(not(feature = "hip"))]
pub unsafe fn copy_to_host(
    _ptr: *const c_void,
    _n: usize,
    _stream: *mut c_void,
) -> Result<Vec<u8>, Error> {
    Err(Error {
        status: GretaStatus::NoGpuSupport,
        msg: "device tensor: libgreta was not compiled with GPU support (build greta-capi with --features hip)".into(),
    })
}

#[cfg(feature = "hip")]
#[link(name = "amdhip64")]
unsafe extern "C" {
    fn hipMemcpyAsync(
        dst: *mut c_void,
        src: *const c_void,
        n: usize,
        kind: i32,
        stream: *mut c_void,
    ) -> i32;
    fn hipStreamSynchronize(stream: *mut c_void) -> i32;
    fn hipGetErrorString(e: i32) -> *const std::ffi::c_char;
}

/// Copies `n` bytes at device pointer `ptr` to the host, after the work queued on `stream`.
///
/// # Safety
/// With the `hip` feature: `ptr` is NULL only when `n` is 0, else a device allocation of at least `n`
/// bytes on the current device; `stream` is a valid HIP stream (or NULL: the default stream) on which
/// the producer of those bytes was queued, and the allocation is not freed before this returns. Without
/// the feature nothing is dereferenced (it returns `GRETA_NO_GPU_SUPPORT`).
#[cfg(feature = "hip")]
pub unsafe fn copy_to_host(
    ptr: *const c_void,
    n: usize,
    stream: *mut c_void,
) -> Result<Vec<u8>, Error> {
    const HIP_MEMCPY_DEVICE_TO_HOST: i32 = 2;
    let fail = |what: &str, e: i32| Error {
        status: GretaStatus::InvalidArgument,
        // SAFETY: hipGetErrorString returns a static NUL-terminated string for any code.
        msg: format!(
            "{what}: {}",
            unsafe { std::ffi::CStr::from_ptr(hipGetErrorString(e)) }.to_string_lossy()
        ),
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Error::invalid("device pointer is NULL"));
    }
    let mut v = vec![0u8; n];
    // SAFETY: `ptr` is a device allocation of at least `n` bytes valid on `stream` (greta.h), `v` has
    // `n` writable bytes, and we wait for the stream before reading `v`.
    let e = unsafe {
        hipMemcpyAsync(
            v.as_mut_ptr().cast(),
            ptr,
            n,
            HIP_MEMCPY_DEVICE_TO_HOST,
            stream,
        )
    };
    if e != 0 {
        return Err(fail("hipMemcpyAsync", e));
    }
    // SAFETY: `stream` is the caller's stream (or NULL, the null stream).
    let e = unsafe { hipStreamSynchronize(stream) };
    if e != 0 {
        return Err(fail("hipStreamSynchronize", e));
    }
    Ok(v)
}
