//! The tape's data model: the header, launch records and tensor references, as bincode 2.0.x (serde).
//!
//! Records are stored chained: each one is encoded as [`Chained`] `{ prev, record }` where `prev` is the
//! chain hash of the record before it (the first record's `prev` is the blake3 of the header frame's
//! payload, so the header is bound into the chain). A record's chain hash is the blake3 of its encoded
//! bytes; the last one is the tape's fingerprint. Flipping any byte of any record, reordering, dropping
//! or inserting records changes every later hash.

use crate::launch::{DType, Foreign, Params, Phase, Route, Stage};
use serde::{Deserialize, Serialize};

/// A blake3 hash (32 bytes).
pub type Hash = [u8; 32];

/// The model file a run used.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Path as given on the command line.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// blake3 of the whole file, hex.
    pub blake3: String,
}

/// What a run was: everything needed to interpret (and redo) its launches. Stored once, in the first frame.
///
/// Built with [`TapeHeader::new`] only, from [`Producer`] and [`RunInfo`], which have no `Default`: a
/// field added here must be added there, and every producer of tapes (record, check, capture) then fails
/// to compile until it says what the field is, instead of silently writing an empty value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapeHeader {
    /// `CARGO_PKG_VERSION` of the greta that recorded.
    pub greta_version: String,
    /// The model file.
    pub model: ModelIdentity,
    /// The engine's model config as JSON text.
    pub model_config_json: String,
    /// Backend name (`cpu`, `hip`).
    pub backend: String,
    /// Device description.
    pub device: String,
    /// Routes in force, e.g. `["precision=f32", "matmul=gemv"]`.
    pub routes: Vec<String>,
    /// CPU threads.
    pub threads: u32,
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// (kernel name, source hash) of every compiled kernel.
    pub kernel_hashes: Vec<(String, String)>,
    /// Unix time the recording started.
    pub created_unix: u64,
    /// `full` or `hashes`, plus selectors.
    pub capture: String,
    /// Anything else the recorder wants to keep (CLI options), as JSON.
    pub options_json: String,
    /// The engine that recorded, when it is not greta (open capture; format version 2).
    pub engine: Option<EngineInfo>,
    /// The build that recorded (format version 3; None when read from an older tape, or when the
    /// producer did not say).
    pub provenance: Option<super::provenance::Provenance>,
}

/// Who wrote a tape: the greta build, the backend and device, and the engine when it is not greta's.
#[derive(Clone, Debug, PartialEq)]
pub struct Producer {
    /// `CARGO_PKG_VERSION` of the greta that recorded (`env!("CARGO_PKG_VERSION")` for this build).
    pub greta_version: String,
    /// Backend name (`cpu`, `hip`; empty for another engine's launches).
    pub backend: String,
    /// Device description.
    pub device: String,
    /// (kernel name, source hash) of every compiled kernel.
    pub kernel_hashes: Vec<(String, String)>,
    /// The engine that recorded, when it is not greta (open capture).
    pub engine: Option<EngineInfo>,
    /// The build that recorded (None when the producer does not say).
    pub provenance: Option<super::provenance::Provenance>,
}

/// What was run: the prompt, the routes and options in force, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// Routes in force, e.g. `["precision=f32", "matmul=gemv"]`.
    pub routes: Vec<String>,
    /// CPU threads.
    pub threads: u32,
    /// `full` or `hashes`, plus selectors.
    pub capture: String,
    /// Anything else the recorder wants to keep (CLI options), as JSON.
    pub options_json: String,
    /// Unix time the recording started ([`unix_now`]; 0 where the header must not depend on the clock).
    pub created_unix: u64,
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TapeHeader {
    /// The header of a run of `model` (whose config, as JSON text, is `model_config_json`) written by
    /// `producer`. The one constructor: every field comes from an argument.
    pub fn new(
        model: ModelIdentity,
        model_config_json: String,
        producer: Producer,
        run: RunInfo,
    ) -> TapeHeader {
        let Producer {
            greta_version,
            backend,
            device,
            kernel_hashes,
            engine,
            provenance,
        } = producer;
        let RunInfo {
            prompt_tokens,
            routes,
            threads,
            capture,
            options_json,
            created_unix,
        } = run;
        TapeHeader {
            greta_version,
            model,
            model_config_json,
            backend,
            device,
            routes,
            threads,
            prompt_tokens,
            kernel_hashes,
            created_unix,
            capture,
            options_json,
            engine,
            provenance,
        }
    }
}

/// Another engine that wrote a tape through greta's capture API (C ABI, Python, Rust).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Engine name, e.g. `llama.cpp`.
    pub name: String,
    /// Engine version as the engine states it.
    pub version: String,
}

/// Where a tensor's bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Storage {
    /// Stored on this tape as chunks (blake3 of each chunk), in order.
    Chunks(Vec<Hash>),
    /// The same bytes as output `index` of launch `seq` (captured once, referenced after).
    Producer {
        /// The producing launch.
        seq: u64,
        /// Index into its outputs.
        index: u32,
    },
    /// A model weight by GGUF tensor name; the bytes live in the model file and `hash` verifies them.
    Weight {
        /// GGUF tensor name.
        name: String,
    },
    /// Only the hash was captured.
    HashOnly,
    /// Rows of earlier launches' outputs, concatenated in order (a KV cache view, prefill's last row):
    /// stored as references, so a growing cache costs nothing per step beyond its new rows. The whole
    /// tensor's `hash` still verifies the assembled bytes.
    Rows(Vec<RowSpan>),
}

/// Rows `row0..row0+rows` of output `index` of launch `seq` (rows: all dimensions but the last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSpan {
    /// The producing launch.
    pub seq: u64,
    /// Index into its outputs.
    pub index: u32,
    /// First row.
    pub row0: u64,
    /// Row count.
    pub rows: u64,
}

/// One tensor of a launch: what it is, its hash, and where its bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorRef {
    /// Role in the kernel, e.g. `x`, `w`, `k_cache`.
    pub role: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// Length in bytes.
    pub len: u64,
    /// blake3 of the whole tensor's bytes.
    pub hash: Hash,
    /// Where the bytes are.
    pub storage: Storage,
}

impl TensorRef {
    /// Why the tensor's shape and dtype disagree with its byte length, if they do: `len` must be
    /// exactly the bytes of `shape` (product, no overflow) whole blocks of `dtype`. A tape whose
    /// checksums all pass can still lie here (issue 14); every reader of tensor bytes checks this.
    pub fn layout_problem(&self) -> Option<String> {
        let numel = self.shape.iter().try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        });
        let want = numel.and_then(|n| self.dtype.bytes_for(n));
        match want {
            Some(w) if w as u64 == self.len => None,
            Some(w) => Some(format!(
                "tensor `{}`: shape {:?} of {} needs {w} bytes, its length says {}",
                self.role,
                self.shape,
                self.dtype.name(),
                self.len
            )),
            None => Some(format!(
                "tensor `{}`: shape {:?} is not a whole number of {} blocks or overflows",
                self.role,
                self.shape,
                self.dtype.name()
            )),
        }
    }
}

/// Written before a kernel runs: everything needed to run it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchBegin {
    /// Launch number in the run.
    pub seq: u64,
    /// Prefill or decode step.
    pub phase: Phase,
    /// Layer, None for global stages.
    pub layer: Option<u32>,
    /// The stage.
    pub stage: Stage,
    /// The route it ran on.
    pub route: Route,
    /// Backend name.
    pub backend: String,
    /// GPU grid, if any.
    pub grid: Option<[u32; 3]>,
    /// GPU block, if any.
    pub block: Option<[u32; 3]>,
    /// Scalar parameters.
    pub params: Params,
    /// Input tensors.
    pub inputs: Vec<TensorRef>,
    /// For a launch recorded by another engine: its stage name, kernel name and named parameters
    /// (format version 2; None for greta's own launches).
    pub foreign: Option<Foreign>,
}

impl LaunchBegin {
    /// The stage's name: the engine's name for a foreign launch, else greta's.
    pub fn stage_name(&self) -> &str {
        match &self.foreign {
            Some(f) => &f.stage,
            None => self.stage.name(),
        }
    }

    /// The route as printed: the engine's kernel name for a foreign launch, else `variant/precision`.
    pub fn route_name(&self) -> String {
        match &self.foreign {
            Some(f) => f.route.clone(),
            None => self.route.to_string(),
        }
    }
}

/// Written after a kernel ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchEnd {
    /// The launch (same seq as its begin).
    pub seq: u64,
    /// Output tensors.
    pub outputs: Vec<TensorRef>,
    /// Wall time of the kernel.
    pub duration_ns: u64,
}

/// One record of the tape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// A begin carries the launch's params inline (272 bytes since format 5's rope_mode and window); records
// are decoded and handled one at a time, so boxing it would add an allocation a record for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// Before a kernel runs.
    Begin(LaunchBegin),
    /// After it ran.
    End(LaunchEnd),
}

impl Record {
    /// The launch the record belongs to.
    pub fn seq(&self) -> u64 {
        match self {
            Record::Begin(b) => b.seq,
            Record::End(e) => e.seq,
        }
    }
}

/// A launch as read back: its begin and, unless it crashed (tape cut between them), its end.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The begin record.
    pub begin: LaunchBegin,
    /// The end record; None when the tape stops after the begin (the kernel never returned).
    pub end: Option<LaunchEnd>,
}

/// A record as stored: with the chain hash of the record before it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Chained<R> {
    pub prev: Hash,
    pub record: R,
}

/// Cap on one encoded record or header, so a damaged length can't make bincode allocate gigabytes.
pub(crate) const MAX_RECORD_BYTES: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn limited() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a value with the tape's bincode configuration.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| e.to_string())
}

/// Decodes a value that must use exactly `bytes`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (v, used) =
        bincode::serde::decode_from_slice(bytes, limited()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        ));
    }
    Ok(v)
}

/// Decodes a chained record written by format `version` (1: before open capture, see [`super::v1`];
/// 2-4: before ops, see [`super::v4`]).
pub(crate) fn decode_record(bytes: &[u8], version: u32) -> Result<Chained<Record>, String> {
    if version == 1 {
        let c: Chained<super::v1::RecordV1> = decode(bytes)?;
        return Ok(Chained {
            prev: c.prev,
            record: c.record.into(),
        });
    }
    if version <= 4 {
        let c: Chained<super::v4::RecordV4> = decode(bytes)?;
        return Ok(Chained {
            prev: c.prev,
            record: c.record.into(),
        });
    }
    decode(bytes)
}

/// Decodes a tape header written by format `version`.
pub(crate) fn decode_header(bytes: &[u8], version: u32) -> Result<TapeHeader, String> {
    match version {
        1 => decode::<super::v1::TapeHeaderV1>(bytes).map(Into::into),
        2 => decode::<super::provenance::TapeHeaderV2>(bytes).map(Into::into),
        _ => decode(bytes),
    }
}

/// Encodes `record` chained to `prev`; returns the bytes and the new chain hash.
pub(crate) fn encode_chained(prev: &Hash, record: &Record) -> Result<(Vec<u8>, Hash), String> {
    let bytes = encode(&Chained {
        prev: *prev,
        record,
    })?;
    let h = *blake3::hash(&bytes).as_bytes();
    Ok((bytes, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::{Precision, Variant};

    #[test]
    fn chained_round_trip() {
        let rec = Record::End(LaunchEnd {
            seq: 7,
            outputs: vec![],
            duration_ns: 3,
        });
        let (bytes, h) = encode_chained(&[1; 32], &rec).unwrap();
        assert_eq!(h, *blake3::hash(&bytes).as_bytes());
        let back: Chained<Record> = decode(&bytes).unwrap();
        assert_eq!(back.prev, [1; 32]);
        assert_eq!(back.record, rec);
        let _ = Route::new(Variant::Gemv, Precision::F32);
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = encode(&5u32).unwrap();
        bytes.push(0);
        assert!(decode::<u32>(&bytes).is_err());
    }

    /// Records store stages, variants and dtypes by their serde variant index. The enums are declared
    /// with `launch::names::named!`, which puts the unlisted variants (Stage::Other, Variant::Engine)
    /// after the listed ones: a variant added to the first list shifts them, and older tapes would decode
    /// wrongly (new ones go in the `later` list). This pins the indexes; changing one needs a format version bump (docs/ARCHITECTURE.md).
    #[test]
    fn serde_indexes_of_stored_enums_are_pinned() {
        use crate::launch::{Precision, Variant};
        let idx = |b: Vec<u8>| b[0];
        assert_eq!(idx(encode(&Stage::Embed).unwrap()), 0);
        assert_eq!(idx(encode(&Stage::Argmax).unwrap()), 23);
        assert_eq!(idx(encode(&Stage::Other).unwrap()), 24);
        assert_eq!(idx(encode(&Variant::Gemv).unwrap()), 0);
        assert_eq!(idx(encode(&Variant::Direct).unwrap()), 5);
        assert_eq!(idx(encode(&Variant::Engine).unwrap()), 6);
        // Format 4: declared after Engine (`later` in named!), so nothing above moved.
        assert_eq!(idx(encode(&Variant::GemvQ8).unwrap()), 7);
        assert_eq!(idx(encode(&Variant::GemmMma).unwrap()), 8);
        assert_eq!(idx(encode(&Precision::F16).unwrap()), 2);
        assert_eq!(idx(encode(&DType::F32).unwrap()), 0);
        assert_eq!(idx(encode(&DType::Q6K).unwrap()), 9);
        // Format 5: appended after Q6K (DType has no unlisted variants), so nothing above moved.
        assert_eq!(idx(encode(&DType::Q5_0).unwrap()), 10);
        assert_eq!(idx(encode(&DType::Q5_1).unwrap()), 11);
        assert_eq!(idx(encode(&DType::Q2K).unwrap()), 12);
        assert_eq!(idx(encode(&DType::Q3K).unwrap()), 13);
        assert_eq!(idx(encode(&DType::Q5K).unwrap()), 14);
        assert_eq!(idx(encode(&DType::IQ4NL).unwrap()), 15);
        assert_eq!(idx(encode(&DType::IQ4XS).unwrap()), 16);
        // Format 5 stages (issue 29): declared after Other (`later` in named!).
        assert_eq!(idx(encode(&Stage::EmbedScale).unwrap()), 25);
        assert_eq!(idx(encode(&Stage::Geglu).unwrap()), 33);
    }
}
