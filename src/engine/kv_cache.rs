//! The KV cache: per layer and position, which `kv_write` output row holds that position's key and value.
//! The rows stay in the tensors the launches returned (host or device); attention launches read a
//! contiguous view of positions `0..ctx` made by the backend's `gather_rows`. The layout is position-major
//! (`[ctx, kvd]`), so the view at step k+1 starts with the bytes of the view at step k.
//!
//! Copies: the view of the previous step is kept, and the next view is gathered from it plus the new rows
//! (two copies a layer a step, not one per row written so far — which on a GPU would be one memcpy per
//! decoded token per layer). The view's [`Origin::Gathered`] still names the `kv_write` outputs each row
//! came from, so a recorder stores the view as references to them.
//!
//! Writing at a position drops every later position: decode step 0 of a `--probe-last-token` run rewrites
//! the last prompt position with its own row, as an engine that re-runs a token would.

use crate::backend::{Backend, BackendError};
use crate::launch::{Origin, Tensor};
use std::sync::Arc;

/// Rows of one layer's keys or values.
#[derive(Default)]
struct Side {
    /// For each position, (tensor, row within it).
    rows: Vec<(Tensor, usize)>,
    /// The last view made, valid for its first `view_len` positions.
    view: Option<Tensor>,
    view_len: usize,
}

/// The cache of all layers.
pub struct KvCache {
    layers: Vec<[Side; 2]>,
}

impl KvCache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> KvCache {
        KvCache {
            layers: (0..layers)
                .map(|_| [Side::default(), Side::default()])
                .collect(),
        }
    }

    /// Records that `k` and `v` (outputs of a kv_write launch, `[n, kvd]`) hold positions `pos..pos+n`.
    pub fn write(
        &mut self,
        layer: usize,
        pos: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(), String> {
        let n = k.rows();
        if v.rows() != n {
            return Err(format!("k has {n} rows, v {}", v.rows()));
        }
        for (side, t) in self.layers[layer].iter_mut().zip([k, v]) {
            if side.rows.len() < pos {
                return Err(format!(
                    "cache of layer {layer} has {} positions, writing at {pos}",
                    side.rows.len()
                ));
            }
            side.rows.truncate(pos);
            side.view_len = side.view_len.min(pos);
            side.rows.extend((0..n).map(|i| (t.clone(), i)));
        }
        Ok(())
    }

    /// Contiguous views of positions `0..ctx` of layer `layer`'s keys and values.
    pub fn view(
        &mut self,
        backend: &dyn Backend,
        layer: usize,
        ctx: usize,
    ) -> Result<(Tensor, Tensor), BackendError> {
        let [k, v] = &mut self.layers[layer];
        Ok((view(backend, k, ctx)?, view(backend, v, ctx)?))
    }
}

/// Runs of consecutive rows of one tensor: (tensor, first row, rows).
fn runs(rows: &[(Tensor, usize)]) -> Vec<(&Tensor, usize, usize)> {
    let mut parts: Vec<(&Tensor, usize, usize)> = Vec::new();
    for (t, r) in rows {
        match parts.last_mut() {
            Some((pt, r0, n)) if pt.id == t.id && *r0 + *n == *r => *n += 1,
            _ => parts.push((t, *r, 1)),
        }
    }
    parts
}

fn view(backend: &dyn Backend, side: &mut Side, ctx: usize) -> Result<Tensor, BackendError> {
    let rows = &side.rows[..ctx];
    let reuse = side
        .view
        .as_ref()
        .filter(|_| side.view_len > 0 && side.view_len <= ctx);
    let mut physical: Vec<(&Tensor, usize, usize)> = Vec::new();
    let done = match reuse {
        Some(prev) => {
            physical.push((prev, 0, side.view_len));
            side.view_len
        }
        None => 0,
    };
    physical.extend(runs(&rows[done..]));
    let mut t = backend.gather_rows(&physical)?;
    t.origin = Origin::Gathered(Arc::new(
        runs(rows)
            .iter()
            .map(|(t, r0, n)| (t.id, *r0, *n))
            .collect(),
    ));
    side.view = Some(t.clone());
    side.view_len = ctx;
    Ok(t)
}

/// Gathers rows and marks the result with where its rows came from (so a recorder can store references).
pub fn gathered(
    backend: &dyn Backend,
    parts: &[(&Tensor, usize, usize)],
) -> Result<Tensor, BackendError> {
    let mut t = backend.gather_rows(parts)?;
    t.origin = Origin::Gathered(Arc::new(
        parts.iter().map(|(t, r0, n)| (t.id, *r0, *n)).collect(),
    ));
    Ok(t)
}
