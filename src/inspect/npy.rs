//! Writes tensors as NumPy .npy files (format version 1.0: magic, header dict, raw little-endian data), so
//! `numpy.load` gives the right dtype and shape. Quantized weights are written as raw `u1` bytes with
//! their block layout documented in the launch JSON.

use crate::launch::DType;
use std::io::Write;
use std::path::Path;

/// The numpy dtype descriptor of `d`.
pub fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I32 => "<i4",
        // numpy has no bfloat16: raw 2-byte words.
        DType::BF16 => "<u2",
        _ => "|u1",
    }
}

/// Writes `bytes` of `dtype` with `shape` to `path`.
pub fn write(path: &Path, dtype: DType, shape: &[u64], bytes: &[u8]) -> std::io::Result<()> {
    // Never write a header that lies about the data that follows it.
    if !dtype.is_quantized() {
        let numel = shape.iter().try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        });
        if numel.and_then(|n| dtype.bytes_for(n)) != Some(bytes.len()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "shape {shape:?} of {dtype} does not match {} bytes",
                    bytes.len()
                ),
            ));
        }
    }
    let shape_txt = if dtype.is_quantized() {
        format!("({},)", bytes.len())
    } else {
        match shape.len() {
            0 => "()".to_string(),
            1 => format!("({},)", shape[0]),
            _ => format!(
                "({})",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        descr(dtype),
        shape_txt
    );
    // Pad so that magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(bytes)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write(&p, DType::F32, &[2, 3], &[0u8; 24]).unwrap();
        let b = std::fs::read(&p).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert_eq!(b.len(), 10 + hl + 24);
        assert!(String::from_utf8_lossy(&b[10..10 + hl]).contains("'shape': (2, 3)"));
    }
}
