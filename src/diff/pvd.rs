//! Prefill against decode inside one tape: does decode at position K compute what prefill computed for
//! row K? Row K of every prefill launch (default: the last prompt row) is compared with the decode launch
//! that ran position K at the same layer and stage — shape-aligned: `[n, X]` outputs give row K,
//! attention scores `[H, n, ctx]` give `[H, K+1]` (the keys row K may see).
//!
//! A decode launch at the last prompt position exists when the tape was recorded with
//! `--probe-last-token` (decode step 0 re-runs the last prompt token at its own position). Prefill's
//! manual attention ends in `pv`, decode's fused attention in `attn`: those two are compared as the
//! attention output; `qk` and `softmax` have no decode counterpart then and are listed as such.

use super::local::{BUDGET_BYTES, LocalErrors};
use super::params::ParamDiff;
use super::significant::{InputDiff, Significance, Tracker, envelope_of};
use crate::analysis::Source;
use crate::analysis::compare::{Compare, compare_values};
use crate::analysis::values;
use crate::launch::{Phase, Stage};
use crate::tape::{Launch, TapeReader};
use serde::Serialize;
use std::collections::HashMap;

/// One (layer, stage) comparison.
#[derive(Clone, Debug, Serialize)]
pub struct PvdRow {
    /// Layer.
    pub layer: Option<u32>,
    /// Stage (prefill's name; decode's when it differs is in `decode_stage`).
    pub stage: String,
    /// Decode's stage when it differs (fused attention).
    pub decode_stage: String,
    /// Prefill launch.
    pub seq_prefill: u64,
    /// Decode launch.
    pub seq_decode: Option<u64>,
    /// Routes: prefill, decode.
    pub routes: (String, String),
    /// Bit-identical.
    pub equal: bool,
    /// Figures (None when no counterpart or bytes missing).
    pub compare: Option<Compare>,
    /// Why not compared.
    pub note: Option<String>,
}

/// A significant row and why.
#[derive(Clone, Debug, Serialize)]
pub struct PvdSignificant {
    /// Where.
    #[serde(flatten)]
    pub at: PvdRow,
    /// Why.
    #[serde(flatten)]
    pub why: Significance,
}

/// The result.
#[derive(Clone, Debug, Serialize)]
pub struct Pvd {
    /// The position compared.
    pub row: usize,
    /// The decode phase that ran that position.
    pub decode_phase: String,
    /// The first (layer, stage) in forward order whose row differs.
    pub first_divergence: Option<PvdRow>,
    /// The first whose difference is out of proportion to what it inherited (see `diff::significant`).
    pub first_significant: Option<PvdSignificant>,
    /// Every comparison, in forward order.
    pub rows: Vec<PvdRow>,
    /// Decode launches whose params contradict prefill's (rows, position and key block aside) or whose
    /// `pos` is not the position their phase runs.
    pub param_diffs: Vec<ParamDiff>,
    /// How many launches the local-error rule measured, and why not the others (see `diff::local`).
    pub local_errors: String,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PvdError {
    /// The tape could not be read.
    #[error(transparent)]
    Tape(#[from] crate::tape::TapeError),
    /// No decode launch ran position K.
    #[error(
        "no decode launch ran position {0}: record with --probe-last-token to make decode step 0 re-run the last prompt token at its own position"
    )]
    NoDecodeAtRow(usize),
    /// No prefill launch covers K.
    #[error("prefill covers positions 0..{n}; row {row} is outside it")]
    RowOutside {
        /// Prompt length.
        n: usize,
        /// Row asked.
        row: usize,
    },
}

/// The rows of an output for position `k` as values: launch covers positions `pos..pos+rows`.
fn slice(l: &Launch, src: &Source, k: usize) -> Result<(crate::launch::DType, Vec<f64>), String> {
    slice_at(l, src, k, l.begin.params.pos as usize)
}

/// [`slice`] for a launch whose rows start at position `start` (its recorded `pos` unless that is wrong).
fn slice_at(
    l: &Launch,
    src: &Source,
    k: usize,
    start: usize,
) -> Result<(crate::launch::DType, Vec<f64>), String> {
    let end = l.end.as_ref().ok_or("no outputs recorded")?;
    let o = end.outputs.first().ok_or("no outputs")?;
    let bytes = src.bytes(o).map_err(|e| e.to_string())?;
    let v = values(o.dtype, &bytes).ok_or("not a float tensor")?;
    let p = &l.begin.params;
    let i = k
        .checked_sub(start)
        .filter(|&i| i < p.rows as usize)
        .ok_or("row not in launch")?;
    let shape: Vec<usize> = o.shape.iter().map(|&d| d as usize).collect();
    let out = match (l.begin.stage, shape.as_slice()) {
        (Stage::Qk | Stage::Softmax, &[h, n, ctx]) => {
            let keep = (k + 1).min(ctx);
            (0..h)
                .flat_map(|hh| v[(hh * n + i) * ctx..][..keep].to_vec())
                .collect()
        }
        (_, s) if s.len() >= 2 => {
            let w = *s.last().unwrap_or(&1);
            v[i * w..(i + 1) * w].to_vec()
        }
        (_, [n]) if *n == p.rows as usize => vec![v[i]],
        _ => return Err(format!("cannot slice shape {:?}", o.shape)),
    };
    Ok((o.dtype, out))
}

/// The activation inputs of `l` recorded as copies: prefill-vs-decode follows producers only, so what a
/// copy carried is unknown (not "identical"), and the inherited rule gives no verdict on the launch.
fn copied(l: &Launch) -> Vec<InputDiff> {
    use crate::tape::Storage;
    l.begin
        .inputs
        .iter()
        .filter(|r| !matches!(r.role.as_str(), "w" | "table" | "ids"))
        .filter(|r| matches!(r.storage, Storage::Chunks(_) | Storage::HashOnly))
        .map(|r| InputDiff {
            role: r.role.clone(),
            err: None,
            produced: None,
        })
        .collect()
}

/// Compares prefill's row `row` (default: last prompt row) with the decode launch at that position.
pub fn prefill_vs_decode(t: &TapeReader, row: Option<usize>) -> Result<Pvd, PvdError> {
    let src = Source::new(t, None);
    let n = t.header().prompt_tokens.len();
    let k = row.unwrap_or(n.saturating_sub(1));
    if k >= n {
        return Err(PvdError::RowOutside { n, row: k });
    }
    // Decode launches by (layer, stage) whose rows cover position k: the first decode phase that does.
    let mut decode: HashMap<(Option<u32>, Stage), u64> = HashMap::new();
    let mut decode_phase = None;
    let mut prefill = Vec::new();
    for e in t.entries() {
        let e = e?;
        // Another engine's free-form stages have no counterpart by (layer, stage): not compared.
        if e.stage == Stage::Other {
            continue;
        }
        match e.phase {
            Phase::Prefill => prefill.push(e),
            p => {
                if decode_phase.is_some_and(|dp| dp != p) {
                    continue;
                }
                if decode_phase.is_none() {
                    let l = t.launch(e.seq)?;
                    if l.begin.params.pos as usize != k {
                        continue;
                    }
                    decode_phase = Some(p);
                }
                decode.insert((e.layer, e.stage), e.seq);
            }
        }
    }
    let dp = decode_phase.ok_or(PvdError::NoDecodeAtRow(k))?;
    let mut rows = Vec::new();
    let mut tracker = Tracker::default();
    let mut significant = None;
    let mut param_diffs = Vec::new();
    let mut judged: HashMap<usize, (f64, f64)> = HashMap::new();
    for e in &prefill {
        let lp = t.launch(e.seq)?;
        let p = &lp.begin.params;
        if !(p.pos as usize..(p.pos + p.rows) as usize).contains(&k) {
            continue;
        }
        let dstage = match e.stage {
            Stage::Pv if !decode.contains_key(&(e.layer, Stage::Pv)) => Stage::Attn,
            s => s,
        };
        let mut r = PvdRow {
            layer: e.layer,
            stage: e.stage.name().into(),
            decode_stage: dstage.name().into(),
            seq_prefill: e.seq,
            seq_decode: decode.get(&(e.layer, dstage)).copied(),
            routes: (lp.begin.route_name(), String::new()),
            equal: false,
            compare: None,
            note: None,
        };
        match r.seq_decode {
            None => {
                r.note = Some(format!(
                    "no {dstage} launch at this position in {dp} (decode used another attention route)"
                ))
            }
            Some(sd) => {
                let ld = t.launch(sd)?;
                r.routes.1 = ld.begin.route_name();
                // The decode launch runs position k (one row): a recorded pos that says otherwise is named
                // (issue 28: it printed "row not in launch" and blamed kv_write), and its row compared.
                let mut what: Vec<String> =
                    super::params::params(&lp.begin.params, &ld.begin.params)
                        .into_iter()
                        .filter(|w| {
                            !["rows ", "pos ", "kv_block "]
                                .iter()
                                .any(|f| w.starts_with(f))
                        })
                        .collect();
                let dpos = ld.begin.params.pos as usize;
                let start = if ld.begin.params.rows == 1 && dpos != k {
                    what.insert(0, format!("pos {dpos}, but {dp} runs position {k}"));
                    k
                } else {
                    dpos
                };
                if !what.is_empty() {
                    param_diffs.push(ParamDiff {
                        phase: dp.to_string(),
                        layer: e.layer,
                        stage: dstage.name().into(),
                        seq_a: e.seq,
                        seq_b: sd,
                        what,
                    });
                }
                match (slice(&lp, &src, k), slice_at(&ld, &src, k, start)) {
                    (Ok((da, va)), Ok((_, vb))) => {
                        let bits = va.len() == vb.len()
                            && va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits());
                        let c = compare_values(da, &va, &vb, &[va.len() as u64], bits);
                        r.equal = bits;
                        let env = envelope_of(lp.begin.route, ld.begin.route);
                        let v = tracker.judge(e.seq, &lp.begin.inputs, da, &c, env, &copied(&lp));
                        judged.insert(rows.len(), (tracker.inherited(&lp.begin.inputs), env));
                        if significant.is_none() {
                            significant = v.map(|why| (rows.len(), why));
                        }
                        r.compare = Some(c);
                    }
                    (Err(e), _) | (_, Err(e)) => r.note = Some(e),
                }
            }
        }
        if r.compare.is_none() {
            tracker.set(e.seq, tracker.inherited(&lp.begin.inputs));
        }
        rows.push(r);
    }
    let first = rows
        .iter()
        .find(|r| r.compare.is_some() && !r.equal)
        .cloned();
    // The local-error rule over the launches compared (prefill's and decode's, one tape).
    let mut seqs: Vec<u64> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.compare.as_ref().is_some_and(|_| !r.equal))
    {
        seqs.push(r.seq_prefill);
        seqs.extend(r.seq_decode);
    }
    let mut budget = BUDGET_BYTES;
    let local = LocalErrors::measure(t, &seqs, &mut budget)?;
    let by_local = rows.iter().enumerate().find_map(|(i, r)| {
        if r.equal || r.compare.is_none() {
            return None;
        }
        let v = local
            .verdict(r.seq_prefill, "prefill")
            .or_else(|| local.verdict(r.seq_decode?, "decode"))?;
        Some((i, v))
    });
    super::local::fold_into(
        &mut significant,
        by_local,
        &judged,
        |i| rows[i].compare.as_ref().map_or(0.0, |c| c.rel_l2),
        |i| rows[i].stage.to_string(),
    );
    Ok(Pvd {
        param_diffs,
        local_errors: LocalErrors::note(&[&local]),
        row: k,
        decode_phase: dp.to_string(),
        first_divergence: first,
        first_significant: significant.map(|(i, why)| PvdSignificant {
            at: rows[i].clone(),
            why,
        }),
        rows,
    })
}
