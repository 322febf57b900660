//! Foreign kernels in isolation: `greta replay T.tape --kernels libengine.so`.
//!
//! An engine's own kernels, built as a shared library with one C entry point per stage
//! (`greta_kernel_<stage>`, declared in `include/greta_plugin.h`, guide in docs/PLUGINS.md), are run on a
//! launch's recorded inputs, and what they write is compared with the recorded outputs bit for bit. So a
//! llama.cpp launch recorded on a tape can be re-run through llama.cpp's kernel alone: does it reproduce,
//! and how far is it from greta's f64 reference on the same inputs?
//!
//! This is one of the few modules with `unsafe`: loading a library runs its initialisers, and calling a
//! C function trusts it to honour the header's contract (read inputs, write at most `nbytes` of each
//! output). Each block says which invariant greta provides. Example:
//!
//! ```no_run
//! # fn main() -> Result<(), greta::replay::plugin::PluginError> {
//! let p = greta::replay::plugin::Plugin::open(std::path::Path::new("libengine.so"))?;
//! assert!(p.abi_version() == greta::replay::plugin::ABI_VERSION);
//! # Ok(()) }
//! ```

use crate::launch::{DType, Origin, Params, Tensor};
use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};

/// The plugin ABI version this greta speaks (`GRETA_PLUGIN_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;

/// A plugin could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// dlopen or a required symbol failed.
    #[error("plugin {path}: {why}")]
    Load {
        /// Library path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The plugin speaks another ABI version.
    #[error(
        "plugin {path}: ABI version {found}, greta speaks {ABI_VERSION} (include/greta_plugin.h)"
    )]
    Version {
        /// Library path.
        path: PathBuf,
        /// Version the plugin returned.
        found: u32,
    },
    /// The plugin has no entry point for this stage.
    #[error("not implemented by the plugin (no `{0}`)")]
    Missing(String),
    /// An input or output cannot be passed (dtype without an ABI code, size overflow).
    #[error("{0}")]
    Argument(String),
    /// The kernel returned non-zero.
    #[error("`{symbol}` returned {code}: {message}")]
    Kernel {
        /// Entry point.
        symbol: String,
        /// Return code.
        code: i32,
        /// greta_plugin_last_error(), or a note that the plugin has none.
        message: String,
    },
}

/// `greta_tensor` of the header.
#[repr(C)]
struct CTensor {
    role: *const c_char,
    dtype: i32,
    ndim: u32,
    shape: *const u64,
    data: *mut u8,
    nbytes: u64,
}

/// `greta_params` of the header.
#[repr(C)]
struct CParams {
    rows: u32,
    pos: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    rope_dim: u32,
    rope_theta: f64,
    eps: f64,
    scale: f64,
    kv_block: u32,
    reserved: u32,
}

type KernelFn = unsafe extern "C" fn(
    *const c_char,
    *const CParams,
    *const CTensor,
    u32,
    *mut CTensor,
    u32,
) -> i32;

/// The ABI code of a dtype (`enum greta_plugin_dtype`).
pub fn dtype_code(d: DType) -> i32 {
    match d {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::F16 => 2,
        DType::BF16 => 3,
        DType::I32 => 4,
        DType::Q8_0 => 5,
        DType::Q4_0 => 6,
        DType::Q4_1 => 7,
        DType::Q4K => 8,
        DType::Q6K => 9,
        DType::Q5_0 => 10,
        DType::Q5_1 => 11,
        DType::Q2K => 12,
        DType::Q3K => 13,
        DType::Q5K => 14,
        DType::IQ4NL => 15,
        DType::IQ4XS => 16,
    }
}

/// A loaded plugin.
pub struct Plugin {
    path: PathBuf,
    lib: libloading::Library,
    version: u32,
}

/// An output buffer to be filled by a kernel: the recorded output's dtype and shape.
pub struct OutputSpec {
    /// Role.
    pub role: String,
    /// dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

impl Plugin {
    /// Loads the library at `path` and checks its ABI version.
    pub fn open(path: &Path) -> Result<Plugin, PluginError> {
        let load = |why: String| PluginError::Load {
            path: path.to_path_buf(),
            why,
        };
        // SAFETY: loading runs the library's initialisers; the user named this library to be run, as
        // `--kernels` documents. greta keeps the handle for as long as it calls into it.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| load(e.to_string()))?;
        // SAFETY: the header declares `uint32_t greta_plugin_abi_version(void)`; the signature matches.
        let version = unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn() -> u32> = lib
                .get(b"greta_plugin_abi_version\0")
                .map_err(|e| load(format!("no greta_plugin_abi_version: {e}")))?;
            f()
        };
        if version != ABI_VERSION {
            return Err(PluginError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(Plugin {
            path: path.to_path_buf(),
            lib,
            version,
        })
    }

    /// The ABI version the plugin reported.
    pub fn abi_version(&self) -> u32 {
        self.version
    }

    /// The file name, for reports.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// True when the plugin exports `greta_kernel_<stage>`.
    pub fn implements(&self, stage: &str) -> bool {
        let sym = format!("greta_kernel_{stage}\0");
        // SAFETY: only looks the symbol up; nothing is called.
        unsafe { self.lib.get::<KernelFn>(sym.as_bytes()).is_ok() }
    }

    /// Runs the plugin's kernel for `stage` on `inputs`, into fresh buffers shaped as `outputs`.
    pub fn run(
        &self,
        stage: &str,
        route: &str,
        params: &Params,
        inputs: &[(String, &Tensor)],
        outputs: &[OutputSpec],
    ) -> Result<Vec<Tensor>, PluginError> {
        let symbol = format!("greta_kernel_{stage}");
        let sym_z = format!("{symbol}\0");
        // SAFETY: the header declares every greta_kernel_<stage> as greta_kernel_fn, which KernelFn mirrors.
        let f: libloading::Symbol<KernelFn> = unsafe { self.lib.get(sym_z.as_bytes()) }
            .map_err(|_| PluginError::Missing(symbol.clone()))?;
        let arg =
            |s: &str| CString::new(s).map_err(|_| PluginError::Argument(format!("NUL in `{s}`")));
        let route_c = arg(route)?;
        let in_roles: Vec<CString> = inputs
            .iter()
            .map(|(r, _)| arg(r))
            .collect::<Result<_, _>>()?;
        let in_shapes: Vec<Vec<u64>> = inputs
            .iter()
            .map(|(_, t)| t.shape.iter().map(|&d| d as u64).collect())
            .collect();
        let in_bytes: Vec<Vec<u8>> = inputs
            .iter()
            .map(|(r, t)| {
                t.to_host_bytes()
                    .map(|b| b.into_owned())
                    .map_err(|e| PluginError::Argument(format!("input `{r}`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let mut c_in: Vec<CTensor> = Vec::with_capacity(inputs.len());
        for (i, (_, t)) in inputs.iter().enumerate() {
            c_in.push(CTensor {
                role: in_roles[i].as_ptr(),
                dtype: dtype_code(t.dtype),
                ndim: in_shapes[i].len() as u32,
                shape: in_shapes[i].as_ptr(),
                // The header says inputs are read-only; the pointer is `void *` for one struct type only.
                data: in_bytes[i].as_ptr() as *mut u8,
                nbytes: in_bytes[i].len() as u64,
            });
        }
        let out_roles: Vec<CString> = outputs
            .iter()
            .map(|o| arg(&o.role))
            .collect::<Result<_, _>>()?;
        let mut out_bufs: Vec<Vec<u8>> = Vec::with_capacity(outputs.len());
        for o in outputs {
            let n = o
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))
                .and_then(|n| o.dtype.bytes_for(n))
                .ok_or_else(|| {
                    PluginError::Argument(format!(
                        "output `{}`: shape {:?} too large",
                        o.role, o.shape
                    ))
                })?;
            out_bufs.push(vec![0u8; n]);
        }
        let mut c_out: Vec<CTensor> = outputs
            .iter()
            .zip(out_bufs.iter_mut())
            .zip(&out_roles)
            .map(|((o, buf), role)| CTensor {
                role: role.as_ptr(),
                dtype: dtype_code(o.dtype),
                ndim: o.shape.len() as u32,
                shape: o.shape.as_ptr(),
                data: buf.as_mut_ptr(),
                nbytes: buf.len() as u64,
            })
            .collect();
        let p = CParams {
            rows: params.rows,
            pos: params.pos,
            n_heads: params.n_heads,
            n_kv_heads: params.n_kv_heads,
            head_dim: params.head_dim,
            rope_dim: params.rope_dim,
            rope_theta: params.rope_theta,
            eps: params.eps,
            scale: params.scale,
            kv_block: params.kv_block,
            reserved: 0,
        };
        // SAFETY: every pointer handed over points into a buffer owned by this frame (roles, shapes,
        // input bytes, output buffers) that outlives the call; each output buffer is exactly `nbytes` long,
        // and the header obliges the kernel to write no more than that and to keep no pointer.
        let code = unsafe {
            f(
                route_c.as_ptr(),
                &p,
                c_in.as_ptr(),
                c_in.len() as u32,
                c_out.as_mut_ptr(),
                c_out.len() as u32,
            )
        };
        if code != 0 {
            return Err(PluginError::Kernel {
                symbol,
                code,
                message: self.last_error(),
            });
        }
        Ok(outputs
            .iter()
            .zip(out_bufs)
            .map(|(o, bytes)| {
                Tensor::from_le_bytes(
                    o.dtype,
                    o.shape.iter().map(|&d| d as usize).collect(),
                    bytes,
                    Origin::Value,
                )
            })
            .collect())
    }

    fn last_error(&self) -> String {
        // SAFETY: the header declares `const char *greta_plugin_last_error(void)` returning a NUL-terminated
        // string (or NULL) that stays valid until the next call into the plugin; it is copied at once.
        unsafe {
            match self
                .lib
                .get::<unsafe extern "C" fn() -> *const c_char>(b"greta_plugin_last_error\0")
            {
                Ok(f) => {
                    let p = f();
                    if p.is_null() {
                        "(no message)".into()
                    } else {
                        CStr::from_ptr(p).to_string_lossy().into_owned()
                    }
                }
                Err(_) => "(the plugin exports no greta_plugin_last_error)".into(),
            }
        }
    }
}
