//! The GGUF header parser: turns the bytes of a file into metadata and tensor infos, checking every
//! count against the caps in [`super::gguf`] and the bytes left before allocating, and every tensor's
//! data range against the file size. The layout is described in [`super::gguf`]'s module doc.

use super::cursor::Cursor;
use super::error::GgufError;
use super::ggml::dtype_from_ggml;
use super::gguf::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_DIMS,
    MAX_KEY_LEN, MAX_METADATA, MAX_STRING_LEN, MAX_TENSOR_NAME, MAX_TENSORS, TensorInfo,
};
use super::value::{Value, ValueType};
use std::collections::{BTreeMap, HashMap};

/// The parsed header of a GGUF byte buffer (what [`super::gguf::Gguf`] holds besides the mapping).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

/// Parses the header of a GGUF file held in `buf` and checks that every tensor's data lies inside it.
pub fn parse(buf: &[u8]) -> Result<Header, GgufError> {
    let mut c = Cursor::new(buf);
    let magic = c.u32(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version = c.u32(&|| "version".into())?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = capped(&mut c, "tensor_count", MAX_TENSORS)?;
    let n_kv = capped(&mut c, "metadata_kv_count", MAX_METADATA)?;

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = read_string(&mut c, MAX_KEY_LEN, &|| format!("metadata key #{i}"))?;
        let tag_at = c.offset();
        let tag = c.u32(&|| format!("type of metadata `{key}`"))?;
        let ty = ValueType::from_tag(tag).ok_or_else(|| GgufError::Malformed {
            offset: tag_at,
            what: format!("metadata `{key}`: unknown value type {tag}"),
        })?;
        let value = read_value(&mut c, ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(GgufError::DuplicateKey(key));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => a,
            _ => {
                return Err(GgufError::Malformed {
                    offset: 0,
                    what: format!(
                        "general.alignment {v:?} is not a power of two <= {MAX_ALIGNMENT}"
                    ),
                });
            }
        },
    };

    let mut tensors = Vec::new();
    let mut names = HashMap::new();
    for i in 0..n_tensors {
        let t = read_tensor_info(&mut c, i, alignment)?;
        if names.insert(t.name.clone(), i).is_some() {
            return Err(GgufError::DuplicateTensor(t.name));
        }
        tensors.push(t);
    }

    let data_offset = c.offset().div_ceil(alignment) * alignment;
    let file_size = buf.len() as u64;
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        match end {
            Some(e) if e <= file_size => {}
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    offset: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_size,
                });
            }
        }
    }
    check_overlap(&tensors)?;
    Ok(Header {
        version,
        metadata,
        tensors,
        data_offset,
    })
}

/// Refuses two tensors whose data ranges overlap (issue 21: a GGUF whose tensors all started at offset
/// 0 loaded and ran, every weight reading the same bytes). The GGUF spec lays tensors out one after
/// another in the data section; llama.cpp's writer never shares bytes between two tensors.
fn check_overlap(tensors: &[TensorInfo]) -> Result<(), GgufError> {
    let mut by_start: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    by_start.sort_by_key(|t| t.offset);
    for w in by_start.windows(2) {
        // Bounds were checked against the file size: offset + size cannot overflow.
        if w[0].offset + w[0].size > w[1].offset {
            return Err(GgufError::TensorOverlap {
                a: w[0].name.clone(),
                b: w[1].name.clone(),
                offset: w[1].offset,
                end: w[0].offset + w[0].size,
            });
        }
    }
    Ok(())
}

/// Reads a `u64` count and checks it against `limit`.
fn capped(c: &mut Cursor<'_>, what: &'static str, limit: u64) -> Result<u64, GgufError> {
    let offset = c.offset();
    let value = c.u64(&|| what.into())?;
    if value > limit {
        return Err(GgufError::LimitExceeded {
            offset,
            what,
            value,
            limit,
        });
    }
    Ok(value)
}

fn read_string(
    c: &mut Cursor<'_>,
    limit: u64,
    what: &dyn Fn() -> String,
) -> Result<String, GgufError> {
    let offset = c.offset();
    let len = c.u64(&|| format!("length of {}", what()))?;
    if len > limit {
        return Err(GgufError::LimitExceeded {
            offset,
            what: "string length",
            value: len,
            limit,
        });
    }
    let bytes = c.take(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::Malformed {
        offset: offset + 8,
        what: format!("{} is not UTF-8", what()),
    })
}

fn read_value(
    c: &mut Cursor<'_>,
    ty: ValueType,
    key: &str,
    depth: u32,
) -> Result<Value, GgufError> {
    let what = || format!("value of metadata `{key}`");
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8(&what)?),
        ValueType::I8 => Value::I8(c.u8(&what)? as i8),
        ValueType::U16 => Value::U16(c.u16(&what)?),
        ValueType::I16 => Value::I16(c.u16(&what)? as i16),
        ValueType::U32 => Value::U32(c.u32(&what)?),
        ValueType::I32 => Value::I32(c.u32(&what)? as i32),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32(&what)?)),
        ValueType::U64 => Value::U64(c.u64(&what)?),
        ValueType::I64 => Value::I64(c.u64(&what)? as i64),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64(&what)?)),
        ValueType::Bool => {
            let offset = c.offset();
            match c.u8(&what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(GgufError::Malformed {
                        offset,
                        what: format!("metadata `{key}`: bool byte {b} is neither 0 nor 1"),
                    });
                }
            }
        }
        ValueType::String => Value::String(read_string(c, MAX_STRING_LEN, &what)?),
        ValueType::Array => {
            let offset = c.offset();
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::LimitExceeded {
                    offset,
                    what: "array nesting depth",
                    value: u64::from(depth) + 1,
                    limit: u64::from(MAX_ARRAY_DEPTH),
                });
            }
            let tag = c.u32(&|| format!("element type of metadata `{key}`"))?;
            let ety = ValueType::from_tag(tag).ok_or_else(|| GgufError::Malformed {
                offset,
                what: format!("metadata `{key}`: unknown array element type {tag}"),
            })?;
            let len_at = c.offset();
            let len = c.u64(&|| format!("length of metadata `{key}`"))?;
            if len > MAX_ARRAY_LEN {
                return Err(GgufError::LimitExceeded {
                    offset: len_at,
                    what: "array length",
                    value: len,
                    limit: MAX_ARRAY_LEN,
                });
            }
            // Every element takes at least min_size bytes: refuse before allocating for a lying count.
            if len.saturating_mul(ety.min_size()) > c.remaining() {
                return Err(GgufError::Truncated {
                    offset: c.offset(),
                    what: format!("{len} {} elements of metadata `{key}`", ety.name()),
                });
            }
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(read_value(c, ety, key, depth + 1)?);
            }
            Value::Array(items)
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, i: u64, alignment: u64) -> Result<TensorInfo, GgufError> {
    let name = read_string(c, MAX_TENSOR_NAME, &|| format!("name of tensor #{i}"))?;
    let bad = |what: String| GgufError::BadTensor {
        tensor: name.clone(),
        what,
    };
    let nd_at = c.offset();
    let n_dims = c.u32(&|| format!("n_dims of tensor `{name}`"))?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::LimitExceeded {
            offset: nd_at,
            what: "tensor n_dims",
            value: n_dims.into(),
            limit: MAX_DIMS.into(),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(c.u64(&|| format!("ne[{d}] of tensor `{name}`"))?);
    }
    let ggml_type = c.u32(&|| format!("type of tensor `{name}`"))?;
    let offset_at = c.offset();
    let offset = c.u64(&|| format!("offset of tensor `{name}`"))?;
    let dtype = dtype_from_ggml(ggml_type).ok_or_else(|| GgufError::UnsupportedTensorType {
        tensor: name.clone(),
        ggml_type,
    })?;
    let numel = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("dims {dims:?} overflow")))?;
    let (block_elems, block_bytes) = dtype.block();
    if dims[0] % block_elems as u64 != 0 {
        return Err(bad(format!(
            "ne0 = {} is not a multiple of the {dtype} block size {block_elems}",
            dims[0]
        )));
    }
    let size = (numel / block_elems as u64)
        .checked_mul(block_bytes as u64)
        .ok_or_else(|| bad(format!("size of dims {dims:?} overflows")))?;
    if offset % alignment != 0 {
        return Err(GgufError::Malformed {
            offset: offset_at,
            what: format!(
                "tensor `{name}`: offset {offset} is not a multiple of the alignment {alignment}"
            ),
        });
    }
    Ok(TensorInfo {
        name,
        dims,
        dtype,
        offset,
        size,
    })
}
