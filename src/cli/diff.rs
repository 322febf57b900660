//! `greta diff`: where do two tapes first diverge; or, with --prefill-vs-decode, where does decode at
//! position K first differ from prefill's row K inside one tape. Exit 0 same, 1 different, 2 error.

use super::Outcome;
use super::ls::open;
use crate::diff::{plot, pvd, tapes};
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
}

/// Runs `greta diff`.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let ta = open(&a.a)?;
    let mut o = std::io::stdout().lock();
    if a.prefill_vs_decode {
        if a.b.is_some() {
            bail!("--prefill-vs-decode compares inside one tape: give only one");
        }
        let r = pvd::prefill_vs_decode(&ta, a.row)?;
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
        let same = r.first_divergence.is_none();
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
    if hashes_same && !same {
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
