//! `gather_rows` on host tensors and the part-layout check every backend's `gather_rows` shares. Data
//! movement, not computation: it lives next to the [`Backend`](super::Backend) trait whose default
//! method it is.

use super::{BackendError, Tensor};

/// The layout of a `gather_rows` result: element type, row width, bytes per row, total rows.
#[derive(Clone, Copy, Debug)]
pub struct GatherLayout {
    /// Element type of every part.
    pub dtype: super::DType,
    /// Elements per row.
    pub width: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Rows of the result.
    pub rows: usize,
}

/// Checks `gather_rows` parts (tensor, first row, rows): one non-quantized dtype and row width, every
/// range inside its tensor.
pub fn gather_layout(parts: &[(&Tensor, usize, usize)]) -> Result<GatherLayout, BackendError> {
    let err = |what: String| BackendError::Device(format!("gather_rows: {what}"));
    let (first, _, _) = parts.first().ok_or_else(|| err("no parts".into()))?;
    let dtype = first.dtype;
    let width = *first.shape.last().ok_or_else(|| err("0-d tensor".into()))?;
    let esz = dtype
        .bytes_for(1)
        .filter(|_| !dtype.is_quantized())
        .ok_or_else(|| err(format!("dtype {dtype}")))?;
    for (t, r0, n) in parts {
        if t.dtype != dtype || t.shape.last() != Some(&width) || r0 + n > t.rows() {
            return Err(err(format!(
                "part {:?} {} rows {r0}..{} does not fit",
                t.shape,
                t.dtype,
                r0 + n
            )));
        }
    }
    Ok(GatherLayout {
        dtype,
        width,
        row_bytes: width * esz,
        rows: parts.iter().map(|p| p.2).sum(),
    })
}

/// [`Backend::gather_rows`](super::Backend::gather_rows) on host tensors.
pub fn gather_rows_host(parts: &[(&Tensor, usize, usize)]) -> Result<Tensor, BackendError> {
    let g = gather_layout(parts)?;
    let mut bytes = Vec::with_capacity(g.rows * g.row_bytes);
    for (t, r0, n) in parts {
        let b = t
            .to_host_bytes()
            .map_err(|e| BackendError::Device(format!("gather_rows: {e}")))?;
        bytes.extend_from_slice(&b[r0 * g.row_bytes..(r0 + n) * g.row_bytes]);
    }
    Ok(Tensor::from_le_bytes(
        g.dtype,
        vec![g.rows, g.width],
        bytes,
        super::Origin::Value,
    ))
}
