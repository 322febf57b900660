//! `verify`: check every frame hash, every chunk hash, the record chain, and the index against what the
//! frames actually hold. Unlike reads, which check only what they touch, this reads the whole tape.

use super::index::{CHUNK_ENTRY_LEN, LAUNCH_ENTRY_LEN};
use super::reader::{TapeReader, Truncation};
use super::record::Hash;
use super::scan::{Problem, ScanMode, scan};

/// What `verify` found.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// Frames read (header frame included).
    pub frames: u64,
    /// Unique chunks found in chunk frames.
    pub chunks: u64,
    /// Records found.
    pub records: u64,
    /// Launches found.
    pub launches: u64,
    /// The chain hash after the last record read.
    pub fingerprint: Hash,
    /// Set when the tape has no valid trailer (it was opened by scanning).
    pub truncation: Option<Truncation>,
    /// Everything that did not match, with byte offsets.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when the tape is complete and nothing failed.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.truncation.is_none()
    }
}

impl TapeReader {
    /// Reads the whole tape and checks everything; problems come with byte offsets.
    pub fn verify(&self) -> VerifyReport {
        let p = self.verify_parts();
        let end = p.data.len() as u64;
        let mut s = scan(p.path, p.data, p.body, end, p.header_hash, ScanMode::Verify);
        let mut problems = std::mem::take(&mut s.problems);
        if let Some((offset, what)) = s.stop.take() {
            // In a scanned tape this is where the truncation is, already reported as such.
            if p.trailer.is_some() {
                problems.push(Problem {
                    offset,
                    frame: "frame",
                    what,
                });
            }
        }
        if let Some(t) = p.trailer {
            if s.index_frame != Some(t.index_offset) {
                problems.push(Problem {
                    offset: t.trailer_offset,
                    frame: "trailer",
                    what: format!(
                        "points at byte {} but the index frame is at {:?}",
                        t.index_offset, s.index_frame
                    ),
                });
            }
        }
        if p.index_is_mapped {
            let lay = &p.layout;
            let tot = lay.totals;
            if tot.records != s.records || tot.fingerprint != s.chain {
                problems.push(Problem {
                    offset: lay.base,
                    frame: "index",
                    what: format!(
                        "index says {} records with fingerprint {}, frames hold {} records ending in {}",
                        tot.records,
                        super::hex(&tot.fingerprint),
                        s.records,
                        super::hex(&s.chain)
                    ),
                });
            }
            s.launches.sort_by_key(|e| e.seq);
            if lay.launches != s.launches.len() {
                problems.push(Problem {
                    offset: lay.base,
                    frame: "index",
                    what: format!(
                        "index lists {} launches, records hold {}",
                        lay.launches,
                        s.launches.len()
                    ),
                });
            }
            for i in 0..lay.launches.min(s.launches.len()) {
                let at = lay.base + (lay.launches_at + i * LAUNCH_ENTRY_LEN) as u64;
                match lay.launch(p.index, i) {
                    Err((offset, what)) => problems.push(Problem {
                        offset,
                        frame: "index",
                        what,
                    }),
                    Ok(e) if e != s.launches[i] => problems.push(Problem {
                        offset: at,
                        frame: "index",
                        what: format!("launch entry {i} (seq {}) differs from its records", e.seq),
                    }),
                    Ok(_) => {}
                }
            }
            s.chunks.sort_unstable_by_key(|a| a.0);
            if lay.chunks != s.chunks.len() {
                problems.push(Problem {
                    offset: lay.base,
                    frame: "index",
                    what: format!(
                        "index lists {} chunks, chunk frames hold {}",
                        lay.chunks,
                        s.chunks.len()
                    ),
                });
            }
            for i in 0..lay.chunks.min(s.chunks.len()) {
                let at = lay.base + (lay.chunks_at + i * CHUNK_ENTRY_LEN) as u64;
                match lay.chunk(p.index, i) {
                    Err((offset, what)) => problems.push(Problem {
                        offset,
                        frame: "index",
                        what,
                    }),
                    Ok(c) if c != s.chunks[i] => problems.push(Problem {
                        offset: at,
                        frame: "index",
                        what: format!("chunk entry {i} differs from the chunk frames"),
                    }),
                    Ok(_) => {}
                }
            }
        }
        problems.sort_by_key(|p| p.offset);
        VerifyReport {
            frames: s.frames + 1,
            chunks: s.chunks.len() as u64,
            records: s.records,
            launches: s.launches.len() as u64,
            fingerprint: s.chain,
            truncation: self.truncation().cloned(),
            problems,
        }
    }
}
