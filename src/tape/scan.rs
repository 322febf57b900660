//! Walking the frames of a tape from the front: how a tape without a valid trailer is opened (its index
//! rebuilt in memory) and how `verify` checks everything.

use super::frame::{FrameKind, decode_vec, frame_at, u32_at};
use super::index::{IndexEntry, RecordLoc};
use super::record::{self, Chained, Hash, Record, Storage};
use std::collections::HashMap;
use std::path::Path;

/// How hard to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Opening: stop at the first bad frame; check record frames (they are decoded anyway) but leave
    /// chunk payloads to be checked when fetched.
    Open,
    /// Verifying: check every payload; go on past a frame whose header is sound but payload is not.
    Verify,
}

/// A problem found while scanning.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Byte offset in the file.
    pub offset: u64,
    /// Which structure.
    pub frame: &'static str,
    /// What is wrong.
    pub what: String,
}

/// What a scan found.
#[derive(Default)]
pub(crate) struct Scan {
    pub launches: Vec<IndexEntry>,
    pub chunks: Vec<(Hash, u64)>,
    pub records: u64,
    pub frames: u64,
    pub chain: Hash,
    pub raw_bytes: u64,
    /// Where and why the frames stopped before `end` (a cut or a bad frame header).
    pub stop: Option<(u64, String)>,
    /// Problems past which the scan went on (Verify mode only).
    pub problems: Vec<Problem>,
    /// Offset of the index frame, if one was seen.
    pub index_frame: Option<u64>,
}

/// Scans frames in `data[start..end]`; `chain` is the chain hash before the first record.
pub(crate) fn scan(
    path: &Path,
    data: &[u8],
    start: u64,
    end: u64,
    chain: Hash,
    mode: ScanMode,
) -> Scan {
    let mut s = Scan {
        chain,
        ..Scan::default()
    };
    let mut by_seq: HashMap<u64, usize> = HashMap::new();
    let mut flow = Dataflow {
        mode: Some(mode),
        ..Dataflow::default()
    };
    let mut pos = start;
    // The preamble's format version decides the records' shape (open() checked it).
    let version = if data.len() >= 12 { u32_at(data, 8) } else { 0 };
    let view = &data[..end as usize];
    while pos < end {
        let f = match frame_at(view, pos) {
            Ok(f) => f,
            Err((_, what)) => {
                s.stop = Some((pos, what));
                break;
            }
        };
        let next = pos + f.header.total_len();
        let kind = f.header.kind;
        let check_payload = mode == ScanMode::Verify || kind == FrameKind::Records;
        let payload = if check_payload {
            match decode_vec(path, view, &f) {
                Ok(p) => Some(p),
                Err(e) => {
                    let what = match e {
                        super::TapeError::Corrupt { what, .. } => what,
                        other => other.to_string(),
                    };
                    if mode == ScanMode::Open {
                        s.stop = Some((pos, format!("{}: {what}", kind.name())));
                        break;
                    }
                    s.problems.push(Problem {
                        offset: pos,
                        frame: kind.name(),
                        what,
                    });
                    s.frames += 1;
                    pos = next;
                    continue;
                }
            }
        } else {
            None
        };
        s.frames += 1;
        match kind {
            FrameKind::Chunk => {
                if flow
                    .chunk_lens
                    .insert(f.header.hash, f.header.raw_len)
                    .is_none()
                {
                    s.chunks.push((f.header.hash, pos));
                    s.raw_bytes += f.header.raw_len;
                }
            }
            FrameKind::Records => {
                let p = payload.unwrap_or_default();
                let before = (s.launches.len(), s.chain, s.records);
                if let Err((at, what)) = records(&mut s, &mut by_seq, &mut flow, &p, pos, version) {
                    if mode == ScanMode::Open {
                        // Nothing from a rejected frame is listed (issue 14: ls listed launches from
                        // a frame it had rejected).
                        for e in s.launches.drain(before.0..) {
                            by_seq.remove(&e.seq);
                        }
                        for e in s
                            .launches
                            .iter_mut()
                            .filter(|e| e.end.is_some_and(|l| l.frame == pos))
                        {
                            e.has_end = false;
                            e.end = None;
                        }
                        (s.chain, s.records) = (before.1, before.2);
                    }
                    let pr = Problem {
                        offset: pos,
                        frame: kind.name(),
                        what: format!("record at payload byte {at}: {what}"),
                    };
                    if mode == ScanMode::Open {
                        s.stop = Some((pos, format!("{}: {}", pr.frame, pr.what)));
                        break;
                    }
                    s.problems.push(pr);
                }
            }
            FrameKind::Index => s.index_frame = Some(pos),
            FrameKind::Header => {
                let what = "a second header frame".to_string();
                if mode == ScanMode::Open {
                    s.stop = Some((pos, what));
                    break;
                }
                s.problems.push(Problem {
                    offset: pos,
                    frame: kind.name(),
                    what,
                });
            }
        }
        pos = next;
    }
    s
}

/// Decodes the records of one frame payload into `s`. On a broken chain in Verify mode the chain is
/// resynchronised so one break is reported once.
fn records(
    s: &mut Scan,
    by_seq: &mut HashMap<u64, usize>,
    flow: &mut Dataflow,
    p: &[u8],
    frame: u64,
    version: u32,
) -> Result<(), (usize, String)> {
    let mut at = 0usize;
    while at < p.len() {
        if p.len() - at < 4 {
            return Err((at, "length prefix cut short".into()));
        }
        let n = u32_at(p, at) as usize;
        let body = p
            .get(at + 4..at + 4 + n)
            .ok_or((at, format!("record of {n} bytes runs past the frame")))?;
        let c: Chained<Record> =
            record::decode_record(body, version).map_err(|e| (at, format!("bincode: {e}")))?;
        let h = *blake3::hash(body).as_bytes();
        let broken = c.prev != s.chain;
        s.chain = h;
        s.records += 1;
        if broken {
            return Err((
                at,
                "record chain broken (prev hash does not match the record before)".into(),
            ));
        }
        let loc = RecordLoc {
            frame,
            pos: at as u32,
        };
        for what in flow.check(&c.record) {
            s.problems.push(Problem {
                offset: frame,
                frame: "records frame",
                what: format!(
                    "record at payload byte {at} (launch {}): {what}",
                    c.record.seq()
                ),
            });
        }
        match &c.record {
            Record::Begin(b) => {
                if by_seq.contains_key(&b.seq) {
                    return Err((at, format!("launch {} begun twice", b.seq)));
                }
                by_seq.insert(b.seq, s.launches.len());
                s.launches.push(IndexEntry::begun(b, loc));
            }
            Record::End(e) => {
                let i = *by_seq
                    .get(&e.seq)
                    .ok_or((at, format!("end of launch {} without a begin", e.seq)))?;
                let entry = &mut s.launches[i];
                if entry.has_end {
                    return Err((at, format!("launch {} ended twice", e.seq)));
                }
                entry.has_end = true;
                entry.end = Some(loc);
            }
        }
        at += 4 + n;
    }
    Ok(())
}

/// What `verify` checks across records: every tensor's chunks are on the tape before it and add up to
/// its length; every producer reference names an earlier launch's output with the same length and hash.
#[derive(Default)]
struct Dataflow {
    mode: Option<ScanMode>,
    chunk_lens: HashMap<Hash, u64>,
    /// (len, hash) of each output of each ended launch (Verify mode only).
    outputs: HashMap<u64, Vec<(u64, Hash)>>,
    /// Rows (all dimensions but the last) of each output, for row-span references.
    out_rows: HashMap<u64, Vec<u64>>,
}

impl Dataflow {
    fn rows_of(&self, seq: u64, index: u32) -> u64 {
        self.out_rows
            .get(&seq)
            .and_then(|r| r.get(index as usize))
            .copied()
            .unwrap_or(1)
    }

    fn check(&mut self, rec: &Record) -> Vec<String> {
        if self.mode != Some(ScanMode::Verify) {
            return Vec::new();
        }
        let refs = match rec {
            Record::Begin(b) => &b.inputs,
            Record::End(e) => &e.outputs,
        };
        let mut problems = Vec::new();
        for t in refs {
            if let Some(what) = t.layout_problem() {
                problems.push(what);
            }
            match &t.storage {
                Storage::Chunks(hs) => {
                    let mut total = 0u64;
                    // saturating: a hostile tape may cite one big chunk many times
                    let mut missing = false;
                    for h in hs {
                        match self.chunk_lens.get(h) {
                            Some(n) => total = total.saturating_add(*n),
                            None => {
                                missing = true;
                                problems.push(format!(
                                    "tensor `{}` cites chunk {} not stored before it",
                                    t.role,
                                    super::hex(h)
                                ));
                            }
                        }
                    }
                    if total != t.len && !missing {
                        problems.push(format!("tensor `{}`: chunks hold {total} bytes, tensor says {}", t.role, t.len));
                    }
                }
                Storage::Producer { seq, index } => match self.outputs.get(seq).and_then(|o| o.get(*index as usize)) {
                    Some(&(len, hash)) if len == t.len && hash == t.hash => {}
                    Some(_) => problems.push(format!("tensor `{}` differs from output {index} of launch {seq}", t.role)),
                    None => problems.push(format!(
                        "tensor `{}` cites output {index} of launch {seq}, which is not on the tape before it",
                        t.role
                    )),
                },
                Storage::Rows(spans) => {
                    // Each span must lie inside an output already on the tape; the assembled bytes'
                    // hash is checked when the tensor is read (tensor_bytes).
                    let mut total = 0u64;
                    for sp in spans {
                        match self.outputs.get(&sp.seq).and_then(|o| o.get(sp.index as usize)) {
                            Some(&(len, _)) => total = total.saturating_add(sp.rows.saturating_mul(len / self.rows_of(sp.seq, sp.index).max(1))),
                            None => problems.push(format!(
                                "tensor `{}` cites rows of output {} of launch {}, which is not on the tape before it",
                                t.role, sp.index, sp.seq
                            )),
                        }
                    }
                    if total != t.len && problems.is_empty() {
                        problems.push(format!("tensor `{}`: its row spans hold {total} bytes, tensor says {}", t.role, t.len));
                    }
                }
                Storage::Weight { .. } | Storage::HashOnly => {}
            }
        }
        if let Record::End(e) = rec {
            self.outputs
                .insert(e.seq, e.outputs.iter().map(|t| (t.len, t.hash)).collect());
            self.out_rows.insert(
                e.seq,
                e.outputs
                    .iter()
                    .map(|t| {
                        t.shape
                            .iter()
                            .rev()
                            .skip(1)
                            .try_fold(1u64, |n, &d| n.checked_mul(d))
                            .unwrap_or(1)
                            .max(1)
                    })
                    .collect(),
            );
        }
        problems
    }
}
