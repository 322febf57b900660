//! TEMP STUB (not committed)
use crate::launch::DType;
#[derive(Debug, thiserror::Error)]
#[error("quant")]
pub struct QuantError;
pub fn row_bytes(d: DType, cols: usize) -> Option<usize> { d.bytes_for(cols) }
pub fn dequantize(d: DType, b: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    match d { DType::F32 => { for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) { *o = f32::from_le_bytes(c.try_into().unwrap()); } Ok(()) } _ => Err(QuantError) }
}
