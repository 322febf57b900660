//! Format version 1 records, read by this version (2) and converted.
//!
//! Version 2 (open capture, issue 9) appended `engine: Option<EngineInfo>` to [`TapeHeader`] and
//! `foreign: Option<Foreign>` to [`LaunchBegin`], and the codes 255 for `Stage::Other` and
//! `Variant::Engine` to the index. bincode is positional, so a version-1 record has the old shape: these
//! are those shapes, frozen, and their conversion (the new fields are None). Never change them.

use super::record::{
    EngineInfo, LaunchBegin, LaunchEnd, ModelIdentity, Record, TapeHeader, TensorRef,
};
use crate::launch::{Params, Phase, Route, Stage};
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
        TapeHeader {
            greta_version: h.greta_version,
            model: h.model,
            model_config_json: h.model_config_json,
            backend: h.backend,
            device: h.device,
            routes: h.routes,
            threads: h.threads,
            prompt_tokens: h.prompt_tokens,
            kernel_hashes: h.kernel_hashes,
            created_unix: h.created_unix,
            capture: h.capture,
            options_json: h.options_json,
            engine: None::<EngineInfo>,
            provenance: None,
        }
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
    params: Params,
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
                params: b.params,
                inputs: b.inputs,
                foreign: None,
            }),
            RecordV1::End(e) => Record::End(e),
        }
    }
}
