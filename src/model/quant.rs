//! Dequantisation of GGML weight formats to f32, bit-exact with the `gguf` Python package
//! (`gguf.quants.dequantize`, gguf 0.19.0), which is itself the numpy transcription of ggml-quants.c.
//!
//! Why bit-exact and not "close": greta diffs kernels bit for bit, and the CPU reference, the GPU kernels
//! and the independent Python reference must all start from the same f32 weights. The rounding rules
//! that matter, read from gguf/quants.py:
//!
//! - every f16 scale is first widened to f32 (exactly), and all arithmetic is f32, one rounding per
//!   operation, in the package's order: Q4_1 `(d * q) + m`; Q4_K `(d * sc) * q - (dmin * m)`; Q6_K
//!   `(d * sc) * q`; Q4_0 `d * (q - 8)`; Q8_0 `q * d`. Most products are exact (few significant bits),
//!   the final add/subtract (Q4_1, Q4_K) and Q6_K's second product round. Rust never contracts `a * b + c`
//!   into an FMA, so writing the same expression gives the same bits;
//! - f16 → f32 follows numpy's `npy_halfbits_to_floatbits`: subnormals become normal f32, infinities stay,
//!   NaN payloads are kept (a signalling NaN stays signalling, unlike a hardware F16C conversion);
//! - bf16 → f32 is the 16-bit pattern shifted left by 16.
//!
//! Block layouts (bytes): Q8_0 `[d f16][32 × i8]`; Q4_0 `[d f16][16 bytes: element j low nibble,
//! j+16 high nibble]`; Q4_1 `[d f16][m f16][16 bytes as Q4_0]`; Q4_K `[d f16][dmin f16][12 bytes of
//! 6-bit scales and mins][128 bytes: 4 chunks of 32, low nibbles then high nibbles]`; Q6_K `[128 bytes
//! ql][64 bytes qh][16 × i8 scales][d f16]`.
//!
//! ```
//! use greta::{launch::DType, model::quant::dequantize};
//! let block = [0x00, 0x3c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
//!              23, 24, 25, 26, 27, 28, 29, 30, 31, 32u8]; // Q8_0, d = 1.0
//! let mut out = [0f32; 32];
//! dequantize(DType::Q8_0, &block, &mut out).unwrap();
//! assert_eq!(out[31], 32.0);
//! ```

pub use super::error::QuantError;
use crate::launch::DType;

/// Bytes of one row of `cols` elements, or None when `cols` is not a whole number of blocks or the
/// dtype is not a weight storage type.
pub fn row_bytes(dtype: DType, cols: usize) -> Option<usize> {
    match dtype {
        DType::F64 | DType::I32 => None,
        _ => dtype.bytes_for(cols),
    }
}

/// Dequantises `out.len()` elements from `bytes`, which must hold exactly their blocks.
pub fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let elements = out.len();
    if matches!(dtype, DType::F64 | DType::I32) {
        return Err(QuantError::Unsupported(dtype));
    }
    let expected = dtype
        .bytes_for(elements)
        .ok_or(QuantError::NotWholeBlocks { dtype, elements })?;
    if bytes.len() != expected {
        return Err(QuantError::WrongLength {
            dtype,
            elements,
            expected,
            found: bytes.len(),
        });
    }
    let (be, bb) = dtype.block();
    let blocks = bytes.chunks_exact(bb).zip(out.chunks_exact_mut(be));
    match dtype {
        DType::F32 => {
            // GGUF is little-endian; on a little-endian host the f32 bytes are the values.
            if cfg!(target_endian = "little") {
                bytemuck::cast_slice_mut::<f32, u8>(out).copy_from_slice(bytes);
            } else {
                for (b, o) in bytes.chunks_exact(4).zip(out.iter_mut()) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
        DType::F16 => match bytemuck::try_cast_slice::<u8, u16>(bytes) {
            // Aligned rows (GGUF tensor data is 32-byte aligned) load as u16s, which vectorises better.
            Ok(h) if cfg!(target_endian = "little") => {
                for (&h, o) in h.iter().zip(out.iter_mut()) {
                    *o = f16_to_f32(h);
                }
            }
            _ => {
                for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                    *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
            }
        },
        DType::BF16 => {
            for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        DType::Q8_0 => blocks.for_each(|(b, o)| q8_0(b, o)),
        DType::Q4_0 => blocks.for_each(|(b, o)| q4_0(b, o)),
        DType::Q4_1 => blocks.for_each(|(b, o)| q4_1(b, o)),
        DType::Q4K => blocks.for_each(|(b, o)| q4_k(b, o)),
        DType::Q6K => blocks.for_each(|(b, o)| q6_k(b, o)),
        DType::F64 | DType::I32 => return Err(QuantError::Unsupported(dtype)),
    }
    Ok(())
}

/// Dequantises one weight row (`out.len()` = columns). The same as [`dequantize`]; named for the
/// matmul loops that call it once per row.
#[inline]
pub fn dequantize_row(dtype: DType, row_bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    dequantize(dtype, row_bytes, out)
}

/// Dequantises into a new vector of `elements` values.
pub fn dequantize_to_vec(
    dtype: DType,
    bytes: &[u8],
    elements: usize,
) -> Result<Vec<f32>, QuantError> {
    let mut out = vec![0f32; elements];
    dequantize(dtype, bytes, &mut out)?;
    Ok(out)
}

/// IEEE binary16 bits to f32, exactly as numpy's `npy_halfbits_to_floatbits` (NaN payloads kept).
///
/// Branch-free so that row loops vectorise: placing the 15 magnitude bits at f32's exponent/mantissa
/// position and multiplying by 2^112 rebias the exponent exactly, for normal and subnormal halves alike
/// (the product is exact: it only changes the exponent); infinities and NaNs are then patched in.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let mag = u32::from(h & 0x7fff);
    let sign = u32::from(h & 0x8000) << 16;
    let finite = (f32::from_bits(mag << 13) * f32::from_bits(0x7780_0000)).to_bits();
    let special = 0x7f80_0000 | ((mag & 0x03ff) << 13);
    f32::from_bits(sign | if mag >= 0x7c00 { special } else { finite })
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

#[inline]
fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (x, q) in o.iter_mut().zip(&b[2..34]) {
        *x = f32::from(*q as i8) * d;
    }
}

#[inline]
fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = o.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[2..18]) {
        *l = d * f32::from((q & 0x0f) as i8 - 8);
        *h = d * f32::from((q >> 4) as i8 - 8);
    }
}

#[inline]
fn q4_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = o.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[4..20]) {
        *l = d * f32::from(q & 0x0f) + m;
        *h = d * f32::from(q >> 4) + m;
    }
}

/// The eight 6-bit (scale, min) pairs of a Q4_K super-block (`get_scale_min` in quants.py).
#[inline]
fn q4_k_scale_min(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 0x3f;
        mn[j] = s[j + 4] & 0x3f;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

#[inline]
fn q4_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = q4_k_scale_min(&b[4..16]);
    let qs = &b[16..144];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        for half in 0..2 {
            let g = chunk * 2 + half;
            let ds = d * f32::from(sc[g]);
            let dm = dmin * f32::from(mn[g]);
            let shift = 4 * half as u32;
            let out = &mut o[g * 32..g * 32 + 32];
            for (x, &byte) in out.iter_mut().zip(q) {
                *x = ds * f32::from((byte >> shift) & 0x0f) - dm;
            }
        }
    }
}

#[inline]
fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, rest) = b.split_at(128);
    let (qh, rest) = rest.split_at(64);
    let (scales, d) = rest.split_at(16);
    let d = f16_at(d, 0);
    // Unpack the 6-bit quants first (byte ops that vectorise), then scale in runs of 16: about 8× faster
    // than unpacking and scaling in one loop. Element 128h + 32k + l (k < 4, l < 32) takes its low 4 bits
    // from ql[64h + 32(k%2) + l] >> 4(k/2) and its high 2 bits from qh[32h + l] >> 2k.
    let mut q = [0i8; 256];
    for h in 0..2 {
        let (ql, qh, q) = (
            &ql[64 * h..64 * h + 64],
            &qh[32 * h..32 * h + 32],
            &mut q[128 * h..128 * h + 128],
        );
        for l in 0..32 {
            let (a, c, hb) = (ql[l], ql[32 + l], qh[l]);
            q[l] = ((a & 0x0f) | ((hb & 0x03) << 4)) as i8 - 32;
            q[32 + l] = ((c & 0x0f) | (((hb >> 2) & 0x03) << 4)) as i8 - 32;
            q[64 + l] = ((a >> 4) | (((hb >> 4) & 0x03) << 4)) as i8 - 32;
            q[96 + l] = ((c >> 4) | ((hb >> 6) << 4)) as i8 - 32;
        }
    }
    for ((out, qs), &s) in o.chunks_exact_mut(16).zip(q.chunks_exact(16)).zip(scales) {
        // quants.py: (d * scales) first, then times q.
        let ds = d * f32::from(s as i8);
        for (x, &v) in out.iter_mut().zip(qs) {
            *x = ds * f32::from(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_numpy_on_edges() {
        // Values printed by numpy: np.array([...], np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
        let cases = [
            (0x7c01u16, 0x7f80_2000u32),
            (0xfe00, 0xffc0_0000),
            (0x7e01, 0x7fc0_2000),
            (0x0001, 0x3380_0000),
            (0x8001, 0xb380_0000),
            (0x03ff, 0x387f_c000),
            (0x3c00, 0x3f80_0000),
            (0x8000, 0x8000_0000),
            (0xfc00, 0xff80_0000),
        ];
        for (h, f) in cases {
            assert_eq!(f16_to_f32(h).to_bits(), f, "{h:#06x}");
        }
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if !x.is_nan() {
                assert_eq!(x, half::f16::from_bits(h).to_f32(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut out = [0f32; 32];
        assert_eq!(
            dequantize(DType::Q8_0, &[0; 33], &mut out),
            Err(QuantError::WrongLength {
                dtype: DType::Q8_0,
                elements: 32,
                expected: 34,
                found: 33
            })
        );
        assert_eq!(
            dequantize(DType::Q4K, &[0; 144], &mut out),
            Err(QuantError::NotWholeBlocks {
                dtype: DType::Q4K,
                elements: 32
            })
        );
        assert_eq!(
            dequantize(DType::I32, &[0; 128], &mut out),
            Err(QuantError::Unsupported(DType::I32))
        );
        assert_eq!(row_bytes(DType::Q4K, 4096), Some(16 * 144));
        assert_eq!(row_bytes(DType::Q4_1, 33), None);
    }

    #[test]
    fn q4_1_is_d_times_q_plus_m() {
        let mut block = vec![0u8; 20];
        block[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        block[4] = 0xf3;
        let out = dequantize_to_vec(DType::Q4_1, &block, 32).unwrap();
        assert_eq!(out[0], 0.5);
        assert_eq!(out[16], 6.5);
        assert_eq!(out[1], -1.0);
    }
}
