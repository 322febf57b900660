//! The engine-style matmul routes on the CPU, so `--all-routes` and the GPU self-test can compare them
//! with the f64 reference and with the GPU:
//! - `gemv_q8`: a bit-exact emulation of kernels/q8.cu (activations quantised to Q8_1 blocks of 32,
//!   exact integer block dots, the kernel's float formulas in its order, its 32-lane butterfly). Integer
//!   sums are exact on both sides and every float operation is the same IEEE operation, so the bits match.
//! - `gemm_mma`: an emulation of kernels/mma.cu that is close but **not bit-exact**: the inputs are
//!   rounded to f16 exactly as the kernel rounds them, but how a matrix unit adds the 16 products of a
//!   k-slice to its f32 accumulator is the hardware's own (not IEEE per addition, not documented). Here each
//!   slice's products are summed in f64 (exact products, nearly exact sum) and added to the f32
//!   accumulator with one rounding.

use super::bad;
use crate::backend::BackendError;
use crate::launch::{DType, Stage};
use crate::model::quant;

/// Activation rows quantised to Q8_1: quants, and per block of 32 the scale `dx` and `sx = d * Σq`,
/// both rounded to f16 (kept as f32 values).
pub struct Q8Rows {
    /// Quants, `[n, in]`.
    pub q: Vec<i8>,
    /// Per-block scales, `[n, in/32]`.
    pub d: Vec<f32>,
    /// Per-block `d * Σq`, `[n, in/32]`.
    pub s: Vec<f32>,
}

fn round_half(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// Quantises `x` (rows of `inn`, a multiple of 32) as kernels/q8.cu's `quantize_q8_1` does.
pub fn quantize_q8_1(x: &[f32], inn: usize) -> Q8Rows {
    let nb = x.len() / 32;
    debug_assert_eq!(inn % 32, 0);
    let mut out = Q8Rows {
        q: vec![0; x.len()],
        d: vec![0.0; nb],
        s: vec![0.0; nb],
    };
    for (b, xs) in x.chunks_exact(32).enumerate() {
        // max ignores NaN on both sides (fmaxf, f32::max), so the order does not matter.
        let amax = xs.iter().fold(f32::NEG_INFINITY, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (j, &v) in xs.iter().enumerate() {
            let r = (v * id).round();
            let q = if r.is_nan() {
                0
            } else {
                r.clamp(-127.0, 127.0) as i32
            };
            out.q[b * 32 + j] = q as i8;
            sum += q;
        }
        out.d[b] = round_half(d);
        out.s[b] = round_half(sum as f32 * d);
    }
    out
}

fn f16_at(b: &[u8]) -> f32 {
    quant::f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// The (scale, min) of sub-block `g` of a Q4_K super-block's 12 scale bytes.
fn q4k_sm(s: &[u8], g: usize) -> (u32, u32) {
    if g < 4 {
        (u32::from(s[g] & 0x3f), u32::from(s[g + 4] & 0x3f))
    } else {
        let j = g - 4;
        (
            u32::from((s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30)),
            u32::from((s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30)),
        )
    }
}

/// A weight matrix in its GGUF format: `rows` rows of `row_bytes` bytes.
#[derive(Clone, Copy)]
pub struct WeightBlocks<'a> {
    /// The rows' bytes.
    pub bytes: &'a [u8],
    /// Storage format.
    pub dtype: DType,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Rows (outputs).
    pub rows: usize,
}

impl WeightBlocks<'_> {
    fn row(&self, o: usize) -> &[u8] {
        &self.bytes[o * self.row_bytes..(o + 1) * self.row_bytes]
    }
}

/// Value of block `b` (32 weights of `row`) against quants `q` with scales `dx`, `sx` (kernels/q8.cu).
fn block(dtype: DType, row: &[u8], b: usize, q: &[i8], dx: f32, sx: f32) -> f32 {
    let qi = |j: usize| i32::from(q[j]);
    match dtype {
        DType::Q8_0 => {
            let blk = &row[b * 34..b * 34 + 34];
            let s: i32 = (0..32).map(|j| i32::from(blk[2 + j] as i8) * qi(j)).sum();
            (f16_at(blk) * dx) * s as f32
        }
        DType::Q4_0 => {
            let blk = &row[b * 18..b * 18 + 18];
            let s: i32 = (0..16)
                .map(|j| {
                    let c = blk[2 + j];
                    (i32::from(c & 0x0f) - 8) * qi(j) + (i32::from(c >> 4) - 8) * qi(j + 16)
                })
                .sum();
            (f16_at(blk) * dx) * s as f32
        }
        DType::Q4_1 => {
            let blk = &row[b * 20..b * 20 + 20];
            let s: i32 = (0..16)
                .map(|j| {
                    let c = blk[4 + j];
                    i32::from(c & 0x0f) * qi(j) + i32::from(c >> 4) * qi(j + 16)
                })
                .sum();
            (f16_at(blk) * dx) * s as f32 + f16_at(&blk[2..]) * sx
        }
        DType::Q4K => {
            let blk = &row[(b >> 3) * 144..(b >> 3) * 144 + 144];
            let g = b & 7;
            let (sc, mn) = q4k_sm(&blk[4..16], g);
            let qs = &blk[16 + (g >> 1) * 32..16 + (g >> 1) * 32 + 32];
            let sh = 4 * (g & 1);
            let s: i32 = (0..32)
                .map(|j| i32::from((qs[j] >> sh) & 0x0f) * qi(j))
                .sum();
            let ds = f16_at(blk) * sc as f32;
            let dm = f16_at(&blk[2..]) * mn as f32;
            (ds * dx) * s as f32 - dm * sx
        }
        DType::Q6K => {
            let blk = &row[(b >> 3) * 210..(b >> 3) * 210 + 210];
            let part = b & 7;
            let (h, kk) = (part >> 2, part & 3);
            let ql = &blk[64 * h + 32 * (kk & 1)..];
            let qh = &blk[128 + 32 * h..];
            let (shl, shh) = (4 * (kk >> 1), 2 * kk);
            let (mut s0, mut s1) = (0i32, 0i32);
            for j in 0..32 {
                let p = i32::from(((ql[j] >> shl) & 0x0f) | (((qh[j] >> shh) & 0x03) << 4)) - 32;
                if j < 16 {
                    s0 += p * qi(j);
                } else {
                    s1 += p * qi(j);
                }
            }
            let sc0 = i32::from(blk[192 + 2 * part] as i8);
            let sc1 = i32::from(blk[192 + 2 * part + 1] as i8);
            (f16_at(&blk[208..]) * dx) * (sc0 * s0 + sc1 * s1) as f32
        }
        _ => unreachable!("checked by contract::q8_weight"),
    }
}

/// `gemv_q8`: x `[n, inn]` times the weight rows (`out` rows of `row_bytes`) → `[n, out]`, bit for bit
/// what kernels/q8.cu computes.
pub fn gemv_q8(
    stage: Stage,
    x: &[f32],
    n: usize,
    inn: usize,
    w: WeightBlocks,
) -> Result<Vec<f32>, BackendError> {
    let (dtype, out) = (w.dtype, w.rows);
    use rayon::prelude::*;
    crate::backend::contract::q8_weight(stage, dtype, inn)?;
    let qx = quantize_q8_1(x, inn);
    let nb = inn / 32;
    let mut y = vec![0f32; n * out];
    y.par_chunks_mut(out).enumerate().for_each(|(i, yr)| {
        let q = &qx.q[i * inn..(i + 1) * inn];
        for (o, yo) in yr.iter_mut().enumerate() {
            let row = w.row(o);
            let mut lanes = [0f32; 32];
            for (l, acc) in lanes.iter_mut().enumerate() {
                for b in (l..nb).step_by(32) {
                    *acc += block(
                        dtype,
                        row,
                        b,
                        &q[b * 32..b * 32 + 32],
                        qx.d[i * nb + b],
                        qx.s[i * nb + b],
                    );
                }
            }
            *yo = sum32(lanes);
        }
    });
    Ok(y)
}

/// greta_sum32's butterfly (prelude.h): for m = 16, 8, 4, 2, 1 every lane adds lane `l ^ m`; lane 0's value.
fn sum32(mut v: [f32; 32]) -> f32 {
    let mut m = 16;
    while m > 0 {
        let old = v;
        for l in 0..32 {
            v[l] = old[l] + old[l ^ m];
        }
        m >>= 1;
    }
    v[0]
}

/// `gemm_mma`'s arithmetic on the CPU (see the module doc: close, not bit-exact): inputs rounded to f16
/// as the kernel rounds them, k-slices of 16 summed in f64 and added to the f32 accumulator in order.
pub fn gemm_mma(
    stage: Stage,
    x: &[f32],
    n: usize,
    inn: usize,
    w: WeightBlocks,
) -> Result<Vec<f32>, BackendError> {
    let (dtype, out) = (w.dtype, w.rows);
    use rayon::prelude::*;
    let xh: Vec<f64> = x.iter().map(|&v| f64::from(round_half(v))).collect();
    let wh: Vec<Vec<f64>> = (0..out)
        .into_par_iter()
        .map(|o| {
            let mut r = vec![0f32; inn];
            quant::dequantize(dtype, w.row(o), &mut r)
                .map(|_| r.iter().map(|&v| f64::from(round_half(v))).collect())
                .map_err(|e| bad(stage, format!("dequantising weight row {o}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut y = vec![0f32; n * out];
    y.par_chunks_mut(out).enumerate().for_each(|(i, yr)| {
        let xr = &xh[i * inn..(i + 1) * inn];
        for (o, yo) in yr.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (xs, ws) in xr.chunks(16).zip(wh[o].chunks(16)) {
                let s: f64 = xs.iter().zip(ws).map(|(a, b)| a * b).sum();
                acc = (f64::from(acc) + s) as f32;
            }
            *yo = acc;
        }
    });
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_matches_ggml_reference_formula() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.5) * 0.37).collect();
        let q = quantize_q8_1(&x, 64);
        // Block 0: amax = |0 - 20.5| * 0.37; element 0 maps to -127.
        assert_eq!(q.q[0], -127);
        let d = (20.5f32 * 0.37) / 127.0;
        assert_eq!(q.d[0], half::f16::from_f32(d).to_f32());
        let sum: i32 = q.q[..32].iter().map(|&v| i32::from(v)).sum();
        assert_eq!(q.s[0], half::f16::from_f32(sum as f32 * d).to_f32());
        // A zero block quantises to zeros with zero scales.
        let z = quantize_q8_1(&[0.0; 32], 32);
        assert!(z.q.iter().all(|&v| v == 0) && z.d[0] == 0.0 && z.s[0] == 0.0);
    }

    use crate::backend::cpu::fast::tests::{Rng, random_rows};

    /// Both routes against the f64 dot of the dequantised weights: gemv_q8 within the error of 8-bit
    /// activations (about 1/127 of the block's largest value per element), gemm_mma within f16 rounding;
    /// and both batch-invariant (a row alone gives the bits it gives among others).
    #[test]
    fn engine_routes_are_close_to_f64_and_batch_invariant() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4K,
            DType::Q6K,
        ] {
            let (inn, out, n) = (512, 24, 5);
            let rb = quant::row_bytes(dtype, inn).unwrap();
            let bytes = random_rows(&mut rng, dtype, inn, out);
            let w = WeightBlocks {
                bytes: &bytes,
                dtype,
                row_bytes: rb,
                rows: out,
            };
            let x: Vec<f32> = (0..n * inn).map(|_| rng.f() * 2.0).collect();
            let wf: Vec<f32> = quant::dequantize_to_vec(dtype, &bytes, inn * out).unwrap();
            let q8 = gemv_q8(Stage::QProj, &x, n, inn, w).unwrap();
            let mma = gemm_mma(Stage::QProj, &x, n, inn, w).unwrap();
            for i in 0..n {
                let xr = &x[i * inn..(i + 1) * inn];
                let one_q8 = gemv_q8(Stage::QProj, xr, 1, inn, w).unwrap();
                let one_mma = gemm_mma(Stage::QProj, xr, 1, inn, w).unwrap();
                for o in 0..out {
                    let wr = &wf[o * inn..(o + 1) * inn];
                    let exact: f64 = xr
                        .iter()
                        .zip(wr)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum();
                    let mag: f64 = xr
                        .iter()
                        .zip(wr)
                        .map(|(a, b)| (f64::from(*a) * f64::from(*b)).abs())
                        .sum();
                    let (a, b) = (f64::from(q8[i * out + o]), f64::from(mma[i * out + o]));
                    assert!(
                        (a - exact).abs() <= 0.02 * mag + 1e-6,
                        "{dtype} q8 {a} vs {exact} (mag {mag})"
                    );
                    assert!(
                        (b - exact).abs() <= 2e-3 * mag + 1e-6,
                        "{dtype} mma {b} vs {exact} (mag {mag})"
                    );
                    assert_eq!(one_q8[o].to_bits(), q8[i * out + o].to_bits());
                    assert_eq!(one_mma[o].to_bits(), mma[i * out + o].to_bits());
                }
            }
        }
        // gemv_q8 refuses float weights with a message, not a panic.
        let f = vec![0u8; 32 * 4];
        let w = WeightBlocks {
            bytes: &f,
            dtype: DType::F32,
            row_bytes: 128,
            rows: 1,
        };
        let e = gemv_q8(Stage::QProj, &[0.0; 32], 1, 32, w).unwrap_err();
        assert!(
            e.to_string()
                .contains("gemv_q8 needs weights in a format kernels/q8.cu has a block dot for"),
            "{e}"
        );
        // The block formats kernels/q8.cu has no block dot for are refused the same way; gemm_mma, which
        // dequantises rows, takes them.
        for dtype in DType::WEIGHT_TYPES {
            if crate::backend::contract::q8_supported(dtype) || !dtype.is_quantized() {
                continue;
            }
            let inn = 256;
            let rb = quant::row_bytes(dtype, inn).unwrap();
            let bytes = random_rows(&mut rng, dtype, inn, 2);
            let w = WeightBlocks {
                bytes: &bytes,
                dtype,
                row_bytes: rb,
                rows: 2,
            };
            let x = vec![0.5f32; inn];
            let e = gemv_q8(Stage::QProj, &x, 1, inn, w).unwrap_err();
            assert!(e.to_string().contains(&format!("not {dtype}")), "{e}");
            assert_eq!(gemm_mma(Stage::QProj, &x, 1, inn, w).unwrap().len(), 2);
        }
    }

    #[test]
    fn sum32_is_the_butterfly_not_a_left_fold() {
        // Values whose sum depends on the order: the butterfly pairs lane l with l^16 first.
        let mut v = [0f32; 32];
        v[0] = 1.0e8;
        v[16] = -1.0e8;
        v[1] = 1.0;
        assert_eq!(sum32(v), 1.0);
        // A left fold loses the 1 (1e8 + 1 rounds to 1e8) before the -1e8 cancels.
        let fold: f32 = v.iter().sum();
        assert_eq!(fold, 0.0);
    }
}
