//! libgreta: the C ABI of greta's open capture (issue 9). Another engine (C, C++, HIP) records its
//! kernel launches to a greta tape through these calls; `include/greta.h` is the header, hand-written
//! and kept honest by a C test program compiled against it (`tests/ctest.c`, run by `cargo test`).
//!
//! Rules of the boundary:
//! - every function returns a [`GretaStatus`]; `greta_last_error()` gives this thread's message;
//! - every exported function that returns a status is wrapped by `ffi_fn!` (src/macros.rs), so a
//!   panic becomes `GRETA_PANIC` and never unwinds into C; the few that return nothing catch too;
//! - handles are opaque (`greta_header`, `greta_recorder`) with `_new`/`_free` pairs;
//! - all caller memory is copied during the call (strings, shapes, tensor bytes): the caller may reuse
//!   its buffers as soon as a call returns. Hashing and compression run on greta's worker thread.
//!
//! The calls map one to one onto [`greta::capture::CaptureRecorder`].

#[macro_use]
mod macros;
mod device;
mod error;

pub use error::GretaStatus;

use error::Error;
use greta::capture::{
    CaptureHeader, CaptureOptions, CaptureRecorder, Durability, LaunchDesc, ModelDesc, TensorIn,
    TensorOut,
};
use greta::launch::{DType, Phase};
use std::ffi::{CStr, c_char, c_int, c_void};

/// The ABI version of this library (GRETA_ABI_VERSION in greta.h). Bumped on any incompatible change.
pub const GRETA_ABI_VERSION: u32 = 2;
/// `greta_recorder_new` flag: `greta_begin` returns once the Begin record is in the file.
pub const GRETA_SYNC: u32 = 1;

/// Tensor kinds (`greta_tensor_kind`).
const KIND_HOST: c_int = 0;
const KIND_WEIGHT: c_int = 1;
const KIND_ID: c_int = 2;
const KIND_DEVICE: c_int = 3;

/// `greta_dtype` values, in order.
const DTYPES: [DType; 17] = [
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I32,
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

/// A tensor as the caller describes it (`greta_tensor`).
#[repr(C)]
pub struct GretaTensor {
    pub role: *const c_char,
    pub kind: c_int,
    pub dtype: c_int,
    pub shape: *const i64,
    pub ndim: usize,
    pub data: *const c_void,
    pub nbytes: usize,
    pub weight_name: *const c_char,
    pub id: u64,
    pub stream: *mut c_void,
}

/// A named scalar parameter (`greta_param`).
#[repr(C)]
pub struct GretaParam {
    pub name: *const c_char,
    pub value: f64,
}

/// A launch's names and parameters (`greta_launch_desc`).
#[repr(C)]
pub struct GretaLaunchDesc {
    pub phase: *const c_char,
    pub layer: i32,
    pub stage: *const c_char,
    pub route: *const c_char,
    pub params: *const GretaParam,
    pub n_params: usize,
    pub op: *const c_char,
}

/// Opaque header builder (`greta_header`).
pub struct GretaHeader(CaptureHeader);
/// Opaque recorder (`greta_recorder`).
pub struct GretaRecorder(CaptureRecorder);

/// A caller string (NULL is an error naming `what`).
///
/// # Safety
/// `p` is NULL or points at a NUL-terminated string that stays valid and unmodified for `'a` (the
/// call), as greta.h requires.
unsafe fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null and NUL-terminated per the header's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::invalid(format!("{what} is not UTF-8")))
}

/// An optional caller string (NULL = none).
///
/// # Safety
/// As [`cstr`]: `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn opt_cstr<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as `cstr`.
        unsafe { cstr(p, what) }.map(Some)
    }
}

/// A caller array of `n` elements (NULL allowed when `n` is 0).
///
/// # Safety
/// When `n > 0`, `p` is NULL or points at `n` initialised, properly aligned `T`s that stay valid and
/// are not written for `'a`.
unsafe fn slice<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], Error> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL with {n} elements")));
    }
    // SAFETY: the header requires `p` to point at `n` readable elements for the call.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A caller's out-pointer or mutable handle (NULL is an error naming `what`).
///
/// # Safety
/// `p` is NULL or points at a valid, aligned `T` (a handle from this library, or a caller's out
/// variable) that nothing else reads or writes for `'a`.
unsafe fn mut_ref<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: a handle from this library (or NULL, refused), not shared mutably across threads.
    unsafe { p.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// The recorder behind a handle (NULL is an error).
///
/// # Safety
/// `p` is NULL or a handle returned by `greta_recorder_new` and not yet passed to
/// `greta_recorder_free` (shared use from several threads is fine: the recorder is `Sync`).
unsafe fn recorder<'a>(p: *const GretaRecorder) -> Result<&'a CaptureRecorder, Error> {
    // SAFETY: a handle from `greta_recorder_new` not yet freed; shared use is fine (Sync).
    unsafe { p.as_ref() }
        .map(|r| &r.0)
        .ok_or_else(|| Error::invalid("recorder is NULL"))
}

fn dtype(d: c_int, role: &str) -> Result<DType, Error> {
    usize::try_from(d)
        .ok()
        .and_then(|i| DTYPES.get(i).copied())
        .ok_or_else(|| Error::invalid(format!("`{role}`: unknown dtype {d}")))
}

/// A tensor's shape as sizes (a negative dimension is an error).
///
/// # Safety
/// `t.shape` is NULL with `t.ndim == 0`, or points at `t.ndim` readable `int64_t` valid for the call.
unsafe fn shape(t: &GretaTensor, role: &str) -> Result<Vec<usize>, Error> {
    // SAFETY: `shape` points at `ndim` int64 per the header.
    let s = unsafe { slice(t.shape, t.ndim, "shape") }?;
    s.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::invalid(format!("`{role}`: negative dimension {d}")))
        })
        .collect()
}

/// The bytes of a host or device tensor, copied.
///
/// # Safety
/// For `GRETA_HOST`, `t.data` points at `t.nbytes` readable bytes (NULL allowed when 0); for
/// `GRETA_DEVICE`, `t.data` is a device allocation of at least `t.nbytes` bytes whose contents are
/// final once the work queued on `t.stream` before this call has run (see `device::copy_to_host`).
unsafe fn tensor_bytes(t: &GretaTensor, role: &str) -> Result<Vec<u8>, Error> {
    match t.kind {
        // SAFETY: `data` points at `nbytes` readable host bytes per the header.
        KIND_HOST => Ok(unsafe { slice(t.data as *const u8, t.nbytes, "data") }?.to_vec()),
        // SAFETY: `data` is a device pointer of `nbytes` bytes valid on `stream`, per the header.
        KIND_DEVICE => {
            unsafe { device::copy_to_host(t.data, t.nbytes, t.stream) }.map_err(|e| Error {
                msg: format!("`{role}`: {}", e.msg),
                ..e
            })
        }
        k => Err(Error::invalid(format!(
            "`{role}`: kind {k} is not a host or device tensor"
        ))),
    }
}

/// A launch input as the capture API takes it.
///
/// # Safety
/// `t` follows greta.h's `greta_tensor` contract for its kind: `role` (and `weight_name` for a weight)
/// NUL-terminated strings, and for host or device tensors the conditions of [`shape`] and
/// [`tensor_bytes`].
unsafe fn input(t: &GretaTensor) -> Result<(String, TensorIn), Error> {
    // SAFETY (all blocks below): pointer contracts of greta_tensor in greta.h.
    let role = unsafe { cstr(t.role, "tensor role") }?.to_string();
    let tin = match t.kind {
        KIND_WEIGHT => TensorIn::Weight(unsafe { cstr(t.weight_name, "weight_name") }?.to_string()),
        KIND_ID => TensorIn::Id(t.id),
        KIND_HOST | KIND_DEVICE => TensorIn::Host {
            dtype: dtype(t.dtype, &role)?,
            shape: unsafe { shape(t, &role) }?,
            bytes: unsafe { tensor_bytes(t, &role) }?,
        },
        k => return Err(Error::invalid(format!("`{role}`: unknown tensor kind {k}"))),
    };
    Ok((role, tin))
}

/// A launch output as the capture API takes it.
///
/// # Safety
/// As [`input`] for a host or device tensor: `role` NUL-terminated, and the conditions of [`shape`] and
/// [`tensor_bytes`].
unsafe fn output(t: &GretaTensor) -> Result<(String, TensorOut), Error> {
    // SAFETY (all blocks below): pointer contracts of greta_tensor in greta.h.
    let role = unsafe { cstr(t.role, "tensor role") }?.to_string();
    let out = TensorOut {
        dtype: dtype(t.dtype, &role)?,
        shape: unsafe { shape(t, &role) }?,
        bytes: unsafe { tensor_bytes(t, &role) }?,
        id: (t.id != 0).then_some(t.id),
    };
    Ok((role, out))
}

/// A launch description.
///
/// # Safety
/// `d` is NULL or points at a `greta_launch_desc` valid for the call whose `phase`, `stage` and `route`
/// are NUL-terminated strings and whose `params` holds `n_params` entries (NULL when 0), each with
/// NUL-terminated strings, as greta.h states.
unsafe fn desc(d: *const GretaLaunchDesc) -> Result<LaunchDesc, Error> {
    // SAFETY: `d` points at a greta_launch_desc per the header; its strings and params likewise.
    let d = unsafe { d.as_ref() }.ok_or_else(|| Error::invalid("launch desc is NULL"))?;
    let phase: Phase = unsafe { cstr(d.phase, "phase") }?
        .parse()
        .map_err(Error::invalid)?;
    let layer = match d.layer {
        l if l < 0 => None,
        l => Some(l as u32),
    };
    let mut out = LaunchDesc::new(phase, layer, unsafe { cstr(d.stage, "stage") }?, unsafe {
        cstr(d.route, "route")
    }?);
    for p in unsafe { slice(d.params, d.n_params, "params") }? {
        out = out.param(unsafe { cstr(p.name, "param name") }?, p.value);
    }
    if let Some(op) = unsafe { opt_cstr(d.op, "op") }? {
        out = out.op(op);
    }
    Ok(out)
}

/// `GRETA_ABI_VERSION` of the library actually loaded (compare with the header's).
#[unsafe(no_mangle)]
pub extern "C" fn greta_abi_version() -> u32 {
    GRETA_ABI_VERSION
}

/// This thread's last error message ("" after a success); valid until this thread's next greta call.
#[unsafe(no_mangle)]
pub extern "C" fn greta_last_error() -> *const c_char {
    error::last_ptr()
}

ffi_fn! {
    /// A header for engine `engine`, version `engine_version`.
    fn greta_header_new(engine: *const c_char, engine_version: *const c_char, out: *mut *mut GretaHeader) {
        // SAFETY: header contracts (NUL-terminated strings, writable out pointer).
        let out = unsafe { mut_ref(out, "out") }?;
        let h = CaptureHeader::new(unsafe { cstr(engine, "engine") }?, unsafe { cstr(engine_version, "engine_version") }?);
        *out = Box::into_raw(Box::new(GretaHeader(h)));
        Ok(())
    }
}

ffi_fn! {
    /// The model: a JSON object describing it (or NULL), the GGUF the engine loaded (or NULL) and its
    /// blake3 hex (or NULL: greta hashes the file).
    fn greta_header_set_model(h: *mut GretaHeader, description_json: *const c_char, gguf_path: *const c_char, gguf_blake3: *const c_char) {
        // SAFETY: header contracts.
        let h = unsafe { mut_ref(h, "header") }?;
        let description = match unsafe { opt_cstr(description_json, "description_json") }? {
            Some(s) => greta::capture::parse_description(s).map_err(Error::from)?,
            None => Default::default(),
        };
        h.0.model = Some(ModelDesc {
            description,
            gguf: unsafe { opt_cstr(gguf_path, "gguf_path") }?.map(Into::into),
            gguf_blake3: unsafe { opt_cstr(gguf_blake3, "gguf_blake3") }?.map(Into::into),
        });
        Ok(())
    }
}

ffi_fn! {
    /// The device description (free text).
    fn greta_header_set_device(h: *mut GretaHeader, device: *const c_char) {
        // SAFETY: header contracts.
        let h = unsafe { mut_ref(h, "header") }?;
        h.0.device = unsafe { cstr(device, "device") }?.to_string();
        Ok(())
    }
}

ffi_fn! {
    /// The prompt's token ids.
    fn greta_header_set_prompt(h: *mut GretaHeader, tokens: *const u32, n: usize) {
        // SAFETY: header contracts.
        let h = unsafe { mut_ref(h, "header") }?;
        h.0.prompt_tokens = unsafe { slice(tokens, n, "tokens") }?.to_vec();
        Ok(())
    }
}

/// Frees a header (NULL is a no-op).
///
/// # Safety
/// `h` is NULL or a header from `greta_header_new` that has not been freed; it must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn greta_header_free(h: *mut GretaHeader) {
    if !h.is_null() {
        // SAFETY: `h` came from greta_header_new and is freed once (the header's contract).
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(h) }));
    }
}

ffi_fn! {
    /// Creates the tape at `path` (written as `path.incomplete` until `greta_recorder_close`).
    fn greta_recorder_new(path: *const c_char, h: *const GretaHeader, flags: u32, out: *mut *mut GretaRecorder) {
        // SAFETY: header contracts.
        let out = unsafe { mut_ref(out, "out") }?;
        let path = unsafe { cstr(path, "path") }?;
        let h = unsafe { h.as_ref() }.ok_or_else(|| Error::invalid("header is NULL"))?;
        if flags & !GRETA_SYNC != 0 {
            return Err(Error::invalid(format!("unknown flags {flags:#x}")));
        }
        let opts = CaptureOptions {
            durability: if flags & GRETA_SYNC != 0 { Durability::EveryLaunch } else { Durability::Buffered },
            ..CaptureOptions::default()
        };
        let rec = CaptureRecorder::create(std::path::Path::new(path), h.0.clone(), opts)?;
        *out = Box::into_raw(Box::new(GretaRecorder(rec)));
        Ok(())
    }
}

ffi_fn! {
    /// Writes a launch's Begin record (before the engine runs its kernel); `*seq_out` is its seq.
    fn greta_begin(rec: *mut GretaRecorder, d: *const GretaLaunchDesc, inputs: *const GretaTensor, n: usize, seq_out: *mut u64) {
        // SAFETY: header contracts.
        let r = unsafe { recorder(rec) }?;
        let seq_out = unsafe { mut_ref(seq_out, "seq_out") }?;
        let d = unsafe { desc(d) }?;
        let ins = unsafe { slice(inputs, n, "inputs") }?
            .iter()
            .map(|t| unsafe { input(t) })
            .collect::<Result<Vec<_>, _>>()?;
        *seq_out = r.begin(&d, ins)?;
        Ok(())
    }
}

/// The End record of launch `seq`: converts `outputs` and writes their ids to `ids_out`.
///
/// # Safety
/// `outputs` holds `n` `greta_tensor`s meeting [`output`]'s conditions (NULL when `n` is 0), and
/// `ids_out` is NULL or points at `n` writable `uint64_t` not otherwise accessed during the call.
unsafe fn end_into(
    r: &CaptureRecorder,
    seq: u64,
    outputs: *const GretaTensor,
    n: usize,
    ids_out: *mut u64,
) -> Result<(), Error> {
    // SAFETY: header contracts (outputs: n tensors; ids_out: NULL or n writable u64).
    let outs = unsafe { slice(outputs, n, "outputs") }?
        .iter()
        .map(|t| unsafe { output(t) })
        .collect::<Result<Vec<_>, _>>()?;
    let ids = r.end(seq, outs)?;
    if !ids_out.is_null() {
        // SAFETY: `ids_out` has room for `n` ids.
        unsafe { std::slice::from_raw_parts_mut(ids_out, n) }.copy_from_slice(&ids);
    }
    Ok(())
}

ffi_fn! {
    /// Writes launch `seq`'s End record with its outputs; `ids_out` (NULL or `n` entries) gets their ids.
    fn greta_end(rec: *mut GretaRecorder, seq: u64, outputs: *const GretaTensor, n: usize, ids_out: *mut u64) {
        // SAFETY: header contracts.
        let r = unsafe { recorder(rec) }?;
        unsafe { end_into(r, seq, outputs, n, ids_out) }
    }
}

ffi_fn! {
    /// `greta_begin` then `greta_end`, for a launch whose outputs the caller already has.
    fn greta_launch(rec: *mut GretaRecorder, d: *const GretaLaunchDesc, inputs: *const GretaTensor, nin: usize, outputs: *const GretaTensor, nout: usize, ids_out: *mut u64) {
        // SAFETY: header contracts.
        let r = unsafe { recorder(rec) }?;
        let d = unsafe { desc(d) }?;
        let ins = unsafe { slice(inputs, nin, "inputs") }?
            .iter()
            .map(|t| unsafe { input(t) })
            .collect::<Result<Vec<_>, _>>()?;
        let seq = r.begin(&d, ins)?;
        unsafe { end_into(r, seq, outputs, nout, ids_out) }
    }
}

ffi_fn! {
    /// Completes the tape (index, trailer, rename to its final name). `launches_out` may be NULL.
    fn greta_recorder_close(rec: *mut GretaRecorder, launches_out: *mut u64) {
        // SAFETY: header contracts.
        let r = unsafe { recorder(rec) }?;
        let s = r.close()?;
        if let Some(o) = unsafe { launches_out.as_mut() } {
            *o = s.launches;
        }
        Ok(())
    }
}

/// Frees a recorder (NULL is a no-op). Without `greta_recorder_close` the tape stays `.incomplete`.
///
/// # Safety
/// `rec` is NULL or a recorder from `greta_recorder_new` that has not been freed, with no call on it
/// running in another thread; it must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn greta_recorder_free(rec: *mut GretaRecorder) {
    if !rec.is_null() {
        // SAFETY: `rec` came from greta_recorder_new and is freed once, by one thread.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(rec) }));
    }
}
