//! Dequantisation of GGML weight formats to f32, bit-exact with the `gguf` Python package
//! (`gguf.quants.dequantize`, gguf 0.19.0), which is itself the numpy transcription of ggml-quants.c.
//!
//! Why bit-exact and not "close": greta diffs kernels bit for bit, and the CPU reference, the GPU kernels
//! and the independent Python reference must all start from the same f32 weights. The rounding rules
//! that matter, read from gguf/quants.py:
//!
//! - every f16 scale is first widened to f32 (exactly), and all arithmetic is f32, one rounding per
//!   operation, in the package's order: Q4_1 and Q5_1 `(d * q) + m`; Q4_K and Q5_K
//!   `(d * sc) * q - (dmin * m)`; Q2_K `(d * sc) * q - (dmin * m)` with 4-bit sc and m; Q6_K, Q3_K and
//!   IQ4_XS `(d * sc) * q`; Q4_0 `d * (q - 8)`; Q5_0 `d * (q - 16)`; IQ4_NL `d * kvalues[q]`; Q8_0
//!   `q * d`. Most products are exact (few significant bits); the final add/subtract (Q4_1, Q5_1, Q2_K,
//!   Q4_K, Q5_K) and the second product of the two-product forms round. Rust never contracts
//!   `a * b + c` into an FMA, so writing the same expression gives the same bits (and kernels/prelude.h's
//!   `greta_wload` writes them again, compiled without contraction);
//! - f16 → f32 follows numpy's `npy_halfbits_to_floatbits`: subnormals become normal f32, infinities stay,
//!   NaN payloads are kept (a signalling NaN stays signalling, unlike a hardware F16C conversion);
//! - bf16 → f32 is the 16-bit pattern shifted left by 16.
//!
//! Block layouts (bytes; blocks of 32 elements, or super-blocks of 256 for the `_K` and IQ4_XS types):
//! - Q8_0 (34) `[d f16][32 × i8]`;
//! - Q4_0 (18) `[d f16][16 bytes: element j low nibble, j+16 high nibble]`, q unsigned, minus 8;
//! - Q4_1 (20) `[d f16][m f16][16 bytes as Q4_0]`;
//! - Q5_0 (22) `[d f16][qh u32 LE][16 bytes as Q4_0]`: bit j of qh is element j's fifth bit, q minus 16;
//! - Q5_1 (24) `[d f16][m f16][qh u32 LE][16 bytes as Q4_0]`, q unsigned;
//! - IQ4_NL (18) `[d f16][16 bytes as Q4_0]`: each nibble indexes the code book [`IQ4NL_VALUES`];
//! - Q2_K (84) `[16 bytes: scale of group g of 16 in the low nibble, min in the high][64 bytes qs][d f16]
//!   [dmin f16]`: element 128h + 32s + l (h < 2, s < 4, l < 32) is bits 2s..2s+2 of qs[32h + l];
//! - Q3_K (110) `[32 bytes hmask][64 bytes qs as Q2_K][12 bytes of sixteen 6-bit scales][d f16]`: scale i
//!   has its low 4 bits in byte i % 8 (low nibble for i < 8, high after) and its high 2 bits in byte
//!   8 + i % 4 at bit 2(i / 4), minus 32; element e's low 2 bits are Q2_K's and 4 is subtracted when bit
//!   e / 32 of hmask[e % 32] is *clear*;
//! - Q4_K (144) `[d f16][dmin f16][12 bytes of 6-bit scales and mins][128 bytes: 4 chunks of 32, low
//!   nibbles (group 2c) then high nibbles (group 2c + 1)]`;
//! - Q5_K (176) `[d f16][dmin f16][12 bytes as Q4_K][32 bytes qh][128 bytes as Q4_K]`: bit g of qh[l] is
//!   the fifth bit of element l of group g (of 32);
//! - Q6_K (210) `[128 bytes ql][64 bytes qh][16 × i8 scales][d f16]`;
//! - IQ4_XS (136) `[d f16][scales_h u16 LE][4 bytes scales_l][128 bytes]`: group g of 32 has the 6-bit
//!   scale (nibble g of scales_l, low first) | (bits 2g..2g+2 of scales_h) << 4, minus 32, and its 16
//!   bytes laid out as one IQ4_NL block.
//!
//! Not here: Q8_1 and Q8_K, llama.cpp's activation formats (never stored as GGUF weights by its
//! quantiser, and gguf-py cannot dequantise them, so there is no reference to be bit-exact with), and
//! the grid-based IQ1/IQ2/IQ3 types.
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

/// Byte offsets of the f16 scale fields (d, and dmin or m) inside one block of a block format, empty
/// for the plain types. Tests and generators that fill blocks with random bytes overwrite these with
/// finite scales of sensible size (random f16 bits are mostly huge or NaN).
pub fn f16_fields(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q8_0 | DType::Q4_0 | DType::Q5_0 | DType::IQ4NL | DType::IQ4XS => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::I32 => &[],
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
        DType::Q5_0 => blocks.for_each(|(b, o)| q5_0(b, o)),
        DType::Q5_1 => blocks.for_each(|(b, o)| q5_1(b, o)),
        DType::Q2K => blocks.for_each(|(b, o)| q2_k(b, o)),
        DType::Q3K => blocks.for_each(|(b, o)| q3_k(b, o)),
        DType::Q5K => blocks.for_each(|(b, o)| q5_k(b, o)),
        DType::IQ4NL => blocks.for_each(|(b, o)| iq4_nl(b, o)),
        DType::IQ4XS => blocks.for_each(|(b, o)| iq4_xs(b, o)),
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

/// The 5-bit quants of a Q5_0/Q5_1 block: element j takes nibble j (as Q4_0) and bit j of `qh`
/// (a little-endian u32) as its fifth bit.
#[inline]
fn q5_quants(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = [0u8; 32];
    for (j, &c) in qs.iter().enumerate() {
        q[j] = (c & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (c >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

#[inline]
fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (x, &q) in o.iter_mut().zip(&q5_quants(&b[2..6], &b[6..22])) {
        *x = d * f32::from(q as i8 - 16);
    }
}

#[inline]
fn q5_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    for (x, &q) in o.iter_mut().zip(&q5_quants(&b[4..8], &b[8..24])) {
        *x = d * f32::from(q) + m;
    }
}

#[inline]
fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    // Element 128h + 32s + l (h < 2, s < 4, l < 32) is bits 2s..2s+2 of qs[32h + l]; its group of 16,
    // (128h + 32s + l) / 16, has scale d * (low nibble) and min dmin * (high nibble).
    for (e, x) in o.iter_mut().enumerate() {
        let (h, s, l) = (e >> 7, (e >> 5) & 3, e & 31);
        let q = (qs[32 * h + l] >> (2 * s)) & 3;
        let sc = scales[e >> 4];
        let dl = d * f32::from(sc & 0x0f);
        let ml = dmin * f32::from(sc >> 4);
        *x = dl * f32::from(q) - ml;
    }
}

/// The sixteen signed 6-bit scales of a Q3_K super-block's 12 scale bytes: scale i takes its low 4
/// bits from byte i % 8 (low nibble for i < 8, high for i ≥ 8) and its high 2 bits from byte
/// 8 + i % 4 at bit 2(i / 4); minus 32.
#[inline]
fn q3_k_scales(s: &[u8]) -> [i8; 16] {
    std::array::from_fn(|i| {
        let lo = (s[i % 8] >> (4 * (i / 8))) & 0x0f;
        let hi = (s[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        (lo | (hi << 4)) as i8 - 32
    })
}

#[inline]
fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let sc = q3_k_scales(&b[96..108]);
    let d = f16_at(b, 108);
    // Element e = 128h + 32s + l: low 2 bits as Q2_K's, and bit e / 32 of hmask[l] *clear* means -4.
    for (e, x) in o.iter_mut().enumerate() {
        let (h, s, l) = (e >> 7, (e >> 5) & 3, e & 31);
        let lo = ((qs[32 * h + l] >> (2 * s)) & 3) as i8;
        let hb = (hmask[l] >> (e >> 5)) & 1;
        let q = lo - (((hb ^ 1) << 2) as i8);
        let dl = d * f32::from(sc[e >> 4]);
        *x = dl * f32::from(q);
    }
}

#[inline]
fn q5_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = q4_k_scale_min(&b[4..16]);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    // As Q4_K, plus bit g of qh[l] as the fifth bit of element l of group g.
    for g in 0..8 {
        let ds = d * f32::from(sc[g]);
        let dm = dmin * f32::from(mn[g]);
        let q = &qs[(g >> 1) * 32..(g >> 1) * 32 + 32];
        let shift = 4 * (g & 1) as u32;
        let out = &mut o[g * 32..g * 32 + 32];
        for ((x, &byte), &h) in out.iter_mut().zip(q).zip(qh) {
            let v = ((byte >> shift) & 0x0f) | (((h >> g) & 1) << 4);
            *x = ds * f32::from(v) - dm;
        }
    }
}

/// IQ4_NL's (and IQ4_XS's) non-linear 4-bit code book (`kvalues_iq4nl` in ggml-common.h).
pub const IQ4NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

#[inline]
fn iq4_nl(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = o.split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[2..18]) {
        *l = d * f32::from(IQ4NL_VALUES[usize::from(q & 0x0f)]);
        *h = d * f32::from(IQ4NL_VALUES[usize::from(q >> 4)]);
    }
}

#[inline]
fn iq4_xs(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let sh = u16::from_le_bytes([b[2], b[3]]);
    let (sl, qs) = (&b[4..8], &b[8..136]);
    // Group g of 32: 6-bit scale from nibble g of sl (low nibble first) and bits 2g..2g+2 of sh, minus
    // 32; its quants are laid out as one IQ4_NL block's 16 bytes.
    for g in 0..8 {
        let ls = ((sl[g / 2] >> (4 * (g % 2))) & 0x0f) | ((((sh >> (2 * g)) & 3) as u8) << 4);
        let dl = d * f32::from(ls as i8 - 32);
        let (lo, hi) = o[g * 32..g * 32 + 32].split_at_mut(16);
        for ((l, h), &q) in lo
            .iter_mut()
            .zip(hi.iter_mut())
            .zip(&qs[16 * g..16 * g + 16])
        {
            *l = dl * f32::from(IQ4NL_VALUES[usize::from(q & 0x0f)]);
            *h = dl * f32::from(IQ4NL_VALUES[usize::from(q >> 4)]);
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
