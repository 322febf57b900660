//! The local-error rule of the first significant divergence: a launch whose own error against the f64
//! reference, on its recorded inputs, is far above its op's typical local error on the same tape is
//! significant, whatever it inherited.
//!
//! Why a second rule: the inherited-error rule ([`super::significant`]) lets a launch grow its inputs'
//! error a thousandfold. A kernel that is wrong by a little (a softmax in f16 without max subtraction:
//! local error 2.4e-4, 300x any other launch's) hides inside that allowance after f32 noise (issue 28).
//! Its local error does not: it is measured on the launch's own inputs, so nothing upstream explains it.
//!
//! Cost: one f64 reference per differing launch, on its recorded inputs. Inputs recorded as hashes only
//! cannot be replayed: those launches are not measured, the inherited rule alone judges them, and the
//! report says how many were not measured and why. [`BUDGET_BYTES`] bounds the input bytes one diff reads
//! for this (an 8B model's prefill would otherwise mean hours of f64 on the CPU).

use crate::analysis::Source;
use crate::analysis::exec::{against, inputs, recorded, reference};
use crate::launch::{Precision, Stage, Variant};
use crate::tape::{Launch, TapeError, TapeReader};
use serde::Serialize;
use std::collections::HashMap;

/// A launch is significant when its local error exceeds this many times its op's typical local error on
/// the tape (the lower median over the measured launches of its stage). Healthy launches of one stage
/// stay within a few times each other (f32 rounding of similar sizes); issue 28's f16 softmax was 300x.
pub const LOCAL_FACTOR: f64 = 100.0;
/// ... and exceeds this relative L2 error: below it, a launch is at the rounding level of an f32 route
/// (unit roundoff 6e-8 times a few), and f64 routes' local errors (1e-16) never count.
pub const LOCAL_FLOOR: f64 = 1e-6;
/// Input bytes read for local errors in one diff, at most (weights included, as stored).
pub const BUDGET_BYTES: u64 = 4 << 30;

/// Why the local-error rule named a launch.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LocalVerdict {
    /// Which tape's launch: `A`, `B`, or `tape` (prefill-vs-decode).
    pub side: String,
    /// Its local error: relative L2 of its recorded output against the f64 reference on its recorded inputs.
    pub local: f64,
    /// The typical local error of its stage on that tape.
    pub typical: f64,
}

impl LocalVerdict {
    /// One line for the report.
    pub fn reason(&self, stage: &str) -> String {
        format!(
            "local error {:.2e} against the f64 reference on its recorded inputs (tape {}) is {:.0}x the typical \
             {stage} launch's ({:.2e}) on that tape; the bound is {LOCAL_FACTOR}x, whatever it inherited",
            self.local,
            self.side,
            self.local / self.typical.max(f64::MIN_POSITIVE),
            self.typical
        )
    }
}

/// Folds the local-error rule's first named launch (`by_local`: its position among the compared rows
/// and the verdict) into the first significant divergence found by the inherited-error rule: the same
/// row gains the local reason; an earlier row takes its place. `judged` holds (inherited, envelope) of
/// the rows the inherited rule judged; `err` and `stage` describe row i. Shared by the tape diff and
/// prefill-vs-decode.
pub fn fold_into(
    significant: &mut Option<(usize, crate::diff::significant::Significance)>,
    by_local: Option<(usize, LocalVerdict)>,
    judged: &HashMap<usize, (f64, f64)>,
    err: impl Fn(usize) -> f64,
    stage: impl Fn(usize) -> String,
) {
    let Some((i, v)) = by_local else { return };
    match significant {
        Some((j, why)) if *j == i => why.local = Some(v),
        Some((j, _)) if *j < i => {}
        _ => {
            let (inherited, envelope) = judged.get(&i).copied().unwrap_or((0.0, 0.0));
            *significant = Some((
                i,
                crate::diff::significant::Significance {
                    err: err(i),
                    inherited,
                    envelope,
                    growth: v.local / v.typical.max(f64::MIN_POSITIVE),
                    reason: v.reason(&stage(i)),
                    inputs: Vec::new(),
                    local: Some(v),
                },
            ));
        }
    }
}

/// The local errors of one tape's launches.
#[derive(Default, Debug)]
pub struct LocalErrors {
    by_seq: HashMap<u64, (Stage, f64)>,
    typical: HashMap<Stage, f64>,
    /// Launches measured.
    pub measured: usize,
    /// Launches asked for but not measured: inputs not on the tape (hash only, model missing), a stage
    /// greta has no reference for, or the byte budget spent.
    pub unmeasured: usize,
    /// Why the first unmeasured launch was not measured.
    pub why_not: Option<String>,
}

/// True when greta's reference says nothing new about the launch: greta's own f64 routes are the
/// reference's precision, argmax is an integer, kv_write a copy.
fn skip(l: &Launch) -> bool {
    let b = &l.begin;
    matches!(b.stage, Stage::Argmax | Stage::KvWrite)
        || (b.route.variant != Variant::Engine && b.route.precision == Precision::F64)
}

fn measure_one(src: &Source, l: &Launch) -> Result<f64, String> {
    if l.begin.stage == Stage::Other {
        return Err("a stage greta has no reference for".into());
    }
    if l.begin.foreign.is_some() {
        let mut p = crate::analysis::sanity::launch_problems(l);
        p.extend(crate::analysis::sanity::contract_problem(l));
        if !p.is_empty() {
            return Err(p.join("; "));
        }
    }
    let ins = inputs(src, l).map_err(|e| e.to_string())?;
    let rec = recorded(src, l).map_err(|e| e.to_string())?;
    let first = rec.first().ok_or("no outputs")?;
    if first.bytes.is_none() {
        return Err("its output was recorded as a hash only".into());
    }
    let r = reference(l, &ins).map_err(|e| e.to_string())?;
    let c = against(first, r.first().ok_or("the reference gave no output")?);
    Ok(if c.nonfinite_mismatch > 0 {
        f64::INFINITY
    } else {
        c.rel_l2
    })
}

impl LocalErrors {
    /// Measures the local errors of launches `seqs` of tape `t`, within `budget` input bytes (spent from).
    pub fn measure(t: &TapeReader, seqs: &[u64], budget: &mut u64) -> Result<Self, TapeError> {
        let src = Source::new(t, None);
        let mut out = LocalErrors::default();
        let mut per_stage: HashMap<Stage, Vec<f64>> = HashMap::new();
        for &seq in seqs {
            let l = t.launch(seq)?;
            if skip(&l) {
                continue;
            }
            let bytes: u64 = l.begin.inputs.iter().map(|r| r.len).sum();
            let got = if bytes > *budget {
                Err(format!(
                    "the budget of {} GiB of input bytes for local errors is spent",
                    BUDGET_BYTES >> 30
                ))
            } else {
                *budget -= bytes;
                measure_one(&src, &l)
            };
            match got {
                Ok(e) => {
                    out.measured += 1;
                    out.by_seq.insert(seq, (l.begin.stage, e));
                    per_stage.entry(l.begin.stage).or_default().push(e);
                }
                Err(why) => {
                    out.unmeasured += 1;
                    out.why_not
                        .get_or_insert_with(|| format!("launch {seq}: {why}"));
                }
            }
        }
        for (stage, mut v) in per_stage {
            v.sort_by(f64::total_cmp);
            // The lower median: with two launches, the smaller one is the typical one.
            out.typical.insert(stage, v[(v.len() - 1) / 2]);
        }
        Ok(out)
    }

    /// The local error of `seq`, when measured.
    pub fn get(&self, seq: u64) -> Option<f64> {
        self.by_seq.get(&seq).map(|x| x.1)
    }

    /// The verdict on `seq` when its local error is out of line with its stage's on this tape.
    pub fn verdict(&self, seq: u64, side: &str) -> Option<LocalVerdict> {
        let &(stage, local) = self.by_seq.get(&seq)?;
        let typical = *self.typical.get(&stage)?;
        (local > LOCAL_FLOOR && local > LOCAL_FACTOR * typical).then(|| LocalVerdict {
            side: side.to_string(),
            local,
            typical,
        })
    }

    /// One line for the report: how many launches the local rule saw, and why not the others.
    pub fn note(all: &[&LocalErrors]) -> String {
        let measured: usize = all.iter().map(|l| l.measured).sum();
        let unmeasured: usize = all.iter().map(|l| l.unmeasured).sum();
        let why = all.iter().find_map(|l| l.why_not.clone());
        match (measured, unmeasured, why) {
            (0, 0, _) => {
                "local errors: none needed (no differing launch greta's reference judges)".into()
            }
            (m, 0, _) => format!("local errors: {m} launches measured against the f64 reference"),
            (0, u, Some(w)) => format!(
                "local errors: not measured for any of {u} launches ({w}): significance from inherited errors only"
            ),
            (m, u, w) => format!(
                "local errors: {m} launches measured; {u} not ({}), judged by inherited errors only",
                w.unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outlier_of_its_stage_is_named_and_noise_is_not() {
        let mut l = LocalErrors::default();
        for (seq, e) in [(1, 3e-8), (2, 5e-8), (3, 2.4e-4), (4, 4e-8)] {
            l.by_seq.insert(seq, (Stage::Softmax, e));
        }
        l.by_seq.insert(5, (Stage::FinalNorm, 5e-7));
        l.typical.insert(Stage::Softmax, 4e-8);
        l.typical.insert(Stage::FinalNorm, 5e-9);
        let v = l.verdict(3, "A").unwrap();
        assert!(v.local / v.typical > 1000.0, "{v:?}");
        assert!(v.reason("softmax").contains("the bound is 100x"));
        assert!(l.verdict(2, "A").is_none());
        // 100x its stage's typical error, but below the floor: f32 rounding, not a defect.
        assert!(l.verdict(5, "A").is_none());
    }
}
