//! `greta diff`: where do two tapes first diverge; or, with --prefill-vs-decode, where does decode at
//! position K first differ from prefill's row K inside one tape. Exit 0 same, 1 different, 2 error.

use super::Outcome;
use super::common::open;
use super::common::{HeadSel, LaunchSel, make_backend, parse_opt};
use crate::diff::substages::{self, StageDiffRow};
use crate::diff::{plot, pvd, tapes};
use crate::launch::Stage;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `greta diff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tape A.
    a: PathBuf,
    /// Tape B (omit with --prefill-vs-decode).
    b: Option<PathBuf>,
    /// Compare prefill's row K with the decode launch at position K inside tape A.
    #[arg(long)]
    prefill_vs_decode: bool,
    /// Row K for --prefill-vs-decode [default: the last prompt row].
    #[arg(long)]
    row: Option<usize>,
    /// Write an SVG heatmap (layers by stages, colour = log10 max |a-b|).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Print every stage and launch, not only the summary.
    #[arg(long)]
    all: bool,
    // --layer: with --prefill-vs-decode, or with --stage on two tapes; --phase: with --stage on two
    // tapes; --stage: one of greta's stages (two tapes are aligned by greta's vocabulary).
    #[command(flatten)]
    sel: LaunchSel,
    #[command(flatten)]
    heads: HeadSel,
    /// With --prefill-vs-decode and --layer: one row per attention sub-stage (q, k, v, qk, softmax, pv,
    /// attn_out).
    #[arg(long)]
    substages: bool,
    /// Backend that derives sub-stages of fused launches: cpu or hip [default: the tape's backend].
    #[arg(long, value_parser = ["cpu", "hip"])]
    backend: Option<String>,
}

fn layer(l: Option<u32>) -> String {
    l.map_or("-".into(), |l| l.to_string())
}

/// Runs `greta diff`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if let Some(p) = &a.plot {
        let inputs: Vec<&std::path::Path> = std::iter::once(a.a.as_path())
            .chain(a.b.as_deref())
            .collect();
        super::paths::output_file(p, "--plot", &inputs)?;
    }
    let ta = open(&a.a)?;
    let mut o = std::io::stdout().lock();
    let heads = a.heads.heads()?;
    // Only greta's stages: two tapes are aligned by greta's vocabulary.
    let stage: Option<Stage> = parse_opt(&a.sel.stage)?;
    let backend = || {
        let h = &ta.header().backend;
        make_backend(
            a.backend
                .as_deref()
                .unwrap_or(if h.is_empty() { "cpu" } else { h }),
            0,
        )
    };
    if a.substages {
        return substage_table(&a, &ta, &heads, backend()?.as_ref());
    }
    if a.prefill_vs_decode {
        if a.b.is_some() {
            bail!("--prefill-vs-decode compares inside one tape: give only one");
        }
        let mut r = pvd::prefill_vs_decode(&ta, a.row)?;
        if let Some(l) = a.sel.layer {
            r.rows.retain(|x| x.layer == Some(l));
        }
        if let Some(s) = stage {
            r.rows
                .retain(|x| x.stage == s.name() || x.decode_stage == s.name());
        }
        if stage.is_some() || !heads.is_empty() {
            substages::refine(&ta, &mut r, &heads, backend()?.as_ref())
                .map_err(anyhow::Error::msg)?;
        } else if a.sel.layer.is_some() {
            r.first_divergence = r
                .rows
                .iter()
                .find(|x| x.compare.is_some() && !x.equal)
                .cloned();
        }
        if let Some(p) = &a.plot {
            let cells: Vec<plot::Cell> = r
                .rows
                .iter()
                .filter_map(|x| {
                    x.compare
                        .as_ref()
                        .map(|c| (x.layer, x.stage.clone(), c.max_abs))
                })
                .collect();
            let title = format!(
                "prefill row {} vs {} in {}",
                r.row,
                r.decode_phase,
                a.a.display()
            );
            std::fs::write(
                p,
                plot::heatmap(&title, "log10 max |prefill - decode|", &cells),
            )
            .with_context(|| format!("writing {}", p.display()))?;
        }
        let same = r.first_divergence.is_none() && r.param_diffs.is_empty();
        if a.json {
            writeln!(o, "{}", serde_json::to_string(&r)?)?;
            return Ok(if same {
                Outcome::Same
            } else {
                Outcome::Different
            });
        }
        super::diff_text::pvd(&mut o, &r, a.all)?;
        return Ok(if same {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    let Some(bp) = &a.b else {
        bail!("give two tapes, or one with --prefill-vs-decode")
    };
    let tb = open(bp)?;
    if let Some(st) = stage {
        let rows = substages::stage_diff(
            &ta,
            &tb,
            a.sel.phase,
            a.sel.layer,
            st,
            &heads,
            backend()?.as_ref(),
        )
        .map_err(anyhow::Error::msg)?;
        return stage_table(&mut o, &rows, a.json);
    }
    if !heads.is_empty() || a.sel.phase.is_some() || a.sel.layer.is_some() {
        bail!("--head, --phase and --layer on two tapes need --stage");
    }
    let d = tapes::diff(&ta, &tb)?;
    if let Some(w) = &d.warning {
        eprintln!("note: {w}");
    }
    if let Some(p) = &a.plot {
        let mut worst: std::collections::BTreeMap<(Option<u32>, String), f64> = Default::default();
        for l in &d.launches {
            let v = l.compare.as_ref().map_or(f64::MIN_POSITIVE, |c| c.max_abs);
            let e = worst.entry((l.layer, l.stage.clone())).or_insert(0.0);
            *e = e.max(v);
        }
        let cells: Vec<plot::Cell> = worst.into_iter().map(|((l, s), v)| (l, s, v)).collect();
        std::fs::write(
            p,
            plot::heatmap(
                &format!("{} vs {}", a.a.display(), bp.display()),
                "log10 max |a-b| over phases",
                &cells,
            ),
        )
        .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut same =
        d.first_divergence.is_none() && d.only_a == 0 && d.only_b == 0 && d.param_diffs.is_empty();
    // Tapes of two different model files are not identical, whatever their launches say (issue 21:
    // a header naming another model with a false hash diffed "identical", exit 0).
    let (ma, mb) = (&ta.header().model, &tb.header().model);
    let models =
        (!ma.blake3.is_empty() && !mb.blake3.is_empty() && ma.blake3 != mb.blake3).then(|| {
            format!(
                "the models differ: A {} (blake3 {}), B {} (blake3 {})",
                ma.path,
                &ma.blake3[..ma.blake3.len().min(16)],
                mb.path,
                &mb.blake3[..mb.blake3.len().min(16)]
            )
        });
    if models.is_some() {
        same = false;
    }
    if same {
        // Equal hashes prove nothing about a damaged tape (issue 14: "identical" on 142 of 238
        // damaged tapes): before saying so, check both tapes whole (linear; `greta verify` lists all).
        for t in [&ta, &tb] {
            let v = t.verify();
            if !v.is_ok() {
                same = false;
                let why = v.problems.first().map_or_else(
                    || "it is truncated".to_string(),
                    |p| {
                        format!(
                            "{} problems, the first at byte {}: {}",
                            v.problems.len(),
                            p.offset,
                            p.what
                        )
                    },
                );
                eprintln!(
                    "{} is damaged ({why}): not calling the tapes identical",
                    t.path().display()
                );
            }
        }
    }
    if a.json {
        writeln!(o, "{}", serde_json::to_string(&d)?)?;
        return Ok(if same {
            Outcome::Same
        } else {
            Outcome::Different
        });
    }
    let hashes_same =
        d.first_divergence.is_none() && d.only_a == 0 && d.only_b == 0 && d.param_diffs.is_empty();
    if let Some(m) = &models {
        writeln!(o, "{m}")?;
    }
    if hashes_same && !same && models.is_some() {
        writeln!(
            o,
            "{} aligned launches with the same output hashes, but {}: not identical",
            d.aligned,
            if ta.verify().is_ok() && tb.verify().is_ok() {
                "the models differ"
            } else {
                "the models differ and a tape is damaged"
            }
        )?;
    } else if hashes_same && !same {
        writeln!(
            o,
            "{} aligned launches with the same output hashes, but a tape is damaged: not identical (greta verify)",
            d.aligned
        )?;
    } else {
        super::diff_text::tapes(&mut o, &d, a.all)?;
    }
    Ok(if same {
        Outcome::Same
    } else {
        Outcome::Different
    })
}

fn fmt_cmp(c: &Option<crate::analysis::Compare>) -> String {
    match c {
        Some(c) => format!(
            "{:<6} {:>10.2e} {:>10.2e} {:>8}",
            if c.bit_exact { "yes" } else { "NO" },
            c.mae,
            c.max_abs,
            c.max_ulp
        ),
        None => format!("{:<6} {:>10} {:>10} {:>8}", "-", "-", "-", "-"),
    }
}

/// `--stage` on two tapes: one row per aligned (phase, layer).
fn stage_table(o: &mut impl Write, rows: &[StageDiffRow], json: bool) -> anyhow::Result<Outcome> {
    let same = rows
        .iter()
        .all(|r| r.compare.as_ref().is_some_and(|c| c.bit_exact));
    if json {
        writeln!(o, "{}", serde_json::to_string(rows)?)?;
    } else {
        writeln!(
            o,
            "{:<8} {:>5} {:<8} {:<22} {:<22} {:<6} {:>10} {:>10} {:>8}",
            "phase", "layer", "stage", "route A", "route B", "equal", "mae", "max_abs", "max_ulp"
        )?;
        for r in rows {
            writeln!(
                o,
                "{:<8} {:>5} {:<8} {:<22} {:<22} {}{}",
                r.phase,
                layer(r.layer),
                r.stage,
                r.routes.0,
                r.routes.1,
                fmt_cmp(&r.compare),
                r.note
                    .as_ref()
                    .map_or(String::new(), |n| format!("  ({n})"))
            )?;
        }
    }
    Ok(if rows.is_empty() {
        bail!("no launch matches the selection")
    } else if same {
        Outcome::Same
    } else {
        Outcome::Different
    })
}

/// `--prefill-vs-decode --substages`: the per-sub-stage table of one layer.
fn substage_table(
    a: &Args,
    ta: &crate::tape::TapeReader,
    heads: &[usize],
    backend: &dyn crate::backend::Backend,
) -> anyhow::Result<Outcome> {
    if !a.prefill_vs_decode || a.b.is_some() {
        bail!("--substages is a --prefill-vs-decode table of one tape");
    }
    let Some(l) = a.sel.layer else {
        bail!("--substages needs --layer")
    };
    let t = substages::table(ta, a.row, l, heads, backend).map_err(anyhow::Error::msg)?;
    let mut o = std::io::stdout().lock();
    let same = t
        .rows
        .iter()
        .all(|r| r.compare.as_ref().is_some_and(|c| c.bit_exact));
    if a.json {
        writeln!(o, "{}", serde_json::to_string(&t)?)?;
    } else {
        writeln!(
            o,
            "prefill row {} vs {}, layer {}, {}",
            t.row,
            t.decode_phase,
            t.layer,
            if t.heads.is_empty() {
                "all heads".to_string()
            } else {
                format!("head(s) {:?}", t.heads)
            }
        )?;
        writeln!(
            o,
            "{:<9} {:<18} {:<22} {:<6} {:>10} {:>10} {:>8}",
            "stage", "prefill route", "decode route", "equal", "mae", "max_abs", "max_ulp"
        )?;
        for r in &t.rows {
            writeln!(
                o,
                "{:<9} {:<18} {:<22} {}{}",
                r.name,
                r.routes.0,
                r.routes.1,
                fmt_cmp(&r.compare),
                r.note
                    .as_ref()
                    .map_or(String::new(), |n| format!("  ({n})"))
            )?;
        }
        if t.rows
            .iter()
            .any(|r| r.routes.1.starts_with(substages::DERIVED))
        {
            writeln!(
                o,
                "fused→manual: derived from the fused attn launch's recorded inputs, not recorded"
            )?;
        }
    }
    Ok(if same {
        Outcome::Same
    } else {
        Outcome::Different
    })
}
