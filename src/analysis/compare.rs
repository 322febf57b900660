//! Element-wise comparison of two tensors: bit-exactness, ULP distance, max-abs, MAE, relative L2 and the
//! first differing element. Every diff and replay report in greta is built from [`Compare`].
//!
//! ULP distance is measured in the float format of the first (recorded) tensor: an f32 tensor compared
//! with an f64 reference counts how many f32 steps separate the recorded value from the reference rounded
//! to f32 — 0 means the recorded value is the f32 nearest to the reference. Two values with identical bits
//! (NaN included, -inf == -inf) are equal.

use super::values::values;
use crate::launch::DType;
use serde::Serialize;

/// The first element that differs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FirstDiff {
    /// Flat index.
    pub index: usize,
    /// Coordinates in the shape.
    pub coords: Vec<usize>,
    /// Value in A.
    pub a: f64,
    /// Value in B.
    pub b: f64,
}

/// How two tensors differ.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct Compare {
    /// Elements compared.
    pub n: usize,
    /// Same bits everywhere (same dtype and bytes).
    pub bit_exact: bool,
    /// Elements that differ.
    pub differing: usize,
    /// Largest ULP distance (in A's format) over pairs of the same sign: a sign change is counted in
    /// `sign_flips` instead (its ULP distance, about 2e9 in f32, says nothing about how far apart they are).
    pub max_ulp: u64,
    /// Pairs of finite, non-zero values with opposite signs.
    pub sign_flips: usize,
    /// Largest |a - b| over finite pairs.
    pub max_abs: f64,
    /// Mean |a - b| over finite pairs.
    pub mae: f64,
    /// ||a - b|| / ||b|| over finite pairs.
    pub rel_l2: f64,
    /// Pairs where exactly one side is NaN or infinite, or they are non-finite and differ.
    pub nonfinite_mismatch: usize,
    /// The first differing element.
    pub first: Option<FirstDiff>,
}

/// Position of a float on the integer line where adjacent floats are adjacent integers.
fn ord32(x: f32) -> i64 {
    let b = x.to_bits() as i32;
    (if b < 0 { i32::MIN - b } else { b }) as i64
}

fn ord64(x: f64) -> i128 {
    let b = x.to_bits() as i64;
    (if b < 0 { i64::MIN - b } else { b }) as i128
}

/// ULP distance between `a` (of format `fmt`) and `b`, with `b` rounded to `fmt` first.
pub fn ulps(fmt: DType, a: f64, b: f64) -> u64 {
    match fmt {
        DType::F64 => (ord64(a) - ord64(b)).unsigned_abs().min(u64::MAX as u128) as u64,
        DType::F16 => {
            let (x, y) = (
                half::f16::from_f64(a).to_f32(),
                half::f16::from_f64(b).to_f32(),
            );
            // f16 steps: count through f16 bit patterns.
            let o = |v: f32| {
                let b = half::f16::from_f32(v).to_bits() as i16;
                (if b < 0 { i16::MIN - b } else { b }) as i64
            };
            (o(x) - o(y)).unsigned_abs()
        }
        DType::I32 => (a - b).abs() as u64,
        _ => (ord32(a as f32) - ord32(b as f32)).unsigned_abs(),
    }
}

/// Coordinates of flat index `i` in `shape`.
pub fn coords(shape: &[u64], mut i: usize) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        let s = shape[d].max(1) as usize;
        c[d] = i % s;
        i /= s;
    }
    c
}

/// Compares `a` (dtype `da`) with `b` (dtype `db`), both of `shape`. Values beyond the shorter length are
/// not compared (the caller checks shapes).
pub fn compare(da: DType, a: &[u8], db: DType, b: &[u8], shape: &[u64]) -> Compare {
    let bit_exact = da == db && a == b;
    let (Some(va), Some(vb)) = (values(da, a), values(db, b)) else {
        // Quantized: bytes only.
        return Compare {
            n: a.len(),
            bit_exact,
            differing: usize::from(!bit_exact),
            ..Compare::default()
        };
    };
    compare_values(da, &va, &vb, shape, bit_exact)
}

/// Compares value slices (already decoded) in A's format `fmt`.
pub fn compare_values(
    fmt: DType,
    va: &[f64],
    vb: &[f64],
    shape: &[u64],
    bit_exact: bool,
) -> Compare {
    let n = va.len().min(vb.len());
    let mut c = Compare {
        n,
        bit_exact,
        ..Compare::default()
    };
    let (mut sum_abs, mut finite, mut d2, mut b2) = (0.0f64, 0usize, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = (va[i], vb[i]);
        let same = x.to_bits() == y.to_bits() || (x == y) || (x.is_nan() && y.is_nan());
        let (xf, yf) = (x.is_finite(), y.is_finite());
        if xf && yf {
            let d = (x - y).abs();
            sum_abs += d;
            finite += 1;
            d2 += d * d;
            b2 += y * y;
            if d > c.max_abs {
                c.max_abs = d;
            }
        } else if !same {
            c.nonfinite_mismatch += 1;
        }
        let flip = xf && yf && x != 0.0 && y != 0.0 && (x < 0.0) != (y < 0.0);
        c.sign_flips += usize::from(flip);
        let u = if xf && yf && !flip {
            ulps(fmt, x, y)
        } else {
            0
        };
        // An f32 value equal to the f64 reference rounded to f32 differs by 0 ULP but is not bit-identical.
        if !same {
            c.differing += 1;
            c.max_ulp = c.max_ulp.max(u);
            if c.first.is_none() {
                c.first = Some(FirstDiff {
                    index: i,
                    coords: coords(shape, i),
                    a: x,
                    b: y,
                });
            }
        }
    }
    if va.len() != vb.len() {
        c.differing += va.len().abs_diff(vb.len());
    }
    c.mae = if finite > 0 {
        sum_abs / finite as f64
    } else {
        0.0
    };
    c.rel_l2 = if b2 > 0.0 {
        (d2 / b2).sqrt()
    } else if d2 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    if c.differing == 0 && !bit_exact {
        // Same values in different formats (e.g. f32 vs its exact f64 widening).
        c.bit_exact = false;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32b(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn ulp_and_first_diff() {
        let a = [1.0f32, 2.0, f32::NEG_INFINITY, 4.0];
        let mut b = a;
        b[1] = f32::from_bits(2.0f32.to_bits() + 3);
        let c = compare(DType::F32, &f32b(&a), DType::F32, &f32b(&b), &[2, 2]);
        assert!(!c.bit_exact);
        assert_eq!((c.differing, c.max_ulp), (1, 3));
        let f = c.first.unwrap();
        assert_eq!((f.index, f.coords), (1, vec![0, 1]));
        let same = compare(DType::F32, &f32b(&a), DType::F32, &f32b(&a), &[4]);
        assert!(same.bit_exact && same.differing == 0 && same.max_ulp == 0);
        assert_eq!(ulps(DType::F32, -0.0, 0.0), 0);
        assert_eq!(
            ulps(DType::F32, 1.0, f32::from_bits(1.0f32.to_bits() - 2) as f64),
            2
        );
        assert_eq!(
            ulps(
                DType::F32,
                f32::from_bits(1) as f64,
                -(f32::from_bits(1) as f64)
            ),
            2
        );
    }

    #[test]
    fn sign_flips_are_counted_apart_from_ulps() {
        let a = [1.0f32, -2.0, 3.0, 0.0];
        let b = [
            1.0f32,
            2.0,
            f32::from_bits(3.0f32.to_bits() + 4),
            -f32::from_bits(1),
        ];
        let c = compare(DType::F32, &f32b(&a), DType::F32, &f32b(&b), &[4]);
        assert_eq!(
            c.sign_flips, 1,
            "-2 vs 2; 0 vs the smallest negative is not a flip"
        );
        assert_eq!(c.differing, 3);
        assert_eq!(c.max_ulp, 4, "ULP over same-sign pairs only");
        assert_eq!(c.first.unwrap().index, 1);
    }

    #[test]
    fn f32_against_f64_reference() {
        let r = [1.0f64 + 1e-12, 3.0];
        let a = [1.0f32, 3.0];
        let rb: Vec<u8> = r.iter().flat_map(|x| x.to_le_bytes()).collect();
        let c = compare(DType::F32, &f32b(&a), DType::F64, &rb, &[2]);
        assert_eq!(c.max_ulp, 0, "1.0 is the f32 nearest to 1+1e-12");
        assert!(c.max_abs > 0.0 && c.max_abs < 1e-11);
    }
}
