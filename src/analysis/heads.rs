//! Comparisons restricted to attention heads: `--head H` compares only head H's slice of a per-head
//! stage's output, `--by-head` gives one comparison per head so the worst head stands out. The slicing
//! rule (and the GQA mapping of query heads to KV heads) is in [`crate::launch::heads`].
//!
//! In analysis/ because both `greta replay --head/--by-head` and `greta diff --head` report per-head
//! figures, and replay must not import diff (docs/ARCHITECTURE.md).

use super::compare::{Compare, compare_values};
use crate::launch::{DType, Params, Stage, heads};
use serde::Serialize;

pub use heads::HeadError;

/// One head's comparison.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeadRow {
    /// The head: a query head, or a KV head when `kv` is true.
    pub head: usize,
    /// True when `head` is a key/value head (k_proj, v_proj, rope_k, kv_write).
    pub kv: bool,
    /// How the head's slices differ.
    pub compare: Compare,
}

/// One side of a comparison: format and decoded values of a tensor of the stage's output shape.
pub struct Side<'a> {
    /// Format (ULPs are counted in A's).
    pub dtype: DType,
    /// Values.
    pub values: &'a [f64],
}

fn bits_equal(a: &Side, b: &Side) -> bool {
    a.dtype == b.dtype
        && a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(b.values)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

fn cmp(a: &Side, b: &Side) -> Compare {
    let exact = bits_equal(a, b);
    compare_values(a.dtype, a.values, b.values, &[a.values.len() as u64], exact)
}

fn check_len(stage: Stage, p: &Params, shape: &[u64], n: usize) -> Result<(), HeadError> {
    let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    if numel != Some(n as u64) {
        return Err(HeadError::Shape {
            stage,
            shape: shape.to_vec(),
            heads: p.n_heads as usize,
            hd: p.head_dim as usize,
        });
    }
    Ok(())
}

/// A and B restricted to the slices of query heads `hs` (concatenated in order), compared.
pub fn compare_heads(
    stage: Stage,
    p: &Params,
    shape: &[u64],
    a: &Side,
    b: &Side,
    hs: &[usize],
) -> Result<Compare, HeadError> {
    check_len(stage, p, shape, a.values.len())?;
    check_len(stage, p, shape, b.values.len())?;
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let mut seen_kv = Vec::new();
    for &h in hs {
        let idx = heads::indices(stage, p, shape, h)?;
        // Query heads of one GQA group share their KV head: compare that slice once.
        if heads::side(stage) == Some(heads::Side::Kv) {
            let g = heads::kv_head(h, p);
            if seen_kv.contains(&g) {
                continue;
            }
            seen_kv.push(g);
        }
        va.extend(heads::gather(a.values, &idx, stage, p, shape)?);
        vb.extend(heads::gather(b.values, &idx, stage, p, shape)?);
    }
    Ok(cmp(
        &Side {
            dtype: a.dtype,
            values: &va,
        },
        &Side {
            dtype: b.dtype,
            values: &vb,
        },
    ))
}

/// One comparison per head of the stage (query heads, or KV heads on key/value stages).
pub fn by_head(
    stage: Stage,
    p: &Params,
    shape: &[u64],
    a: &Side,
    b: &Side,
) -> Result<Vec<HeadRow>, HeadError> {
    check_len(stage, p, shape, a.values.len())?;
    check_len(stage, p, shape, b.values.len())?;
    let kv = heads::side(stage) == Some(heads::Side::Kv);
    (0..heads::count(stage, p)?)
        .map(|g| {
            let idx = heads::own_indices(stage, p, shape, g)?;
            let va = heads::gather(a.values, &idx, stage, p, shape)?;
            let vb = heads::gather(b.values, &idx, stage, p, shape)?;
            Ok(HeadRow {
                head: g,
                kv,
                compare: cmp(
                    &Side {
                        dtype: a.dtype,
                        values: &va,
                    },
                    &Side {
                        dtype: b.dtype,
                        values: &vb,
                    },
                ),
            })
        })
        .collect()
}

/// The head whose slice differs most (largest max-abs, then max ULP), None when every head is equal.
pub fn worst(rows: &[HeadRow]) -> Option<&HeadRow> {
    rows.iter().filter(|r| !r.compare.bit_exact).max_by(|x, y| {
        x.compare
            .max_abs
            .total_cmp(&y.compare.max_abs)
            .then(x.compare.max_ulp.cmp(&y.compare.max_ulp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_head_names_the_perturbed_head() {
        let p = Params {
            rows: 2,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 3,
            ..Params::default()
        };
        let a: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let mut b = a.clone();
        b[12 + 7] += 0.5; // row 1, column 7: head 2
        let sa = Side {
            dtype: DType::F32,
            values: &a,
        };
        let sb = Side {
            dtype: DType::F32,
            values: &b,
        };
        let rows = by_head(Stage::Pv, &p, &[2, 12], &sa, &sb).unwrap();
        assert_eq!(worst(&rows).unwrap().head, 2);
        assert_eq!(rows.iter().filter(|r| r.compare.bit_exact).count(), 3);
        let c = compare_heads(Stage::Pv, &p, &[2, 12], &sa, &sb, &[2]).unwrap();
        assert_eq!((c.n, c.max_abs), (6, 0.5));
        assert!(
            compare_heads(Stage::Pv, &p, &[2, 12], &sa, &sb, &[0, 1, 3])
                .unwrap()
                .bit_exact
        );
    }
}
