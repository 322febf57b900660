//! greta's llama stages as ops: one mapping among several (DESIGN.md, "Ops and stages"). A stage names
//! where a launch sits; the op it maps to says what maths it does, with the params that op needs taken
//! from greta's [`Params`] (greta's own launches) or from the names another engine gave (a foreign
//! launch of a greta stage: only the names it gave count, so a missing `rope_theta` is refused, never
//! replaced by a default).
//!
//! | stage | op | params |
//! |---|---|---|
//! | embed | get_rows | |
//! | attn_norm, ffn_norm, final_norm | rms_norm | eps |
//! | q/k/v/qkv/o_proj, gate, up, down, lm_head | mul_mat | |
//! | rope_q, rope_k | rope (NORM) | pos, n_heads (rope_k: n_kv_heads), head_dim, rope_dim, rope_theta |
//! | kv_write | kv_write | |
//! | qk | scores | pos, n_heads, n_kv_heads, head_dim, scale |
//! | softmax | softmax | |
//! | pv | pv | pos, n_heads, n_kv_heads, head_dim |
//! | attn | attention | pos, n_heads, n_kv_heads, head_dim, scale |
//! | attn_residual, ffn_residual | add | |
//! | swiglu | swiglu | |
//! | argmax | argmax | |

use super::{Op, OpArgs};
use crate::launch::{Foreign, Params, Stage};

/// The op a greta stage computes (None for a stage greta does not know).
pub fn op_of(stage: Stage) -> Option<Op> {
    Some(match stage {
        Stage::Embed => Op::GetRows,
        Stage::AttnNorm | Stage::FfnNorm | Stage::FinalNorm => Op::RmsNorm,
        s if s.is_matmul() => Op::MulMat,
        Stage::RopeQ | Stage::RopeK => Op::Rope,
        Stage::KvWrite => Op::KvWrite,
        Stage::Qk => Op::Scores,
        Stage::Softmax => Op::Softmax,
        Stage::Pv => Op::Pv,
        Stage::Attn => Op::Attention,
        Stage::AttnResidual | Stage::FfnResidual => Op::Add,
        Stage::Swiglu => Op::Swiglu,
        Stage::Argmax => Op::Argmax,
        _ => return None,
    })
}

/// The params of `op` at `stage` from greta's own [`Params`].
fn from_params(stage: Stage, op: Op, p: &Params) -> Vec<(&'static str, f64)> {
    let heads = if stage == Stage::RopeK {
        p.n_kv_heads
    } else {
        p.n_heads
    };
    let f = |x: u32| f64::from(x);
    match op {
        Op::RmsNorm => vec![("eps", p.eps)],
        Op::Rope => vec![
            ("pos", f(p.pos)),
            ("n_heads", f(heads)),
            ("head_dim", f(p.head_dim)),
            ("rope_dim", f(p.rope_dim)),
            ("rope_theta", p.rope_theta),
        ],
        Op::Scores | Op::Attention => vec![
            ("pos", f(p.pos)),
            ("n_heads", f(p.n_heads)),
            ("n_kv_heads", f(p.n_kv_heads)),
            ("head_dim", f(p.head_dim)),
            ("scale", p.scale),
        ],
        Op::Pv => vec![
            ("pos", f(p.pos)),
            ("n_heads", f(p.n_heads)),
            ("n_kv_heads", f(p.n_kv_heads)),
            ("head_dim", f(p.head_dim)),
        ],
        _ => vec![],
    }
}

/// The params of `op` at `stage` from the names a foreign engine gave: the op's own names, plus
/// `n_kv_heads` as rope_k's `n_heads` (the heads it rotates). Names the op does not take (`rows`,
/// `kv_block`, the engine's own) are not the op's business and are left out.
fn from_names(stage: Stage, op: Op, given: &[(String, f64)]) -> Vec<(&'static str, f64)> {
    let spec = op.spec();
    let mut out = Vec::new();
    for ps in spec.params {
        let name = if stage == Stage::RopeK && ps.name == "n_heads" {
            "n_kv_heads"
        } else {
            ps.name
        };
        if let Some(&(_, v)) = given.iter().find(|(k, _)| k == name) {
            out.push((ps.name, v));
        }
    }
    out
}

/// The op of a launch: the one its engine named (`foreign.op`), else its stage's. None: greta does not
/// know it (the launch is kept, diffed by hash and listed as unjudged).
pub fn op_for(stage: Stage, foreign: Option<&Foreign>) -> Option<Op> {
    match foreign.and_then(|f| f.op.as_deref()) {
        Some(name) => Op::from_name(name),
        None => op_of(stage),
    }
}

/// The op call of a launch of `stage`: its op and params; the caller adds the inputs by role. None for
/// a launch greta has no op for. `foreign`: the launch was recorded by another engine (its params by
/// name are what counts).
pub fn op_args(stage: Stage, params: &Params, foreign: Option<&Foreign>) -> Option<OpArgs> {
    let op = op_for(stage, foreign)?;
    let mut a = OpArgs::new(op);
    let ps = match foreign {
        // An op the engine named: its params by their own names (rope_k's renaming is the stage's).
        Some(f) if f.op.is_some() => from_names(Stage::Other, op, &f.params),
        Some(f) => from_names(stage, op, &f.params),
        None => from_params(stage, op, params),
    };
    for (k, v) in ps {
        a.param(k, v);
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_greta_stage_maps_onto_an_op_with_the_same_roles() {
        for &s in Stage::ALL {
            let op = op_of(s).unwrap_or_else(|| panic!("{s} has no op"));
            let roles: Vec<&str> = op.spec().inputs.iter().map(|r| r.name).collect();
            for r in s.input_roles() {
                assert!(roles.contains(r), "{s}: role {r} not in {op}'s {roles:?}");
            }
            assert_eq!(op.spec().outputs, s.output_roles(), "{s}");
        }
    }

    #[test]
    fn a_foreign_rope_without_its_base_is_refused() {
        let f = Foreign {
            stage: "rope_q".into(),
            route: "numpy".into(),
            params: vec![
                ("pos".into(), 0.0),
                ("n_heads".into(), 1.0),
                ("head_dim".into(), 4.0),
            ],
            op: None,
        };
        let mut a = op_args(Stage::RopeQ, &Params::default(), Some(&f)).unwrap();
        a.declare("x", crate::launch::DType::F32, vec![1, 4]);
        let e = super::super::check(&a).unwrap_err();
        assert!(e.to_string().contains("rope_theta"), "{e}");
    }
}
