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
    // One pass per plane, zipped iterators: no bounds checks in the inner loop.
    for (b, plane) in dst[..n * ES]
        .chunks_exact_mut(n.max(1))
        .enumerate()
        .take(ES)
    {
        for (d, e) in plane.iter_mut().zip(src.chunks_exact(ES)) {
            *d = e[b];
        }
    }
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
    for (b, plane) in src[..n * ES].chunks_exact(n.max(1)).enumerate().take(ES) {
        for (e, &x) in dst.chunks_exact_mut(ES).zip(plane) {
            e[b] = x;
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
