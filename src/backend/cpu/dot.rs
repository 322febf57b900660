//! The reduction orders. Every sum in the CPU kernels goes through one of these functions, so the order
//! of floating-point additions is written down in one place and is the same on every machine.
//!
//! - [`dot8`]: 8 interleaved lanes (`lane = k mod 8`), lanes combined as `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`.
//!   The compiler may vectorise it (the lanes are independent) but may not reorder it: Rust never
//!   re-associates float additions nor contracts `a*b+c` into an FMA.
//! - [`dot_blocked`]: the same 8-lane dot over blocks of [`TILE_K`] elements, the block sums added in
//!   order. A different summation order on purpose: it is the `gemm_tiled` route's order, which is why a
//!   prefill row and a decode row of the same token differ in their last bits, as in real engines.

/// K-block length of the tiled matmul route.
pub const TILE_K: usize = 32;

macro_rules! dot_impl {
    ($name:ident, $blocked:ident, $sum:ident, $t:ty) => {
        /// 8-lane dot product (see the module doc for the exact order), portable scalar code: the
        /// reference the SIMD paths of [`super::fast`] are tested against.
        #[inline]
        pub fn $name(a: &[$t], b: &[$t]) -> $t {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let mut l = [0.0 as $t; 8];
            let full = n / 8 * 8;
            let (a8, at) = a[..n].split_at(full);
            let (b8, bt) = b[..n].split_at(full);
            for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
                for i in 0..8 {
                    l[i] += ca[i] * cb[i];
                }
            }
            for i in 0..at.len() {
                l[i] += at[i] * bt[i];
            }
            ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
        }

        /// Blocked dot product: [`TILE_K`]-element blocks, each an 8-lane dot, block sums added in order
        /// (portable scalar reference).
        #[inline]
        pub fn $blocked(a: &[$t], b: &[$t]) -> $t {
            let mut acc = 0.0 as $t;
            for (ca, cb) in a.chunks(TILE_K).zip(b.chunks(TILE_K)) {
                acc += $name(ca, cb);
            }
            acc
        }

        /// 8-lane sum, same order as the dot product.
        #[inline]
        pub fn $sum(a: &[$t]) -> $t {
            let mut l = [0.0 as $t; 8];
            let full = a.len() / 8 * 8;
            for c in a[..full].chunks_exact(8) {
                for i in 0..8 {
                    l[i] += c[i];
                }
            }
            for (i, v) in a[full..].iter().enumerate() {
                l[i] += v;
            }
            ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
        }
    };
}

dot_impl!(dot8_ref, dot_blocked_ref, sum8, f32);
dot_impl!(dot8_f64_ref, dot_blocked_f64_ref, sum8_f64, f64);

/// 8-lane dot product (see the module doc for the exact order); AVX2 when the CPU has it, with the same
/// IEEE operations in the same order as [`dot8_ref`], so the same bits.
#[inline]
pub fn dot8(a: &[f32], b: &[f32]) -> f32 {
    super::fast::dot8(a, b).unwrap_or_else(|| dot8_ref(a, b))
}

/// [`dot8`] in f64.
#[inline]
pub fn dot8_f64(a: &[f64], b: &[f64]) -> f64 {
    super::fast::dot8_f64(a, b).unwrap_or_else(|| dot8_f64_ref(a, b))
}

/// Blocked dot product: [`TILE_K`]-element blocks, each an 8-lane dot, block sums added in order.
#[inline]
pub fn dot_blocked(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (ca, cb) in a.chunks(TILE_K).zip(b.chunks(TILE_K)) {
        acc += dot8(ca, cb);
    }
    acc
}

/// [`dot_blocked`] in f64.
#[inline]
pub fn dot_blocked_f64(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = 0.0f64;
    for (ca, cb) in a.chunks(TILE_K).zip(b.chunks(TILE_K)) {
        acc += dot8_f64(ca, cb);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_the_documented_ones() {
        let a: Vec<f32> = (0..200).map(|i| 1.0 + (i as f32) * 1e-3).collect();
        let b: Vec<f32> = (0..200).map(|i| 1.0 - (i as f32) * 7e-4).collect();
        let mut l = [0f32; 8];
        for k in 0..200 {
            l[k % 8] += a[k] * b[k];
        }
        let want = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        assert_eq!(dot8(&a, &b).to_bits(), want.to_bits());
        let blocked: f32 = a
            .chunks(TILE_K)
            .zip(b.chunks(TILE_K))
            .fold(0.0, |s, (x, y)| s + dot8(x, y));
        assert_eq!(dot_blocked(&a, &b).to_bits(), blocked.to_bits());
        assert!((dot8_f64(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]) - 32.0).abs() < 1e-12);
    }
}
