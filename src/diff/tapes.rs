//! Tape against tape: where do two runs (two machines, commits, backends, routes) first diverge?
//!
//! Launches are aligned by (phase, layer, stage, occurrence), so tapes whose routes, backends or launch
//! shapes differ still line up stage by stage. Output hashes are compared first; tensor bytes are read
//! (decompressed) only for launches whose hashes differ.

use super::local::{BUDGET_BYTES, LocalErrors};
use super::params::{ParamDiff, describe_diff};
use super::significant::{InputDiff, Significance, Tracker, envelope_of};
use crate::analysis::Source;
use crate::analysis::{Compare, compare};
use crate::launch::{Phase, Stage};
use crate::tape::{Launch, TapeError, TapeReader};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One aligned pair that differs.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchDiff {
    /// Phase.
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: String,
    /// Launch in A.
    pub seq_a: u64,
    /// Launch in B.
    pub seq_b: u64,
    /// Route in A.
    pub route_a: String,
    /// Route in B.
    pub route_b: String,
    /// Element-wise figures (None when bytes were not captured: only the hashes differ).
    pub compare: Option<Compare>,
    /// A note (shape mismatch, hashes only).
    pub note: Option<String>,
}

/// Per-stage summary.
#[derive(Clone, Debug, Serialize, Default)]
pub struct StageRow {
    /// Stage.
    pub stage: String,
    /// Aligned launches.
    pub launches: usize,
    /// Of which differ.
    pub differing: usize,
    /// Worst ULP (same-sign values).
    pub max_ulp: u64,
    /// Sign flips over all its launches.
    pub sign_flips: usize,
    /// Worst |a-b|.
    pub max_abs: f64,
    /// Worst MAE.
    pub mae: f64,
}

/// The first divergence, flattened for scripts.
#[derive(Clone, Debug, Serialize)]
pub struct FirstDivergence {
    /// Phase.
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: String,
    /// Launch in A.
    pub seq_a: u64,
    /// Launch in B.
    pub seq_b: u64,
    /// Flat element index of the first differing element (None when only hashes are known).
    pub index: Option<usize>,
    /// Coordinates of it.
    pub coords: Option<Vec<usize>>,
    /// Value in A.
    pub value_a: Option<f64>,
    /// Value in B.
    pub value_b: Option<f64>,
    /// Worst ULP in that launch.
    pub max_ulp: u64,
    /// Worst |a-b| in that launch.
    pub max_abs: f64,
}

/// The first significant divergence: where and why (see [`super::significant`]).
#[derive(Clone, Debug, Serialize)]
pub struct FirstSignificant {
    /// Where.
    #[serde(flatten)]
    pub at: FirstDivergence,
    /// Why.
    #[serde(flatten)]
    pub why: Significance,
}

impl FirstDivergence {
    fn of(d: &LaunchDiff) -> FirstDivergence {
        let c = d.compare.as_ref();
        let f = c.and_then(|c| c.first.as_ref());
        FirstDivergence {
            phase: d.phase.clone(),
            layer: d.layer,
            stage: d.stage.clone(),
            seq_a: d.seq_a,
            seq_b: d.seq_b,
            index: f.map(|f| f.index),
            coords: f.map(|f| f.coords.clone()),
            value_a: f.map(|f| f.a),
            value_b: f.map(|f| f.b),
            max_ulp: c.map_or(0, |c| c.max_ulp),
            max_abs: c.map_or(0.0, |c| c.max_abs),
        }
    }
}

/// The result of a tape diff.
#[derive(Clone, Debug, Serialize)]
pub struct TapeDiff {
    /// First divergence in A's launch order, or None when every aligned output is identical.
    pub first_divergence: Option<FirstDivergence>,
    /// First launch whose difference is out of proportion to what it inherited (None: none is).
    pub first_significant: Option<FirstSignificant>,
    /// Aligned launches whose params, route, dtypes or shapes differ (whatever their outputs).
    pub param_diffs: Vec<ParamDiff>,
    /// Per-stage table.
    pub rows: Vec<StageRow>,
    /// Every differing aligned launch.
    pub launches: Vec<LaunchDiff>,
    /// Aligned launches compared.
    pub aligned: usize,
    /// Launches of A with no counterpart in B.
    pub only_a: usize,
    /// Launches of B with no counterpart in A.
    pub only_b: usize,
    /// Why comparing these two proves little, when it does.
    pub warning: Option<String>,
    /// What differs between the builds that recorded A and B (empty: same build).
    pub provenance: Vec<String>,
    /// How many launches the local-error rule measured, and why not the others (see `diff::local`).
    pub local_errors: String,
}

/// (phase, layer, stage, stage name, occurrence). The name tells apart the free-form stages of another
/// engine (all `Stage::Other`); for greta's stages it is the stage's own name.
type Key = (Phase, Option<u32>, Stage, String, usize);

fn keys(t: &TapeReader) -> Result<Vec<(Key, u64)>, TapeError> {
    let mut seen: HashMap<(Phase, Option<u32>, Stage, String), usize> = HashMap::new();
    let mut out = Vec::new();
    for e in t.entries() {
        let e = e?;
        let name = if e.stage == Stage::Other {
            t.launch(e.seq)?.begin.stage_name().to_string()
        } else {
            e.stage.name().to_string()
        };
        let n = seen
            .entry((e.phase, e.layer, e.stage, name.clone()))
            .or_default();
        out.push(((e.phase, e.layer, e.stage, name, *n), e.seq));
        *n += 1;
    }
    Ok(out)
}

/// What differs between the builds that recorded A and B (see [`crate::tape::Provenance`]): empty when
/// both tapes carry the same provenance. A tape without provenance is named with why it has none: format
/// version 1 predates it; another engine's tape (open capture) records the engine, not a greta build.
pub fn provenance_diff(a: &TapeReader, b: &TapeReader) -> Vec<String> {
    let why = |t: &TapeReader| match (&t.header().engine, t.version()) {
        (_, 1) => "format version 1".to_string(),
        (Some(e), _) => format!("written by {} through the capture API", e.name),
        (None, v) => format!("format version {v}"),
    };
    let may = "the builds may differ";
    match (&a.header().provenance, &b.header().provenance) {
        (Some(pa), Some(pb)) => crate::tape::Provenance::differences(pa, pb),
        (None, None) if why(a) == why(b) => {
            vec![format!(
                "neither tape records its build ({}): {may}",
                why(a)
            )]
        }
        (None, None) => vec![format!(
            "neither tape records its build (A: {}; B: {}): {may}",
            why(a),
            why(b)
        )],
        (None, Some(_)) => vec![format!("A does not record its build ({}): {may}", why(a))],
        (Some(_), None) => vec![format!("B does not record its build ({}): {may}", why(b))],
    }
}

/// Explains when A and B are the same computation (comparing a run with itself proves nothing), or the same
/// inputs run by different builds; `equal` says whether all their outputs were equal (what the second
/// case shows depends on it).
pub fn same_computation(a: &TapeReader, b: &TapeReader, equal: bool) -> Option<String> {
    let (ha, hb) = (a.header(), b.header());
    let same = ha.model.blake3 == hb.model.blake3
        && ha.prompt_tokens == hb.prompt_tokens
        && ha.routes == hb.routes
        && ha.backend == hb.backend
        && ha.options_json == hb.options_json
        && ha.engine == hb.engine;
    if !same {
        return None;
    }
    let builds = provenance_diff(a, b);
    if !builds.is_empty() {
        return Some(format!(
            "A and B ran the same model, prompt, routes, backend and options on different or unknown builds ({}): {}",
            builds.join("; "),
            if equal {
                "their equal outputs show those builds compute the same bits for this run"
            } else {
                "their outputs differ: those builds compute different bits for this run (or one is nondeterministic)"
            }
        ));
    }
    let mut differ = Vec::new();
    if ha.threads != hb.threads {
        differ.push(format!("threads {} vs {}", ha.threads, hb.threads));
    }
    if ha.device != hb.device {
        differ.push(format!("device `{}` vs `{}`", ha.device, hb.device));
    }
    Some(if differ.is_empty() {
        "A and B are the same computation (same build, model, prompt, routes, backend, options): equal outputs \
         only show that the run is repeatable, not that it is right"
            .to_string()
    } else {
        format!(
            "A and B are the same computation (same build) except {}: a difference means nondeterminism; \
             equality proves determinism, not correctness",
            differ.join(", ")
        )
    })
}

/// Diffs two tapes.
pub fn diff(a: &TapeReader, b: &TapeReader) -> Result<TapeDiff, TapeError> {
    let (ka, kb) = (keys(a)?, keys(b)?);
    let bmap: HashMap<Key, u64> = kb.iter().cloned().collect();
    let (sa, sb) = (Source::new(a, None), Source::new(b, None));
    let mut rows: BTreeMap<(Stage, String), StageRow> = BTreeMap::new();
    let mut launches = Vec::new();
    let mut first = None;
    let mut significant = None;
    let mut tracker = Tracker::default();
    let mut judged: HashMap<usize, (f64, f64)> = HashMap::new();
    let mut param_diffs = Vec::new();
    let mut aligned = 0;
    for (key, seq_a) in &ka {
        let Some(&seq_b) = bmap.get(key) else {
            continue;
        };
        aligned += 1;
        tracker.align(*seq_a, seq_b);
        let (la, lb) = (a.launch(*seq_a)?, b.launch(seq_b)?);
        let row = rows
            .entry((key.2, key.3.clone()))
            .or_insert_with(|| StageRow {
                stage: key.3.clone(),
                ..StageRow::default()
            });
        row.launches += 1;
        let (oa, ob) = (outs(&la), outs(&lb));
        let what = describe_diff(&la.begin, &lb.begin, oa, ob);
        if !what.is_empty() {
            param_diffs.push(ParamDiff {
                phase: key.0.to_string(),
                layer: key.1,
                stage: key.2.name().into(),
                seq_a: *seq_a,
                seq_b,
                what,
            });
        }
        if oa.iter().map(|r| r.hash).eq(ob.iter().map(|r| r.hash)) && !oa.is_empty() {
            continue; // hash fast path
        }
        row.differing += 1;
        let mut d = LaunchDiff {
            phase: key.0.to_string(),
            layer: key.1,
            stage: key.3.clone(),
            seq_a: *seq_a,
            seq_b,
            route_a: la.begin.route_name(),
            route_b: lb.begin.route_name(),
            compare: None,
            note: None,
        };
        if oa.is_empty() || ob.is_empty() {
            d.note = Some("no outputs recorded on one side (incomplete launch)".into());
        } else if let (Ok(ba), Ok(bb)) = (sa.bytes(&oa[0]), sb.bytes(&ob[0])) {
            if oa[0].shape != ob[0].shape {
                d.note = Some(format!(
                    "shapes differ: {:?} vs {:?}",
                    oa[0].shape, ob[0].shape
                ));
            } else {
                let c = compare(oa[0].dtype, &ba, ob[0].dtype, &bb, &oa[0].shape);
                if oa[0].dtype != ob[0].dtype && c.differing == 0 && c.nonfinite_mismatch == 0 {
                    // Same values in two formats (an f32 tape against an f64 one where f32 was exact):
                    // not a divergence, and nothing to inherit.
                    row.differing -= 1;
                    tracker.set(*seq_a, 0.0);
                    continue;
                }
                let env = envelope_of(la.begin.route, lb.begin.route);
                let differ = input_diffs(&la, &lb, &sa, &sb, &tracker);
                let verdict =
                    tracker.judge(*seq_a, &la.begin.inputs, oa[0].dtype, &c, env, &differ);
                judged.insert(launches.len(), (tracker.inherited(&la.begin.inputs), env));
                if significant.is_none() {
                    significant = verdict.map(|why| (launches.len(), why));
                }
                row.max_ulp = row.max_ulp.max(c.max_ulp);
                row.sign_flips += c.sign_flips;
                row.max_abs = row.max_abs.max(c.max_abs);
                row.mae = row.mae.max(c.mae);
                d.compare = Some(c);
            }
        } else {
            d.note = Some("hashes differ; bytes not captured on one side".into());
        }
        if d.compare.is_none() {
            // Not compared: pass on what it inherited.
            tracker.set(*seq_a, tracker.inherited(&la.begin.inputs));
        }
        if first.is_none() {
            first = Some(FirstDivergence::of(&d));
        }
        launches.push(d);
    }
    // The local-error rule over the compared launches of both tapes: the earlier of its first verdict and
    // the inherited rule's is the first significant launch.
    let compared = |side: fn(&LaunchDiff) -> u64| -> Vec<u64> {
        launches
            .iter()
            .filter(|d| d.compare.is_some())
            .map(side)
            .collect()
    };
    let mut budget = BUDGET_BYTES;
    let local_a = LocalErrors::measure(a, &compared(|d| d.seq_a), &mut budget)?;
    let local_b = LocalErrors::measure(b, &compared(|d| d.seq_b), &mut budget)?;
    let by_local = launches.iter().enumerate().find_map(|(i, d)| {
        let v = local_a
            .verdict(d.seq_a, "A")
            .or_else(|| local_b.verdict(d.seq_b, "B"))?;
        Some((i, v))
    });
    super::local::fold_into(
        &mut significant,
        by_local,
        &judged,
        |i| launches[i].compare.as_ref().map_or(0.0, |c| c.rel_l2),
        |i| launches[i].stage.to_string(),
    );
    let equal = first.is_none() && launches.is_empty();
    Ok(TapeDiff {
        local_errors: LocalErrors::note(&[&local_a, &local_b]),
        first_divergence: first,
        first_significant: significant.map(|(i, why)| FirstSignificant {
            at: FirstDivergence::of(&launches[i]),
            why,
        }),
        param_diffs,
        rows: rows.into_values().collect(),
        launches,
        aligned,
        only_a: ka.len() - aligned,
        only_b: kb.len() - aligned,
        warning: same_computation(a, b, equal),
        provenance: provenance_diff(a, b),
    })
}

/// The inputs of `la` whose bytes differ from `lb`'s input of the same role (by hash, however each was
/// recorded), measured when both sides' bytes can be read. Launches of the same stage that compute
/// different ops (llama.cpp's `attn_norm` is the `mul` by the norm weight after a separate `rms_norm`;
/// greta's is one `rms_norm`) have inputs that are different things under the same role name: nothing
/// is compared then.
fn input_diffs(la: &Launch, lb: &Launch, sa: &Source, sb: &Source, t: &Tracker) -> Vec<InputDiff> {
    let op = |l: &Launch| crate::ops::stages::op_for(l.begin.stage, l.begin.foreign.as_ref());
    if op(la) != op(lb) {
        return Vec::new();
    }
    let (ia, ib) = (&la.begin.inputs, &lb.begin.inputs);
    ia.iter()
        .enumerate()
        .filter_map(|(i, ra)| {
            let rb = ib
                .iter()
                .find(|r| r.role == ra.role)
                .or_else(|| ib.get(i))?;
            if ra.hash == rb.hash {
                return None;
            }
            let err = match (sa.bytes(ra), sb.bytes(rb)) {
                (Ok(x), Ok(y))
                    if ra.shape == rb.shape
                        && crate::analysis::values(ra.dtype, &x).is_some()
                        && crate::analysis::values(rb.dtype, &y).is_some() =>
                {
                    let c = compare(ra.dtype, &x, rb.dtype, &y, &ra.shape);
                    Some(if c.nonfinite_mismatch > 0 {
                        f64::INFINITY
                    } else {
                        c.rel_l2
                    })
                }
                _ => None,
            };
            Some(InputDiff {
                role: ra.role.clone(),
                err,
                produced: t.produced(ra, false).or_else(|| t.produced(rb, true)),
            })
        })
        .collect()
}

fn outs(l: &Launch) -> &[crate::tape::TensorRef] {
    l.end.as_ref().map(|e| e.outputs.as_slice()).unwrap_or(&[])
}
