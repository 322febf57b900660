//! Dataflow invariants of a recorded run, beyond the tape's own integrity:
//! - every input recorded as the unchanged output of an earlier launch has that output's hash;
//! - the KV cache rows an attention launch reads are exactly the rows `kv_write` launches wrote
//!   (the latest write of each position before the read) — "is the KV cache read at decode what prefill
//!   wrote?". This needs the bytes of both (full capture); launches whose bytes were not captured are
//!   counted as unchecked, not as clean.

use crate::analysis::Source;
use crate::launch::Stage;
use crate::tape::{Storage, TapeReader, TensorRef};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One violated invariant.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Problem {
    /// The launch where it shows.
    pub seq: u64,
    /// What is wrong.
    pub what: String,
}

/// The outcome of the dataflow checks.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dataflow {
    /// Producer references checked.
    pub producer_refs: usize,
    /// KV cache reads checked row by row.
    pub kv_reads_checked: usize,
    /// KV cache reads that could not be checked (bytes not captured).
    pub kv_reads_unchecked: usize,
    /// Violations.
    pub problems: Vec<Problem>,
}

/// Runs the dataflow checks over a tape.
pub fn check(t: &TapeReader) -> Dataflow {
    let src = Source::new(t, None);
    let mut out = Dataflow::default();
    // Output hashes by (seq, index), for producer checks.
    let mut outputs: HashMap<(u64, u32), [u8; 32]> = HashMap::new();
    // Per (layer, k|v): rows written, by position. A map, not a vector indexed by position: memory
    // follows the rows on the tape, not the positions a launch claims (issue 21: `pos = u32::MAX`
    // resized a vector to 4 billion entries, 103 GB).
    let mut cache: HashMap<(u32, usize), BTreeMap<u64, Vec<u8>>> = HashMap::new();
    // Per (layer, k|v): who wrote each row content ever written (blake3 of the row), to name the writer of
    // a row found in the wrong place.
    let mut writers = super::kv_writers::Writers::default();
    // Bytes of every kv_write output, by (seq, index): a KV cache read stored as row spans of them is
    // assembled from here instead of from the tape, so each read costs its own bytes and not one
    // records-frame and chunk decode per span (that made verify quadratic in the number of steps).
    let mut kv_out: HashMap<(u64, u32), Vec<u8>> = HashMap::new();
    for e in t.entries() {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                out.problems.push(Problem {
                    seq: u64::MAX,
                    what: format!("index: {err}"),
                });
                continue;
            }
        };
        let l = match t.launch(e.seq) {
            Ok(l) => l,
            Err(err) => {
                out.problems.push(Problem {
                    seq: e.seq,
                    what: format!("unreadable: {err}"),
                });
                continue;
            }
        };
        let sanity = crate::analysis::sanity::launch_problems(&l);
        for what in sanity
            .into_iter()
            .chain(crate::analysis::sanity::reference_problems(t, &l))
        {
            out.problems.push(Problem { seq: e.seq, what });
        }
        let b = &l.begin;
        for r in &b.inputs {
            if let Storage::Producer { seq, index } = r.storage {
                out.producer_refs += 1;
                match outputs.get(&(seq, index)) {
                    Some(h) if *h == r.hash => {}
                    Some(_) => out.problems.push(Problem {
                        seq: b.seq,
                        what: format!("input `{}` claims output {index} of launch {seq} but its hash differs", r.role),
                    }),
                    None => out.problems.push(Problem {
                        seq: b.seq,
                        what: format!("input `{}` refers to output {index} of launch {seq}, which is not on the tape", r.role),
                    }),
                }
            }
        }
        let layer = b.layer.unwrap_or(0);
        if matches!(b.stage, Stage::Qk | Stage::Pv | Stage::Attn) {
            for (which, role) in [(0usize, "k_cache"), (1, "v_cache")] {
                let Some(r) = b.inputs.iter().find(|r| r.role == role) else {
                    continue;
                };
                let rows = cache.get(&(layer, which));
                let Ok(bytes) = from_spans(r, &kv_out).map_or_else(|| src.bytes(r), Ok) else {
                    out.kv_reads_unchecked += 1;
                    continue;
                };
                let ctx = r.shape.first().copied().unwrap_or(0) as usize;
                let row_len = bytes.len().checked_div(ctx).unwrap_or(0);
                let mut checked = true;
                for p in 0..ctx {
                    let got = &bytes[p * row_len..(p + 1) * row_len];
                    match rows.and_then(|rs| rs.get(&(p as u64))) {
                        Some(w) if w.as_slice() == got => {}
                        Some(_) => {
                            // Every differing row, and whose data it holds when it is another row's.
                            out.problems.push(Problem {
                                seq: b.seq,
                                what: format!(
                                    "{} layer {layer} {}: {role} row {p} differs from what kv_write wrote there ({}){}",
                                    b.phase,
                                    b.stage,
                                    writers.wrote_at(layer, which, p),
                                    writers.holder(layer, which, got)
                                ),
                            });
                        }
                        None => {
                            checked = false;
                        }
                    }
                }
                if checked {
                    out.kv_reads_checked += 1
                } else {
                    out.kv_reads_unchecked += 1
                }
            }
        }
        if let Some(end) = &l.end {
            for (i, o) in end.outputs.iter().enumerate() {
                outputs.insert((b.seq, i as u32), o.hash);
            }
            if b.stage == Stage::KvWrite {
                let pos = u64::from(b.params.pos);
                for (which, o) in end.outputs.iter().enumerate().take(2) {
                    let rows = cache.entry((layer, which)).or_default();
                    let n = o.shape.first().copied().unwrap_or(0);
                    // A write at `pos` starts the cache over from there: later rows are stale.
                    rows.split_off(&pos);
                    match src.bytes(o) {
                        // The bytes hold n rows (checked against the shape), so n fits in usize.
                        Ok(bytes) if n > 0 => {
                            let rl = bytes.len() / n as usize;
                            for (i, row) in
                                bytes.chunks_exact(rl.max(1)).take(n as usize).enumerate()
                            {
                                let p = pos + i as u64;
                                writers.wrote(layer, which, p as usize, row, b.phase, b.seq);
                                rows.insert(p, row.to_vec());
                            }
                            kv_out.insert((b.seq, which as u32), bytes);
                        }
                        // Rows not captured stay unknown: nothing is kept for them.
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

/// The bytes of a tensor stored as row spans of kv_write outputs held in `kv_out`, checked against its
/// length and hash; None when it is stored otherwise, cites another output, or does not check out (then
/// the tape reader resolves it and reports what is wrong).
fn from_spans(r: &TensorRef, kv_out: &HashMap<(u64, u32), Vec<u8>>) -> Option<Vec<u8>> {
    let Storage::Rows(spans) = &r.storage else {
        return None;
    };
    let mut out = Vec::with_capacity(usize::try_from(r.len).ok()?);
    for sp in spans {
        let src = kv_out.get(&(sp.seq, sp.index))?;
        // kv_write outputs are [rows, width]: rows of equal length.
        let (row0, n) = (sp.row0, sp.rows);
        let total_rows = kv_rows(src.len(), r)?;
        let rl = src.len() / total_rows;
        let (a, b) = (
            usize::try_from(row0).ok()?.checked_mul(rl)?,
            usize::try_from(row0.checked_add(n)?)
                .ok()?
                .checked_mul(rl)?,
        );
        if b > src.len() || out.len() + (b - a) > r.len as usize {
            return None;
        }
        out.extend_from_slice(&src[a..b]);
    }
    (out.len() as u64 == r.len && blake3::hash(&out).as_bytes() == &r.hash).then_some(out)
}

/// Rows of a kv_write output of `len` bytes whose rows are as wide as those of cache tensor `r`.
fn kv_rows(len: usize, r: &TensorRef) -> Option<usize> {
    let ctx = usize::try_from(*r.shape.first()?).ok()?;
    let row = usize::try_from(r.len).ok()?.checked_div(ctx)?;
    (row > 0 && len % row == 0).then(|| len / row)
}
