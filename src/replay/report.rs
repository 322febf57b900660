//! The replay report: for each selected launch, replay on its own (or a forced) route, the local error
//! against the f64 reference on the exact recorded inputs, the inherited error against an f64 run of the
//! whole model, and optionally the route matrix.

use crate::analysis::exec::{Recorded, ReplayError, against, execute, inputs, recorded, reference};
use crate::analysis::heads::{HeadRow, Side, by_head, compare_heads};
use crate::analysis::substage::{self, DERIVED_ROUTE};
use crate::analysis::{Compare, FirstDiff};
use crate::analysis::{Source, hex, values};
use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::launch::{Precision, Route, Stage};
use crate::tape::Launch;
use serde::Serialize;
use std::sync::Arc;

/// What a replay row of a derived sub-stage adds.
#[derive(Clone, Debug, Serialize)]
pub struct DerivedInfo {
    /// The fused launch the sub-stage was derived from.
    pub from_seq: u64,
    /// Always [`DERIVED_ROUTE`].
    pub route: String,
    /// Backend and route the manual sub-stages ran on.
    pub computed_on: String,
    /// blake3 of the derived sub-stage's output.
    pub hash: String,
    /// pv only: the derived pv against the fused launch's recorded output (fused ≠ manual shows here).
    pub vs_fused: Option<Compare>,
}

/// Folds several outputs' comparisons into one (worst case of each figure).
pub fn merge(cs: &[Compare]) -> Compare {
    let mut m = Compare {
        bit_exact: true,
        ..Compare::default()
    };
    let mut mae_n = 0.0;
    for c in cs {
        m.n += c.n;
        m.bit_exact &= c.bit_exact;
        m.differing += c.differing;
        m.max_ulp = m.max_ulp.max(c.max_ulp);
        m.max_abs = m.max_abs.max(c.max_abs);
        m.rel_l2 = m.rel_l2.max(c.rel_l2);
        m.nonfinite_mismatch += c.nonfinite_mismatch;
        mae_n += c.mae * c.n as f64;
        if m.first.is_none() {
            m.first = c.first.clone();
        }
    }
    m.mae = if m.n > 0 { mae_n / m.n as f64 } else { 0.0 };
    m
}

/// One route of the route matrix.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixCell {
    /// Route.
    pub route: String,
    /// Backend.
    pub backend: String,
    /// Against the recorded output.
    pub vs_recorded: Option<Compare>,
    /// Against the f64 reference on the same inputs.
    pub vs_f64: Option<Compare>,
    /// Why it could not run.
    pub error: Option<String>,
}

/// One replayed launch.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Launch number.
    pub seq: u64,
    /// Phase.
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage.
    pub stage: String,
    /// Route recorded.
    pub route: String,
    /// Route replayed.
    pub replay_route: String,
    /// Backend replayed on.
    pub backend: String,
    /// blake3 of the recorded output 0.
    pub recorded_hash: String,
    /// blake3 of the replayed output 0.
    pub replayed_hash: String,
    /// Replay reproduced the recorded bits.
    pub bit_exact: bool,
    /// Replay vs recorded: max ULP.
    pub max_ulp: u64,
    /// Replay vs recorded: max |difference|.
    pub max_abs: f64,
    /// Replay vs recorded: mean |difference|.
    pub mae: f64,
    /// Replay vs recorded: relative L2.
    pub rel_l2: f64,
    /// First differing element.
    pub first: Option<FirstDiff>,
    /// Recorded vs f64 reference on the recorded inputs (this launch's own error).
    pub local: Option<Compare>,
    /// The relative L2 local error its stage and route may have (`analysis::bounds::local_bound`);
    /// set with `local`.
    pub local_bound: Option<f64>,
    /// Recorded vs the same stage of an f64 run of the whole model (error inherited from upstream plus local).
    pub inherited: Option<Compare>,
    /// Route matrix (--all-routes).
    pub matrix: Vec<MatrixCell>,
    /// The engine's own kernel from a plugin (--kernels), against the recorded output and the f64 reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<MatrixCell>,
    /// Why the replay failed.
    pub error: Option<String>,
    /// A remark that is not a failure, e.g. "no reference for <stage>" on another engine's launch.
    pub note: Option<String>,
    /// Set when the row is a sub-stage derived from a fused attention launch (route `fused→manual`).
    pub derived: Option<DerivedInfo>,
    /// The query heads the figures are restricted to (empty: the whole tensor).
    pub heads: Vec<usize>,
    /// One comparison per head (--by-head).
    pub by_head: Vec<HeadRow>,
}

/// What to compute besides the plain replay.
#[derive(Clone)]
pub struct ReplayOptions {
    /// Backend to replay on.
    pub backend: Arc<dyn Backend>,
    /// Replay on this route instead of the recorded one.
    pub route: Option<Route>,
    /// Compute the f64 reference on the recorded inputs.
    pub reference: bool,
    /// Compute the route matrix.
    pub all_routes: bool,
    /// Also run the engine's own kernel from this plugin (--kernels).
    pub kernels: Option<Arc<super::plugin::Plugin>>,
    /// Restrict the figures to these query heads' slices (empty: the whole tensor).
    pub heads: Vec<usize>,
    /// One comparison per head as well.
    pub by_head: bool,
}

fn outputs_vs(rec: &[Recorded], outs: &[crate::launch::Tensor]) -> Compare {
    merge(
        &rec.iter()
            .zip(outs)
            .map(|(r, t)| against(r, t))
            .collect::<Vec<_>>(),
    )
}

/// Replays one launch.
pub fn replay_one(src: &Source, l: &Launch, o: &ReplayOptions) -> Row {
    replay_sub(src, l, None, o)
}

/// Decoded values of a tensor: (format, values, shape).
type Vals = (crate::launch::DType, Vec<f64>, Vec<u64>);

fn rec_vals(r: &Recorded) -> Option<Vals> {
    Some((
        r.dtype,
        values(r.dtype, r.bytes.as_ref()?)?,
        r.shape.clone(),
    ))
}

fn t_vals(t: &crate::launch::Tensor) -> Option<Vals> {
    Some((
        t.dtype,
        values(t.dtype, t.host_bytes()?.as_slice())?,
        t.shape.iter().map(|&d| d as u64).collect(),
    ))
}

/// `pairs` (A, B per output) restricted to `heads` (merged over outputs), and per head when asked.
fn per_head(
    stage: Stage,
    params: &crate::launch::Params,
    pairs: &[(Option<Vals>, Option<Vals>)],
    heads: &[usize],
    want_by_head: bool,
) -> Result<(Option<Compare>, Vec<HeadRow>), String> {
    let mut sliced = Vec::new();
    let mut rows: Vec<HeadRow> = Vec::new();
    for (a, b) in pairs {
        let (Some((da, va, shape)), Some((db, vb, _))) = (a, b) else {
            return Err("head slices need the output bytes (this one has only its hash)".into());
        };
        let (sa, sb) = (
            Side {
                dtype: *da,
                values: va,
            },
            Side {
                dtype: *db,
                values: vb,
            },
        );
        if !heads.is_empty() {
            sliced.push(
                compare_heads(stage, params, shape, &sa, &sb, heads).map_err(|e| e.to_string())?,
            );
        }
        if want_by_head {
            let hr = by_head(stage, params, shape, &sa, &sb).map_err(|e| e.to_string())?;
            if rows.is_empty() {
                rows = hr;
            } else {
                for (r, h) in rows.iter_mut().zip(hr) {
                    r.compare = merge(&[r.compare.clone(), h.compare]);
                }
            }
        }
    }
    let c = (!heads.is_empty()).then(|| merge(&sliced));
    Ok((c, rows))
}

/// Replays one launch; with `sub`, the sub-stage `sub` derived from fused attention launch `l`.
pub fn replay_sub(src: &Source, l: &Launch, sub: Option<Stage>, o: &ReplayOptions) -> Row {
    let b = &l.begin;
    let route = o.route.unwrap_or_else(|| super::foreign::replay_route(b));
    let mut row = Row {
        seq: b.seq,
        phase: b.phase.to_string(),
        layer: b.layer,
        stage: match sub {
            Some(s) => s.name().to_string(),
            None => b.stage_name().to_string(),
        },
        route: b.route_name(),
        replay_route: route.to_string(),
        backend: o.backend.name().to_string(),
        recorded_hash: l
            .end
            .as_ref()
            .and_then(|e| e.outputs.first())
            .map(|r| hex(&r.hash))
            .unwrap_or_default(),
        replayed_hash: String::new(),
        bit_exact: false,
        max_ulp: 0,
        max_abs: 0.0,
        mae: 0.0,
        rel_l2: 0.0,
        first: None,
        local: None,
        local_bound: None,
        inherited: None,
        matrix: Vec::new(),
        plugin: None,
        error: None,
        note: None,
        derived: None,
        heads: o.heads.clone(),
        by_head: Vec::new(),
    };
    // References that verify would reject (a loop, chunks that do not add up, absurd counts) make the
    // launch damaged before anything is read (issue 21: such launches were called bit-exact).
    let damage = crate::analysis::sanity::reference_problems(src.tape, l);
    if !damage.is_empty() {
        row.error = Some(format!(
            "{}launch {}: {} (run `greta verify`)",
            crate::analysis::exec::DAMAGED,
            b.seq,
            damage.join("; ")
        ));
        return row;
    }
    // Another engine's launch (open capture): its own kernel cannot run here. Without --route nothing
    // is replayed; the f64 reference runs greta's kernel for the stage, when greta knows the stage.
    let foreign = b.foreign.is_some();
    // The op the launch computes (its stage's, or the one its engine named): what the reference judges.
    let judged = crate::ops::stages::op_for(b.stage, b.foreign.as_ref()).is_some();
    if let Some(f) = &b.foreign {
        row.stage = f.stage.clone();
        row.route = f.route.clone();
        if !judged {
            row.replay_route = "-".into();
            row.note = Some(format!(
                "no reference for {}: greta does not know its op{} (kept and diffed by hash only)",
                f.stage,
                f.op.as_deref()
                    .map(|o| format!(" `{o}`"))
                    .unwrap_or_default()
            ));
            return row;
        }
        if o.route.is_none() {
            row.replay_route = "-".into();
        }
        let mut problems = crate::analysis::sanity::launch_problems(l);
        problems.extend(crate::analysis::sanity::contract_problem(l));
        if !problems.is_empty() {
            row.replay_route = "-".into();
            row.note = Some(format!(
                "no reference for {}: its recorded tensors do not fit greta's contract ({})",
                f.stage,
                problems.join("; ")
            ));
            return row;
        }
    }
    let result = (|| -> Result<(), ReplayError> {
        if !judged {
            return Err(ReplayError::NoReference(b.stage_name().to_string()));
        }
        let ins = inputs(src, l)?;
        let rec = recorded(src, l)?;
        let replay = !foreign || o.route.is_some();
        let outs = if replay {
            execute(l, &ins, o.backend.as_ref(), route)?
        } else {
            Vec::new()
        };
        let c = if replay {
            outputs_vs(&rec, &outs)
        } else {
            Compare::default()
        };
        row.replayed_hash = outs
            .first()
            .and_then(|t| t.host_bytes())
            .map(|b| blake3::hash(b.as_slice()).to_hex().to_string())
            .unwrap_or_default();
        row.bit_exact = c.bit_exact;
        row.max_ulp = c.max_ulp;
        row.max_abs = c.max_abs;
        row.mae = c.mae;
        row.rel_l2 = c.rel_l2;
        row.first = c.first;
        if let Some(s) = sub {
            return derived_row(&mut row, l, &ins, &rec, s, route.precision, o);
        }
        if !o.heads.is_empty() || o.by_head {
            let pairs: Vec<_> = rec
                .iter()
                .zip(&outs)
                .map(|(r, t)| (rec_vals(r), t_vals(t)))
                .collect();
            let (c, hr) =
                per_head(b.stage, &b.params, &pairs, &o.heads, o.by_head).map_err(|e| {
                    ReplayError::Backend {
                        seq: b.seq,
                        source: crate::backend::BackendError::Device(e),
                    }
                })?;
            if let Some(c) = c {
                row.bit_exact = c.bit_exact;
                row.max_ulp = c.max_ulp;
                row.max_abs = c.max_abs;
                row.mae = c.mae;
                row.rel_l2 = c.rel_l2;
                row.first = c.first;
            }
            row.by_head = hr;
        }
        let need_ref = o.reference || o.all_routes;
        let reference = if need_ref {
            Some(reference(l, &ins)?)
        } else {
            None
        };
        if let (Some(r), true) = (&reference, o.reference) {
            row.local = Some(outputs_vs(&rec, r));
            row.local_bound = Some(crate::analysis::bounds::local_bound(b.stage, b.route));
            if !o.heads.is_empty() {
                let pairs: Vec<_> = rec
                    .iter()
                    .zip(r)
                    .map(|(a, t)| (rec_vals(a), t_vals(t)))
                    .collect();
                if let Ok((Some(c), _)) = per_head(b.stage, &b.params, &pairs, &o.heads, false) {
                    row.local = Some(c);
                }
            }
        }
        if o.all_routes {
            let as_rec: Option<Vec<Recorded>> = reference.as_ref().map(|r| {
                r.iter()
                    .map(|t| Recorded {
                        dtype: t.dtype,
                        shape: t.shape.iter().map(|&d| d as u64).collect(),
                        hash: *blake3::hash(t.host_bytes().map(|b| b.as_slice()).unwrap_or(&[]))
                            .as_bytes(),
                        bytes: t.host_bytes().map(|b| b.as_slice().to_vec()),
                    })
                    .collect()
            });
            let mut backends: Vec<Arc<dyn Backend>> = vec![o.backend.clone()];
            if o.backend.name() != "cpu" {
                backends.push(Arc::new(CpuBackend::new(0)));
            }
            for be in backends {
                // The backend's routes, and on a fused launch also the manual route on its inputs
                // (qk → softmax → pv, derived: see substage.rs).
                let mut routes = be.routes(b.stage);
                if b.stage == Stage::Attn {
                    routes.extend(be.routes(Stage::Qk));
                }
                for r in routes {
                    let run =
                        if b.stage == Stage::Attn && r.variant == crate::launch::Variant::Manual {
                            substage::derive(l, &ins, be.as_ref(), r.precision).map(|d| vec![d.pv])
                        } else {
                            execute(l, &ins, be.as_ref(), r)
                        };
                    let cell = match run {
                        Ok(outs) => MatrixCell {
                            route: r.to_string(),
                            backend: be.name().to_string(),
                            vs_recorded: Some(outputs_vs(&rec, &outs)),
                            // The f64 reference as A, so ULPs are counted in the reference's format only
                            // when the route is f64; otherwise in the route's format.
                            vs_f64: as_rec.as_ref().map(|refs| {
                                merge(
                                    &refs
                                        .iter()
                                        .zip(&outs)
                                        .map(|(rf, t)| {
                                            let tb = t
                                                .host_bytes()
                                                .map(|b| b.as_slice().to_vec())
                                                .unwrap_or_default();
                                            crate::analysis::compare(
                                                t.dtype,
                                                &tb,
                                                rf.dtype,
                                                rf.bytes.as_deref().unwrap_or(&[]),
                                                &rf.shape,
                                            )
                                        })
                                        .collect::<Vec<_>>(),
                                )
                            }),
                            error: None,
                        },
                        Err(e) => MatrixCell {
                            route: r.to_string(),
                            backend: be.name().to_string(),
                            vs_recorded: None,
                            vs_f64: None,
                            error: Some(e.to_string()),
                        },
                    };
                    row.matrix.push(cell);
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        row.error = Some(e.to_string());
    }
    if let Some(p) = &o.kernels {
        row.plugin = Some(super::plugin_cell(src, l, p));
    }
    row
}

/// Fills a derived sub-stage's row: the fused launch was replayed as recorded (the row's bit-exact
/// figures); now the manual route runs on its inputs.
fn derived_row(
    row: &mut Row,
    l: &Launch,
    ins: &[crate::launch::Tensor],
    rec: &[Recorded],
    s: Stage,
    precision: Precision,
    o: &ReplayOptions,
) -> Result<(), ReplayError> {
    let b = &l.begin;
    let d = substage::derive(l, ins, o.backend.as_ref(), precision)?;
    let t = d.get(s).ok_or(ReplayError::Incomplete(b.seq))?;
    row.replay_route = format!("{DERIVED_ROUTE}/{}", precision.name());
    let mut info = DerivedInfo {
        from_seq: b.seq,
        route: DERIVED_ROUTE.into(),
        computed_on: format!("{}:manual/{}", o.backend.name(), precision.name()),
        hash: t
            .host_bytes()
            .map(|x| blake3::hash(x.as_slice()).to_hex().to_string())
            .unwrap_or_default(),
        vs_fused: None,
    };
    let fused = rec.first();
    let head_err = |e: String| ReplayError::Backend {
        seq: b.seq,
        source: crate::backend::BackendError::Device(e),
    };
    if s == Stage::Pv {
        if let Some(f) = fused {
            info.vs_fused = Some(against(f, t));
            if !o.heads.is_empty() || o.by_head {
                let (c, hr) = per_head(
                    s,
                    &b.params,
                    &[(rec_vals(f), t_vals(t))],
                    &o.heads,
                    o.by_head,
                )
                .map_err(head_err)?;
                if c.is_some() {
                    info.vs_fused = c;
                }
                row.by_head = hr;
            }
        }
    }
    if o.reference {
        let r = substage::reference(l, ins, &d, s)?;
        row.local = Some(substage::compare_tensors(t, &r));
        row.local_bound = Some(crate::analysis::bounds::local_bound(
            s,
            Route::new(crate::launch::Variant::Manual, precision),
        ));
        if !o.heads.is_empty() || o.by_head {
            let (c, hr) = per_head(
                s,
                &b.params,
                &[(t_vals(t), t_vals(&r))],
                &o.heads,
                o.by_head,
            )
            .map_err(head_err)?;
            if c.is_some() {
                row.local = c;
            }
            // Per head against the reference when there is one.
            row.by_head = hr;
        }
    }
    row.derived = Some(info);
    Ok(())
}
