//! Safe wrappers over the HIP runtime calls greta uses (hip-sys bindings, ROCm 5.2 layout).

use hip_sys::hiprt as sys;
use std::ffi::{CStr, CString, c_void};
use std::sync::Arc;

/// A failed HIP runtime call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call} failed: {msg} ({code})")]
pub struct HipError {
    /// The runtime function that failed.
    pub call: &'static str,
    /// Its `hipError_t` code.
    pub code: u32,
    /// `hipGetErrorString` of the code, or what went wrong before the call.
    pub msg: String,
}

impl HipError {
    /// An error raised on the Rust side of a call (bad argument, size mismatch).
    pub fn local(call: &'static str, msg: impl Into<String>) -> HipError {
        HipError {
            call,
            code: 0,
            msg: msg.into(),
        }
    }
}

pub(super) fn check(call: &'static str, r: sys::hipError_t) -> Result<(), HipError> {
    if r == sys::hipError_t::hipSuccess {
        return Ok(());
    }
    // SAFETY: hipGetErrorString accepts any hipError_t and returns a pointer to a static,
    // NUL-terminated string (never freed), or null, which we check.
    let msg = unsafe {
        let p = sys::hipGetErrorString(r);
        if p.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Err(HipError {
        call,
        code: r as u32,
        msg,
    })
}

/// `hipInit(0)`.
pub fn init() -> Result<(), HipError> {
    // SAFETY: hipInit takes a flags word (must be 0) and has no pointer arguments.
    check("hipInit", unsafe { sys::hipInit(0) })
}

/// Number of visible devices.
pub fn device_count() -> Result<i32, HipError> {
    let mut n = 0;
    // SAFETY: `n` is a valid, writable c_int for the duration of the call.
    check("hipGetDeviceCount", unsafe {
        sys::hipGetDeviceCount(&mut n)
    })?;
    Ok(n)
}

/// Makes `ordinal` the calling thread's current device. HIP keeps the current device per thread, so
/// every entry point of the backend calls this first.
pub fn set_device(ordinal: i32) -> Result<(), HipError> {
    thread_local! {
        /// The device this thread selected last (every selection goes through here): selecting it
        /// again is skipped, as the recorder and the launcher do per launch.
        static CURRENT: std::cell::Cell<i32> = const { std::cell::Cell::new(-1) };
    }
    if CURRENT.with(|c| c.get()) == ordinal {
        return Ok(());
    }
    // SAFETY: no pointer arguments; an invalid ordinal is reported as an error code.
    check("hipSetDevice", unsafe { sys::hipSetDevice(ordinal) })?;
    CURRENT.with(|c| c.set(ordinal));
    Ok(())
}

/// Waits for all work on the current device.
pub fn synchronize() -> Result<(), HipError> {
    // SAFETY: no arguments.
    check("hipDeviceSynchronize", unsafe {
        sys::hipDeviceSynchronize()
    })
}

/// `hipDriverGetVersion`.
pub fn driver_version() -> Result<i32, HipError> {
    let mut v = 0;
    // SAFETY: `v` is a valid, writable c_int.
    check("hipDriverGetVersion", unsafe {
        sys::hipDriverGetVersion(&mut v)
    })?;
    Ok(v)
}

/// `hipRuntimeGetVersion`.
pub fn runtime_version() -> Result<i32, HipError> {
    let mut v = 0;
    // SAFETY: `v` is a valid, writable c_int.
    check("hipRuntimeGetVersion", unsafe {
        sys::hipRuntimeGetVersion(&mut v)
    })?;
    Ok(v)
}

/// What greta reads of `hipDeviceProp_t`.
#[derive(Clone, Debug)]
pub struct DeviceProps {
    /// Marketing name.
    pub name: String,
    /// Architecture: `gcnArchName` on AMD (e.g. `gfx942:sramecc+:xnack-`); `sm_90` through the shim.
    pub arch: String,
    /// Lanes per warp / wavefront.
    pub warp_size: u32,
    /// Compute capability (CUDA) or its HIP approximation.
    pub major: i32,
    /// Minor compute capability.
    pub minor: i32,
    /// Global memory in bytes.
    pub total_mem: usize,
}

/// Properties of device `ordinal`.
pub fn device_props(ordinal: i32) -> Result<DeviceProps, HipError> {
    let mut p = std::mem::MaybeUninit::<sys::hipDeviceProp_t>::zeroed();
    // SAFETY: `p` is a zeroed, properly aligned hipDeviceProp_t of the layout hip-sys was generated
    // for (ROCm 5.x, the layout of the libamdhip64.so.5 greta links and of the shim); the runtime
    // writes at most size_of::<hipDeviceProp_t>() bytes into it.
    check("hipGetDeviceProperties", unsafe {
        sys::hipGetDeviceProperties(p.as_mut_ptr(), ordinal)
    })?;
    // SAFETY: every field is plain data (ints, arrays, raw pointers) for which all-zero and any value
    // the runtime wrote are valid.
    let p = unsafe { p.assume_init() };
    let text = |a: &[std::ffi::c_char]| {
        let bytes: Vec<u8> = a
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(DeviceProps {
        name: text(&p.name),
        arch: text(&p.gcnArchName),
        warp_size: p.warpSize.max(1) as u32,
        major: p.major,
        minor: p.minor,
        total_mem: p.totalGlobalMem,
    })
}

/// A cache of freed device allocations by exact size. `hipMalloc` and `hipFree` cost tens of
/// microseconds each and `hipFree` waits for the device, which dominated one-row decode launches. A buffer
/// dropped here goes back to the pool and is handed out again for the next allocation of the same size.
/// That is safe because every launch and copy greta issues goes to the one default stream, in order: work
/// that writes a reused buffer is enqueued after all work that used it before. The one exception, the
/// recorder's copies on a second stream ([`super::stream`]), holds its source buffer until the copy has
/// completed, so such a buffer reaches the pool only afterwards.
mod pool {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Bytes the pool keeps at most; beyond that, drops free for real.
    const CAP: usize = 4 << 30;

    struct Pool {
        free: HashMap<usize, Vec<usize>>,
        bytes: usize,
    }

    static POOL: Mutex<Option<Pool>> = Mutex::new(None);

    /// A pooled allocation of exactly `len` bytes, if any.
    pub fn take(len: usize) -> Option<usize> {
        let mut g = POOL.lock().ok()?;
        let p = g.as_mut()?;
        let ptr = p.free.get_mut(&len)?.pop()?;
        p.bytes -= len;
        Some(ptr)
    }

    /// Keeps `ptr` (of `len` bytes) for reuse; false when the pool is full (the caller frees it).
    pub fn put(ptr: usize, len: usize) -> bool {
        let Ok(mut g) = POOL.lock() else { return false };
        let p = g.get_or_insert_with(|| Pool {
            free: HashMap::new(),
            bytes: 0,
        });
        if p.bytes + len > CAP {
            return false;
        }
        p.bytes += len;
        p.free.entry(len).or_default().push(ptr);
        true
    }
}

/// An allocation in device memory, returned to the pool (or freed) on drop.
#[derive(Debug)]
pub struct DevMem {
    ptr: *mut c_void,
    len: usize,
}

// SAFETY: a device pointer is an address in the device's memory, not host memory; HIP allows using it
// from any host thread (the runtime serialises its own state). Mutation goes through `&mut self`.
unsafe impl Send for DevMem {}
// SAFETY: `&DevMem` methods only read device memory (copies out of it, kernel inputs).
unsafe impl Sync for DevMem {}

impl DevMem {
    /// Allocates `len` bytes (uninitialised). A zero-length buffer allocates nothing.
    pub fn alloc(len: usize) -> Result<DevMem, HipError> {
        let mut ptr = std::ptr::null_mut();
        if len > 0 {
            if let Some(p) = pool::take(len) {
                return Ok(DevMem {
                    ptr: p as *mut c_void,
                    len,
                });
            }
            // SAFETY: `ptr` is a valid out-pointer; on success the runtime stores an allocation of
            // `len` bytes, owned by the returned DevMem and freed once in Drop (or kept in the pool).
            check("hipMalloc", unsafe { sys::hipMalloc(&mut ptr, len) })?;
        }
        Ok(DevMem { ptr, len })
    }

    /// A new buffer holding `bytes`.
    pub fn upload(bytes: &[u8]) -> Result<DevMem, HipError> {
        let mut m = DevMem::alloc(bytes.len())?;
        m.write(0, bytes)?;
        Ok(m)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The device address, for the other FFI modules' calls (never dereferenced on the host).
    pub(super) fn ptr(&self) -> *mut c_void {
        self.ptr
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to offset `at`.
    pub fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), HipError> {
        if at.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return Err(HipError::local(
                "hipMemcpy",
                format!("write of {} bytes at {at} into {}", bytes.len(), self.len),
            ));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        // SAFETY: the destination range [at, at+len) lies inside this allocation (checked above) and
        // the source is a live host slice of exactly that length; hipMemcpy is synchronous for
        // host-to-device copies from pageable memory with respect to the source buffer.
        check("hipMemcpy(HtoD)", unsafe {
            sys::hipMemcpy(
                self.ptr.cast::<u8>().add(at).cast(),
                bytes.as_ptr().cast(),
                bytes.len(),
                sys::hipMemcpyKind::hipMemcpyHostToDevice,
            )
        })
    }

    /// Copies `len` bytes from `src` at `src_at` to offset `at` of this buffer, on the device.
    pub fn copy_from(
        &mut self,
        at: usize,
        src: &DevMem,
        src_at: usize,
        len: usize,
    ) -> Result<(), HipError> {
        let fits = |off: usize, cap: usize| off.checked_add(len).is_some_and(|e| e <= cap);
        if !fits(at, self.len) || !fits(src_at, src.len) {
            return Err(HipError::local(
                "hipMemcpy",
                format!("copy of {len} bytes out of range"),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // Asynchronous on the null stream: ordered after the kernels before it and before those after
        // it, like a launch, so the host does not wait for the device (a blocking device-to-device copy
        // drained the queue twice per layer per decode step).
        // SAFETY: both ranges lie inside live allocations (checked above); `self` is borrowed mutably
        // and `src` shared, so they are distinct DevMem objects and the ranges do not overlap. Both stay
        // valid until the copy has run: a dropped buffer is only reused (pool) or freed (hipFree waits
        // for the device) by work ordered after it on the same stream.
        check("hipMemcpyAsync(DtoD)", unsafe {
            sys::hipMemcpyAsync(
                self.ptr.cast::<u8>().add(at).cast(),
                src.ptr.cast::<u8>().add(src_at).cast_const().cast(),
                len,
                sys::hipMemcpyKind::hipMemcpyDeviceToDevice,
                std::ptr::null_mut(),
            )
        })
    }

    /// The buffer's device address (for descriptors that kernels read).
    pub fn addr(&self) -> u64 {
        self.ptr as usize as u64
    }

    /// Copies the whole buffer to the host.
    pub fn read(&self) -> Result<Vec<u8>, HipError> {
        let mut out = vec![0u8; self.len];
        if self.len > 0 {
            // SAFETY: `out` has exactly `len` writable bytes and the source is this live allocation of
            // `len` bytes; device-to-host hipMemcpy returns after the data has arrived.
            check("hipMemcpy(DtoH)", unsafe {
                sys::hipMemcpy(
                    out.as_mut_ptr().cast(),
                    self.ptr.cast_const(),
                    self.len,
                    sys::hipMemcpyKind::hipMemcpyDeviceToHost,
                )
            })?;
        }
        Ok(out)
    }
}

impl Drop for DevMem {
    fn drop(&mut self) {
        if !self.ptr.is_null() && !pool::put(self.ptr as usize, self.len) {
            // SAFETY: `ptr` came from hipMalloc and is freed exactly once, here (the pool declined it).
            // A failure cannot be reported from Drop; the memory is then leaked, which is safe.
            let _ = unsafe { sys::hipFree(self.ptr) };
        }
    }
}

/// A loaded code object, unloaded on drop.
#[derive(Debug)]
pub struct Module {
    raw: sys::hipModule_t,
}

// SAFETY: module handles are process-wide runtime objects, valid from any thread of the process.
unsafe impl Send for Module {}
// SAFETY: the only `&Module` operation, hipModuleGetFunction, is thread-safe in the runtime.
unsafe impl Sync for Module {}

impl Module {
    /// Loads a code object (AMD: an ELF code object from hiprtc; shim: a CUBIN or PTX from NVRTC).
    pub fn load(image: &[u8]) -> Result<Arc<Module>, HipError> {
        if image.is_empty() {
            return Err(HipError::local("hipModuleLoadData", "empty code object"));
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer and `image` a live code object that the runtime parses
        // (and copies) during the call; we keep no pointer into it afterwards.
        check("hipModuleLoadData", unsafe {
            sys::hipModuleLoadData(&mut raw, image.as_ptr().cast())
        })?;
        Ok(Arc::new(Module { raw }))
    }

    /// The kernel `name` of this module, with the argument list declared by the caller.
    pub fn function(
        self: &Arc<Module>,
        name: &str,
        sig: &'static [ArgKind],
    ) -> Result<Function, HipError> {
        let c = CString::new(name)
            .map_err(|_| HipError::local("hipModuleGetFunction", "name contains NUL"))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer, `c` a NUL-terminated string alive for the call, and
        // `self.raw` a loaded module (unloaded only when the last Arc, held by every Function, drops).
        check("hipModuleGetFunction", unsafe {
            sys::hipModuleGetFunction(&mut raw, self.raw, c.as_ptr())
        })?;
        Ok(Function {
            raw,
            sig,
            name: name.to_string(),
            _module: Arc::clone(self),
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: `raw` was loaded by hipModuleLoadData and is unloaded once; every Function holds an
        // Arc<Module>, so no function handle outlives it.
        let _ = unsafe { sys::hipModuleUnload(self.raw) };
    }
}

/// The type of one kernel parameter, as declared in kernels/*.cu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A device pointer (`float*`, `const int*`).
    Ptr,
    /// `u32` (unsigned int).
    U32,
    /// `float`.
    F32,
    /// `double`.
    F64,
}

/// One kernel argument.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    /// A device buffer, passed as its pointer.
    Buf(&'a DevMem),
    /// A device address inside mapped host memory ([`MappedHost::device_addr`]).
    Mapped(&'a MappedHost, usize),
    /// An unsigned int.
    U32(u32),
    /// A float.
    F32(f32),
    /// A double.
    F64(f64),
}

impl Arg<'_> {
    fn kind(&self) -> ArgKind {
        match self {
            Arg::Buf(_) | Arg::Mapped(..) => ArgKind::Ptr,
            Arg::U32(_) => ArgKind::U32,
            Arg::F32(_) => ArgKind::F32,
            Arg::F64(_) => ArgKind::F64,
        }
    }
}

/// A kernel of a loaded module, with its declared parameter list.
#[derive(Debug)]
pub struct Function {
    raw: sys::hipFunction_t,
    sig: &'static [ArgKind],
    name: String,
    _module: Arc<Module>,
}

// SAFETY: function handles are process-wide runtime objects; launching is thread-safe in the runtime.
unsafe impl Send for Function {}
// SAFETY: as above; `&Function` is only used to launch.
unsafe impl Sync for Function {}

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared: u32,
}

/// Launches `f` on the null stream with `args`. The argument kinds must equal the kernel's declared
/// signature (checked); buffer sizes are the caller's contract with the kernel (see ops/).
pub fn launch(f: &Function, dims: LaunchDims, args: &[Arg]) -> Result<(), HipError> {
    let kinds: Vec<ArgKind> = args.iter().map(Arg::kind).collect();
    if kinds != f.sig {
        return Err(HipError::local(
            "hipModuleLaunchKernel",
            format!(
                "{}: arguments {kinds:?} do not match the declared signature {:?}",
                f.name, f.sig
            ),
        ));
    }
    if let Some(Arg::Mapped(m, off)) = args
        .iter()
        .find(|a| matches!(a, Arg::Mapped(m, off) if *off >= m.len))
    {
        return Err(HipError::local(
            "hipModuleLaunchKernel",
            format!(
                "{}: offset {off} past mapped memory of {} bytes",
                f.name, m.len
            ),
        ));
    }
    if dims.grid.contains(&0) || dims.block.contains(&0) {
        return Ok(()); // nothing to do (e.g. zero rows)
    }
    // Each argument's value in its own 8-byte slot; kernelParams points at the slots. The slots live
    // until the call returns (HIP copies the arguments at launch).
    let mut slots: Vec<u64> = args
        .iter()
        .map(|a| {
            let mut s = [0u8; 8];
            match *a {
                Arg::Buf(m) => s.copy_from_slice(&(m.ptr as usize as u64).to_ne_bytes()),
                Arg::Mapped(m, off) => {
                    s.copy_from_slice(&((m.dev as usize + off) as u64).to_ne_bytes())
                }
                Arg::U32(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
                Arg::F32(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
                Arg::F64(v) => s.copy_from_slice(&v.to_ne_bytes()),
            }
            u64::from_ne_bytes(s)
        })
        .collect();
    let mut params: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|s| std::ptr::from_mut(s).cast())
        .collect();
    // SAFETY: `f.raw` is a function of a loaded module (kept alive by `f`); `params` holds one pointer
    // per declared parameter (kinds checked above against the signature table that mirrors
    // kernels/*.cu), each to an 8-byte, 8-aligned slot holding the value in its leading bytes (x86-64
    // and the GPUs are little-endian); device pointers come from live DevMem borrowed for this call.
    check("hipModuleLaunchKernel", unsafe {
        sys::hipModuleLaunchKernel(
            f.raw,
            dims.grid[0],
            dims.grid[1],
            dims.grid[2],
            dims.block[0],
            dims.block[1],
            dims.block[2],
            dims.shared,
            std::ptr::null_mut(),
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    })
}

/// Pinned host memory mapped into the device's address space: kernels write it, the host reads it, with
/// no copy and no stream in between (greta's digest ring). Freed on drop.
#[derive(Debug)]
pub struct MappedHost {
    host: *mut u8,
    dev: *mut c_void,
    len: usize,
}

// SAFETY: the allocation is process-wide pinned memory; every access goes through volatile reads of
// `&self` (the device may write it at any time) and the pointer is never handed out mutably.
unsafe impl Send for MappedHost {}
// SAFETY: as above.
unsafe impl Sync for MappedHost {}

impl MappedHost {
    /// `len` bytes (at least 1) of zeroed, pinned, device-mapped host memory.
    pub fn alloc(len: usize) -> Result<MappedHost, HipError> {
        let len = len.max(1);
        let mut host = std::ptr::null_mut();
        // SAFETY: `host` is a valid out-pointer; on success it holds `len` bytes of pinned memory owned by
        // the returned value and freed once in Drop. 2 = hipHostMallocMapped.
        check("hipHostMalloc", unsafe {
            sys::hipHostMalloc(&mut host, len, 2)
        })?;
        let mut dev = std::ptr::null_mut();
        // SAFETY: `host` is the live mapped allocation made above; `dev` is a valid out-pointer.
        if let Err(e) = check("hipHostGetDevicePointer", unsafe {
            sys::hipHostGetDevicePointer(&mut dev, host, 0)
        }) {
            // SAFETY: freeing the allocation made above, once.
            let _ = unsafe { sys::hipHostFree(host) };
            return Err(e);
        }
        // SAFETY: `host` points at `len` writable bytes that nothing else references yet.
        unsafe { std::ptr::write_bytes(host.cast::<u8>(), 0, len) };
        Ok(MappedHost {
            host: host.cast(),
            dev,
            len,
        })
    }

    /// The little-endian u32 at byte `at` (`at + 4 <= len`, 4-aligned), read as the device may have just
    /// written it.
    pub fn read_u32(&self, at: usize) -> u32 {
        assert!(
            at % 4 == 0 && at + 4 <= self.len,
            "mapped read out of range"
        );
        // SAFETY: in range and aligned (checked); volatile because the device writes this memory.
        unsafe { std::ptr::read_volatile(self.host.add(at).cast::<u32>()) }
    }

    /// Writes the little-endian u64 `v` at byte `at` (`at + 8 <= len`, 8-aligned), for a kernel launched
    /// after this call to read.
    pub fn write_u64(&self, at: usize, v: u64) {
        assert!(
            at % 8 == 0 && at + 8 <= self.len,
            "mapped write out of range"
        );
        // SAFETY: in range and aligned (checked); the memory is owned by `self` and only read by kernels
        // launched after this write (the caller's contract), so no device write races it.
        unsafe { std::ptr::write_volatile(self.host.add(at).cast::<u64>(), v) }
    }

    /// Queues a copy of bytes `at..at + len` of this memory to `dst` at `dst_at`, on the null stream
    /// (after every kernel queued so far, before every kernel queued later), and returns at once. The
    /// caller must not write those bytes again before the copy has run (work queued after it has).
    pub fn copy_to_device_async(
        &self,
        at: usize,
        dst: &DevMem,
        dst_at: usize,
        len: usize,
    ) -> Result<(), HipError> {
        let fits = |a: usize, n: usize| a.checked_add(len).is_some_and(|end| end <= n);
        if !fits(at, self.len) || !fits(dst_at, dst.len()) {
            return Err(HipError::local(
                "hipMemcpyAsync(HtoD)",
                format!(
                    "{len} bytes at {at} of {} into {dst_at} of {}",
                    self.len,
                    dst.len()
                ),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: both ranges lie inside their allocations (checked above), which outlive the copy (the
        // caller's allocations are freed only after the device is past it: the digest ring keeps both
        // for its lifetime); the source is pinned, so the copy reads it when it runs, and the caller does
        // not rewrite it before then.
        check("hipMemcpyAsync(HtoD)", unsafe {
            sys::hipMemcpyAsync(
                dst.ptr().cast::<u8>().add(dst_at).cast(),
                self.host.add(at).cast_const().cast(),
                len,
                sys::hipMemcpyKind::hipMemcpyHostToDevice,
                std::ptr::null_mut(),
            )
        })
    }

    /// Bytes `at..at + N`, read as the device may have just written them.
    pub fn read_bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        assert!(at + N <= self.len, "mapped read out of range");
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: in range (checked); volatile because the device writes this memory.
            *o = unsafe { std::ptr::read_volatile(self.host.add(at + i)) };
        }
        out
    }
}

impl Drop for MappedHost {
    fn drop(&mut self) {
        // SAFETY: `host` came from hipHostMalloc and is freed exactly once, here.
        let _ = unsafe { sys::hipHostFree(self.host.cast()) };
    }
}
