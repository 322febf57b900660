//! Chunks and the byte shuffle.
//!
//! Tensor bytes are cut into fixed-size chunks (default 64 KiB) addressed by their blake3. Fixed-size
//! (not content-defined) chunking is enough here because what repeats in an inference run repeats at the
//! same offsets: a growing KV cache keeps its prefix, an unchanged input is the whole tensor again.
//!
//! The shuffle is a byte-plane transpose by element size (as in Blosc/HDF5): the sign/exponent bytes of
//! neighbouring floats end up next to each other, which zstd compresses far better than interleaved
//! mantissa noise. It is recorded per frame (the element size), so the reader knows how to undo it.
//! Trailing bytes that do not fill an element are left in place at the end.

/// Transposes `src` into byte planes of element size `es` (`dst.len() == src.len()`).
pub fn shuffle(src: &[u8], dst: &mut [u8], es: usize) {
    assert_eq!(src.len(), dst.len());
    if es <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let n = src.len() / es;
    match es {
        2 => shuffle_n::<2>(src, dst, n),
        4 => shuffle_n::<4>(src, dst, n),
        8 => shuffle_n::<8>(src, dst, n),
        _ => {
            for (i, e) in src.chunks_exact(es).enumerate() {
                for (b, &x) in e.iter().enumerate() {
                    dst[b * n + i] = x;
                }
            }
        }
    }
    dst[n * es..].copy_from_slice(&src[n * es..]);
}

fn shuffle_n<const ES: usize>(src: &[u8], dst: &mut [u8], n: usize) {
    let (planes, _) = dst.split_at_mut(n * ES);
    let cols: [&mut [u8]; ES] = split_planes::<ES>(planes, n);
    for (i, e) in src.chunks_exact(ES).enumerate() {
        for b in 0..ES {
            cols[b][i] = e[b];
        }
    }
}

fn split_planes<const ES: usize>(mut planes: &mut [u8], n: usize) -> [&mut [u8]; ES] {
    std::array::from_fn(|_| {
        let (p, rest) = std::mem::take(&mut planes).split_at_mut(n);
        planes = rest;
        p
    })
}

/// Undoes [`shuffle`].
pub fn unshuffle(src: &[u8], dst: &mut [u8], es: usize) {
    assert_eq!(src.len(), dst.len());
    if es <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    let n = src.len() / es;
    match es {
        2 => unshuffle_n::<2>(src, dst, n),
        4 => unshuffle_n::<4>(src, dst, n),
        8 => unshuffle_n::<8>(src, dst, n),
        _ => {
            for (i, e) in dst.chunks_exact_mut(es).enumerate() {
                for (b, x) in e.iter_mut().enumerate() {
                    *x = src[b * n + i];
                }
            }
        }
    }
    dst[n * es..].copy_from_slice(&src[n * es..]);
}

fn unshuffle_n<const ES: usize>(src: &[u8], dst: &mut [u8], n: usize) {
    let planes: [&[u8]; ES] = std::array::from_fn(|b| &src[b * n..(b + 1) * n]);
    for (i, e) in dst.chunks_exact_mut(ES).enumerate() {
        for b in 0..ES {
            e[b] = planes[b][i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shuffle_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300), es in 0usize..10) {
            let mut s = vec![0; data.len()];
            shuffle(&data, &mut s, es);
            let mut back = vec![0; data.len()];
            unshuffle(&s, &mut back, es);
            prop_assert_eq!(back, data);
        }
    }

    #[test]
    fn shuffle_groups_byte_planes() {
        let src = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut dst = [0; 9];
        shuffle(&src, &mut dst, 4);
        assert_eq!(dst, [1, 5, 2, 6, 3, 7, 4, 8, 9]);
    }
}
