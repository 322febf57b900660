//! hiprtc, looked up at run time.
//!
//! Why not link it: ROCm 5.x exports the hiprtc* functions from libamdhip64 (which greta links through
//! hip-sys), ROCm 6.x moved them to libhiprtc.so.6, and hip-sys declares none of them. So greta declares
//! the few it needs and resolves them on first use: first in the already loaded libraries
//! (`dlsym(RTLD_DEFAULT)`: ROCm 5 and the HIP-on-CUDA shim), then in `libhiprtc.so.6` / `libhiprtc.so`
//! (ROCm 6). One binary then runs on either layout.

use super::runtime::HipError;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

type Program = *mut c_void;
type Create = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type Compile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type SizeOf = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type Fill = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type Destroy = unsafe extern "C" fn(*mut Program) -> c_int;
type ErrStr = unsafe extern "C" fn(c_int) -> *const c_char;

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

const RTLD_NOW: c_int = 2;
const RTLD_GLOBAL: c_int = 0x100;

/// The resolved hiprtc entry points.
struct Rtc {
    create: Create,
    compile: Compile,
    log_size: SizeOf,
    log: Fill,
    code_size: SizeOf,
    code: Fill,
    destroy: Destroy,
    err: ErrStr,
    /// Where they were found (for `device()` and errors).
    from: &'static str,
}

fn lookup(handle: *mut c_void, name: &str) -> Option<*mut c_void> {
    let c = CString::new(name).ok()?;
    // SAFETY: `handle` is RTLD_DEFAULT (null) or a handle returned by dlopen, and `c` is NUL-terminated.
    let p = unsafe { dlsym(handle, c.as_ptr()) };
    (!p.is_null()).then_some(p)
}

fn resolve(handle: *mut c_void, from: &'static str) -> Option<Rtc> {
    let get = |n| lookup(handle, n);
    let (create, compile, log_size, log) = (
        get("hiprtcCreateProgram")?,
        get("hiprtcCompileProgram")?,
        get("hiprtcGetProgramLogSize")?,
        get("hiprtcGetProgramLog")?,
    );
    let (code_size, code, destroy, err) = (
        get("hiprtcGetCodeSize")?,
        get("hiprtcGetCode")?,
        get("hiprtcDestroyProgram")?,
        get("hiprtcGetErrorString")?,
    );
    // SAFETY: each pointer is the address of the hiprtc function of that name, whose C signature
    // (hiprtc.h, identical in ROCm 5.2 and 6.x and in the shim) is the function pointer type it is
    // transmuted to.
    unsafe {
        Some(Rtc {
            create: std::mem::transmute::<*mut c_void, Create>(create),
            compile: std::mem::transmute::<*mut c_void, Compile>(compile),
            log_size: std::mem::transmute::<*mut c_void, SizeOf>(log_size),
            log: std::mem::transmute::<*mut c_void, Fill>(log),
            code_size: std::mem::transmute::<*mut c_void, SizeOf>(code_size),
            code: std::mem::transmute::<*mut c_void, Fill>(code),
            destroy: std::mem::transmute::<*mut c_void, Destroy>(destroy),
            err: std::mem::transmute::<*mut c_void, ErrStr>(err),
            from,
        })
    }
}

fn rtc() -> Result<&'static Rtc, HipError> {
    static RTC: OnceLock<Option<Rtc>> = OnceLock::new();
    RTC.get_or_init(|| {
        if let Some(r) = resolve(std::ptr::null_mut(), "libamdhip64") {
            return Some(r);
        }
        for lib in ["libhiprtc.so.6", "libhiprtc.so"] {
            let c = CString::new(lib).expect("no NUL in a literal");
            // SAFETY: `c` is NUL-terminated; dlopen either returns a handle we keep for the process
            // lifetime (never dlclose'd, so the resolved functions stay valid) or null.
            let h = unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
            if !h.is_null() {
                if let Some(r) = resolve(
                    h,
                    if lib.ends_with(".6") {
                        "libhiprtc.so.6"
                    } else {
                        "libhiprtc.so"
                    },
                ) {
                    return Some(r);
                }
            }
        }
        None
    })
    .as_ref()
    .ok_or_else(|| {
        HipError::local(
            "hiprtc",
            "hiprtc not found in libamdhip64 (ROCm 5) nor libhiprtc.so.6 (ROCm 6)",
        )
    })
}

/// Where hiprtc was found, if it was.
pub fn provider() -> Option<&'static str> {
    rtc().ok().map(|r| r.from)
}

/// A failed compilation: the hiprtc status and the compiler log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}\n{log}")]
pub struct CompileError {
    /// hiprtc's status string (or the lookup error).
    pub status: String,
    /// The compiler's log.
    pub log: String,
}

/// Compiles `source` (named `name` in diagnostics) with `options`; returns the code object.
pub fn compile(source: &str, name: &str, options: &[String]) -> Result<Vec<u8>, CompileError> {
    let fail = |status: String, log: String| CompileError { status, log };
    let r = rtc().map_err(|e| fail(e.to_string(), String::new()))?;
    let src =
        CString::new(source).map_err(|_| fail("source contains NUL".into(), String::new()))?;
    let cname = CString::new(name).map_err(|_| fail("name contains NUL".into(), String::new()))?;
    let opts: Vec<CString> = options
        .iter()
        .filter_map(|o| CString::new(o.as_str()).ok())
        .collect();
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    let status = |code: c_int| {
        // SAFETY: hiprtcGetErrorString accepts any status and returns a static string or null.
        let p = unsafe { (r.err)(code) };
        if p.is_null() {
            format!("hiprtc error {code}")
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let mut prog: Program = std::ptr::null_mut();
    // SAFETY: out-pointer valid; `src` and `cname` NUL-terminated and alive for the call; zero headers
    // with null header arrays is allowed by the API.
    let rc = unsafe {
        (r.create)(
            &mut prog,
            src.as_ptr(),
            cname.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(fail(status(rc), String::new()));
    }
    // SAFETY: `prog` was created above; `opt_ptrs` holds `opts.len()` NUL-terminated strings alive for
    // the call.
    let rc = unsafe { (r.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr()) };
    let log = read(prog, r.log_size, r.log).map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .to_string()
    });
    let out = if rc != 0 {
        Err(fail(status(rc), log.unwrap_or_default()))
    } else {
        read(prog, r.code_size, r.code)
            .ok_or_else(|| fail("hiprtcGetCode failed".into(), log.unwrap_or_default()))
    };
    // SAFETY: `prog` is a live program, destroyed once.
    unsafe { (r.destroy)(&mut prog) };
    out
}

/// Reads a size-then-fill pair (log or code) of a live program.
fn read(prog: Program, size: SizeOf, fill: Fill) -> Option<Vec<u8>> {
    let mut n = 0usize;
    // SAFETY: `prog` is live and `n` a valid out-pointer.
    if unsafe { size(prog, &mut n) } != 0 {
        return None;
    }
    let mut buf = vec![0u8; n];
    if n > 0 {
        // SAFETY: `buf` has exactly the `n` bytes the runtime said it will write.
        if unsafe { fill(prog, buf.as_mut_ptr().cast()) } != 0 {
            return None;
        }
    }
    Some(buf)
}
