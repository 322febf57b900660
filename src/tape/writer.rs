//! The tape writer. The format it writes is described in docs/TAPE.md (and in brief in the module docs
//! of [`super`], [`super::frame`], [`super::index`] and [`super::trailer`]).
//!
//! The writer appends to `<path>.incomplete` and renames it to `<path>` in [`TapeWriter::finish`], after
//! the index and trailer are written and the file is fsynced: a file under the final name is always
//! complete; anything else is visibly a crash leftover (which still opens, by scanning).
//!
//! Order on disk guarantees a readable prefix: a chunk frame is written before any record that cites
//! it, and a records frame is written whole. [`TapeWriter::flush`] hands everything so far to the OS,
//! so a process killed inside a kernel still leaves the launch's begin record readable.
//!
//! It always writes the current [`FORMAT_VERSION`] (docs/TAPE.md lists what each version added); the
//! reader also reads every earlier version.

use super::encode::{Encoded, Encoder};
use super::error::TapeError;
use super::frame::{Codec, FRAME_HEADER_LEN, FrameHeader, FrameKind};
use super::incomplete_path;
use super::index::{IndexEntry, IndexTotals, RecordLoc, encode_index};
use super::record::{self, Hash, Record, Storage, TapeHeader, TensorRef};
use super::trailer::{FORMAT_VERSION, TRAILER_LEN, Trailer, preamble};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Whether float chunks are byte-shuffled before zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shuffle {
    /// Store bytes as they are.
    Off,
    /// Transpose byte planes by the tensor's element size (when it is > 1).
    ByElement,
}

/// Tunables of the writer. [`Default`] holds the measured choices (docs/TAPE.md, "Measurements").
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Chunk size in bytes (the dedup unit). Default 64 KiB.
    pub chunk_size: usize,
    /// zstd level for chunk and record frames. Default 1 (fast; higher levels buy little on floats).
    pub zstd_level: i32,
    /// Byte shuffle for chunks. Default [`Shuffle::ByElement`].
    pub shuffle: Shuffle,
    /// Uncompressed bytes of records buffered before a records frame is written. Default 64 KiB.
    pub frame_target: usize,
    /// Threads hashing and compressing the chunks of one tensor in parallel; 1 (the default) does all
    /// the work on the calling thread. The file is byte-identical for any value.
    pub threads: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            chunk_size: 64 << 10,
            zstd_level: 1,
            shuffle: Shuffle::ByElement,
            frame_target: 64 << 10,
            threads: 1,
        }
    }
}

/// Wall time a writer spent hashing chunks, compressing them and writing to the file (for profiles; the
/// parallel parts count their wall time, not the threads' sum).
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteTimes {
    /// blake3 of chunks (dedup keys).
    pub hash: std::time::Duration,
    /// Shuffle and zstd.
    pub encode: std::time::Duration,
    /// `write` calls into the file's buffer and the file.
    pub write: std::time::Duration,
}

thread_local! {
    /// Each pool thread's zstd context and buffers, reused across chunks.
    static THREAD_ENCODER: RefCell<Option<Encoder>> = const { RefCell::new(None) };
}

/// The largest chunk a writer makes (the reader's frame cap is far above).
pub const MAX_CHUNK: usize = 16 << 20;

/// What a writer does with a tape that already exists at its path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse (the default): neither the tape nor a `.incomplete` file of another (or a killed)
    /// recording is touched, and the final rename never clobbers a tape that appeared meanwhile.
    #[default]
    Refuse,
    /// Replace the tape and remove a leftover `.incomplete` file (`--force`).
    Replace,
}

/// What a finished tape holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TapeSummary {
    /// The final path.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    /// Launches (begin records).
    pub launches: u64,
    /// Unique chunks.
    pub chunks: u64,
    /// Unique tensor bytes before compression.
    pub raw_bytes: u64,
    /// The last chain hash.
    pub fingerprint: Hash,
}

/// Writes a tape. See the module docs.
pub struct TapeWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    /// Where the writer's time went (for `GRETA_PROFILE`).
    times: WriteTimes,
    opts: WriterOptions,
    enc: Encoder,
    /// A private pool for hashing and compressing the chunks of big tensors (`threads` > 1).
    pool: Option<rayon::ThreadPool>,
    chunks: HashMap<Hash, u64>,
    raw_bytes: u64,
    chain: Hash,
    records: u64,
    pending: Vec<u8>,
    /// (index into `launches`, is_end, position in `pending`) of records not yet in a frame.
    pending_locs: Vec<(usize, bool, u32)>,
    launches: Vec<IndexEntry>,
    by_seq: HashMap<u64, usize>,
    /// Set when a write failed part-way: the file may end in a partial frame, so nothing more is written.
    poisoned: bool,
    existing: Existing,
}

impl TapeWriter {
    /// Creates `<path>.incomplete` and writes the preamble and the header frame.
    /// Refuses an existing tape or `.incomplete` file; see [`TapeWriter::create_with`].
    pub fn create(
        path: &Path,
        header: &TapeHeader,
        opts: WriterOptions,
    ) -> Result<TapeWriter, TapeError> {
        Self::create_with(path, header, opts, Existing::Refuse)
    }

    /// Creates `<path>.incomplete` exclusively (two writers never share it: issue 14, where two
    /// recorders with one `--out` interleaved into one file) and writes the preamble and header frame.
    pub fn create_with(
        path: &Path,
        header: &TapeHeader,
        opts: WriterOptions,
        existing: Existing,
    ) -> Result<TapeWriter, TapeError> {
        if opts.chunk_size == 0 || opts.chunk_size > MAX_CHUNK {
            return Err(TapeError::Usage(format!(
                "chunk_size must be 1..={MAX_CHUNK}"
            )));
        }
        if opts.frame_target > super::frame::MAX_FRAME_TARGET {
            return Err(TapeError::Usage(format!(
                "frame_target must be at most {} bytes (readers refuse larger records frames)",
                super::frame::MAX_FRAME_TARGET
            )));
        }
        if path.is_dir() {
            return Err(TapeError::Exists {
                path: path.to_path_buf(),
                what: "is a directory; give a file name for the tape".into(),
            });
        }
        let tmp = incomplete_path(path);
        if existing == Existing::Refuse && path.exists() {
            return Err(TapeError::Exists {
                path: path.to_path_buf(),
                what: "already exists; pass --force to replace it".into(),
            });
        }
        if existing == Existing::Replace && tmp.is_file() {
            std::fs::remove_file(&tmp).map_err(|e| TapeError::io(&tmp, "remove", e))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    TapeError::Exists {
                        path: tmp.clone(),
                        what: "exists: another recording is writing it, or a killed one left it \
                               (read it with greta, remove it, or pass --force)"
                            .into(),
                    }
                } else {
                    TapeError::io(&tmp, "create", e)
                }
            })?;
        let enc = Encoder::new(opts.zstd_level).map_err(|e| TapeError::io(&tmp, "zstd init", e))?;
        let pool = if opts.threads > 1 {
            let p = rayon::ThreadPoolBuilder::new()
                .num_threads(opts.threads)
                .thread_name(|i| format!("greta-tape-{i}"))
                .build()
                .map_err(|e| TapeError::Usage(format!("tape writer threads: {e}")))?;
            Some(p)
        } else {
            None
        };
        let mut w = TapeWriter {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            times: WriteTimes::default(),
            opts,
            enc,
            pool,
            chunks: HashMap::new(),
            raw_bytes: 0,
            chain: [0; 32],
            records: 0,
            pending: Vec::new(),
            pending_locs: Vec::new(),
            launches: Vec::new(),
            by_seq: HashMap::new(),
            poisoned: false,
            existing,
        };
        w.write_all(&preamble(FORMAT_VERSION))?;
        let hb = record::encode(header)
            .map_err(|e| TapeError::Usage(format!("encoding the header: {e}")))?;
        let hh = *blake3::hash(&hb).as_bytes();
        w.write_frame(FrameKind::Header, &hb, hh, 0, true)?;
        w.chain = hh;
        Ok(w)
    }

    /// The path the tape will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_all(&mut self, b: &[u8]) -> Result<(), TapeError> {
        if self.poisoned {
            return Err(TapeError::Usage(
                "an earlier write failed; the tape cannot be continued".into(),
            ));
        }
        let t = std::time::Instant::now();
        let r = self.out.write_all(b);
        self.times.write += t.elapsed();
        if let Err(e) = r {
            self.poisoned = true;
            return Err(TapeError::io(&self.tmp, "write", e));
        }
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Writes one frame of `raw` (hash `hash`); `shuffle_es` > 1 byte-shuffles it first; `compress`
    /// tries zstd and keeps it only if it is smaller. Returns the frame's offset.
    fn write_frame(
        &mut self,
        kind: FrameKind,
        raw: &[u8],
        hash: Hash,
        shuffle_es: usize,
        compress: bool,
    ) -> Result<u64, TapeError> {
        let t = std::time::Instant::now();
        let enc = self.enc.encode(raw, shuffle_es, compress);
        self.times.encode += t.elapsed();
        let enc = enc.map_err(|e| TapeError::io(&self.tmp, "zstd", e))?;
        let packed = std::mem::take(&mut self.enc.packed);
        let stored = if enc.codec == Codec::Zstd {
            &packed[..]
        } else {
            raw
        };
        let r = self.write_encoded(kind, raw.len(), hash, enc, stored);
        self.enc.packed = packed;
        r
    }

    /// Writes a frame whose payload is already encoded.
    fn write_encoded(
        &mut self,
        kind: FrameKind,
        raw_len: usize,
        hash: Hash,
        enc: Encoded,
        stored: &[u8],
    ) -> Result<u64, TapeError> {
        let at = self.pos;
        let h = FrameHeader {
            kind,
            codec: enc.codec,
            shuffle: enc.shuffle,
            stored_len: stored.len() as u64,
            raw_len: raw_len as u64,
            hash,
            stored_crc: enc.crc,
        };
        self.write_all(&h.encode())?;
        self.write_all(stored)?;
        debug_assert_eq!(self.pos, at + (FRAME_HEADER_LEN + stored.len()) as u64);
        Ok(at)
    }

    /// Cuts `bytes` into chunks, stores each chunk not yet on the tape, and returns the chunk hashes in
    /// order (for [`Storage::Chunks`]). `elem_size` is the element size for the byte shuffle (1 for none).
    pub fn put_tensor(&mut self, bytes: &[u8], elem_size: usize) -> Result<Vec<Hash>, TapeError> {
        let es = if self.opts.shuffle == Shuffle::ByElement {
            elem_size
        } else {
            1
        };
        let cs = self.opts.chunk_size;
        if self.pool.is_some() && bytes.len() > cs {
            return self.put_tensor_parallel(bytes, es);
        }
        let mut hashes = Vec::with_capacity(bytes.len().div_ceil(cs));
        for c in bytes.chunks(cs) {
            let t = std::time::Instant::now();
            let h = *blake3::hash(c).as_bytes();
            self.times.hash += t.elapsed();
            if !self.chunks.contains_key(&h) {
                let at = self.write_frame(FrameKind::Chunk, c, h, es, true)?;
                self.chunks.insert(h, at);
                self.raw_bytes += c.len() as u64;
            }
            hashes.push(h);
        }
        Ok(hashes)
    }

    /// [`TapeWriter::put_tensor`] on the pool: hash all chunks, then compress the new ones a batch at
    /// a time in parallel and write them in order (the same bytes as the serial path).
    fn put_tensor_parallel(&mut self, bytes: &[u8], es: usize) -> Result<Vec<Hash>, TapeError> {
        // The pool is taken out for the call so that it and `&mut self` can be borrowed together.
        let pool = self
            .pool
            .take()
            .ok_or_else(|| TapeError::Usage("no writer pool".into()))?;
        let r = self.put_parallel_on(&pool, bytes, es);
        self.pool = Some(pool);
        r
    }

    fn put_parallel_on(
        &mut self,
        pool: &rayon::ThreadPool,
        bytes: &[u8],
        es: usize,
    ) -> Result<Vec<Hash>, TapeError> {
        use rayon::prelude::*;
        let chunks: Vec<&[u8]> = bytes.chunks(self.opts.chunk_size).collect();
        let t = std::time::Instant::now();
        let hashes: Vec<Hash> = pool.install(|| {
            chunks
                .par_iter()
                .map(|c| *blake3::hash(c).as_bytes())
                .collect()
        });
        self.times.hash += t.elapsed();
        let mut fresh: Vec<usize> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, h) in hashes.iter().enumerate() {
            if !self.chunks.contains_key(h) && seen.insert(*h) {
                fresh.push(i);
            }
        }
        let level = self.opts.zstd_level;
        let batch = 4 * pool.current_num_threads();
        for group in fresh.chunks(batch) {
            let t = std::time::Instant::now();
            let encoded: Vec<std::io::Result<(Encoded, Vec<u8>)>> = pool.install(|| {
                group
                    .par_iter()
                    .map(|&i| {
                        THREAD_ENCODER.with(|cell| {
                            let mut slot = cell.borrow_mut();
                            if slot.as_ref().is_none_or(|e| e.level() != level) {
                                *slot = Some(Encoder::new(level)?);
                            }
                            let enc = slot.as_mut().expect("just set");
                            let e = enc.encode(chunks[i], es, true)?;
                            let stored = if e.codec == Codec::Zstd {
                                std::mem::take(&mut enc.packed)
                            } else {
                                Vec::new()
                            };
                            Ok((e, stored))
                        })
                    })
                    .collect()
            });
            self.times.encode += t.elapsed();
            for (&i, r) in group.iter().zip(encoded) {
                let (e, packed) = r.map_err(|e| TapeError::io(&self.tmp, "zstd", e))?;
                let raw = chunks[i];
                let stored = if e.codec == Codec::Zstd {
                    &packed[..]
                } else {
                    raw
                };
                let at = self.write_encoded(FrameKind::Chunk, raw.len(), hashes[i], e, stored)?;
                self.chunks.insert(hashes[i], at);
                self.raw_bytes += raw.len() as u64;
            }
        }
        Ok(hashes)
    }

    /// Where the writer's time went so far.
    pub fn times(&self) -> WriteTimes {
        self.times
    }

    /// Whether chunk `h` is already on the tape.
    pub fn has_chunk(&self, h: &Hash) -> bool {
        self.chunks.contains_key(h)
    }

    fn check_refs(&self, refs: &[TensorRef]) -> Result<(), TapeError> {
        for r in refs {
            if let Storage::Chunks(hs) = &r.storage {
                if let Some(h) = hs.iter().find(|h| !self.has_chunk(h)) {
                    return Err(TapeError::Usage(format!(
                        "tensor `{}` cites chunk {} that was never stored (call put_tensor first)",
                        r.role,
                        super::hex(h)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Appends a record, chained to the one before; returns the new chain hash. A begin must come before
    /// its end; every chunk a tensor cites must have been stored with [`TapeWriter::put_tensor`].
    pub fn put_record(&mut self, rec: &Record) -> Result<Hash, TapeError> {
        let idx = match rec {
            Record::Begin(b) => {
                self.check_refs(&b.inputs)?;
                if self.by_seq.contains_key(&b.seq) {
                    return Err(TapeError::Usage(format!("launch {} begun twice", b.seq)));
                }
                if b.layer == Some(u32::MAX) {
                    return Err(TapeError::Usage("layer u32::MAX is reserved".into()));
                }
                None
            }
            Record::End(e) => {
                self.check_refs(&e.outputs)?;
                match self.by_seq.get(&e.seq) {
                    Some(&i) if !self.launches[i].has_end => Some(i),
                    Some(_) => {
                        return Err(TapeError::Usage(format!("launch {} ended twice", e.seq)));
                    }
                    None => {
                        return Err(TapeError::Usage(format!(
                            "end of launch {} without a begin",
                            e.seq
                        )));
                    }
                }
            }
        };
        let (bytes, h) = record::encode_chained(&self.chain, rec).map_err(|e| {
            TapeError::Usage(format!("encoding record of launch {}: {e}", rec.seq()))
        })?;
        if bytes.len() > record::MAX_RECORD_BYTES {
            return Err(TapeError::Usage(format!(
                "record of launch {} is {} bytes, over the cap",
                rec.seq(),
                bytes.len()
            )));
        }
        let pos = self.pending.len() as u32;
        self.pending
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&bytes);
        let placeholder = RecordLoc {
            frame: u64::MAX,
            pos,
        };
        match (rec, idx) {
            (Record::Begin(b), _) => {
                self.by_seq.insert(b.seq, self.launches.len());
                self.pending_locs.push((self.launches.len(), false, pos));
                self.launches.push(IndexEntry::begun(b, placeholder));
            }
            (Record::End(_), Some(i)) => {
                self.launches[i].has_end = true;
                self.launches[i].end = Some(placeholder);
                self.pending_locs.push((i, true, pos));
            }
            (Record::End(_), None) => unreachable!("checked above"),
        }
        self.chain = h;
        self.records += 1;
        if self.pending.len() >= self.opts.frame_target {
            self.flush_records()?;
        }
        Ok(h)
    }

    fn flush_records(&mut self) -> Result<(), TapeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.pending);
        let h = *blake3::hash(&payload).as_bytes();
        let r = self.write_frame(FrameKind::Records, &payload, h, 0, true);
        self.pending = payload;
        let at = r?;
        for (i, is_end, pos) in self.pending_locs.drain(..) {
            let loc = RecordLoc { frame: at, pos };
            if is_end {
                self.launches[i].end = Some(loc);
            } else {
                self.launches[i].begin = loc;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Writes buffered records as a complete frame and hands all bytes so far to the operating system
    /// (they survive the process being killed; [`TapeWriter::finish`] also fsyncs).
    pub fn flush(&mut self) -> Result<(), TapeError> {
        self.flush_records()?;
        if let Err(e) = self.out.flush() {
            self.poisoned = true;
            return Err(TapeError::io(&self.tmp, "write", e));
        }
        Ok(())
    }

    /// Writes the index and the trailer, fsyncs, and renames `<path>.incomplete` to `<path>`.
    pub fn finish(mut self) -> Result<TapeSummary, TapeError> {
        self.flush_records()?;
        let mut chunks: Vec<(Hash, u64)> = self.chunks.iter().map(|(h, o)| (*h, *o)).collect();
        let totals = IndexTotals {
            records: self.records,
            fingerprint: self.chain,
            raw_bytes: self.raw_bytes,
        };
        let mut launches = std::mem::take(&mut self.launches);
        let payload = encode_index(&mut launches, &mut chunks, &totals);
        let h = *blake3::hash(&payload).as_bytes();
        let index_offset = self.write_frame(FrameKind::Index, &payload, h, 0, false)?;
        let t = Trailer {
            version: FORMAT_VERSION,
            index_offset,
            launches: launches.len() as u64,
            chunks: chunks.len() as u64,
            trailer_offset: self.pos,
        };
        self.write_all(&t.encode())?;
        self.out
            .flush()
            .map_err(|e| TapeError::io(&self.tmp, "write", e))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| TapeError::io(&self.tmp, "fsync", e))?;
        self.publish()?;
        // Make the rename itself durable (best effort: not every platform can open a directory).
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        debug_assert_eq!(self.pos, t.trailer_offset + TRAILER_LEN as u64);
        Ok(TapeSummary {
            path: self.path.clone(),
            bytes: self.pos,
            launches: launches.len() as u64,
            chunks: chunks.len() as u64,
            raw_bytes: self.raw_bytes,
            fingerprint: self.chain,
        })
    }
}

impl TapeWriter {
    /// Moves the finished `<path>.incomplete` to `<path>`. Without [`Existing::Replace`] this never
    /// clobbers: a hard link fails if `<path>` appeared while recording (then the tape stays at its
    /// `.incomplete` name, complete and readable); where links are not supported, an existence check
    /// before the rename.
    fn publish(&self) -> Result<(), TapeError> {
        if self.existing == Existing::Replace {
            return std::fs::rename(&self.tmp, &self.path)
                .map_err(|e| TapeError::io(&self.path, "rename", e));
        }
        let appeared = || TapeError::Exists {
            path: self.path.clone(),
            what: format!(
                "appeared while recording; the finished tape is left at {}",
                self.tmp.display()
            ),
        };
        match std::fs::hard_link(&self.tmp, &self.path) {
            Ok(()) => {
                std::fs::remove_file(&self.tmp).map_err(|e| TapeError::io(&self.tmp, "remove", e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(appeared()),
            Err(_) => {
                if self.path.exists() {
                    return Err(appeared());
                }
                std::fs::rename(&self.tmp, &self.path)
                    .map_err(|e| TapeError::io(&self.path, "rename", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::frame::{FRAME_HEADER_LEN, FrameHeader};
    use crate::tape::trailer::PREAMBLE_LEN;

    /// A header that says nothing: these tests are about chunks and frames.
    fn blank() -> TapeHeader {
        let producer = crate::tape::Producer {
            greta_version: String::new(),
            backend: String::new(),
            device: String::new(),
            kernel_hashes: Vec::new(),
            engine: None,
            provenance: None,
        };
        let run = crate::tape::RunInfo {
            prompt_tokens: Vec::new(),
            routes: Vec::new(),
            threads: 0,
            capture: String::new(),
            options_json: String::new(),
            created_unix: 0,
        };
        TapeHeader::new(Default::default(), String::new(), producer, run)
    }

    /// The first chunk frame of a one-tensor tape: (header, file bytes).
    fn first_chunk(bytes: &[u8], es: usize, shuffle: Shuffle) -> (FrameHeader, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tape");
        let opts = WriterOptions {
            shuffle,
            ..WriterOptions::default()
        };
        let mut w = TapeWriter::create(&path, &blank(), opts).unwrap();
        let hs = w.put_tensor(bytes, es).unwrap();
        assert_eq!(
            hs[0],
            *blake3::hash(&bytes[..bytes.len().min(64 << 10)]).as_bytes()
        );
        w.finish().unwrap();
        let file = std::fs::read(&path).unwrap();
        let h = FrameHeader::parse(&file[PREAMBLE_LEN..]).unwrap();
        let chunk_at = PREAMBLE_LEN + h.total_len() as usize;
        (FrameHeader::parse(&file[chunk_at..]).unwrap(), file)
    }

    #[test]
    fn floats_are_shuffled_and_incompressible_bytes_stored() {
        // Smooth floats: the shuffle applies, recorded in the frame header.
        let f: Vec<u8> = (0..20_000)
            .flat_map(|i| (i as f32 * 0.001).sin().to_le_bytes())
            .collect();
        let (h, _) = first_chunk(&f, 4, Shuffle::ByElement);
        assert_eq!(
            (h.kind, h.codec, h.shuffle),
            (FrameKind::Chunk, Codec::Zstd, 4)
        );
        let (h, _) = first_chunk(&f, 4, Shuffle::Off);
        assert_eq!((h.codec, h.shuffle), (Codec::Zstd, 0));
        // Random bytes do not compress: stored as they are, unshuffled.
        let mut x = 1u64;
        let r: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (h, file) = first_chunk(&r, 4, Shuffle::ByElement);
        assert_eq!(
            (h.codec, h.shuffle, h.raw_len),
            (Codec::Stored, 0, 64 << 10)
        );
        assert!(file.windows(64).any(|w| w == &r[..64]));
        assert_eq!(FRAME_HEADER_LEN, 64);
    }

    #[test]
    fn identical_chunks_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tape");
        let opts = WriterOptions {
            chunk_size: 1024,
            ..WriterOptions::default()
        };
        let mut w = TapeWriter::create(&path, &blank(), opts).unwrap();
        let a = vec![7u8; 4096];
        let ha = w.put_tensor(&a, 1).unwrap();
        assert_eq!(ha.len(), 4);
        assert!(ha.iter().all(|h| *h == ha[0]));
        let grown: Vec<u8> = a
            .iter()
            .copied()
            .chain((0..1024).map(|i| i as u8))
            .collect();
        let hb = w.put_tensor(&grown, 1).unwrap();
        assert_eq!(&hb[..4], &ha[..]);
        let s = w.finish().unwrap();
        assert_eq!((s.chunks, s.raw_bytes), (2, 2048));
    }

    #[test]
    fn threads_do_not_change_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| ((i % 1000) as f32 * 0.37).cos().to_le_bytes())
            .collect();
        let mut files = Vec::new();
        for threads in [1, 3] {
            let path = dir.path().join(format!("t{threads}.tape"));
            let opts = WriterOptions {
                threads,
                chunk_size: 4096,
                ..WriterOptions::default()
            };
            let mut w = TapeWriter::create(&path, &blank(), opts).unwrap();
            let a = w.put_tensor(&data, 4).unwrap();
            let b = w.put_tensor(&data[..100_000], 4).unwrap();
            assert_eq!(&a[..24], &b[..24]);
            w.finish().unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert_eq!(files[0], files[1]);
    }

    #[test]
    fn writer_moves_to_a_worker_thread_and_readers_share() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<TapeWriter>();
        send::<crate::tape::TapeReader>();
        sync::<crate::tape::TapeReader>();
    }
}
