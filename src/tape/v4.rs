//! Format versions 2 to 4 records, read by this version (5) and converted.
//!
//! Version 5 (the op vocabulary, issue 22) appended `op: Option<String>` to
//! [`Foreign`](crate::launch::Foreign): the op another engine named for a launch. bincode is positional,
//! so a record of versions 2-4 has the old shape: these are those shapes, frozen, and their conversion
//! (`op` is None: the op follows from the stage). Never change them.

use super::record::{LaunchBegin, LaunchEnd, Record, TensorRef};
use crate::launch::{Foreign, Params, Phase, Route, Stage};
use serde::Deserialize;

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
    params: Params,
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
                params: b.params,
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
