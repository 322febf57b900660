//! greta's llama stages as ops: one mapping among several (DESIGN.md, "Ops and stages"). A stage names
//! where a launch sits; the op it maps to says what maths it does, with the params that op needs taken
//! from greta's [`Params`] (greta's own launches) or from the names another engine gave (a foreign
//! launch of a greta stage: only the names it gave count, so a missing `rope_theta` is refused, never
//! replaced by a default).
//!
//! | stage | op | params |
//! |---|---|---|
//! | embed | get_rows | |
//! | embed_scale | scale | scale |
//! | attn_norm, ffn_norm, final_norm, attn_post_norm, ffn_post_norm | rms_norm | eps |
//! | q_norm, k_norm | rms_norm over `[n·heads, head_dim]` ([`op_input`]) | eps |
//! | q/k/v/qkv/o_proj, gate, up, down, lm_head | mul_mat | |
//! | q_bias, k_bias, v_bias | add (bias `r` broadcast over rows) | |
//! | rope_q, rope_k | rope | pos, n_heads (rope_k: n_kv_heads), head_dim, rope_dim, rope_theta, mode |
//! | kv_write | kv_write | |
//! | qk | scores | pos, n_heads, n_kv_heads, head_dim, scale, window |
//! | softmax | softmax | |
//! | pv | pv | pos, n_heads, n_kv_heads, head_dim |
//! | attn | attention | pos, n_heads, n_kv_heads, head_dim, scale, window |
//! | attn_residual, ffn_residual | add | |
//! | swiglu | swiglu | |
//! | geglu | geglu | |
//! | argmax | argmax | |

use super::{Op, OpArgs};
use crate::launch::{Foreign, Params, Stage, Tensor};

/// The op a greta stage computes (None for a stage greta does not know).
pub fn op_of(stage: Stage) -> Option<Op> {
    Some(match stage {
        Stage::Embed => Op::GetRows,
        Stage::EmbedScale => Op::Scale,
        s if s.is_rms_norm() => Op::RmsNorm,
        s if s.is_matmul() => Op::MulMat,
        s if s.is_bias() => Op::Add,
        Stage::Geglu => Op::Geglu,
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
        Op::Scale => vec![("scale", p.scale)],
        Op::Rope => vec![
            ("pos", f(p.pos)),
            ("n_heads", f(heads)),
            ("head_dim", f(p.head_dim)),
            ("rope_dim", f(p.rope_dim)),
            ("rope_theta", p.rope_theta),
            ("mode", f(p.rope_mode)),
        ],
        Op::Scores | Op::Attention => vec![
            ("pos", f(p.pos)),
            ("n_heads", f(p.n_heads)),
            ("n_kv_heads", f(p.n_kv_heads)),
            ("head_dim", f(p.head_dim)),
            ("scale", p.scale),
            ("window", f(p.window)),
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

/// The op's view of input `role` of a launch of `stage`: q_norm and k_norm normalise each head of a
/// `[n, heads·head_dim]` row on its own, which is rms_norm over the rows of `[n·heads, head_dim]` (as
/// llama.cpp's graph reshapes Qcur to 3-d before its norm); every other input is as recorded. The
/// bytes are the same either way, so the reference's output compares element for element.
pub fn op_input(stage: Stage, params: &Params, role: &str, t: Tensor) -> Tensor {
    Tensor {
        shape: op_shape(stage, params, role, &t.shape),
        ..t
    }
}

/// The shape [`op_input`] gives input `role` (the capture check sees shapes only).
pub fn op_shape(stage: Stage, params: &Params, role: &str, shape: &[usize]) -> Vec<usize> {
    let hd = params.head_dim as usize;
    let n: usize = shape.iter().product();
    if matches!(stage, Stage::QNorm | Stage::KNorm) && role == "x" && hd > 0 && n % hd == 0 {
        return vec![n / hd, hd];
    }
    shape.to_vec()
}

/// The params of `op` at `stage` from the names a foreign engine gave. For a greta stage, only the
/// params that stage takes (those [`from_params`] fills; rope_k's `n_heads` is given as `n_kv_heads`):
/// an engine passes greta's whole `Params` by name, and `scale` (the attention scale) must not become
/// the softmax op's input scale. For a named op (`stage` None), every param of the op. Names the op does
/// not take (`rows`, `kv_block`, the engine's own) are not the op's business and are left out.
fn from_names(stage: Option<Stage>, op: Op, given: &[(String, f64)]) -> Vec<(&'static str, f64)> {
    let taken: Vec<&'static str> = match stage {
        Some(s) => from_params(s, op, &Params::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
        None => op.spec().params.iter().map(|p| p.name).collect(),
    };
    let mut out = Vec::new();
    for name in taken {
        let as_given = if stage == Some(Stage::RopeK) && name == "n_heads" {
            "n_kv_heads"
        } else {
            name
        };
        if let Some(&(_, v)) = given.iter().find(|(k, _)| k == as_given) {
            out.push((name, v));
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
        // An op the engine named: its params by their own names.
        Some(f) if f.op.is_some() => from_names(None, op, &f.params),
        Some(f) => from_names(Some(stage), op, &f.params),
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
    fn a_greta_stage_takes_only_its_own_params() {
        // An engine passes greta's whole Params by name: the attention scale is not softmax's scale.
        let f = Foreign {
            stage: "softmax".into(),
            route: "k".into(),
            params: vec![("scale".into(), 0.125), ("pos".into(), 3.0)],
            op: None,
        };
        let a = op_args(Stage::Softmax, &Params::default(), Some(&f)).unwrap();
        assert!(a.params.is_empty(), "{:?}", a.params);
        let f = Foreign {
            op: Some("softmax".into()),
            ..f
        };
        let a = op_args(Stage::Other, &Params::default(), Some(&f)).unwrap();
        assert_eq!(a.params, vec![("scale".to_string(), 0.125)]);
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
