//! The summary `greta replay` prints before its table: counts, the launches that failed by name, and a
//! one-line verdict for the selection (issue 28: "2475/2480 bit-exact" did not say which five, and a
//! large local error still exited 0).
//!
//! The verdict, with `--reference f64`:
//! - `local`: a launch's own error (recorded output against the f64 reference on its recorded inputs)
//!   exceeds its stage's bound (`analysis::bounds::local_bound`, docs/DIAGNOSIS.md); exit 1;
//! - `inherited`: every local error is within its bound, but a launch is off the f64 run of the whole
//!   model by more than [`INHERITED_FACTOR`] times its bound: the error came from upstream;
//! - `both`: both of the above;
//! - `ok`: neither.

use crate::replay::Row;
use std::io::Write;

/// How many launches a summary line names.
const SHOWN: usize = 5;
/// An inherited error (against the f64 run of the whole model) this many times a launch's local bound
/// means error carried in from upstream: healthy f32 runs stay below it (tens of layers of f32 noise).
pub const INHERITED_FACTOR: f64 = 1000.0;

fn name(r: &Row) -> String {
    format!(
        "seq {} {} layer {} {}",
        r.seq,
        r.phase,
        r.layer.map_or("-".into(), |l| l.to_string()),
        r.stage
    )
}

fn names<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let all: Vec<String> = rows.map(name).collect();
    let more = all.len().saturating_sub(SHOWN);
    let mut s = all.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
    if more > 0 {
        s += &format!(" (+{more} more)");
    }
    s
}

/// The local error of a row relative to its bound (None without a reference).
fn local_ratio(r: &Row) -> Option<f64> {
    let (c, b) = (r.local.as_ref()?, r.local_bound?);
    Some(if c.nonfinite_mismatch > 0 {
        f64::INFINITY
    } else {
        c.rel_l2 / b
    })
}

fn inherited_over(r: &Row) -> bool {
    matches!((&r.inherited, r.local_bound), (Some(c), Some(b)) if c.rel_l2 > INHERITED_FACTOR * b)
}

/// The counts of a whole replay (a streamed replay keeps only the rows worth naming).
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Rows.
    pub n: usize,
    /// Bit-exact on replay.
    pub exact: usize,
    /// Replayed, not bit-exact, no error.
    pub differ: usize,
    /// Could not be replayed (an error other than "no reference").
    pub errors: usize,
    /// Not replayed (another engine's own kernels).
    pub skipped: usize,
}

/// True for a row the summary never names: bit-exact (or not replayed), no error, local error within
/// its bound, inherited error modest.
pub fn unremarkable(r: &Row) -> bool {
    (r.bit_exact || r.replay_route == "-")
        && r.error.is_none()
        && local_ratio(r).is_none_or(|x| x <= 1.0)
        && !inherited_over(r)
}

/// Prints the summary of a replay: `counts` over all its rows, `rows` the rows to name (all of them, or
/// those a streamed replay kept); `reference` when the f64 reference was computed.
pub fn summary(
    o: &mut impl Write,
    rows: &[Row],
    counts: Counts,
    reference: bool,
) -> std::io::Result<()> {
    let not_replayed = |r: &&Row| r.replay_route == "-";
    let errors: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.error.is_some()
                && !r
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("no reference for"))
        })
        .collect();
    let differ: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.bit_exact && r.error.is_none() && !not_replayed(r))
        .collect();
    let Counts {
        n, exact, skipped, ..
    } = counts;
    writeln!(
        o,
        "summary: {n} launches: {exact} bit-exact on replay, {} not, {} could not be replayed{}",
        counts.differ,
        counts.errors,
        if skipped > 0 {
            format!(", {skipped} not replayed (the engine's own kernels)")
        } else {
            String::new()
        }
    )?;
    if !differ.is_empty() {
        writeln!(o, "  not bit-exact: {}", names(differ.iter().copied()))?;
    }
    if !errors.is_empty() {
        writeln!(
            o,
            "  could not be replayed: {}",
            names(errors.iter().copied())
        )?;
    }
    if !reference {
        return writeln!(
            o,
            "verdict: {}",
            if differ.is_empty() && errors.is_empty() {
                "reproduces: every replayed launch is bit-exact"
            } else {
                "DIFFERENT: see the launches named above"
            }
        );
    }
    let mut over: Vec<&Row> = rows
        .iter()
        .filter(|r| local_ratio(r).is_some_and(|x| x > 1.0))
        .collect();
    over.sort_by(|a, b| {
        local_ratio(b)
            .unwrap_or(0.0)
            .total_cmp(&local_ratio(a).unwrap_or(0.0))
    });
    if over.is_empty() {
        let worst = rows
            .iter()
            .filter(|r| local_ratio(r).is_some())
            .max_by(|a, b| {
                local_ratio(a)
                    .unwrap_or(0.0)
                    .total_cmp(&local_ratio(b).unwrap_or(0.0))
            });
        if let Some(w) = worst {
            writeln!(
                o,
                "  local errors within their stages' bounds; the closest: {} (local {:.2e}, bound {:.0e})",
                name(w),
                w.local.as_ref().map_or(0.0, |c| c.rel_l2),
                w.local_bound.unwrap_or(0.0)
            )?;
        }
    } else {
        writeln!(
            o,
            "  local error above its stage's bound at {} launches:",
            over.len()
        )?;
        for r in over.iter().take(SHOWN) {
            writeln!(
                o,
                "    {}: local {:.2e} > bound {:.0e}",
                name(r),
                r.local.as_ref().map_or(0.0, |c| c.rel_l2),
                r.local_bound.unwrap_or(0.0)
            )?;
        }
        if over.len() > SHOWN {
            writeln!(o, "    (+{} more)", over.len() - SHOWN)?;
        }
    }
    let inherited: Vec<&Row> = rows.iter().filter(|r| inherited_over(r)).collect();
    let verdict = match (!over.is_empty(), !inherited.is_empty()) {
        (false, false) => "ok: every local error within its stage's bound".to_string(),
        (true, false) => format!("local: {} has a local error above its bound", name(over[0])),
        (false, true) => format!(
            "inherited: local errors within bounds, but {} is off the f64 run by more than {INHERITED_FACTOR}x its bound",
            name(inherited[0])
        ),
        (true, true) => format!(
            "both: {} has a local error above its bound, and {} launches are far off the f64 run",
            name(over[0]),
            inherited.len()
        ),
    };
    writeln!(o, "verdict: {verdict}")
}
