//! Walking the frames of a tape from the front: how a tape without a valid trailer is opened (its index
//! rebuilt in memory) and how `verify` checks everything.

use super::frame::{FrameKind, decode_vec, frame_at, u32_at};
use super::index::{IndexEntry, RecordLoc};
use super::record::{self, Chained, Hash, Record};
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
    let mut seen_chunks: HashMap<Hash, ()> = HashMap::new();
    let mut pos = start;
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
                if seen_chunks.insert(f.header.hash, ()).is_none() {
                    s.chunks.push((f.header.hash, pos));
                    s.raw_bytes += f.header.raw_len;
                }
            }
            FrameKind::Records => {
                let p = payload.unwrap_or_default();
                if let Err((at, what)) = records(&mut s, &mut by_seq, &p, pos) {
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
    p: &[u8],
    frame: u64,
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
        let c: Chained<Record> = record::decode(body).map_err(|e| (at, format!("bincode: {e}")))?;
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
        match &c.record {
            Record::Begin(b) => {
                if by_seq.contains_key(&b.seq) {
                    return Err((at, format!("launch {} begun twice", b.seq)));
                }
                by_seq.insert(b.seq, s.launches.len());
                s.launches.push(IndexEntry {
                    seq: b.seq,
                    phase: b.phase,
                    layer: b.layer,
                    stage: b.stage,
                    route: b.route,
                    has_end: false,
                    begin: loc,
                    end: None,
                });
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
