//! The tape: greta's append-only recording format.
//!
//! A tape is one file: a 16-byte preamble (`GRETATAP`, format version), a header frame (the run's
//! [`TapeHeader`]), then chunk frames (tensor bytes, one 64 KiB chunk each, stored once per tape and
//! addressed by blake3) and records frames (batches of chained [`Record`]s, bincode), then an index frame
//! (fixed-size sorted entries, uncompressed, searched in place) and a fixed 64-byte trailer pointing at it.
//! Every frame has a fixed 64-byte header with its kind, lengths and the blake3 of its payload, so a
//! reader can skip it without decompressing it and never hands out bytes that fail their hash.
//!
//! The full layout, every field, and which changes bump [`FORMAT_VERSION`] are in `docs/TAPE.md` (in
//! the repository), and in brief in the module docs of [`frame`], [`index`] and [`trailer`].
//!
//! Why this shape:
//! - append-only frames: a crash, kill or full disk leaves a prefix that still reads (by scanning);
//! - content-addressed fixed-size chunks: weights, repeated inputs and a KV cache's unchanged prefix
//!   are stored once;
//! - an index of fixed-size sorted entries with their own checksums: opening a 10 GB tape and fetching
//!   one launch costs what it costs on a 1 MB one;
//! - a hash chain over the records: the last hash fingerprints the run and any damage shows.
//!
//! ```
//! use greta::tape::{ModelIdentity, Producer, RunInfo, TapeHeader, TapeReader, TapeWriter, WriterOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("run.tape");
//! let producer = Producer {
//!     greta_version: env!("CARGO_PKG_VERSION").into(),
//!     backend: "cpu".into(),
//!     device: "doc".into(),
//!     kernel_hashes: vec![],
//!     engine: None,
//!     provenance: None,
//! };
//! let run = RunInfo {
//!     prompt_tokens: vec![1, 2],
//!     routes: vec!["precision=f32".into()],
//!     threads: 1,
//!     capture: "full".into(),
//!     options_json: "{}".into(),
//!     created_unix: 0,
//! };
//! let header = TapeHeader::new(ModelIdentity::default(), "{}".into(), producer, run);
//! let mut w = TapeWriter::create(&path, &header, WriterOptions::default()).unwrap();
//! let chunks = w.put_tensor(&[0u8; 1000], 4).unwrap();
//! assert_eq!(chunks.len(), 1);
//! let summary = w.finish().unwrap();
//! let r = TapeReader::open(&path).unwrap();
//! assert_eq!(r.fingerprint(), summary.fingerprint);
//! assert!(r.truncation().is_none() && r.is_empty());
//! ```

pub mod budget;
pub mod chunk;
mod encode;
mod error;
pub mod frame;
pub mod index;
mod provenance;
mod reader;
mod record;
mod scan;
pub mod trailer;
mod v1;
mod v4;
mod verify;
mod writer;

pub use error::TapeError;
pub use index::{IndexEntry, RecordLoc};
pub use provenance::Provenance;
pub use reader::{TapeReader, Truncation};
pub use record::{
    EngineInfo, Hash, Launch, LaunchBegin, LaunchEnd, ModelIdentity, Producer, Record, RowSpan,
    RunInfo, Storage, TapeHeader, TensorRef, unix_now,
};
pub use scan::Problem;
pub use trailer::FORMAT_VERSION;
pub use verify::VerifyReport;
pub use writer::{
    Existing, MAX_CHUNK, Shuffle, TapeSummary, TapeWriter, WriteTimes, WriterOptions,
};

use std::path::{Path, PathBuf};

/// The name a tape has while it is written: `<path>.incomplete`.
pub fn incomplete_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".incomplete");
    PathBuf::from(s)
}

/// Lower-case hex of a hash (or any bytes): the one hex helper of the crate.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
