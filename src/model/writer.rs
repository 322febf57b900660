//! GGUF v3 writer: metadata of every value type and tensors padded to the alignment.
//!
//! The layout is the one [`super::gguf`] reads (see its module doc). Metadata is written in insertion
//! order (adding a key twice replaces the value in place), then tensor infos in insertion order with
//! offsets packed at `general.alignment` (default 32, which readers also assume when the key is absent),
//! then the data. The file is written to a temporary name in the target's directory and renamed
//! when complete, so a reader never sees a half-written model.
//!
//! ```no_run
//! use greta::model::{writer::GgufWriter, gguf::Value};
//! use greta::launch::DType;
//! let mut w = GgufWriter::new();
//! w.add_metadata("general.architecture", Value::String("llama".into()));
//! w.add_tensor("output_norm.weight", vec![4], DType::F32, vec![0; 16]);
//! w.write(std::path::Path::new("out.gguf")).unwrap();
//! ```

use super::error::GgufError;
use super::ggml::ggml_from_dtype;
use super::gguf::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ALIGNMENT, MAX_KEY_LEN, MAX_TENSOR_NAME};
use super::value::{Value, ValueType};
use crate::launch::DType;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Builds a GGUF v3 file in memory, then writes it atomically.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

/// Makes a tensor's bytes when the writer reaches it, so a large model is never all in memory.
pub type TensorSource = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

enum Data {
    Bytes(Vec<u8>),
    Lazy(TensorSource),
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    dtype: DType,
    data: Data,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufWriter {
    /// An empty writer.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets a metadata key (replacing an earlier value of the same key).
    pub fn add_metadata(&mut self, key: &str, value: Value) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor: `dims` in GGUF `ne` order (contiguous dimension first), `bytes` its encoded data.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: Vec<u64>,
        dtype: DType,
        bytes: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims,
            dtype,
            data: Data::Bytes(bytes),
        });
        self
    }

    /// Adds a tensor whose bytes `source` makes at write time (it must return exactly the tensor's size).
    pub fn add_tensor_lazy(
        &mut self,
        name: &str,
        dims: Vec<u64>,
        dtype: DType,
        source: TensorSource,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims,
            dtype,
            data: Data::Lazy(source),
        });
        self
    }

    fn alignment(&self) -> Result<u64, GgufError> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, v)) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => Ok(a),
                _ => Err(GgufError::Unwritable(format!(
                    "general.alignment {v:?} is not a power of two"
                ))),
            },
        }
    }

    /// Encodes the whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|e| match e {
            WriteError::Gguf(g) => g,
            WriteError::Io(source) => GgufError::Io {
                path: "<memory>".into(),
                cause: source,
            },
        })?;
        Ok(out)
    }

    /// Header bytes (through the padding before the data) and each tensor's offset and size.
    fn header(&self) -> Result<(Vec<u8>, Placement), GgufError> {
        let alignment = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            if k.len() as u64 > MAX_KEY_LEN {
                return Err(GgufError::Unwritable(format!(
                    "metadata key of {} bytes is above {MAX_KEY_LEN}",
                    k.len()
                )));
            }
            put_string(&mut out, k);
            out.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut out, k, v)?;
        }
        let mut offset = 0u64;
        let mut layout = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let bad = |what: String| GgufError::BadTensor {
                tensor: t.name.clone(),
                what,
            };
            if t.name.len() as u64 > MAX_TENSOR_NAME {
                return Err(bad(format!("name is above {MAX_TENSOR_NAME} bytes")));
            }
            let ggml = ggml_from_dtype(t.dtype)
                .ok_or_else(|| bad(format!("dtype {} has no GGML type", t.dtype)))?;
            let numel = t
                .dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?));
            let whole_blocks = t
                .dims
                .first()
                .is_some_and(|d| d % t.dtype.block().0 as u64 == 0);
            let size = numel
                .and_then(|n| t.dtype.bytes_for(n))
                .filter(|_| whole_blocks);
            let size = match size {
                Some(s) if t.dims.len() <= 4 => s,
                _ => {
                    return Err(bad(format!(
                        "dims {:?} are not whole {} blocks",
                        t.dims, t.dtype
                    )));
                }
            };
            if let Data::Bytes(b) = &t.data
                && b.len() != size
            {
                return Err(bad(format!(
                    "dims {:?} of {} need {size} bytes, got {}",
                    t.dims,
                    t.dtype,
                    b.len()
                )));
            }
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ggml.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            layout.push((offset, size));
            offset = (offset + size as u64).div_ceil(alignment) * alignment;
        }
        pad(&mut out, alignment);
        Ok((out, layout))
    }

    fn write_to(&self, w: &mut impl Write) -> Result<(), WriteError> {
        let alignment = self.alignment()?;
        let (header, layout) = self.header()?;
        w.write_all(&header)?;
        let mut written = 0u64;
        for (t, (offset, size)) in self.tensors.iter().zip(layout) {
            w.write_all(&vec![0u8; (offset - written) as usize])?;
            let lazy;
            let bytes = match &t.data {
                Data::Bytes(b) => b,
                Data::Lazy(f) => {
                    lazy = f();
                    &lazy
                }
            };
            if bytes.len() != size {
                return Err(WriteError::Gguf(GgufError::BadTensor {
                    tensor: t.name.clone(),
                    what: format!("source made {} bytes, expected {size}", bytes.len()),
                }));
            }
            w.write_all(bytes)?;
            written = offset + size as u64;
        }
        let end = written.div_ceil(alignment) * alignment;
        w.write_all(&vec![0u8; (end - written) as usize])?;
        Ok(())
    }

    /// Writes the file to `path` via a temporary file in the same directory and a rename.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
            self.write_to(&mut w).map_err(|e| match e {
                WriteError::Gguf(g) => g,
                WriteError::Io(source) => io(source),
            })?;
            w.flush().map_err(io)?;
        }
        tmp.as_file().sync_all().map_err(io)?;
        // Temporary files are created private (0600); a model file is an ordinary readable file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            tmp.as_file().set_permissions(perms).map_err(io)?;
        }
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// Each tensor's (offset from the data section, size in bytes).
type Placement = Vec<(u64, usize)>;

/// Internal: an encoding error or an I/O error of the sink (which gets its path at the call site).
enum WriteError {
    Gguf(GgufError),
    Io(std::io::Error),
}

impl From<GgufError> for WriteError {
    fn from(e: GgufError) -> Self {
        WriteError::Gguf(e)
    }
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Io(e)
    }
}

fn pad(out: &mut Vec<u8>, alignment: u64) {
    let len = (out.len() as u64).div_ceil(alignment) * alignment;
    out.resize(len as usize, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<(), GgufError> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            // An empty array has no element to take the type from; u8 is as good as any.
            let ety = items.first().map_or(ValueType::U8, Value::value_type);
            if let Some(e) = items.iter().find(|e| e.value_type() != ety) {
                return Err(GgufError::Unwritable(format!(
                    "metadata `{key}`: array mixes {} and {}",
                    ety.name(),
                    e.type_name()
                )));
            }
            out.extend_from_slice(&(ety as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for e in items {
                put_value(out, key, e)?;
            }
        }
    }
    Ok(())
}
