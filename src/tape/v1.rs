//! Format version 1 records, read by this version (2) and converted.
//!
//! Version 2 (open capture, issue 9) appended `engine: Option<EngineInfo>` to [`TapeHeader`] and
//! `foreign: Option<Foreign>` to [`LaunchBegin`], and the codes 255 for `Stage::Other` and
//! `Variant::Engine` to the index. bincode is positional, so a version-1 record has the old shape: these
//! are those shapes, frozen, and their conversion (the new fields are None). Never change them.

use super::record::{
    EngineInfo, LaunchBegin, LaunchEnd, ModelIdentity, Producer, Record, RunInfo, TapeHeader,
    TensorRef,
};
use crate::launch::{Phase, Route, Stage};
use serde::Deserialize;

/// `TapeHeader` as version 1 wrote it.
#[derive(Deserialize)]
pub(crate) struct TapeHeaderV1 {
    greta_version: String,
    model: ModelIdentity,
    model_config_json: String,
    backend: String,
    device: String,
    routes: Vec<String>,
    threads: u32,
    prompt_tokens: Vec<u32>,
    kernel_hashes: Vec<(String, String)>,
    created_unix: u64,
    capture: String,
    options_json: String,
}

impl From<TapeHeaderV1> for TapeHeader {
    fn from(h: TapeHeaderV1) -> TapeHeader {
        // Version 1 had neither an engine (open capture came in version 2) nor provenance (3).
        let producer = Producer {
            greta_version: h.greta_version,
            backend: h.backend,
            device: h.device,
            kernel_hashes: h.kernel_hashes,
            engine: None::<EngineInfo>,
            provenance: None,
        };
        let run = RunInfo {
            prompt_tokens: h.prompt_tokens,
            routes: h.routes,
            threads: h.threads,
            capture: h.capture,
            options_json: h.options_json,
            created_unix: h.created_unix,
        };
        TapeHeader::new(h.model, h.model_config_json, producer, run)
    }
}

/// `LaunchBegin` as version 1 wrote it.
#[derive(Deserialize)]
pub(crate) struct LaunchBeginV1 {
    seq: u64,
    phase: Phase,
    layer: Option<u32>,
    stage: Stage,
    route: Route,
    backend: String,
    grid: Option<[u32; 3]>,
    block: Option<[u32; 3]>,
    params: super::v4::ParamsV4,
    inputs: Vec<TensorRef>,
}

/// `Record` as version 1 wrote it.
#[derive(Deserialize)]
pub(crate) enum RecordV1 {
    Begin(LaunchBeginV1),
    End(LaunchEnd),
}

impl From<RecordV1> for Record {
    fn from(r: RecordV1) -> Record {
        match r {
            RecordV1::Begin(b) => Record::Begin(LaunchBegin {
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
                foreign: None,
            }),
            RecordV1::End(e) => Record::End(e),
        }
    }
}
