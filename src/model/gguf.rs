//! GGUF reader on memmap2.
//!
//! Layout (GGUF v2/v3, little-endian; spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//!
//! ```text
//! u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//! metadata_kv_count × { string key | u32 value_type | value }
//! tensor_count × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//! padding to `general.alignment` (default 32)
//! tensor data: each tensor at data_offset + offset (offset a multiple of the alignment)
//! ```
//!
//! A string is a `u64` byte length and UTF-8 bytes without terminator. Version 1 used `u32` counts and is
//! not supported; version 3 only added big-endian files, which read here as a huge version number and are
//! rejected. The file is untrusted: every count is checked against a named cap and against the bytes left
//! before anything is allocated, and every error names the key, tensor or offset. Tensor data is never
//! copied: [`Gguf::tensor`] hands out a [`Bytes::Mapped`] view of the mapping. The parser itself is in
//! [`super::parse`]; the writer of the same layout in [`super::writer`].
//!
//! ```no_run
//! # fn main() -> Result<(), greta::model::gguf::GgufError> {
//! let g = greta::model::gguf::Gguf::open(std::path::Path::new("model.gguf"))?;
//! let layers = g.get_u32("llama.block_count")?;
//! let embd = g.tensor("token_embd.weight")?; // shape [vocab, dim], bytes in the mapping
//! # Ok(()) }
//! ```

use crate::launch::{Bytes, DType, Origin, Tensor};
use memmap2::Mmap;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::error::GgufError;
pub use super::parse::{Header, parse};
pub use super::value::{Value, ValueType};

/// `GGUF` as a little-endian u32 (the bytes 'G' 'G' 'U' 'F').
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Default `general.alignment` (spec: "If not specified, 32").
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Cap on tensors; the largest public models have a few thousand.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Cap on metadata entries; real files have tens.
pub const MAX_METADATA: u64 = 1 << 16;
/// Cap on a key's length: the spec limits keys to 65535 bytes.
pub const MAX_KEY_LEN: u64 = 65_535;
/// Cap on a string value (chat templates are a few KiB).
pub const MAX_STRING_LEN: u64 = 16 << 20;
/// Cap on an array's length (the largest vocabularies and merge lists have a few hundred thousand).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Cap on nesting of arrays of arrays.
pub const MAX_ARRAY_DEPTH: u32 = 4;
/// Cap on a tensor's dimensions: GGML_MAX_DIMS (spec: "currently at most 4").
pub const MAX_DIMS: u32 = 4;
/// Cap on a tensor name: the spec says "at most 64 bytes" (GGML_MAX_NAME).
pub const MAX_TENSOR_NAME: u64 = 64;
/// Cap on `general.alignment`.
pub const MAX_ALIGNMENT: u64 = 1 << 16;

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// GGUF tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGUF `ne` order: `ne0` (the contiguous one) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub dtype: DType,
    /// Byte offset relative to [`Gguf::data_offset`].
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row-major shape, outermost first (`dims` reversed): a matrix is `[rows, cols]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An open GGUF file: parsed header plus the mapping that tensor views point into.
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute byte offset of the tensor data section.
    pub data_offset: u64,
    map: Arc<Mmap>,
    path: PathBuf,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl Gguf {
    /// Maps and parses a GGUF file.
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and private to this process; its soundness requires that no
        // one truncates or rewrites the file while it is mapped. Model files are written once (the
        // writer renames a complete temporary file into place), which is the same assumption every
        // mmap-based GGUF loader (llama.cpp, candle) makes.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = parse(&map)?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Gguf {
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            data_offset: header.data_offset,
            map: Arc::new(map),
            path: path.to_path_buf(),
            index,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The mapping (for hashing the file or building views).
    pub fn mmap(&self) -> &Arc<Mmap> {
        &self.map
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn req(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    fn wrong(key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_string(),
            expected,
            found: v.type_name(),
        }
    }

    /// An integer that fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.req(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| Self::wrong(key, "u32", v))
    }

    /// A non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.req(key)?;
        v.as_u64().ok_or_else(|| Self::wrong(key, "u64", v))
    }

    /// A float (an `f64` value is rounded to `f32`).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.req(key)?;
        match *v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            _ => Err(Self::wrong(key, "f32", v)),
        }
    }

    /// A float widened exactly to `f64`.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.req(key)?;
        v.as_f64().ok_or_else(|| Self::wrong(key, "f64", v))
    }

    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.req(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    /// A bool.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.req(key)?;
        v.as_bool().ok_or_else(|| Self::wrong(key, "bool", v))
    }

    fn get_array<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Vec<T>, GgufError> {
        let v = self.req(key)?;
        let a = v.as_array().ok_or_else(|| Self::wrong(key, expected, v))?;
        a.iter()
            .map(|e| f(e).ok_or_else(|| Self::wrong(key, expected, e)))
            .collect()
    }

    /// An array of strings (a vocabulary, a merge list).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        self.get_array(key, "array of string", Value::as_str)
    }

    /// An array of integers that fit in `i32` (`tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        self.get_array(key, "array of i32", |e| {
            e.as_i64().and_then(|x| i32::try_from(x).ok())
        })
    }

    /// An array of integers that fit in `u32`.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>, GgufError> {
        self.get_array(key, "array of u32", |e| {
            e.as_u64().and_then(|x| u32::try_from(x).ok())
        })
    }

    /// An array of floats (`tokenizer.ggml.scores`), widened from f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        self.get_array(key, "array of f32", |e| match *e {
            Value::F32(x) => Some(x),
            _ => None,
        })
    }

    /// A tensor's header entry.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// A tensor whose bytes are a view into the mapping: shape `dims` reversed, origin the GGUF name.
    pub fn tensor(&self, name: &str) -> Result<Tensor, GgufError> {
        let t = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        // parse() checked data_offset + offset + size <= file size, which is a usize (the mapping's length).
        let offset = (self.data_offset + t.offset) as usize;
        let bytes = Bytes::Mapped {
            map: Arc::clone(&self.map),
            offset,
            len: t.size as usize,
        };
        Ok(Tensor::host(
            t.dtype,
            t.shape(),
            bytes,
            Origin::Weight(name.into()),
        ))
    }

    /// The raw bytes of a tensor, borrowed from the mapping.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let t = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        let start = (self.data_offset + t.offset) as usize;
        Ok(&self.map[start..start + t.size as usize])
    }
}
