//! The only unsafe code of the HIP backend: thin, safe wrappers over the HIP runtime (hip-sys) and
//! hiprtc (looked up at run time, see [`rtc`]).
//!
//! Why a separate module: every other file of the backend works with owned, typed handles
//! ([`DevMem`], [`Module`], [`Function`], [`Stream`], [`Event`], [`CopyInFlight`]) whose constructors
//! and `Drop` impls keep the C API's invariants (a pointer is freed once, a module outlives its
//! functions, a copy never exceeds either buffer, an asynchronous copy's buffers outlive it). Each
//! `unsafe` block below says which invariant makes it sound.
//!
//! Files: `runtime` (devices, memory, the device pool, modules, launches, mapped host memory), `stream`
//! (a second stream, events, device-to-host copies on it), `rtc`.
//!
//! Error codes: hip-sys maps `hipError_t` to a Rust enum, so a runtime (or the HIP-on-CUDA shim) must
//! only return codes of ROCm 5.2's enum; the shim maps every CUDA error to one of them.

pub mod rtc;
mod runtime;
mod stream;

pub use runtime::{
    Arg, ArgKind, DevMem, DeviceProps, Function, HipError, LaunchDims, MappedHost, Module,
    device_count, device_props, driver_version, init, launch, runtime_version, set_device,
    synchronize,
};
pub use stream::{Event, Stream, copy_to_host};
