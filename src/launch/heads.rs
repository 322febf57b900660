//! Attention heads: which elements of a per-head stage's output belong to one head.
//!
//! Engine teams debug attention per head ("layer 0, head 0: prefill_last vs decode0"), so replay, diff,
//! show and export can restrict a comparison to one head's slice. This module sits in `launch` (the lowest
//! layer) because all of them need it and it needs nothing but a stage, its params and a shape.
//!
//! Layouts (docs/STAGES.md), `H` query heads, `Hk` key/value heads, `hd` head dim:
//! - `q_proj`, `q_bias`, `q_norm`, `rope_q`, `pv`, `attn`: `[n, H*hd]`; head `h` is columns
//!   `h*hd..(h+1)*hd` of every row.
//! - `k_proj`, `k_bias`, `k_norm`, `v_proj`, `v_bias`, `rope_k`, `kv_write` (both outputs): `[n, Hk*hd]`;
//!   KV head `g` is columns `g*hd..(g+1)*hd`.
//! - `qk`, `softmax`: `[H, n, ctx]`; head `h` is the `h`-th `[n, ctx]` block.
//!
//! Grouped-query attention: `--head H` always names a **query** head. On a key/value stage it selects the
//! KV head that query head reads, `H / (H_q / H_kv)` (the rule every backend's attention kernel uses), so
//! query heads `0..group` share KV head 0. `--by-head` iterates over a stage's own heads: query heads on
//! query-side stages, KV heads on key/value stages.
//!
//! ```
//! use greta::launch::{heads, Params, Stage};
//! let p = Params { n_heads: 4, n_kv_heads: 2, head_dim: 2, rows: 1, ..Params::default() };
//! assert_eq!(heads::kv_head(3, &p), Some(1));
//! let q = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
//! assert_eq!(heads::slice(Stage::QProj, &p, &[1, 8], &q, 2).unwrap(), vec![4.0, 5.0]);
//! let k = [0.0, 1.0, 2.0, 3.0];
//! assert_eq!(heads::slice(Stage::KProj, &p, &[1, 4], &k, 2).unwrap(), vec![2.0, 3.0]);
//! ```

use super::{Params, Stage};

/// A head slice could not be taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeadError {
    /// The stage's output is not laid out per head.
    #[error("stage `{0}` has no per-head layout (per-head stages: {PER_HEAD})")]
    NotPerHead(Stage),
    /// The head is out of range.
    #[error("head {head} is out of range: the launch has {heads} query heads")]
    OutOfRange {
        /// Head asked for.
        head: usize,
        /// Query heads of the launch.
        heads: usize,
    },
    /// The params' head geometry does not fit the tensor.
    #[error("shape {shape:?} does not fit {heads} heads of dim {hd} for stage `{stage}`")]
    Shape {
        /// Stage.
        stage: Stage,
        /// Tensor shape.
        shape: Vec<u64>,
        /// Heads expected in the shape.
        heads: usize,
        /// Head dim.
        hd: usize,
    },
    /// A `--head` argument did not parse.
    #[error("--head `{0}`: expected a head number or a range like 0-3")]
    Parse(String),
}

const PER_HEAD: &str = "q_proj, q_bias, q_norm, k_proj, k_bias, k_norm, v_proj, v_bias, rope_q, rope_k, \
                        kv_write, qk, softmax, pv, attn";

/// Which heads a stage's output is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Query heads (`[n, H*hd]` or `[H, n, ctx]`).
    Query,
    /// Key/value heads (`[n, Hk*hd]`).
    Kv,
}

/// The side of a per-head stage, None for the others.
pub fn side(stage: Stage) -> Option<Side> {
    match stage {
        Stage::QProj
        | Stage::QBias
        | Stage::QNorm
        | Stage::RopeQ
        | Stage::Pv
        | Stage::Attn
        | Stage::Qk
        | Stage::Softmax => Some(Side::Query),
        Stage::KProj
        | Stage::KBias
        | Stage::KNorm
        | Stage::VProj
        | Stage::VBias
        | Stage::RopeK
        | Stage::KvWrite => Some(Side::Kv),
        _ => None,
    }
}

/// The KV head that query head `h` reads (grouped-query attention), None when `h` is out of range or
/// the geometry is invalid.
pub fn kv_head(h: usize, p: &Params) -> Option<usize> {
    let (nh, nk) = (p.n_heads as usize, p.n_kv_heads as usize);
    if h >= nh || nk == 0 || nh % nk != 0 {
        return None;
    }
    Some(h / (nh / nk))
}

/// How many heads `--by-head` iterates over for `stage`: query heads or KV heads.
pub fn count(stage: Stage, p: &Params) -> Result<usize, HeadError> {
    match side(stage).ok_or(HeadError::NotPerHead(stage))? {
        Side::Query => Ok(p.n_heads as usize),
        Side::Kv => Ok(p.n_kv_heads as usize),
    }
}

/// The flat indices of the stage's own head `g` (a query head on query-side stages, a KV head on KV
/// stages) in a tensor of `shape`.
pub fn own_indices(
    stage: Stage,
    p: &Params,
    shape: &[u64],
    g: usize,
) -> Result<Vec<usize>, HeadError> {
    let side = side(stage).ok_or(HeadError::NotPerHead(stage))?;
    let hd = p.head_dim as usize;
    let heads = match side {
        Side::Query => p.n_heads as usize,
        Side::Kv => p.n_kv_heads as usize,
    };
    let bad = || HeadError::Shape {
        stage,
        shape: shape.to_vec(),
        heads,
        hd,
    };
    if g >= heads {
        return Err(HeadError::OutOfRange {
            head: g,
            heads: p.n_heads as usize,
        });
    }
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    match (stage, dims.as_slice()) {
        (Stage::Qk | Stage::Softmax, &[h, n, ctx]) if h == heads => {
            let len = n.checked_mul(ctx).ok_or_else(bad)?;
            Ok((g * len..(g + 1) * len).collect())
        }
        (Stage::Qk | Stage::Softmax, _) => Err(bad()),
        (_, &[n, w]) if hd > 0 && Some(w) == heads.checked_mul(hd) => Ok((0..n)
            .flat_map(|i| (i * w + g * hd)..(i * w + (g + 1) * hd))
            .collect()),
        _ => Err(bad()),
    }
}

/// The flat indices of query head `h`'s slice (mapped to its KV head on key/value stages).
pub fn indices(stage: Stage, p: &Params, shape: &[u64], h: usize) -> Result<Vec<usize>, HeadError> {
    side(stage).ok_or(HeadError::NotPerHead(stage))?;
    let out = || HeadError::OutOfRange {
        head: h,
        heads: p.n_heads as usize,
    };
    if h >= p.n_heads as usize {
        return Err(out());
    }
    let g = match side(stage) {
        Some(Side::Kv) => kv_head(h, p).ok_or_else(out)?,
        _ => h,
    };
    own_indices(stage, p, shape, g)
}

/// Query head `h`'s slice of `values` (a tensor of `shape` output by `stage`).
pub fn slice<T: Copy>(
    stage: Stage,
    p: &Params,
    shape: &[u64],
    values: &[T],
    h: usize,
) -> Result<Vec<T>, HeadError> {
    // The shape comes from a tape: check it against the values before sizing anything by it.
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n == values.len() as u64);
    if numel.is_none() {
        return Err(HeadError::Shape {
            stage,
            shape: shape.to_vec(),
            heads: p.n_heads as usize,
            hd: p.head_dim as usize,
        });
    }
    gather(values, &indices(stage, p, shape, h)?, stage, p, shape)
}

/// The elements of `values` at `idx` (checked against the length).
pub fn gather<T: Copy>(
    values: &[T],
    idx: &[usize],
    stage: Stage,
    p: &Params,
    shape: &[u64],
) -> Result<Vec<T>, HeadError> {
    idx.iter()
        .map(|&i| values.get(i).copied())
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| HeadError::Shape {
            stage,
            shape: shape.to_vec(),
            heads: p.n_heads as usize,
            hd: p.head_dim as usize,
        })
}

/// Parses one `--head` argument: `5` or `0-3` (inclusive).
pub fn parse(spec: &str) -> Result<Vec<usize>, HeadError> {
    let e = || HeadError::Parse(spec.to_string());
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| e());
    match spec.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b || b - a > 1 << 16 {
                return Err(e());
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![num(spec)?]),
    }
}

/// Parses every `--head` argument into a sorted, de-duplicated list.
pub fn parse_all(specs: &[String]) -> Result<Vec<usize>, HeadError> {
    let mut v = Vec::new();
    for s in specs {
        v.extend(parse(s)?);
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Params {
        Params {
            rows: 2,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 3,
            ..Params::default()
        }
    }

    #[test]
    fn query_columns_every_row() {
        let v: Vec<u32> = (0..24).collect();
        assert_eq!(
            slice(Stage::Pv, &p(), &[2, 12], &v, 1).unwrap(),
            vec![3, 4, 5, 15, 16, 17]
        );
    }

    #[test]
    fn gqa_maps_query_heads_to_kv_heads() {
        let v: Vec<u32> = (0..12).collect();
        for (h, want) in [
            (0, [0, 1, 2]),
            (1, [0, 1, 2]),
            (2, [3, 4, 5]),
            (3, [3, 4, 5]),
        ] {
            let s = slice(Stage::RopeK, &p(), &[2, 6], &v, h).unwrap();
            assert_eq!(s[..3], want, "query head {h}");
        }
        assert_eq!(kv_head(4, &p()), None);
    }

    #[test]
    fn score_blocks() {
        let v: Vec<u32> = (0..4 * 2 * 5).collect();
        let s = slice(Stage::Softmax, &p(), &[4, 2, 5], &v, 3).unwrap();
        assert_eq!(s, (30..40).collect::<Vec<_>>());
    }

    #[test]
    fn heads_of_all_slices_cover_the_tensor_once() {
        let p = p();
        for (stage, shape) in [
            (Stage::QProj, [2u64, 12].to_vec()),
            (Stage::VProj, [2, 6].to_vec()),
            (Stage::Qk, [4, 2, 5].to_vec()),
        ] {
            let n: u64 = shape.iter().product();
            let mut seen = vec![0; n as usize];
            for g in 0..count(stage, &p).unwrap() {
                for i in own_indices(stage, &p, &shape, g).unwrap() {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{stage}");
        }
    }

    #[test]
    fn errors() {
        let v = [0u8; 24];
        assert_eq!(
            slice(Stage::OProj, &p(), &[2, 12], &v, 0),
            Err(HeadError::NotPerHead(Stage::OProj))
        );
        assert!(matches!(
            slice(Stage::QProj, &p(), &[2, 12], &v, 4),
            Err(HeadError::OutOfRange { .. })
        ));
        assert!(matches!(
            slice(Stage::QProj, &p(), &[2, 10], &v, 0),
            Err(HeadError::Shape { .. })
        ));
        // A shape that claims more elements than there are values is an error, not a panic.
        assert!(matches!(
            slice(Stage::QProj, &p(), &[3, 12], &v, 0),
            Err(HeadError::Shape { .. })
        ));
        assert_eq!(parse("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(
            parse_all(&["2".into(), "0-2".into()]).unwrap(),
            vec![0, 1, 2]
        );
        assert!(parse("3-1").is_err() && parse("x").is_err());
    }
}
