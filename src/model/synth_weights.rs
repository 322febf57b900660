//! Deterministic random weights for synthetic models, encoded directly in each storage dtype.
//!
//! Every row of every tensor draws from its own splitmix64 stream seeded by (model seed, tensor name,
//! row), so the bytes depend only on those and not on the thread count: rows are generated in parallel.
//! Values are uniform in `[-a, a]` (standard deviation `a / sqrt(3)`); for block formats the generator
//! picks random quants and f16 scales so that the dequantised values span about the same range, which
//! produces valid blocks without a quantizer.

use crate::launch::DType;
use half::{bf16, f16};
use rayon::prelude::*;

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test weights.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`, with 24 random bits.
    pub fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
    }

    /// Uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
}

/// FNV-1a of a name, to give each tensor its own stream.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stream for one row of one tensor.
fn row_rng(seed: u64, name: &str, row: usize) -> SplitMix64 {
    let mut s = SplitMix64::new(seed ^ fnv1a(name));
    let base = s.next_u64();
    let mut r = SplitMix64::new(base ^ (row as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    r.next_u64();
    r
}

/// What the values of a tensor look like.
#[derive(Clone, Copy, Debug)]
pub enum Fill {
    /// Uniform in `[-a, a]`.
    Uniform(f32),
    /// `1 + u`, u uniform in `[-a, a]` (norm weights).
    AroundOne(f32),
}

/// Encodes a `rows × cols` tensor of `dtype` (cols must be whole blocks).
pub fn make_tensor(
    seed: u64,
    name: &str,
    dtype: DType,
    rows: usize,
    cols: usize,
    fill: Fill,
) -> Vec<u8> {
    let row_bytes = dtype.bytes_for(cols).unwrap_or(0);
    let mut out = vec![0u8; rows * row_bytes];
    if row_bytes == 0 {
        return out;
    }
    out.par_chunks_mut(row_bytes)
        .enumerate()
        .for_each(|(r, dst)| {
            let mut rng = row_rng(seed, name, r);
            encode_row(&mut rng, dtype, fill, dst);
        });
    out
}

fn f16_bytes(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

fn encode_row(rng: &mut SplitMix64, dtype: DType, fill: Fill, dst: &mut [u8]) {
    let (a, center) = match fill {
        Fill::Uniform(a) => (a, 0.0),
        Fill::AroundOne(a) => (a, 1.0),
    };
    match dtype {
        DType::F32 => dst
            .chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&(center + a * rng.symmetric()).to_le_bytes())),
        DType::F16 => dst
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&f16_bytes(center + a * rng.symmetric()))),
        DType::BF16 => dst.chunks_exact_mut(2).for_each(|c| {
            c.copy_from_slice(
                &bf16::from_f32(center + a * rng.symmetric())
                    .to_bits()
                    .to_le_bytes(),
            )
        }),
        DType::Q8_0 => dst.chunks_exact_mut(34).for_each(|b| {
            b[0..2].copy_from_slice(&f16_bytes(a / 127.0));
            b[2..]
                .iter_mut()
                .for_each(|q| *q = (rng.range(0, 254) as i32 - 127) as i8 as u8);
        }),
        DType::Q4_0 => dst.chunks_exact_mut(18).for_each(|b| {
            b[0..2].copy_from_slice(&f16_bytes(a / 8.0));
            b[2..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::Q4_1 => dst.chunks_exact_mut(20).for_each(|b| {
            b[0..2].copy_from_slice(&f16_bytes(2.0 * a / 15.0));
            b[2..4].copy_from_slice(&f16_bytes(center - a));
            b[4..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::Q4K => dst.chunks_exact_mut(144).for_each(|b| {
            // Sub-block scale d*sc ≈ 2a/15 and offset dmin*m ≈ a, with 6-bit sc, m around 48.
            b[0..2].copy_from_slice(&f16_bytes(2.0 * a / (15.0 * 48.0)));
            b[2..4].copy_from_slice(&f16_bytes(a / 48.0));
            let sc: [u8; 8] = std::array::from_fn(|_| rng.range(40, 56) as u8);
            let mn: [u8; 8] = std::array::from_fn(|_| rng.range(40, 56) as u8);
            b[4..16].copy_from_slice(&pack_q4_k_scales(&sc, &mn));
            b[16..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::Q6K => dst.chunks_exact_mut(210).for_each(|b| {
            // d*sc ≈ a/32 with |sc| around 24; q - 32 spans [-32, 31].
            b[..192].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
            for s in &mut b[192..208] {
                let v = rng.range(16, 32) as i8;
                *s = if rng.next_u64() & 1 == 0 { v } else { -v } as u8;
            }
            b[208..210].copy_from_slice(&f16_bytes(a / (32.0 * 24.0)));
        }),
        DType::Q5_0 => dst.chunks_exact_mut(22).for_each(|b| {
            b[0..2].copy_from_slice(&f16_bytes(a / 16.0));
            b[2..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::Q5_1 => dst.chunks_exact_mut(24).for_each(|b| {
            b[0..2].copy_from_slice(&f16_bytes(2.0 * a / 31.0));
            b[2..4].copy_from_slice(&f16_bytes(center - a));
            b[4..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::Q2K => dst.chunks_exact_mut(84).for_each(|b| {
            // 4-bit scale and min of 12 or 13 each: d*sc ≈ 2a/3 (q in 0..3), dmin*m ≈ a.
            for s in &mut b[0..16] {
                *s = (rng.range(12, 13) | (rng.range(12, 13) << 4)) as u8;
            }
            b[16..80].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
            b[80..82].copy_from_slice(&f16_bytes(2.0 * a / (3.0 * 12.5)));
            b[82..84].copy_from_slice(&f16_bytes(a / 12.5));
        }),
        DType::Q3K => dst.chunks_exact_mut(110).for_each(|b| {
            // d*sc ≈ a/4 with |sc| around 24; q spans [-4, 3].
            b[..96].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
            b[96..108].fill(0);
            for i in 0..16 {
                let v = rng.range(20, 27) as i32;
                let u = (32 + if rng.next_u64() & 1 == 0 { v } else { -v }) as u8;
                b[96 + i % 8] |= (u & 0x0f) << (4 * (i / 8));
                b[104 + i % 4] |= (u >> 4) << (2 * (i / 4));
            }
            b[108..110].copy_from_slice(&f16_bytes(a / (4.0 * 24.0)));
        }),
        DType::Q5K => dst.chunks_exact_mut(176).for_each(|b| {
            // As Q4_K, with quants up to 31.
            b[0..2].copy_from_slice(&f16_bytes(2.0 * a / (31.0 * 48.0)));
            b[2..4].copy_from_slice(&f16_bytes(a / 48.0));
            let sc: [u8; 8] = std::array::from_fn(|_| rng.range(40, 56) as u8);
            let mn: [u8; 8] = std::array::from_fn(|_| rng.range(40, 56) as u8);
            b[4..16].copy_from_slice(&pack_q4_k_scales(&sc, &mn));
            b[16..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::IQ4NL => dst.chunks_exact_mut(18).for_each(|b| {
            // The code book spans [-127, 113].
            b[0..2].copy_from_slice(&f16_bytes(a / 127.0));
            b[2..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::IQ4XS => dst.chunks_exact_mut(136).for_each(|b| {
            // d*ls ≈ a/127 with |ls| around 24.
            b[0..2].copy_from_slice(&f16_bytes(a / (127.0 * 24.0)));
            let mut sh = 0u16;
            b[4..8].fill(0);
            for g in 0..8 {
                let v = rng.range(20, 27) as i32;
                let u = (32 + if rng.next_u64() & 1 == 0 { v } else { -v }) as u8;
                b[4 + g / 2] |= (u & 0x0f) << (4 * (g % 2));
                sh |= u16::from(u >> 4) << (2 * g);
            }
            b[2..4].copy_from_slice(&sh.to_le_bytes());
            b[8..].iter_mut().for_each(|q| *q = rng.next_u64() as u8);
        }),
        DType::F64 | DType::I32 => {}
    }
}

/// Packs eight 6-bit scales and mins into Q4_K's 12 bytes (the inverse of `get_scale_min`).
pub fn pack_q4_k_scales(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 0x3f) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (mn[j] & 0x3f) | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quant::dequantize_to_vec;

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First output of splitmix64 seeded with 0 (reference C implementation).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn quantized_rows_have_the_asked_magnitude() {
        let a = 0.1f32;
        for dtype in DType::WEIGHT_TYPES {
            let bytes = make_tensor(7, "w", dtype, 4, 512, Fill::Uniform(a));
            let v = dequantize_to_vec(dtype, &bytes, 4 * 512).unwrap();
            let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let rms = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
            assert!(
                max <= 1.6 * a && rms > 0.3 * a && rms < 0.9 * a,
                "{dtype}: max {max} rms {rms}"
            );
        }
    }

    #[test]
    fn q4_k_scales_pack_round_trip() {
        let sc = [0, 1, 31, 63, 32, 17, 48, 5];
        let mn = [63, 0, 7, 40, 1, 62, 33, 16];
        let s = pack_q4_k_scales(&sc, &mn);
        for j in 0..4 {
            assert_eq!(s[j] & 0x3f, sc[j]);
            assert_eq!(s[j + 4] & 0x3f, mn[j]);
            assert_eq!((s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30), sc[j + 4]);
            assert_eq!((s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30), mn[j + 4]);
        }
    }
}
