//! SIMD fast paths of the CPU kernels (x86-64 AVX2, detected at run time).
//!
//! Each computes exactly the IEEE operations of the portable code in [`super::dot`] and
//! [`crate::model::quant`], in the same order, so the bits are the same on every machine:
//! - an AVX2 `mul` or `add` on 8 lanes is the 8 scalar lane operations side by side, and lane `i` of an
//!   accumulator register is lane `i` (`k mod 8`) of [`super::dot::dot8_ref`]; multiply and add stay two
//!   instructions (no FMA is enabled or formed: `a*b+c` keeps its two roundings);
//! - the lanes are combined with the documented `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))` in scalar code;
//! - the fused dequantise-and-dot kernels form each weight with the operations of `quant::dequantize`
//!   (Q4_1 `(d*q)+m`, Q8_0 `q*d`, Q4_0 `d*(q-8)`, the f16 scales widened by [`quant::f16_to_f32`]), then
//!   multiply and accumulate it like the dot product over the dequantised row would.
//!
//! Work on several weight rows in one pass is only interleaving: each row keeps its own accumulators, in
//! its own order. The tests compare every path with the portable reference bit for bit.
//!
//! Set `GRETA_NO_SIMD=1` to run the portable code (for comparisons).

use super::dot::TILE_K;
use crate::launch::DType;
#[allow(unused_imports)]
use crate::model::quant;
use std::sync::OnceLock;

const _: () = assert!(
    TILE_K == 32,
    "the fused blocked kernels take one 32-element quant block as one K tile"
);

/// Whether the SIMD paths run on this machine.
#[inline]
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let has = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("f16c");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        has && std::env::var_os("GRETA_NO_SIMD").is_none_or(|v| v.is_empty() || v == "0")
    })
}

/// [`super::dot::dot8_ref`] on AVX2, or None when unavailable.
#[inline]
pub fn dot8(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        // SAFETY: AVX2 is present (checked by `enabled`).
        return Some(unsafe { x86::dot8(a, b) });
    }
    let _ = (a, b);
    None
}

/// [`super::dot::dot8_f64_ref`] on AVX2, or None when unavailable.
#[inline]
pub fn dot8_f64(a: &[f64], b: &[f64]) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        // SAFETY: AVX2 is present (checked by `enabled`).
        return Some(unsafe { x86::dot8_f64(a, b) });
    }
    let _ = (a, b);
    None
}

/// Four f32 dot products against one (dequantised) weight row `w`, each `out[r]` bit-identical to
/// [`super::dot::dot_blocked`]`(xs[r], w)` when `blocked`, else to [`super::dot::dot8`]`(xs[r], w)`; the four
/// rows are interleaved for speed (each keeps its own order). Returns false (and does nothing) when not
/// covered: no AVX2, or `w.len()` not a multiple of 32, or a row of another length.
pub fn dot4_rows(blocked: bool, xs: [&[f32]; 4], w: &[f32], out: &mut [f32; 4]) -> bool {
    if !enabled() || w.len() % 32 != 0 || xs.iter().any(|x| x.len() != w.len()) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 present, lengths checked.
    unsafe {
        if blocked {
            x86::dot4_rows::<true>(xs, w, out)
        } else {
            x86::dot4_rows::<false>(xs, w, out)
        }
        return true;
    }
    #[allow(unreachable_code)]
    false
}

/// Whether [`fused_f32`] / [`fused_f64`] cover weight rows of `dtype` with `cols` columns here.
pub fn fused_supported(dtype: DType, cols: usize) -> bool {
    enabled() && matches!(dtype, DType::Q4_1 | DType::Q8_0 | DType::Q4_0) && cols % 32 == 0
}

/// Elementwise f32 and f64 versions of the fused kernels.
pub trait FusedFloat: Copy + Default {
    /// Whether [`FusedFloat::dot4`] has a fast path for this type (both do).
    const HAS_DOT4: bool;
    /// [`dot4_rows`] (f32) and its f64 twin (four [`super::dot::dot8_f64`] / `dot_blocked_f64`).
    fn dot4(blocked: bool, xs: [&[Self]; 4], w: &[Self], out: &mut [Self; 4]) -> bool;
    /// `out[r]` = the dot of `x` with weight row `rows[r]` dequantised: [`super::dot::dot8`] order, or
    /// [`super::dot::dot_blocked`] order when `blocked`. Only call when [`fused_supported`] is true and
    /// every row holds exactly the blocks of `x.len()` columns.
    fn fused(dtype: DType, blocked: bool, x: &[Self], rows: &[&[u8]], out: &mut [Self]);
}

impl FusedFloat for f32 {
    const HAS_DOT4: bool = true;
    fn dot4(blocked: bool, xs: [&[f32]; 4], w: &[f32], out: &mut [f32; 4]) -> bool {
        dot4_rows(blocked, xs, w, out)
    }
    fn fused(dtype: DType, blocked: bool, x: &[f32], rows: &[&[u8]], out: &mut [f32]) {
        fused_f32(dtype, blocked, x, rows, out)
    }
}

impl FusedFloat for f64 {
    const HAS_DOT4: bool = true;
    fn dot4(blocked: bool, xs: [&[f64]; 4], w: &[f64], out: &mut [f64; 4]) -> bool {
        if !enabled() || w.len() % 32 != 0 || xs.iter().any(|x| x.len() != w.len()) {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 present, lengths checked.
        unsafe {
            if blocked {
                x86::dot4_rows_f64::<true>(xs, w, out)
            } else {
                x86::dot4_rows_f64::<false>(xs, w, out)
            }
            return true;
        }
        #[allow(unreachable_code)]
        false
    }
    fn fused(dtype: DType, blocked: bool, x: &[f64], rows: &[&[u8]], out: &mut [f64]) {
        fused_f64(dtype, blocked, x, rows, out)
    }
}

fn check(dtype: DType, cols: usize, rows: &[&[u8]], out_len: usize) {
    assert!(
        fused_supported(dtype, cols),
        "fused kernel called for {dtype} x {cols}"
    );
    let rb = dtype.bytes_for(cols).expect("whole blocks");
    assert!(
        rows.iter().all(|r| r.len() == rb) && out_len >= rows.len(),
        "fused kernel: bad row lengths"
    );
}

macro_rules! dispatch {
    ($name:ident, $t:ty, $q41:ident, $q80:ident, $q40:ident) => {
        /// The fused dequantise-and-dot kernel (see [`FusedFloat::fused`]).
        pub fn $name(dtype: DType, blocked: bool, x: &[$t], rows: &[&[u8]], out: &mut [$t]) {
            check(dtype, x.len(), rows, out.len());
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: AVX2 is present and the row lengths were checked above.
                macro_rules! go {
                    ($k:ident) => {{
                        let mut r = 0;
                        while r + 4 <= rows.len() {
                            let rr: &[&[u8]; 4] = rows[r..r + 4].try_into().unwrap();
                            let o: &mut [$t; 4] = (&mut out[r..r + 4]).try_into().unwrap();
                            unsafe {
                                if blocked {
                                    x86::$k::<4, true>(x, rr, o)
                                } else {
                                    x86::$k::<4, false>(x, rr, o)
                                }
                            }
                            r += 4;
                        }
                        while r < rows.len() {
                            let rr: &[&[u8]; 1] = rows[r..r + 1].try_into().unwrap();
                            let o: &mut [$t; 1] = (&mut out[r..r + 1]).try_into().unwrap();
                            unsafe {
                                if blocked {
                                    x86::$k::<1, true>(x, rr, o)
                                } else {
                                    x86::$k::<1, false>(x, rr, o)
                                }
                            }
                            r += 1;
                        }
                    }};
                }
                match dtype {
                    DType::Q4_1 => go!($q41),
                    DType::Q8_0 => go!($q80),
                    DType::Q4_0 => go!($q40),
                    _ => unreachable!("checked by fused_supported"),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (blocked, x, rows, out);
                unreachable!("fused_supported is false off x86-64");
            }
        }
    };
}

dispatch!(fused_f32, f32, q4_1_f32, q8_0_f32, q4_0_f32);
dispatch!(fused_f64, f64, q4_1_f64, q8_0_f64, q4_0_f64);

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_op_in_unsafe_fn)]
mod x86 {
    use crate::model::quant::f16_to_f32;
    use std::arch::x86_64::*;

    #[inline(always)]
    fn combine(l: [f32; 8]) -> f32 {
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    }

    #[inline(always)]
    fn combine64(l: [f64; 8]) -> f64 {
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    }

    /// The 8 lanes of an f32 accumulator, combined.
    macro_rules! hsum {
        ($v:expr) => {{
            let mut l = [0f32; 8];
            _mm256_storeu_ps(l.as_mut_ptr(), $v);
            combine(l)
        }};
    }

    macro_rules! hsum64 {
        ($lo:expr, $hi:expr) => {{
            let mut l = [0f64; 8];
            _mm256_storeu_pd(l.as_mut_ptr(), $lo);
            _mm256_storeu_pd(l.as_mut_ptr().add(4), $hi);
            combine64(l)
        }};
    }

    /// `dot::dot8_ref` of `a` and `b` over their common length, on AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 (check with `is_x86_feature_detected!("avx2")`, as
    /// `enabled` does); executing it otherwise is undefined behaviour. Any slice lengths are
    /// sound: vector loads stop at the last whole group of 8 of the shorter slice.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot8(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let full = n / 8 * 8;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm256_setzero_ps();
        let mut k = 0;
        while k < full {
            acc = _mm256_add_ps(
                acc,
                _mm256_mul_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k))),
            );
            k += 8;
        }
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), acc);
        for i in 0..n - full {
            l[i] += a[full + i] * b[full + i];
        }
        combine(l)
    }

    /// See [`super::dot4_rows`]: four rows `xs` against `w`, covering `w.len() / 32 * 32` elements
    /// (the caller passes `w.len()` a multiple of 32 for a whole result).
    ///
    /// # Safety
    /// The CPU must support AVX2. Every `xs[r]` must hold at least `w.len() / 32 * 32` elements: the
    /// rows are read through raw pointers in blocks of 32 up to that length without bounds checks
    /// ([`super::dot4_rows`] checks `xs[r].len() == w.len()`).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot4_rows<const BLOCKED: bool>(xs: [&[f32]; 4], w: &[f32], out: &mut [f32; 4]) {
        let nb = w.len() / 32;
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut t = _mm_setzero_ps();
        for b in 0..nb {
            let wp = w.as_ptr().add(32 * b);
            let ws = [
                _mm256_loadu_ps(wp),
                _mm256_loadu_ps(wp.add(8)),
                _mm256_loadu_ps(wp.add(16)),
                _mm256_loadu_ps(wp.add(24)),
            ];
            let mut s = [_mm256_setzero_ps(); 4];
            for r in 0..4 {
                let xp = xs[r].as_ptr().add(32 * b);
                let mut a = if BLOCKED { _mm256_setzero_ps() } else { acc[r] };
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(xp), ws[0]));
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(xp.add(8)), ws[1]));
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(xp.add(16)), ws[2]));
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(xp.add(24)), ws[3]));
                if BLOCKED { s[r] = a } else { acc[r] = a }
            }
            if BLOCKED {
                // hadd(hadd(s0,s1), hadd(s2,s3)): ((l0+l1)+(l2+l3)) of each row in the low half,
                // ((l4+l5)+(l6+l7)) in the high half; their sum is each row's block dot, added in order.
                let h = _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
                t = _mm_add_ps(
                    t,
                    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h)),
                );
            }
        }
        if BLOCKED {
            _mm_storeu_ps(out.as_mut_ptr(), t);
        } else {
            for r in 0..4 {
                out[r] = hsum!(acc[r]);
            }
        }
    }

    /// The f64 twin of [`dot4_rows`]: lanes 0..4 and 4..8 in two registers a row.
    ///
    /// # Safety
    /// As [`dot4_rows`]: the CPU must support AVX2, and every `xs[r]` must hold at least
    /// `w.len() / 32 * 32` elements (read through raw pointers without bounds checks).
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot4_rows_f64<const BLOCKED: bool>(
        xs: [&[f64]; 4],
        w: &[f64],
        out: &mut [f64; 4],
    ) {
        let nb = w.len() / 32;
        let mut lo = [_mm256_setzero_pd(); 4];
        let mut hi = [_mm256_setzero_pd(); 4];
        let mut tot = [0f64; 4];
        for b in 0..nb {
            let wp = w.as_ptr().add(32 * b);
            for r in 0..4 {
                let xp = xs[r].as_ptr().add(32 * b);
                let (mut a, mut c) = if BLOCKED {
                    (_mm256_setzero_pd(), _mm256_setzero_pd())
                } else {
                    (lo[r], hi[r])
                };
                for g in 0..4 {
                    a = _mm256_add_pd(
                        a,
                        _mm256_mul_pd(
                            _mm256_loadu_pd(xp.add(8 * g)),
                            _mm256_loadu_pd(wp.add(8 * g)),
                        ),
                    );
                    c = _mm256_add_pd(
                        c,
                        _mm256_mul_pd(
                            _mm256_loadu_pd(xp.add(8 * g + 4)),
                            _mm256_loadu_pd(wp.add(8 * g + 4)),
                        ),
                    );
                }
                if BLOCKED {
                    tot[r] += hsum64!(a, c);
                } else {
                    lo[r] = a;
                    hi[r] = c;
                }
            }
        }
        for r in 0..4 {
            out[r] = if BLOCKED {
                tot[r]
            } else {
                hsum64!(lo[r], hi[r])
            };
        }
    }

    /// `dot::dot8_f64_ref` of `a` and `b` over their common length, on AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2. Any slice lengths are sound: vector loads stop at the last whole
    /// group of 8 of the shorter slice.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot8_f64(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let full = n / 8 * 8;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut lo = _mm256_setzero_pd();
        let mut hi = _mm256_setzero_pd();
        let mut k = 0;
        while k < full {
            lo = _mm256_add_pd(
                lo,
                _mm256_mul_pd(_mm256_loadu_pd(pa.add(k)), _mm256_loadu_pd(pb.add(k))),
            );
            hi = _mm256_add_pd(
                hi,
                _mm256_mul_pd(
                    _mm256_loadu_pd(pa.add(k + 4)),
                    _mm256_loadu_pd(pb.add(k + 4)),
                ),
            );
            k += 8;
        }
        let mut l = [0f64; 8];
        _mm256_storeu_pd(l.as_mut_ptr(), lo);
        _mm256_storeu_pd(l.as_mut_ptr().add(4), hi);
        for i in 0..n - full {
            l[i] += a[full + i] * b[full + i];
        }
        combine64(l)
    }

    /// The f16 at `p` as f32, exactly as [`f16_to_f32`]: the F16C conversion is exact and equal to it
    /// for every half but NaNs (F16C quiets a signalling NaN), which take the portable code.
    macro_rules! f16_at {
        ($p:expr) => {{
            let h = u16::from_le_bytes([*$p, *$p.add(1)]);
            if h & 0x7fff > 0x7c00 {
                f16_to_f32(h)
            } else {
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
            }
        }};
    }

    /// The 32 weights of a Q4_1 block as 4 groups of 8: `(d * q) + m`.
    macro_rules! block_q4_1 {
        ($p:expr) => {{
            let p: *const u8 = $p;
            let d = _mm256_set1_ps(f16_at!(p));
            let m = _mm256_set1_ps(f16_at!(p.add(2)));
            let q = _mm_loadu_si128(p.add(4) as *const __m128i);
            let mask = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(q, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), mask);
            [
                _mm256_add_ps(
                    _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo))),
                    m,
                ),
                _mm256_add_ps(
                    _mm256_mul_ps(
                        d,
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(lo))),
                    ),
                    m,
                ),
                _mm256_add_ps(
                    _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi))),
                    m,
                ),
                _mm256_add_ps(
                    _mm256_mul_ps(
                        d,
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(hi))),
                    ),
                    m,
                ),
            ]
        }};
    }

    /// Q4_0: `d * (q - 8)` (the subtraction in integers, as quants.py).
    macro_rules! block_q4_0 {
        ($p:expr) => {{
            let p: *const u8 = $p;
            let d = _mm256_set1_ps(f16_at!(p));
            let q = _mm_loadu_si128(p.add(2) as *const __m128i);
            let mask = _mm_set1_epi8(0x0f);
            let eight = _mm256_set1_epi32(8);
            let lo = _mm_and_si128(q, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), mask);
            let f = |v: __m256i| _mm256_cvtepi32_ps(_mm256_sub_epi32(v, eight));
            [
                _mm256_mul_ps(d, f(_mm256_cvtepu8_epi32(lo))),
                _mm256_mul_ps(d, f(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(lo)))),
                _mm256_mul_ps(d, f(_mm256_cvtepu8_epi32(hi))),
                _mm256_mul_ps(d, f(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(hi)))),
            ]
        }};
    }

    /// Q8_0: `q * d`.
    macro_rules! block_q8_0 {
        ($p:expr) => {{
            let p: *const u8 = $p;
            let d = _mm256_set1_ps(f16_at!(p));
            let g = |i: usize| {
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                        p.add(2 + 8 * i) as *const __m128i
                    ))),
                    d,
                )
            };
            [g(0), g(1), g(2), g(3)]
        }};
    }

    /// `for $r in 0..$n`, written out when $n is 4 so that the per-row accumulators, indexed by constants,
    /// stay in registers.
    macro_rules! each_row {
        ($n:expr, $r:ident, $body:block) => {
            if $n == 4 {
                { let $r = 0usize; $body }
                { let $r = 1usize; $body }
                { let $r = 2usize; $body }
                { let $r = 3usize; $body }
            } else {
                for $r in 0..$n $body
            }
        };
    }

    macro_rules! kernels {
        ($f32name:ident, $f64name:ident, $decode:ident, $bb:expr) => {
            /// R weight rows against one f32 activation row; dot8 order, or dot_blocked order if BLOCKED.
            /// Covers `x.len() / 32` whole blocks (the caller passes `x.len()` a multiple of 32).
            ///
            /// # Safety
            /// The CPU must support AVX2 and F16C. Every `rows[r]` must hold at least
            #[doc = concat!("`x.len() / 32 * ", stringify!($bb), "` bytes (", stringify!($bb), " bytes a block):")]
            /// blocks are decoded through raw pointers without bounds checks (`check` in this file asserts
            /// the exact row length before the safe wrappers call this).
            #[target_feature(enable = "avx2,f16c")]
            pub unsafe fn $f32name<const R: usize, const BLOCKED: bool>(
                x: &[f32],
                rows: &[&[u8]; R],
                out: &mut [f32; R],
            ) {
                let nb = x.len() / 32;
                let mut acc = [_mm256_setzero_ps(); R];
                let mut tot = [0f32; R];
                if BLOCKED && R == 4 {
                    // Four block sums at once: hadd(hadd(a0,a1), hadd(a2,a3)) holds ((l0+l1)+(l2+l3)) of
                    // each row in the low half and ((l4+l5)+(l6+l7)) in the high half; adding the halves
                    // completes the documented combine, and lane r of `t` is row r's running sum.
                    let mut t = _mm_setzero_ps();
                    for b in 0..nb {
                        let xp = x.as_ptr().add(32 * b);
                        let xs = [
                            _mm256_loadu_ps(xp),
                            _mm256_loadu_ps(xp.add(8)),
                            _mm256_loadu_ps(xp.add(16)),
                            _mm256_loadu_ps(xp.add(24)),
                        ];
                        let mut s = [_mm256_setzero_ps(); 4];
                        each_row!(4, r, {
                            let w = $decode!(rows[r].as_ptr().add(b * $bb));
                            let mut a = _mm256_setzero_ps();
                            a = _mm256_add_ps(a, _mm256_mul_ps(xs[0], w[0]));
                            a = _mm256_add_ps(a, _mm256_mul_ps(xs[1], w[1]));
                            a = _mm256_add_ps(a, _mm256_mul_ps(xs[2], w[2]));
                            a = _mm256_add_ps(a, _mm256_mul_ps(xs[3], w[3]));
                            s[r] = a;
                        });
                        let h =
                            _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
                        let bs =
                            _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                        t = _mm_add_ps(t, bs);
                    }
                    let mut v = [0f32; 4];
                    _mm_storeu_ps(v.as_mut_ptr(), t);
                    for r in 0..R {
                        out[r] = v[r];
                    }
                    return;
                }
                for b in 0..nb {
                    let xp = x.as_ptr().add(32 * b);
                    let xs = [
                        _mm256_loadu_ps(xp),
                        _mm256_loadu_ps(xp.add(8)),
                        _mm256_loadu_ps(xp.add(16)),
                        _mm256_loadu_ps(xp.add(24)),
                    ];
                    each_row!(R, r, {
                        let w = $decode!(rows[r].as_ptr().add(b * $bb));
                        let mut a = if BLOCKED { _mm256_setzero_ps() } else { acc[r] };
                        a = _mm256_add_ps(a, _mm256_mul_ps(xs[0], w[0]));
                        a = _mm256_add_ps(a, _mm256_mul_ps(xs[1], w[1]));
                        a = _mm256_add_ps(a, _mm256_mul_ps(xs[2], w[2]));
                        a = _mm256_add_ps(a, _mm256_mul_ps(xs[3], w[3]));
                        if BLOCKED {
                            tot[r] += hsum!(a);
                        } else {
                            acc[r] = a;
                        }
                    });
                }
                for r in 0..R {
                    out[r] = if BLOCKED { tot[r] } else { hsum!(acc[r]) };
                }
            }

            /// The same for an f64 activation row: weights widened exactly, f64 products and sums.
            ///
            /// # Safety
            /// As the f32 kernel: the CPU must support AVX2 and F16C, and every `rows[r]` must hold at
            #[doc = concat!("least `x.len() / 32 * ", stringify!($bb), "` bytes (read through raw pointers without bounds checks).")]
            #[target_feature(enable = "avx2,f16c")]
            pub unsafe fn $f64name<const R: usize, const BLOCKED: bool>(
                x: &[f64],
                rows: &[&[u8]; R],
                out: &mut [f64; R],
            ) {
                let nb = x.len() / 32;
                let mut lo = [_mm256_setzero_pd(); R];
                let mut hi = [_mm256_setzero_pd(); R];
                let mut tot = [0f64; R];
                for b in 0..nb {
                    let xp = x.as_ptr().add(32 * b);
                    each_row!(R, r, {
                        let w = $decode!(rows[r].as_ptr().add(b * $bb));
                        let (mut a, mut c) = if BLOCKED {
                            (_mm256_setzero_pd(), _mm256_setzero_pd())
                        } else {
                            (lo[r], hi[r])
                        };
                        for g in 0..4 {
                            let wl = _mm256_cvtps_pd(_mm256_castps256_ps128(w[g]));
                            let wh = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(w[g]));
                            a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_loadu_pd(xp.add(8 * g)), wl));
                            c = _mm256_add_pd(
                                c,
                                _mm256_mul_pd(_mm256_loadu_pd(xp.add(8 * g + 4)), wh),
                            );
                        }
                        if BLOCKED {
                            tot[r] += hsum64!(a, c);
                        } else {
                            lo[r] = a;
                            hi[r] = c;
                        }
                    });
                }
                for r in 0..R {
                    out[r] = if BLOCKED {
                        tot[r]
                    } else {
                        hsum64!(lo[r], hi[r])
                    };
                }
            }
        };
    }

    kernels!(q4_1_f32, q4_1_f64, block_q4_1, 20);
    kernels!(q8_0_f32, q8_0_f64, block_q8_0, 34);
    kernels!(q4_0_f32, q4_0_f64, block_q4_0, 18);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::cpu::dot::{dot_blocked_f64_ref, dot_blocked_ref, dot8_f64_ref, dot8_ref};

    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn f(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Random weight rows of `dtype` with finite scales.
    pub(crate) fn random_rows(rng: &mut Rng, dtype: DType, cols: usize, rows: usize) -> Vec<u8> {
        let rb = dtype.bytes_for(cols).unwrap();
        let mut v: Vec<u8> = (0..rb * rows).map(|_| rng.next() as u8).collect();
        let (_, bb) = dtype.block();
        let h = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
        match dtype {
            DType::F32 => {
                for c in v.chunks_exact_mut(4) {
                    c.copy_from_slice(&rng.f().to_le_bytes());
                }
            }
            DType::F16 => {
                for c in v.chunks_exact_mut(2) {
                    c.copy_from_slice(&h(rng.f()));
                }
            }
            _ => {
                for blk in v.chunks_exact_mut(bb) {
                    for &o in quant::f16_fields(dtype) {
                        blk[o..o + 2].copy_from_slice(&h(rng.f() * 0.1));
                    }
                }
            }
        }
        v
    }

    #[test]
    fn simd_dots_match_the_portable_order() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in [0usize, 1, 7, 8, 9, 31, 32, 33, 64, 100, 576, 1000] {
            let a: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            if let Some(v) = dot8(&a, &b) {
                assert_eq!(v.to_bits(), dot8_ref(&a, &b).to_bits(), "dot8 n={n}");
            }
            let a64: Vec<f64> = a.iter().map(|&v| v as f64 * 1.000_000_1).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            if let Some(v) = dot8_f64(&a64, &b64) {
                assert_eq!(
                    v.to_bits(),
                    dot8_f64_ref(&a64, &b64).to_bits(),
                    "dot8_f64 n={n}"
                );
            }
            assert_eq!(
                crate::backend::cpu::dot::dot_blocked(&a, &b).to_bits(),
                dot_blocked_ref(&a, &b).to_bits()
            );
            assert_eq!(
                crate::backend::cpu::dot::dot_blocked_f64(&a64, &b64).to_bits(),
                dot_blocked_f64_ref(&a64, &b64).to_bits()
            );
        }
    }

    #[test]
    fn fused_kernels_match_dequantize_then_dot() {
        let mut rng = Rng(12345);
        for dtype in [DType::Q4_1, DType::Q8_0, DType::Q4_0] {
            for cols in [32usize, 64, 96, 576, 1536] {
                if !fused_supported(dtype, cols) {
                    continue;
                }
                let nrows = 7;
                let bytes = random_rows(&mut rng, dtype, cols, nrows);
                let rb = dtype.bytes_for(cols).unwrap();
                let rows: Vec<&[u8]> = bytes.chunks_exact(rb).collect();
                let x: Vec<f32> = (0..cols).map(|_| rng.f() * 4.0).collect();
                let x64: Vec<f64> = x.iter().map(|&v| v as f64 * 1.000_000_3).collect();
                for blocked in [false, true] {
                    let mut got = vec![0f32; nrows];
                    fused_f32(dtype, blocked, &x, &rows, &mut got);
                    let mut got64 = vec![0f64; nrows];
                    fused_f64(dtype, blocked, &x64, &rows, &mut got64);
                    for (r, row) in rows.iter().enumerate() {
                        let w = quant::dequantize_to_vec(dtype, row, cols).unwrap();
                        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
                        let (want, want64) = if blocked {
                            (dot_blocked_ref(&x, &w), dot_blocked_f64_ref(&x64, &w64))
                        } else {
                            (dot8_ref(&x, &w), dot8_f64_ref(&x64, &w64))
                        };
                        assert_eq!(
                            got[r].to_bits(),
                            want.to_bits(),
                            "{dtype} cols={cols} blocked={blocked} row {r}"
                        );
                        assert_eq!(
                            got64[r].to_bits(),
                            want64.to_bits(),
                            "{dtype} f64 cols={cols} blocked={blocked}"
                        );
                    }
                }
            }
        }
    }
}
