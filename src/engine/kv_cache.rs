//! The KV cache: per layer and position, which `kv_write` output row holds that position's key and value.
//! The rows stay in the tensors the launches returned (host or device); attention launches read a
//! contiguous view of positions `0..ctx` made by the backend's `gather_rows`. The layout is position-major
//! (`[ctx, kvd]`), so the view at step k+1 starts with the bytes of the view at step k, which the tape's
//! fixed-size chunks store only once.
//!
//! Writing at a position drops every later position: decode step 0 of a `--probe-last-token` run rewrites
//! the last prompt position with its own row, as an engine that re-runs a token would.

use crate::backend::{Backend, BackendError};
use crate::launch::Tensor;

/// Rows of one layer: for each position, (tensor, row within it).
#[derive(Default)]
struct Layer {
    k: Vec<(Tensor, usize)>,
    v: Vec<(Tensor, usize)>,
}

/// The cache of all layers.
pub struct KvCache {
    layers: Vec<Layer>,
}

impl KvCache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> KvCache {
        KvCache { layers: (0..layers).map(|_| Layer::default()).collect() }
    }

    /// Records that `k` and `v` (outputs of a kv_write launch, `[n, kvd]`) hold positions `pos..pos+n`.
    pub fn write(&mut self, layer: usize, pos: usize, k: &Tensor, v: &Tensor) -> Result<(), String> {
        let l = &mut self.layers[layer];
        if l.k.len() < pos {
            return Err(format!("cache of layer {layer} has {} positions, writing at {pos}", l.k.len()));
        }
        let n = k.rows();
        if v.rows() != n {
            return Err(format!("k has {n} rows, v {}", v.rows()));
        }
        l.k.truncate(pos);
        l.v.truncate(pos);
        l.k.extend((0..n).map(|i| (k.clone(), i)));
        l.v.extend((0..n).map(|i| (v.clone(), i)));
        Ok(())
    }

    /// Contiguous views of positions `0..ctx` of layer `layer`'s keys and values.
    pub fn view(&self, backend: &dyn Backend, layer: usize, ctx: usize) -> Result<(Tensor, Tensor), BackendError> {
        let l = &self.layers[layer];
        Ok((gather(backend, &l.k[..ctx])?, gather(backend, &l.v[..ctx])?))
    }
}

/// Groups consecutive rows of the same tensor into parts and gathers them.
fn gather(backend: &dyn Backend, rows: &[(Tensor, usize)]) -> Result<Tensor, BackendError> {
    let mut parts: Vec<(&Tensor, usize, usize)> = Vec::new();
    for (t, r) in rows {
        match parts.last_mut() {
            Some((pt, r0, n)) if pt.id == t.id && *r0 + *n == *r => *n += 1,
            _ => parts.push((t, *r, 1)),
        }
    }
    backend.gather_rows(&parts)
}
