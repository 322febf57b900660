//! Stage values by (launch, stage), derived when the stage lives inside a fused attention launch, and the
//! per-sub-stage prefill-vs-decode table engine teams publish:
//!
//! ```text
//! greta diff t.tape --prefill-vs-decode --layer 0 --head 0 --substages
//! ```
//!
//! prints one row per attention sub-stage of one layer — `q` (rope_q), `k` (rope_k), `v` (v_proj), `qk`,
//! `softmax`, `pv`, `attn_out` (the attention output the engine used: prefill's `pv`, decode's fused
//! `attn`) — comparing prefill's row K with the decode launch at position K (MAE, max abs, max ULP). On a
//! tape recorded with default routes decode's attention is fused, so its `qk`, `softmax` and `pv` are
//! derived from the fused launch's recorded inputs (route `fused→manual`, see
//! [`crate::analysis::substage`]) on the CPU or the given backend.

use crate::analysis::compare::{Compare, compare_values};
use crate::analysis::{Source, exec, substage, values};
use crate::backend::Backend;
use crate::launch::{DType, Params, Precision, Stage, heads};

/// The route prefix of derived values.
pub const DERIVED: &str = substage::DERIVED_ROUTE;
use crate::tape::{Launch, TapeReader};
use serde::Serialize;

/// The values of one stage of one launch (recorded, or derived from a fused launch).
#[derive(Clone, Debug)]
pub struct Values {
    /// Format.
    pub dtype: DType,
    /// Values.
    pub vals: Vec<f64>,
    /// Shape of `vals`.
    pub shape: Vec<u64>,
    /// The launch's params (`rows` is 1 after [`row_of`]).
    pub params: Params,
    /// The launch.
    pub seq: u64,
    /// The route: the recorded one, or `fused→manual/<precision>` when derived.
    pub route: String,
    /// Derived from a fused launch rather than recorded.
    pub derived: bool,
}

/// The values of stage `want` in launch `l`: its recorded output 0 when `l` is that stage, or the
/// sub-stage derived on `backend` when `l` is a fused attention launch and `want` is qk, softmax or pv.
pub fn stage_values(
    src: &Source,
    l: &Launch,
    want: Stage,
    backend: &dyn Backend,
) -> Result<Values, String> {
    let b = &l.begin;
    if b.stage == want {
        let end = l.end.as_ref().ok_or("no outputs recorded")?;
        let o = end.outputs.first().ok_or("no outputs")?;
        let bytes = src.bytes(o).map_err(|e| e.to_string())?;
        return Ok(Values {
            dtype: o.dtype,
            vals: values(o.dtype, &bytes).ok_or("not a float tensor")?,
            shape: o.shape.clone(),
            params: b.params,
            seq: b.seq,
            route: b.route.to_string(),
            derived: false,
        });
    }
    if substage::selects(b.stage, want).is_none() {
        return Err(format!("launch {} is {}, not {want}", b.seq, b.stage));
    }
    let ins = exec::inputs(src, l).map_err(|e| e.to_string())?;
    // The recorded precision, unless the backend has no such route (f16 is a GPU route).
    let p = match (b.route.precision, backend.name()) {
        (Precision::F16, "cpu") => Precision::F32,
        (p, _) => p,
    };
    let d = substage::derive(l, &ins, backend, p).map_err(|e| e.to_string())?;
    let t = d.get(want).ok_or("not a sub-stage")?;
    let bytes = t.to_host_bytes().map_err(|e| e.to_string())?;
    Ok(Values {
        dtype: t.dtype,
        vals: values(t.dtype, &bytes).ok_or("not a float tensor")?,
        shape: t.shape.iter().map(|&d| d as u64).collect(),
        params: b.params,
        seq: b.seq,
        route: format!("{}/{}", substage::DERIVED_ROUTE, p.name()),
        derived: true,
    })
}

/// Position `k`'s row of `v` (output of `stage`): `[1, W]` for `[n, W]` outputs, `[H, 1, k+1]` for
/// scores `[H, n, ctx]` (the keys position k may see).
pub fn row_of(v: &Values, stage: Stage, k: usize) -> Result<Values, String> {
    let p = &v.params;
    let i = k
        .checked_sub(p.pos as usize)
        .filter(|&i| i < p.rows as usize)
        .ok_or("row not in launch")?;
    let dims: Vec<usize> = v.shape.iter().map(|&d| d as usize).collect();
    let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel != Some(v.vals.len()) {
        return Err(format!("shape {:?} does not match the values", v.shape));
    }
    let (vals, shape) = match (stage, dims.as_slice()) {
        (Stage::Qk | Stage::Softmax, &[h, n, ctx]) => {
            let keep = (k + 1).min(ctx);
            let vals = (0..h)
                .flat_map(|hh| v.vals[(hh * n + i) * ctx..][..keep].to_vec())
                .collect();
            (vals, vec![h as u64, 1, keep as u64])
        }
        (_, &[_, w]) => (v.vals[i * w..(i + 1) * w].to_vec(), vec![1, w as u64]),
        _ => return Err(format!("cannot slice shape {:?}", v.shape)),
    };
    Ok(Values {
        vals,
        shape,
        params: Params { rows: 1, ..*p },
        ..v.clone()
    })
}

/// `v` restricted to query heads `hs` (their KV head on key/value stages), concatenated.
pub fn restrict(v: &Values, stage: Stage, hs: &[usize]) -> Result<Values, String> {
    if hs.is_empty() {
        return Ok(v.clone());
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for &h in hs {
        if heads::side(stage) == Some(heads::Side::Kv) {
            let g = heads::kv_head(h, &v.params);
            if seen.contains(&g) {
                continue;
            }
            seen.push(g);
        }
        out.extend(
            heads::slice(stage, &v.params, &v.shape, &v.vals, h).map_err(|e| e.to_string())?,
        );
    }
    Ok(Values {
        shape: vec![out.len() as u64],
        vals: out,
        ..v.clone()
    })
}

/// Compares A with B (ULPs in A's format).
pub fn compare(a: &Values, b: &Values) -> Compare {
    let exact = a.dtype == b.dtype
        && a.vals.len() == b.vals.len()
        && a.vals
            .iter()
            .zip(&b.vals)
            .all(|(x, y)| x.to_bits() == y.to_bits());
    compare_values(a.dtype, &a.vals, &b.vals, &[a.vals.len() as u64], exact)
}

/// One row of the sub-stage table.
#[derive(Clone, Debug, Serialize)]
pub struct SubRow {
    /// Row name: q, k, v, qk, softmax, pv, attn_out.
    pub name: String,
    /// Prefill's stage and launch.
    pub prefill: Option<(String, u64)>,
    /// Decode's stage and launch.
    pub decode: Option<(String, u64)>,
    /// Routes (prefill, decode); a derived side says `fused→manual/<precision>`.
    pub routes: (String, String),
    /// Figures, prefill as A.
    pub compare: Option<Compare>,
    /// Why not compared.
    pub note: Option<String>,
}

/// The sub-stage table of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct SubTable {
    /// Position compared.
    pub row: usize,
    /// The decode phase that ran it.
    pub decode_phase: String,
    /// Layer.
    pub layer: u32,
    /// Query heads (empty: all).
    pub heads: Vec<usize>,
    /// Rows in attention order.
    pub rows: Vec<SubRow>,
}

/// The rows of the table: name, prefill's stage, decode's stage candidates in order of preference.
const TABLE: &[(&str, Stage, &[Stage])] = &[
    ("q", Stage::RopeQ, &[Stage::RopeQ]),
    ("k", Stage::RopeK, &[Stage::RopeK]),
    ("v", Stage::VProj, &[Stage::VProj]),
    ("qk", Stage::Qk, &[Stage::Qk, Stage::Attn]),
    ("softmax", Stage::Softmax, &[Stage::Softmax, Stage::Attn]),
    ("pv", Stage::Pv, &[Stage::Pv, Stage::Attn]),
    ("attn_out", Stage::Pv, &[Stage::Attn, Stage::Pv]),
];

/// Launches of one layer in one phase by stage; for decode, the first decode phase that ran position k.
fn launches(
    t: &TapeReader,
    layer: u32,
    k: usize,
) -> Result<(Vec<Launch>, Vec<Launch>, String), String> {
    let (mut pre, mut dec) = (Vec::new(), Vec::new());
    let mut dphase = None;
    for e in t.entries() {
        let e = e.map_err(|e| e.to_string())?;
        if e.layer != Some(layer) {
            continue;
        }
        if e.phase == crate::launch::Phase::Prefill {
            pre.push(t.launch(e.seq).map_err(|e| e.to_string())?);
            continue;
        }
        match dphase {
            Some(p) if p != e.phase => continue,
            Some(_) => dec.push(t.launch(e.seq).map_err(|e| e.to_string())?),
            None => {
                let l = t.launch(e.seq).map_err(|e| e.to_string())?;
                if l.begin.params.pos as usize == k {
                    dphase = Some(e.phase);
                    dec.push(l);
                }
            }
        }
    }
    let dp = dphase.ok_or_else(|| {
        format!(
            "no decode launch of layer {layer} ran position {k}: record with --probe-last-token"
        )
    })?;
    Ok((pre, dec, dp.to_string()))
}

/// The sub-stage table of `layer`: prefill's row `row` (default: the last prompt row) against the decode
/// launch at that position, restricted to heads `hs`; derived sub-stages run on `backend`.
pub fn table(
    t: &TapeReader,
    row: Option<usize>,
    layer: u32,
    hs: &[usize],
    backend: &dyn Backend,
) -> Result<SubTable, String> {
    let src = Source::new(t, None);
    let n = t.header().prompt_tokens.len();
    let k = row.unwrap_or(n.saturating_sub(1));
    if k >= n {
        return Err(format!(
            "prefill covers positions 0..{n}; row {k} is outside it"
        ));
    }
    let (pre, dec, dphase) = launches(t, layer, k)?;
    let mut rows = Vec::new();
    for &(name, ps, ds) in TABLE {
        let mut r = SubRow {
            name: name.into(),
            prefill: None,
            decode: None,
            routes: (String::new(), String::new()),
            compare: None,
            note: None,
        };
        let lp = pre.iter().find(|l| l.begin.stage == ps);
        let ld = ds
            .iter()
            .find_map(|&s| dec.iter().find(|l| l.begin.stage == s));
        let (Some(lp), Some(ld)) = (lp, ld) else {
            r.note = Some(format!(
                "no {ps} launch in prefill or no counterpart in {dphase}"
            ));
            rows.push(r);
            continue;
        };
        // The stage the decode side is read as: attn_out is the launch's own output.
        let dwant = if name == "attn_out" {
            ld.begin.stage
        } else {
            ps
        };
        let got = (|| {
            let a = row_of(&stage_values(&src, lp, ps, backend)?, ps, k)?;
            let b = row_of(&stage_values(&src, ld, dwant, backend)?, dwant, k)?;
            let (a, b) = (restrict(&a, ps, hs)?, restrict(&b, dwant, hs)?);
            Ok::<_, String>((a, b))
        })();
        match got {
            Ok((a, b)) => {
                r.prefill = Some((ps.name().into(), a.seq));
                r.decode = Some((dwant.name().into(), b.seq));
                r.routes = (a.route.clone(), b.route.clone());
                r.compare = Some(compare(&a, &b));
            }
            Err(e) => r.note = Some(e),
        }
        rows.push(r);
    }
    Ok(SubTable {
        row: k,
        decode_phase: dphase,
        layer,
        heads: hs.to_vec(),
        rows,
    })
}

/// Fills in a prefill-vs-decode result (`pvd`) for a selection by stage or head: rows whose decode side
/// is a fused `attn` launch and whose stage is qk, softmax or pv compare against the sub-stage derived on
/// `backend`; with heads, every per-head row is restricted to those heads' slices and the other rows are
/// dropped. The first divergence is recomputed.
pub fn refine(
    t: &TapeReader,
    p: &mut super::pvd::Pvd,
    hs: &[usize],
    backend: &dyn Backend,
) -> Result<(), String> {
    let src = Source::new(t, None);
    let k = p.row;
    let dphase: crate::launch::Phase = p.decode_phase.parse()?;
    let mut attn_of = std::collections::HashMap::new();
    for e in t.entries() {
        let e = e.map_err(|e| e.to_string())?;
        if e.phase == dphase && e.stage == Stage::Attn {
            attn_of.insert(e.layer, e.seq);
        }
    }
    if !hs.is_empty() {
        p.rows.retain(|r| {
            r.stage
                .parse::<Stage>()
                .is_ok_and(|s| heads::side(s).is_some())
        });
    }
    for r in p.rows.iter_mut() {
        let stage: Stage = r.stage.parse()?;
        let sd = match r.seq_decode {
            Some(s) => Some(s),
            None if substage::is_substage(stage) => attn_of.get(&r.layer).copied(),
            None => None,
        };
        let Some(sd) = sd else { continue };
        let ld = t.launch(sd).map_err(|e| e.to_string())?;
        let derive = substage::is_substage(stage) && ld.begin.stage == Stage::Attn;
        if !derive && hs.is_empty() {
            continue;
        }
        let dwant = if derive { stage } else { ld.begin.stage };
        let lp = t.launch(r.seq_prefill).map_err(|e| e.to_string())?;
        let got = (|| {
            let a = row_of(&stage_values(&src, &lp, stage, backend)?, stage, k)?;
            let b = row_of(&stage_values(&src, &ld, dwant, backend)?, dwant, k)?;
            Ok::<_, String>((restrict(&a, stage, hs)?, restrict(&b, dwant, hs)?))
        })();
        r.seq_decode = Some(sd);
        r.decode_stage = dwant.name().into();
        match got {
            Ok((a, b)) => {
                let c = compare(&a, &b);
                r.equal = c.bit_exact;
                r.compare = Some(c);
                r.routes.1 = b.route;
                r.note = None;
            }
            Err(e) => {
                r.compare = None;
                r.equal = false;
                r.note = Some(e);
            }
        }
    }
    p.first_divergence = p
        .rows
        .iter()
        .find(|r| r.compare.is_some() && !r.equal)
        .cloned();
    Ok(())
}

/// One (phase, layer) of a stage-selected tape diff.
#[derive(Clone, Debug, Serialize)]
pub struct StageDiffRow {
    /// Phase.
    pub phase: String,
    /// Layer.
    pub layer: Option<u32>,
    /// Stage compared.
    pub stage: String,
    /// Launches (A, B).
    pub seqs: (u64, Option<u64>),
    /// Routes (A, B); a derived side says `fused→manual/<precision>`.
    pub routes: (String, String),
    /// Figures, A as reference format.
    pub compare: Option<Compare>,
    /// Why not compared.
    pub note: Option<String>,
}

/// Tape A against tape B at one stage, launch by launch (aligned by phase and layer), restricted to
/// `phase`/`layer` when given and to heads `hs`; qk, softmax and pv are derived on `backend` from fused
/// attention launches on either side.
pub fn stage_diff(
    ta: &TapeReader,
    tb: &TapeReader,
    phase: Option<crate::launch::Phase>,
    layer: Option<u32>,
    stage: Stage,
    hs: &[usize],
    backend: &dyn Backend,
) -> Result<Vec<StageDiffRow>, String> {
    let pick = |t: &TapeReader| -> Result<Vec<(crate::launch::Phase, Option<u32>, u64)>, String> {
        let mut v = Vec::new();
        for e in t.entries() {
            let e = e.map_err(|e| e.to_string())?;
            if phase.is_none_or(|p| p == e.phase)
                && layer.is_none_or(|l| Some(l) == e.layer)
                && substage::selects(e.stage, stage).is_some()
            {
                v.push((e.phase, e.layer, e.seq));
            }
        }
        Ok(v)
    };
    let (a, b) = (pick(ta)?, pick(tb)?);
    let (sa, sb) = (Source::new(ta, None), Source::new(tb, None));
    let mut rows = Vec::new();
    for (ph, ly, seq_a) in a {
        let seq_b = b.iter().find(|x| x.0 == ph && x.1 == ly).map(|x| x.2);
        let mut r = StageDiffRow {
            phase: ph.to_string(),
            layer: ly,
            stage: stage.name().into(),
            seqs: (seq_a, seq_b),
            routes: (String::new(), String::new()),
            compare: None,
            note: None,
        };
        let got = (|| {
            let sb_seq = seq_b.ok_or("no counterpart in B")?;
            let la = ta.launch(seq_a).map_err(|e| e.to_string())?;
            let lb = tb.launch(sb_seq).map_err(|e| e.to_string())?;
            let va = restrict(&stage_values(&sa, &la, stage, backend)?, stage, hs)?;
            let vb = restrict(&stage_values(&sb, &lb, stage, backend)?, stage, hs)?;
            Ok::<_, String>((va, vb))
        })();
        match got {
            Ok((va, vb)) => {
                r.compare = Some(compare(&va, &vb));
                r.routes = (va.route, vb.route);
            }
            Err(e) => r.note = Some(e),
        }
        rows.push(r);
    }
    Ok(rows)
}
