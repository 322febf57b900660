//! The human views of `greta diff`: a short summary by default (first divergence, first significant
//! divergence, params that differ, the worst stages) and the full tables with `--all`. Rows fit in 120
//! columns.

use crate::diff::pvd::{Pvd, PvdRow};
use crate::diff::significant::Significance;
use crate::diff::tapes::{FirstDivergence, TapeDiff};
use std::io::Write;

/// How many worst stages the summary lists.
const WORST: usize = 5;
/// How many param differences the summary lists.
const PARAMS_SHOWN: usize = 5;

fn layer(l: Option<u32>) -> String {
    l.map_or("-".into(), |l| l.to_string())
}

fn why(s: &Significance) -> String {
    s.reason.clone()
}

fn at(f: &FirstDivergence) -> String {
    let mut s = format!(
        "{} layer {} {} (A seq {}, B seq {})",
        f.phase,
        layer(f.layer),
        f.stage,
        f.seq_a,
        f.seq_b
    );
    match (f.index, f.value_a, f.value_b) {
        (Some(i), Some(va), Some(vb)) => {
            s += &format!(
                "\n  at index {i} {:?}: A {va:e}, B {vb:e}; max {} ULP, max abs {:.3e}",
                f.coords.clone().unwrap_or_default(),
                f.max_ulp,
                f.max_abs
            )
        }
        _ => s += " (hashes differ; bytes not captured)",
    }
    s
}

/// Prints a tape diff.
pub fn tapes(o: &mut impl Write, d: &TapeDiff, all: bool) -> std::io::Result<()> {
    writeln!(
        o,
        "{} aligned launches; {} only in A, {} only in B; {} differ",
        d.aligned,
        d.only_a,
        d.only_b,
        d.launches.len()
    )?;
    writeln!(o, "verdict: {}", tape_verdict(d))?;
    if !d.provenance.is_empty() {
        writeln!(o, "builds differ: {}", d.provenance.join("; "))?;
    }
    if !d.param_diffs.is_empty() {
        writeln!(
            o,
            "params, routes, dtypes or shapes differ at {} aligned launches:",
            d.param_diffs.len()
        )?;
        let shown = if all {
            d.param_diffs.len()
        } else {
            PARAMS_SHOWN
        };
        for p in d.param_diffs.iter().take(shown) {
            writeln!(o, "  {p}")?;
        }
        if d.param_diffs.len() > shown {
            writeln!(o, "  ... {} more (--all)", d.param_diffs.len() - shown)?;
        }
    }
    match &d.first_divergence {
        // Launches on one tape only are a difference too (issue 21: a truncated tape diffed
        // "identical" while the exit code said different).
        None if d.only_a > 0 || d.only_b > 0 => writeln!(
            o,
            "not identical: the aligned launches have the same output hashes, but {} launches are only in A and {} only in B",
            d.only_a, d.only_b
        )?,
        None => writeln!(
            o,
            "identical: every aligned launch has the same output hashes"
        )?,
        Some(f) => writeln!(o, "first divergence: {}", at(f))?,
    }
    if d.first_divergence.is_some() {
        match &d.first_significant {
            None => writeln!(
                o,
                "first significant: none\n  (every difference is within its route's noise envelope or in proportion to its \
                 inputs; see docs/DIAGNOSIS.md)"
            )?,
            Some(s) => writeln!(o, "first significant: {}\n  {}", at(&s.at), why(&s.why))?,
        }
        writeln!(o, "{}", d.local_errors)?;
    }
    if d.first_divergence.is_none() {
        return Ok(());
    }
    let mut rows: Vec<_> = d.rows.iter().filter(|r| r.differing > 0).collect();
    if all {
        writeln!(
            o,
            "{:<14} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10}",
            "stage", "launches", "differing", "max_ulp", "sign_flips", "max_abs", "mae"
        )?;
        for r in &d.rows {
            writeln!(
                o,
                "{:<14} {:>8} {:>9} {:>10} {:>10} {:>10.2e} {:>10.2e}",
                r.stage, r.launches, r.differing, r.max_ulp, r.sign_flips, r.max_abs, r.mae
            )?;
        }
        writeln!(
            o,
            "{:>6} {:>6} {:<8} {:>5} {:<14} {:>10} {:>6} {:>10} {:>10} {:>10}",
            "seq_a",
            "seq_b",
            "phase",
            "layer",
            "stage",
            "max_ulp",
            "flips",
            "max_abs",
            "mae",
            "rel_l2"
        )?;
        for l in &d.launches {
            match &l.compare {
                Some(c) => writeln!(
                    o,
                    "{:>6} {:>6} {:<8} {:>5} {:<14} {:>10} {:>6} {:>10.2e} {:>10.2e} {:>10.2e}",
                    l.seq_a,
                    l.seq_b,
                    l.phase,
                    layer(l.layer),
                    l.stage,
                    c.max_ulp,
                    c.sign_flips,
                    c.max_abs,
                    c.mae,
                    c.rel_l2
                )?,
                None => writeln!(
                    o,
                    "{:>6} {:>6} {:<8} {:>5} {:<14} {}",
                    l.seq_a,
                    l.seq_b,
                    l.phase,
                    layer(l.layer),
                    l.stage,
                    l.note.clone().unwrap_or_default()
                )?,
            }
        }
        return Ok(());
    }
    rows.sort_by(|a, b| b.max_abs.total_cmp(&a.max_abs));
    writeln!(o, "worst stages (by max abs):")?;
    writeln!(
        o,
        "  {:<14} {:>9} {:>10} {:>10} {:>10}",
        "stage", "differing", "max_ulp", "sign_flips", "max_abs"
    )?;
    for r in rows.iter().take(WORST) {
        writeln!(
            o,
            "  {:<14} {:>9} {:>10} {:>10} {:>10.2e}",
            r.stage, r.differing, r.max_ulp, r.sign_flips, r.max_abs
        )?;
    }
    writeln!(o, "(every stage and launch: --all)")
}

/// One line: what the diff found, naming the launch a reader should look at.
fn tape_verdict(d: &TapeDiff) -> String {
    let kind = |w: &Significance| {
        if w.local.is_some() {
            "local"
        } else {
            "inherited rule"
        }
    };
    match (&d.first_divergence, &d.first_significant) {
        (None, _) if d.param_diffs.is_empty() && d.only_a + d.only_b == 0 => "identical".into(),
        (None, _) if d.param_diffs.is_empty() => {
            "same outputs where aligned; launches differ".into()
        }
        (None, _) => format!(
            "DIFFERENT: same output bits, params differ at {} launches",
            d.param_diffs.len()
        ),
        (Some(_), None) => format!(
            "route noise only: {} launches differ, none significantly",
            d.launches.len()
        ),
        (Some(_), Some(s)) => format!(
            "DIFFERENT: {} layer {} {} is significant ({})",
            s.at.phase,
            layer(s.at.layer),
            s.at.stage,
            kind(&s.why)
        ),
    }
}

fn stage_name(x: &PvdRow) -> String {
    if x.stage == x.decode_stage {
        x.stage.clone()
    } else {
        format!("{}~{}", x.stage, x.decode_stage)
    }
}

fn pvd_row(o: &mut impl Write, x: &PvdRow) -> std::io::Result<()> {
    match &x.compare {
        Some(c) => writeln!(
            o,
            "{:>5} {:<13} {:<18} {:<18} {:<5} {:>8} {:>5} {:>10.2e} {:>10.2e} {:>10.2e}",
            layer(x.layer),
            stage_name(x),
            x.routes.0,
            x.routes.1,
            if x.equal { "yes" } else { "NO" },
            c.max_ulp,
            c.sign_flips,
            c.max_abs,
            c.mae,
            c.rel_l2
        ),
        None => writeln!(
            o,
            "{:>5} {:<13} {}",
            layer(x.layer),
            x.stage,
            x.note.clone().unwrap_or_default()
        ),
    }
}

fn pvd_header(o: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        o,
        "{:>5} {:<13} {:<18} {:<18} {:<5} {:>8} {:>5} {:>10} {:>10} {:>10}",
        "layer",
        "stage",
        "prefill route",
        "decode route",
        "equal",
        "max_ulp",
        "flips",
        "max_abs",
        "mae",
        "rel_l2"
    )
}

fn pvd_at(f: &PvdRow) -> String {
    format!(
        "layer {} {} (prefill {} vs decode {}), max {} ULP, max abs {:.3e}",
        layer(f.layer),
        stage_name(f),
        f.routes.0,
        f.routes.1,
        f.compare.as_ref().map_or(0, |c| c.max_ulp),
        f.compare.as_ref().map_or(0.0, |c| c.max_abs)
    )
}

/// Prints a prefill-vs-decode diff.
pub fn pvd(o: &mut impl Write, r: &Pvd, all: bool) -> std::io::Result<()> {
    writeln!(
        o,
        "prefill row {} vs {} (same position, same stage): {} stages compared",
        r.row,
        r.decode_phase,
        r.rows.iter().filter(|x| x.compare.is_some()).count()
    )?;
    writeln!(
        o,
        "verdict: {}",
        match (&r.first_divergence, &r.first_significant) {
            (_, Some(s)) => format!(
                "DIFFERENT: layer {} {} is significant ({})",
                layer(s.at.layer),
                stage_name(&s.at),
                if s.why.local.is_some() {
                    "local"
                } else {
                    "inherited rule"
                }
            ),
            (None, None) if r.param_diffs.is_empty() => "bit-identical".into(),
            (_, None) if !r.param_diffs.is_empty() => {
                format!(
                    "DIFFERENT: params differ at {} launches",
                    r.param_diffs.len()
                )
            }
            (_, None) => "route noise only: no significant difference".into(),
        }
    )?;
    for p in r
        .param_diffs
        .iter()
        .take(if all { usize::MAX } else { PARAMS_SHOWN })
    {
        writeln!(o, "{p}")?;
    }
    if !all && r.param_diffs.len() > PARAMS_SHOWN {
        writeln!(
            o,
            "... {} more params differences (--all)",
            r.param_diffs.len() - PARAMS_SHOWN
        )?;
    }
    if all {
        pvd_header(o)?;
        for x in &r.rows {
            pvd_row(o, x)?;
        }
    }
    match &r.first_divergence {
        None => {
            return writeln!(
                o,
                "prefill and decode are bit-identical at every compared stage"
            );
        }
        Some(f) => writeln!(o, "first divergence: {}", pvd_at(f))?,
    }
    match &r.first_significant {
        None => writeln!(
            o,
            "first significant: none\n  (every difference is within its route's noise envelope or in proportion to its \
             inputs; see docs/DIAGNOSIS.md)"
        )?,
        Some(s) => writeln!(o, "first significant: {}\n  {}", pvd_at(&s.at), why(&s.why))?,
    }
    writeln!(o, "{}", r.local_errors)?;
    if !all {
        let mut worst: Vec<&PvdRow> = r.rows.iter().filter(|x| x.compare.is_some()).collect();
        worst.sort_by(|a, b| {
            let m = |x: &PvdRow| x.compare.as_ref().map_or(0.0, |c| c.max_abs);
            m(b).total_cmp(&m(a))
        });
        writeln!(o, "worst stages (by max abs):")?;
        pvd_header(o)?;
        for x in worst.into_iter().take(WORST) {
            pvd_row(o, x)?;
        }
        writeln!(o, "(every stage: --all)")?;
    }
    Ok(())
}
