//! Format versions 2 to 4 records, read by this version (5) and converted.
//!
//! Version 5 (the op vocabulary, issue 22) appended `op: Option<String>` to
//! [`Foreign`](crate::launch::Foreign): the op another engine named for a launch. bincode is positional,
//! so a record of versions 2-4 has the old shape: these are those shapes, frozen, and their conversion
//! (`op` is None: the op follows from the stage). Version 5 also appended `rope_mode` and `window` to
//! [`Params`] (issue 29: Qwen, Gemma): versions 1-4 stored [`ParamsV4`], which converts with NORM rope
//! and no window, what every older tape ran. Never change them.

use super::record::{LaunchBegin, LaunchEnd, Record, TensorRef};
use crate::launch::{Foreign, Params, Phase, Route, Stage};
use serde::Deserialize;

/// `Params` as versions 1-4 wrote it.
#[derive(Clone, Copy, Deserialize)]
pub(crate) struct ParamsV4 {
    rows: u32,
    pos: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    rope_dim: u32,
    rope_theta: f64,
    eps: f64,
    scale: f64,
    kv_block: u32,
}

impl From<ParamsV4> for Params {
    fn from(p: ParamsV4) -> Params {
        Params {
            rows: p.rows,
            pos: p.pos,
            n_heads: p.n_heads,
            n_kv_heads: p.n_kv_heads,
            head_dim: p.head_dim,
            rope_dim: p.rope_dim,
            rope_theta: p.rope_theta,
            eps: p.eps,
            scale: p.scale,
            kv_block: p.kv_block,
            rope_mode: crate::launch::ROPE_NORM,
            window: 0,
        }
    }
}

/// `Foreign` as versions 2-4 wrote it.
#[derive(Deserialize)]
pub(crate) struct ForeignV4 {
    stage: String,
    route: String,
    params: Vec<(String, f64)>,
}

/// `LaunchBegin` as versions 2-4 wrote it.
#[derive(Deserialize)]
pub(crate) struct LaunchBeginV4 {
    seq: u64,
    phase: Phase,
    layer: Option<u32>,
    stage: Stage,
    route: Route,
    backend: String,
    grid: Option<[u32; 3]>,
    block: Option<[u32; 3]>,
    params: ParamsV4,
    inputs: Vec<TensorRef>,
    foreign: Option<ForeignV4>,
}

/// `Record` as versions 2-4 wrote it.
#[derive(Deserialize)]
pub(crate) enum RecordV4 {
    Begin(LaunchBeginV4),
    End(LaunchEnd),
}

impl From<RecordV4> for Record {
    fn from(r: RecordV4) -> Record {
        match r {
            RecordV4::Begin(b) => Record::Begin(LaunchBegin {
                seq: b.seq,
                phase: b.phase,
                layer: b.layer,
                stage: b.stage,
                route: b.route,
                backend: b.backend,
                grid: b.grid,
                block: b.block,
                params: b.params.into(),
                inputs: b.inputs,
                foreign: b.foreign.map(|f| Foreign {
                    stage: f.stage,
                    route: f.route,
                    params: f.params,
                    op: None,
                }),
            }),
            RecordV4::End(e) => Record::End(e),
        }
    }
}
