//! The tape reader: a memory map, the header, and the index searched in place.
//!
//! Opening reads the preamble, the header frame and the trailer, then parses the index header: a
//! constant amount of work whatever the tape's size. A tape without a valid trailer (a crash leftover,
//! a damaged end) is opened by scanning its frames to the last good one; the index is then rebuilt in
//! memory and [`TapeReader::truncation`] says where and why the frames stopped.
//!
//! Every byte handed out has been checked: frame payloads against their blake3, chunk frames against
//! the hash they are asked for, tensors against their whole-tensor hash, index entries against their
//! own checksums, and a launch's records against its index entry.

use super::error::TapeError;
use super::frame::{
    Codec, FRAME_HEADER_LEN, FrameKind, decode_into, decode_vec, frame_at_typed, u32_at,
};
use super::index::{IndexEntry, IndexLayout, IndexTotals, encode_index};
use super::record::{
    self, Chained, Hash, Launch, LaunchBegin, LaunchEnd, Record, Storage, TapeHeader, TensorRef,
};
use super::scan::{ScanMode, scan};
use super::trailer::{FORMAT_VERSION, PREAMBLE_LEN, TAPE_MAGIC, TRAILER_LEN, Trailer};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Why and where a tape's frames stop early (it was opened by scanning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Byte offset where the last good frame ends.
    pub offset: u64,
    /// Why reading stopped there.
    pub reason: String,
}

/// Most `Producer` hops followed for one tensor (a chain longer than this is a loop in a damaged tape).
const MAX_PRODUCER_HOPS: usize = 4096;

enum IndexBytes {
    /// The index frame's payload, in the map.
    Mapped(std::ops::Range<usize>),
    /// Rebuilt by scanning.
    Owned(Vec<u8>),
}

/// Reads a tape. See the module docs.
pub struct TapeReader {
    path: PathBuf,
    map: Mmap,
    version: u32,
    header: TapeHeader,
    header_hash: Hash,
    /// First byte after the header frame.
    body: u64,
    /// End of the frames (the trailer's offset, or where a scan stopped).
    frames_end: u64,
    index: IndexBytes,
    layout: IndexLayout,
    trailer: Option<Trailer>,
    truncation: Option<Truncation>,
    /// The last records frame decoded (offset, payload): a launch's begin and end, and consecutive
    /// launches, usually share one, so a walk over the tape decodes each frame once, not once a record.
    last_records: std::sync::Mutex<Option<(u64, std::sync::Arc<Vec<u8>>)>>,
}

fn map_file(path: &Path) -> Result<Mmap, TapeError> {
    let f = File::open(path).map_err(|e| TapeError::io(path, "open", e))?;
    // SAFETY: the map is read-only and greta never writes a tape it reads (writers append to
    // `<path>.incomplete` and rename when done). Another process truncating the file under us could
    // still fault; every read is bounds-checked against the length seen at open.
    unsafe { Mmap::map(&f) }.map_err(|e| TapeError::io(path, "map", e))
}

impl TapeReader {
    /// Opens a tape: by its trailer when it has a valid one, else by scanning its frames.
    ///
    /// When `path` does not exist but `<path>.incomplete` does (the recorder crashed before
    /// `finish`), that file is opened instead; [`TapeReader::path`] names it.
    pub fn open(path: &Path) -> Result<TapeReader, TapeError> {
        if !path.exists() {
            let inc = super::incomplete_path(path);
            if inc.is_file() {
                return Self::open_exact(&inc);
            }
        }
        Self::open_exact(path)
    }

    fn open_exact(path: &Path) -> Result<TapeReader, TapeError> {
        let meta = std::fs::metadata(path).map_err(|e| TapeError::io(path, "stat", e))?;
        let unreadable = |what: &str| TapeError::Unreadable {
            path: path.to_path_buf(),
            what: what.into(),
        };
        if meta.is_dir() {
            return Err(unreadable("is a directory, not a tape"));
        }
        if !meta.is_file() {
            // A FIFO or device would block or never end; a tape is a regular file.
            return Err(unreadable(
                "is not a regular file (a FIFO, socket or device?)",
            ));
        }
        let len = meta.len();
        if len == 0 {
            return Err(unreadable(
                "is an empty file (0 bytes): a recording interrupted before it wrote anything",
            ));
        }
        if len < TAPE_MAGIC.len() as u64 {
            return Err(TapeError::NotATape {
                path: path.to_path_buf(),
            });
        }
        let map = map_file(path)?;
        let data: &[u8] = &map;
        if data.len() < TAPE_MAGIC.len() || data[..8] != TAPE_MAGIC {
            return Err(TapeError::NotATape {
                path: path.to_path_buf(),
            });
        }
        if data.len() < PREAMBLE_LEN {
            // At the end of the file, not after the magic: a 10-byte file is cut at byte 10.
            return Err(TapeError::Truncated {
                path: path.into(),
                offset: data.len() as u64,
                what: format!(
                    "the file is {} bytes, shorter than a tape's {PREAMBLE_LEN}-byte preamble (a recording interrupted as it started)",
                    data.len()
                ),
            });
        }
        let version = u32_at(data, 8);
        if version > FORMAT_VERSION {
            return Err(TapeError::NewerVersion {
                path: path.into(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 || u32_at(data, 12) != 0 {
            return Err(TapeError::Corrupt {
                path: path.into(),
                offset: 8,
                frame: "preamble",
                what: format!("bad version {version} or nonzero reserved bytes"),
            });
        }
        // The trailer's copy of the version is covered by its checksum, the preamble's by nothing. Formats
        // 3 to 5 share the header's shape, so a damaged preamble version that names another of them (5
        // with bit 0 flipped is 4) decodes; an intact trailer that disagrees names the damage.
        if data.len() >= PREAMBLE_LEN + TRAILER_LEN {
            if let Ok(t) = Trailer::parse(&data[data.len() - TRAILER_LEN..], data.len() as u64) {
                if t.version != version {
                    return Err(TapeError::Corrupt {
                        path: path.into(),
                        offset: 8,
                        frame: "preamble",
                        what: format!(
                            "version {version}, but the trailer (checksum intact) says {}",
                            t.version
                        ),
                    });
                }
            }
        }
        let hf = frame_at_typed(path, data, PREAMBLE_LEN as u64, FrameKind::Header)?;
        let hb = decode_vec(path, data, &hf)?;
        let header: TapeHeader = record::decode_header(&hb, version).map_err(|what| {
            // The header frame checks out (blake3), so when it decodes as another version's header it is
            // the preamble's version field that is damaged: say so at its offset.
            match (1..=FORMAT_VERSION)
                .find(|&v| v != version && record::decode_header(&hb, v).is_ok())
            {
                Some(v) => TapeError::Corrupt {
                    path: path.into(),
                    offset: 8,
                    frame: "preamble",
                    what: format!(
                        "version {version}, but the header frame is a version-{v} header"
                    ),
                },
                None => TapeError::Corrupt {
                    path: path.into(),
                    offset: hf.offset,
                    frame: "header frame",
                    what: format!("bincode: {what}"),
                },
            }
        })?;
        let body = hf.offset + hf.header.total_len();
        let header_hash = hf.header.hash;
        let file_len = data.len() as u64;
        // A trailer that checks out (its own blake3) and names another version than the preamble: the
        // preamble's version field is damaged. Said here, at its offset, because versions 3-5 share a
        // header shape but not a record shape (format 5's Params), so reading on would blame a record.
        if data.len() as u64 >= body + TRAILER_LEN as u64 {
            if let Ok(t) = Trailer::parse(&data[data.len() - TRAILER_LEN..], file_len) {
                if t.version != version && (1..=FORMAT_VERSION).contains(&t.version) {
                    return Err(TapeError::Corrupt {
                        path: path.into(),
                        offset: 8,
                        frame: "preamble",
                        what: format!("version {version}, but the trailer says {}", t.version),
                    });
                }
            }
        }

        let fast = Self::by_trailer(path, data, body);
        let mut r = TapeReader {
            path: path.to_path_buf(),
            version,
            header,
            header_hash,
            body,
            frames_end: file_len,
            index: IndexBytes::Owned(Vec::new()),
            layout: IndexLayout {
                base: 0,
                launches: 0,
                chunks: 0,
                launches_at: 0,
                chunks_at: 0,
                totals: IndexTotals::default(),
            },
            trailer: None,
            truncation: None,
            last_records: std::sync::Mutex::new(None),
            map,
        };
        match fast {
            Ok((t, range, layout)) => {
                r.frames_end = t.trailer_offset;
                r.index = IndexBytes::Mapped(range);
                r.layout = layout;
                r.trailer = Some(t);
            }
            Err(why) => {
                let data: &[u8] = &r.map;
                let mut s = scan(path, data, body, file_len, header_hash, ScanMode::Open);
                let (offset, reason) = match s.stop.take() {
                    Some((at, what)) => (at, format!("{why}; frames end at byte {at}: {what}")),
                    None => (file_len, why),
                };
                r.frames_end = offset;
                let totals = IndexTotals {
                    records: s.records,
                    fingerprint: s.chain,
                    raw_bytes: s.raw_bytes,
                };
                let bytes = encode_index(&mut s.launches, &mut s.chunks, &totals);
                r.layout =
                    IndexLayout::parse(&bytes, 0).map_err(|(_, what)| TapeError::Corrupt {
                        path: path.into(),
                        offset: 0,
                        frame: "index",
                        what: format!("rebuilt index does not parse: {what}"),
                    })?;
                r.index = IndexBytes::Owned(bytes);
                r.truncation = Some(Truncation { offset, reason });
            }
        }
        Ok(r)
    }

    /// The trailer, the index frame's payload range and its layout, or why the tape must be scanned.
    fn by_trailer(
        path: &Path,
        data: &[u8],
        body: u64,
    ) -> Result<(Trailer, std::ops::Range<usize>, IndexLayout), String> {
        let len = data.len() as u64;
        if len < body + (FRAME_HEADER_LEN + TRAILER_LEN) as u64 {
            return Err("no trailer: the writer did not finish (crash, kill or full disk?)".into());
        }
        let t = Trailer::parse(&data[data.len() - TRAILER_LEN..], len)
            .map_err(|w| format!("trailer: {w}"))?;
        if t.version != u32_at(data, 8) {
            return Err(format!(
                "trailer: version {} differs from the preamble's",
                t.version
            ));
        }
        if t.index_offset < body {
            return Err(format!(
                "trailer: index offset {} is inside the header",
                t.index_offset
            ));
        }
        let f = frame_at_typed(
            path,
            &data[..t.trailer_offset as usize],
            t.index_offset,
            FrameKind::Index,
        )
        .map_err(|e| format!("index: {e}"))?;
        if f.header.codec != Codec::Stored || f.header.shuffle != 0 {
            return Err("index: frame is not stored uncompressed".into());
        }
        if f.offset + f.header.total_len() != t.trailer_offset {
            return Err("index: frame does not end where the trailer starts".into());
        }
        let range = f.payload_range();
        let base = range.start as u64;
        let layout = IndexLayout::parse(&data[range.clone()], base)
            .map_err(|(at, w)| format!("index at byte {at}: {w}"))?;
        if layout.launches as u64 != t.launches || layout.chunks as u64 != t.chunks {
            return Err("index: counts differ from the trailer's".into());
        }
        Ok((t, range, layout))
    }

    fn index_bytes(&self) -> &[u8] {
        match &self.index {
            IndexBytes::Mapped(r) => &self.map[r.clone()],
            IndexBytes::Owned(v) => v,
        }
    }

    fn data(&self) -> &[u8] {
        &self.map[..self.frames_end as usize]
    }

    fn index_fault(&self, (offset, what): (u64, String)) -> TapeError {
        TapeError::Corrupt {
            path: self.path.clone(),
            offset,
            frame: "index",
            what,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Format version of the file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The run's header.
    pub fn header(&self) -> &TapeHeader {
        &self.header
    }

    /// Where and why the frames stop, when the tape had no valid trailer.
    pub fn truncation(&self) -> Option<&Truncation> {
        self.truncation.as_ref()
    }

    /// Launches on the tape.
    pub fn len(&self) -> usize {
        self.layout.launches
    }

    /// True when the tape holds no launch.
    pub fn is_empty(&self) -> bool {
        self.layout.launches == 0
    }

    /// Unique chunks on the tape.
    pub fn chunk_count(&self) -> usize {
        self.layout.chunks
    }

    /// Records on the tape.
    pub fn record_count(&self) -> u64 {
        self.layout.totals.records
    }

    /// Unique tensor bytes before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.layout.totals.raw_bytes
    }

    /// The last chain hash: identifies the whole run (header and every record, in order).
    pub fn fingerprint(&self) -> Hash {
        self.layout.totals.fingerprint
    }

    /// Every launch, in seq order, from the index alone (no record is decoded). An entry whose checksum
    /// fails comes out as [`TapeError::Corrupt`] with its offset.
    pub fn entries(&self) -> impl Iterator<Item = Result<IndexEntry, TapeError>> + '_ {
        let idx = self.index_bytes();
        (0..self.layout.launches)
            .map(move |i| self.layout.launch(idx, i).map_err(|f| self.index_fault(f)))
    }

    /// The index entry of launch `seq`.
    pub fn entry(&self, seq: u64) -> Result<IndexEntry, TapeError> {
        self.layout
            .find_launch(self.index_bytes(), seq)
            .map_err(|f| self.index_fault(f))?
            .ok_or(TapeError::NoSuchLaunch(seq))
    }

    fn corrupt(&self, offset: u64, frame: &'static str, what: String) -> TapeError {
        TapeError::Corrupt {
            path: self.path.clone(),
            offset,
            frame,
            what,
        }
    }

    fn records_payload(&self, frame: u64) -> Result<std::sync::Arc<Vec<u8>>, TapeError> {
        if let Ok(g) = self.last_records.lock() {
            if let Some((at, p)) = g.as_ref() {
                if *at == frame {
                    return Ok(p.clone());
                }
            }
        }
        let f = frame_at_typed(&self.path, self.data(), frame, FrameKind::Records)?;
        let p = std::sync::Arc::new(decode_vec(&self.path, self.data(), &f)?);
        if let Ok(mut g) = self.last_records.lock() {
            *g = Some((frame, p.clone()));
        }
        Ok(p)
    }

    fn record_in(&self, payload: &[u8], frame: u64, pos: u32) -> Result<Record, TapeError> {
        let at = pos as usize;
        let bad = |what: String| {
            self.corrupt(
                frame,
                "records frame",
                format!("record at payload byte {pos}: {what}"),
            )
        };
        if payload.len() < at.saturating_add(4) {
            return Err(bad("position past the end of the frame".into()));
        }
        let n = u32_at(payload, at) as usize;
        let body = payload
            .get(at + 4..at + 4 + n)
            .ok_or_else(|| bad("record runs past the frame".into()))?;
        let c: Chained<Record> =
            record::decode_record(body, self.version).map_err(|e| bad(format!("bincode: {e}")))?;
        Ok(c.record)
    }

    /// Launch `seq`: its begin record and, unless the tape stops inside it, its end record.
    pub fn launch(&self, seq: u64) -> Result<Launch, TapeError> {
        let e = self.entry(seq)?;
        let mismatch = |what: &str| {
            self.corrupt(
                e.begin.frame,
                "records frame",
                format!("launch {seq}: {what}"),
            )
        };
        let bp = self.records_payload(e.begin.frame)?;
        let begin: LaunchBegin = match self.record_in(&bp, e.begin.frame, e.begin.pos)? {
            Record::Begin(b) => b,
            Record::End(_) => {
                return Err(mismatch(
                    "index points at an end record where a begin should be",
                ));
            }
        };
        if begin.seq != e.seq
            || begin.phase != e.phase
            || begin.layer != e.layer
            || begin.stage != e.stage
            || begin.route != e.route
        {
            return Err(mismatch("begin record disagrees with its index entry"));
        }
        let end: Option<LaunchEnd> = match e.end {
            None => None,
            Some(loc) => {
                let other;
                let payload = if loc.frame == e.begin.frame {
                    &bp
                } else {
                    other = self.records_payload(loc.frame)?;
                    &other
                };
                match self.record_in(payload, loc.frame, loc.pos)? {
                    Record::End(end) if end.seq == seq => Some(end),
                    _ => {
                        return Err(mismatch(
                            "index points at a record that is not this launch's end",
                        ));
                    }
                }
            }
        };
        Ok(Launch { begin, end })
    }

    /// The frame offset of chunk `h`, or None when the tape has no such chunk.
    pub fn chunk_offset(&self, h: &Hash) -> Result<Option<u64>, TapeError> {
        self.layout
            .find_chunk(self.index_bytes(), h)
            .map_err(|f| self.index_fault(f))
    }

    /// The uncompressed length of chunk `h` from its frame header (nothing is decoded), or None when
    /// the tape has no such chunk.
    pub fn chunk_len(&self, h: &Hash) -> Result<Option<u64>, TapeError> {
        let Some(off) = self.chunk_offset(h)? else {
            return Ok(None);
        };
        Ok(Some(
            frame_at_typed(&self.path, self.data(), off, FrameKind::Chunk)?
                .header
                .raw_len,
        ))
    }

    /// The bytes of a tensor, checked against its hash. `Producer` references are followed to the
    /// producing launch's output; weights and hash-only tensors are typed errors.
    pub fn tensor_bytes(&self, r: &TensorRef) -> Result<Vec<u8>, TapeError> {
        self.check_tensor(r)?;
        let mut cur = r.clone();
        for _ in 0..MAX_PRODUCER_HOPS {
            match &cur.storage {
                Storage::Chunks(hs) => {
                    let bytes = self.assemble(&cur, hs)?;
                    if bytes.len() as u64 != r.len || *blake3::hash(&bytes).as_bytes() != r.hash {
                        let first = match hs.first() {
                            Some(h) => self.chunk_offset(h)?.unwrap_or(self.frames_end),
                            None => self.frames_end,
                        };
                        return Err(self.corrupt(
                            first,
                            "chunk frame",
                            format!("tensor `{}`: bytes do not match the referring tensor's length and hash", r.role),
                        ));
                    }
                    return Ok(bytes);
                }
                Storage::Producer { seq, index } => {
                    let l = self.launch(*seq)?;
                    let at = self.entry(*seq)?.begin.frame;
                    let end = l.end.ok_or_else(|| {
                        self.corrupt(
                            at,
                            "records frame",
                            format!(
                                "tensor `{}`: producer launch {seq} has no end record",
                                r.role
                            ),
                        )
                    })?;
                    let out = end
                        .outputs
                        .into_iter()
                        .nth(*index as usize)
                        .ok_or_else(|| {
                            self.corrupt(
                                at,
                                "records frame",
                                format!("tensor `{}`: launch {seq} has no output {index}", r.role),
                            )
                        })?;
                    cur = out;
                }
                Storage::Rows(spans) => {
                    let bytes = self.assemble_rows(&cur, spans)?;
                    if bytes.len() as u64 != r.len || *blake3::hash(&bytes).as_bytes() != r.hash {
                        return Err(self.corrupt(
                            self.frames_end,
                            "records frame",
                            format!("tensor `{}`: rows assembled from producers do not match its length and hash", r.role),
                        ));
                    }
                    return Ok(bytes);
                }
                Storage::Weight { name } => {
                    return Err(TapeError::ExternalWeight { name: name.clone() });
                }
                Storage::HashOnly => {
                    return Err(TapeError::NotCaptured {
                        role: cur.role.clone(),
                    });
                }
            }
        }
        Err(self.corrupt(
            self.frames_end,
            "records frame",
            format!("tensor `{}`: producer references loop", r.role),
        ))
    }

    /// Refuses a tensor whose shape and dtype disagree with its length, or whose length is over the
    /// memory budget ([`super::budget`]), before anything is allocated for it.
    pub fn check_tensor(&self, r: &TensorRef) -> Result<(), TapeError> {
        if let Some(what) = r.layout_problem() {
            return Err(self.corrupt(self.frames_end, "records frame", what));
        }
        let budget = super::budget::max_tensor_bytes();
        if r.len > budget {
            return Err(TapeError::TooLarge {
                path: self.path.clone(),
                role: r.role.clone(),
                offset: self.frames_end,
                bytes: r.len,
                budget,
            });
        }
        Ok(())
    }

    /// Concatenates row spans of producers' outputs (each resolved and verified by [`Self::tensor_bytes`]).
    fn assemble_rows(&self, r: &TensorRef, spans: &[super::RowSpan]) -> Result<Vec<u8>, TapeError> {
        // `r.len` is within the budget (checked by `tensor_bytes`); the spans may not exceed it.
        let mut out = Vec::with_capacity(usize::try_from(r.len).unwrap_or(0));
        for sp in spans {
            let bad = |what: String| {
                self.corrupt(
                    self.frames_end,
                    "records frame",
                    format!("tensor `{}`: {what}", r.role),
                )
            };
            let l = self.launch(sp.seq)?;
            let end = l
                .end
                .ok_or_else(|| bad(format!("row producer launch {} has no end record", sp.seq)))?;
            let src = end
                .outputs
                .into_iter()
                .nth(sp.index as usize)
                .ok_or_else(|| bad(format!("launch {} has no output {}", sp.seq, sp.index)))?;
            if matches!(src.storage, Storage::Rows(_)) {
                return Err(bad("rows of rows are not allowed".into()));
            }
            // After `tensor_bytes` checked its layout, the product of its dimensions cannot overflow.
            let bytes = self.tensor_bytes(&src)?;
            let total_rows: u64 = src.shape.iter().rev().skip(1).product::<u64>().max(1);
            let row_bytes = src.len / total_rows;
            if sp.rows.saturating_mul(row_bytes) > r.len - out.len() as u64 {
                return Err(bad(format!("row spans hold more than its {} bytes", r.len)));
            }
            let (a, b) = (
                sp.row0.saturating_mul(row_bytes),
                (sp.row0.saturating_add(sp.rows)).saturating_mul(row_bytes),
            );
            if b > bytes.len() as u64 || a > b {
                return Err(bad(format!(
                    "rows {}..{} outside output {} of launch {}",
                    sp.row0,
                    sp.row0 + sp.rows,
                    sp.index,
                    sp.seq
                )));
            }
            out.extend_from_slice(&bytes[a as usize..b as usize]);
        }
        Ok(out)
    }

    /// Assembles the chunks `hs` of tensor `t`, each checked against its hash.
    fn assemble(&self, t: &TensorRef, hs: &[Hash]) -> Result<Vec<u8>, TapeError> {
        let data = self.data();
        let mut frames = Vec::with_capacity(hs.len());
        let mut total = 0u64;
        for h in hs {
            let off = self.chunk_offset(h)?.ok_or_else(|| {
                self.corrupt(
                    self.layout.base,
                    "index",
                    format!(
                        "tensor `{}`: chunk {} is not on the tape",
                        t.role,
                        super::hex(h)
                    ),
                )
            })?;
            let f = frame_at_typed(&self.path, data, off, FrameKind::Chunk)?;
            if f.header.hash != *h {
                return Err(self.corrupt(
                    off,
                    "chunk frame",
                    format!(
                        "chunk table points at a frame of another chunk ({})",
                        super::hex(h)
                    ),
                ));
            }
            total = total.saturating_add(f.header.raw_len);
            if total > t.len {
                break;
            }
            frames.push(f);
        }
        if total != t.len {
            return Err(self.corrupt(
                frames.first().map_or(self.frames_end, |f| f.offset),
                "chunk frame",
                format!(
                    "tensor `{}`: chunks hold {total} bytes, tensor says {}",
                    t.role, t.len
                ),
            ));
        }
        let mut out = vec![0u8; total as usize];
        let mut scratch = Vec::new();
        let mut at = 0usize;
        for f in &frames {
            let n = f.header.raw_len as usize;
            decode_into(&self.path, data, f, &mut out[at..at + n], &mut scratch)?;
            at += n;
        }
        Ok(out)
    }

    pub(crate) fn verify_parts(&self) -> VerifyParts<'_> {
        VerifyParts {
            path: &self.path,
            data: self.data(),
            body: self.body,
            header_hash: self.header_hash,
            index: self.index_bytes(),
            layout: self.layout,
            trailer: self.trailer,
            index_is_mapped: matches!(self.index, IndexBytes::Mapped(_)),
        }
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }
}

/// What `verify` needs from a reader.
pub(crate) struct VerifyParts<'a> {
    pub path: &'a Path,
    pub data: &'a [u8],
    pub body: u64,
    pub header_hash: Hash,
    pub index: &'a [u8],
    pub layout: IndexLayout,
    pub trailer: Option<Trailer>,
    pub index_is_mapped: bool,
}
