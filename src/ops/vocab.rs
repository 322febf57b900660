//! The op vocabulary and its contracts, declared once: one [`Spec`] per [`Op`]. Contract checks
//! ([`super::check`]), the f64 reference's dispatch and the docs table (docs/OPS.md) all read this table,
//! so adding an op is one entry here plus its reference kernel (and routes, where greta runs it).

/// Which element types an input role accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kinds {
    /// Activations: f32, f64, f16 or bf16.
    Float,
    /// A weight: any float type or GGUF block format.
    Weight,
    /// Token ids, positions or expert ids: i32.
    Ids,
}

impl Kinds {
    /// The name in the docs table.
    pub fn name(self) -> &'static str {
        match self {
            Kinds::Float => "float",
            Kinds::Weight => "weight",
            Kinds::Ids => "i32",
        }
    }
}

/// One input role of an op.
#[derive(Clone, Copy, Debug)]
pub struct RoleSpec {
    /// The role's name (what a launch calls the input).
    pub name: &'static str,
    /// The element types it takes.
    pub kinds: Kinds,
    /// False when the op runs without it (a bias, a norm's weight, rope's frequency factors).
    pub required: bool,
    /// Shape, in the docs' words.
    pub shape: &'static str,
}

/// One scalar param of an op.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// Its name (greta's `Params` field names where they exist; the capture API's names).
    pub name: &'static str,
    /// None: required (a launch without it is refused). Some(v): the value when absent.
    pub default: Option<f64>,
    /// What it means.
    pub doc: &'static str,
}

/// An op's contract.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The op.
    pub op: Op,
    /// What it computes, as maths.
    pub doc: &'static str,
    /// Input roles, in order.
    pub inputs: &'static [RoleSpec],
    /// Output roles, in order.
    pub outputs: &'static [&'static str],
    /// Scalar params.
    pub params: &'static [ParamSpec],
}

const fn req(name: &'static str, kinds: Kinds, shape: &'static str) -> RoleSpec {
    RoleSpec {
        name,
        kinds,
        required: true,
        shape,
    }
}

const fn opt(name: &'static str, kinds: Kinds, shape: &'static str) -> RoleSpec {
    RoleSpec {
        name,
        kinds,
        required: false,
        shape,
    }
}

const fn must(name: &'static str, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        default: None,
        doc,
    }
}

const fn dflt(name: &'static str, v: f64, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        default: Some(v),
        doc,
    }
}

use Kinds::{Float, Ids, Weight};

const EPS: ParamSpec = must("eps", "epsilon added to the mean square (or variance)");
const POS: ParamSpec = must(
    "pos",
    "position of the first row; row i is at pos + i (attention: the last key row i may see)",
);
const HEADS: ParamSpec = must("n_heads", "query heads");
const KV_HEADS: ParamSpec = must(
    "n_kv_heads",
    "key/value heads (grouped-query: query head h reads kv head h / (n_heads / n_kv_heads))",
);
const HEAD_DIM: ParamSpec = must("head_dim", "dimension of one head");
const SCALE: ParamSpec = must("scale", "score scale (usually 1/sqrt(head_dim))");
const WINDOW: ParamSpec = dflt(
    "window",
    0.0,
    "sliding window: row at position p sees keys p-window+1 ..= p; 0: no window",
);
const SOFTCAP: ParamSpec = dflt(
    "softcap",
    0.0,
    "logit soft-cap c: scores become c·tanh(s/c) after scaling; 0: none",
);

/// Every op's contract, in the order of the docs table.
pub(crate) const SPECS: &[Spec] = &[
    Spec {
        op: Op::MulMat,
        doc: "out[i,o] = Σ_k x[i,k]·w[o,k] (+ b[o]); w dequantised exactly (GGUF block formats)",
        inputs: &[
            req("x", Float, "[n, k]"),
            req("w", Weight, "[m, k]"),
            opt("b", Float, "[m]"),
        ],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::MulMatId,
        doc: "MoE experts: out[i,t,o] = Σ_k x[i,k]·w[ids[i,t],o,k]",
        inputs: &[
            req("x", Float, "[n, k]"),
            req("w", Weight, "[E, m, k]"),
            req("ids", Ids, "[n, top_k]"),
        ],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::GetRows,
        doc: "out[i] = table[ids[i]] (embedding lookup), times `scale`",
        inputs: &[req("ids", Ids, "[n]"), req("table", Weight, "[V, d]")],
        outputs: &["out"],
        params: &[dflt(
            "scale",
            1.0,
            "factor on every value (Gemma: sqrt(n_embd))",
        )],
    },
    Spec {
        op: Op::RmsNorm,
        doc: "out = x / sqrt(mean(x²) + eps) · w, per row",
        inputs: &[req("x", Float, "[.., d]"), opt("w", Float, "[d]")],
        outputs: &["out"],
        params: &[EPS],
    },
    Spec {
        op: Op::Norm,
        doc: "layer norm: out = (x − mean(x)) / sqrt(var(x) + eps) · w + b, per row",
        inputs: &[
            req("x", Float, "[.., d]"),
            opt("w", Float, "[d]"),
            opt("b", Float, "[d]"),
        ],
        outputs: &["out"],
        params: &[EPS],
    },
    Spec {
        op: Op::Rope,
        doc: "rotary embedding per head: pair (a, b) at angle θ_j·p → (a cos − b sin, a sin + b cos); \
              θ_j = base^(−2j/rope_dim) / freq_factors[j], with YaRN when ext_factor ≠ 0",
        inputs: &[
            req("x", Float, "[n, n_heads·head_dim]"),
            opt("freq_factors", Float, "[rope_dim/2]"),
            opt("positions", Ids, "[n]"),
        ],
        outputs: &["out"],
        params: &[
            POS,
            HEADS,
            HEAD_DIM,
            must("rope_theta", "base frequency (theta)"),
            dflt(
                "rope_dim",
                0.0,
                "leading dimensions of each head that rotate; 0: all (head_dim)",
            ),
            dflt(
                "mode",
                0.0,
                "0 NORM (adjacent pairs 2j, 2j+1: llama), 2 NEOX (pairs j, j+rope_dim/2: Qwen, Gemma)",
            ),
            dflt(
                "freq_scale",
                1.0,
                "position interpolation factor (linear scaling)",
            ),
            dflt("ext_factor", 0.0, "YaRN extrapolation mix; 0: no YaRN"),
            dflt("attn_factor", 1.0, "YaRN magnitude factor"),
            dflt("beta_fast", 32.0, "YaRN ramp start"),
            dflt("beta_slow", 1.0, "YaRN ramp end"),
            dflt("n_ctx_orig", 0.0, "YaRN original context length"),
        ],
    },
    Spec {
        op: Op::Scores,
        doc: "s[h,i,j] = scale·q[i,h]·k[j,kvh(h)] for keys the row sees (causal, window), else −inf; \
              soft-capped when softcap > 0",
        inputs: &[
            req("q", Float, "[n, n_heads·head_dim]"),
            req("k_cache", Float, "[ctx, n_kv_heads·head_dim]"),
        ],
        outputs: &["out"],
        params: &[POS, HEADS, KV_HEADS, HEAD_DIM, SCALE, WINDOW, SOFTCAP],
    },
    Spec {
        op: Op::Softmax,
        doc: "out = exp(y − max y) / Σ exp(y − max y) per row, y = scale·x (+ mask); −inf → 0",
        inputs: &[
            req("scores", Float, "[.., cols]"),
            opt("mask", Float, "[r, cols], row i uses mask row i mod r"),
        ],
        outputs: &["out"],
        params: &[dflt("scale", 1.0, "factor on the input before the mask")],
    },
    Spec {
        op: Op::Pv,
        doc: "out[i,h] = Σ_j p[h,i,j]·v[j,kvh(h)]",
        inputs: &[
            req("probs", Float, "[n_heads, n, ctx]"),
            req("v_cache", Float, "[ctx, n_kv_heads·head_dim]"),
        ],
        outputs: &["out"],
        params: &[POS, HEADS, KV_HEADS, HEAD_DIM],
    },
    Spec {
        op: Op::Attention,
        doc: "softmax(scale·q·kᵀ, causal and window masks, soft-cap, sinks)·v, straight: scores, \
              one softmax over all keys, weighted sum",
        inputs: &[
            req("q", Float, "[n, n_heads·head_dim]"),
            req("k_cache", Float, "[ctx, n_kv_heads·head_dim]"),
            req("v_cache", Float, "[ctx, n_kv_heads·head_dim]"),
            opt(
                "sinks",
                Float,
                "[n_heads] (a logit per head in the denominator)",
            ),
        ],
        outputs: &["out"],
        params: &[POS, HEADS, KV_HEADS, HEAD_DIM, SCALE, WINDOW, SOFTCAP],
    },
    Spec {
        op: Op::Add,
        doc: "out = x + r (r the same shape, or one row broadcast: residuals, bias adds)",
        inputs: &[
            req("x", Float, "[.., d]"),
            req("r", Float, "[.., d] or [d]"),
        ],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Mul,
        doc: "out = x · y (y the same shape, or one row broadcast)",
        inputs: &[
            req("x", Float, "[.., d]"),
            req("y", Float, "[.., d] or [d]"),
        ],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Scale,
        doc: "out = x · scale + bias",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[must("scale", "factor"), dflt("bias", 0.0, "added after")],
    },
    Spec {
        op: Op::Silu,
        doc: "out = x / (1 + exp(−x))",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Gelu,
        doc: "out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (tanh approximation)",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::GeluErf,
        doc: "out = ½x(1 + erf(x/√2))",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Sigmoid,
        doc: "out = 1 / (1 + exp(−x))",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Tanh,
        doc: "out = tanh(x)",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Softcap,
        doc: "out = cap·tanh(x / cap) (Gemma's final-logit soft-cap)",
        inputs: &[req("x", Float, "any")],
        outputs: &["out"],
        params: &[must("cap", "the cap (> 0)")],
    },
    Spec {
        op: Op::Swiglu,
        doc: "out = silu(gate) · up",
        inputs: &[req("gate", Float, "[.., d]"), req("up", Float, "[.., d]")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Geglu,
        doc: "out = gelu(gate) · up (tanh approximation: Gemma)",
        inputs: &[req("gate", Float, "[.., d]"), req("up", Float, "[.., d]")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::GegluErf,
        doc: "out = gelu_erf(gate) · up",
        inputs: &[req("gate", Float, "[.., d]"), req("up", Float, "[.., d]")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::MoeRoute,
        doc: "router: p = softmax(logits) (or sigmoid); the top_k experts by p (ties: lower id first), \
              their weights p (renormalised to sum 1 when norm = 1), times weight_scale",
        inputs: &[req("logits", Float, "[n, E]")],
        outputs: &["ids", "weights"],
        params: &[
            must("top_k", "experts per token"),
            dflt("gating", 0.0, "0 softmax, 1 sigmoid"),
            dflt("norm", 0.0, "1: renormalise the chosen weights to sum 1"),
            dflt("weight_scale", 1.0, "factor on the chosen weights"),
        ],
    },
    Spec {
        op: Op::KvWrite,
        doc: "the rows written to the KV cache are k and v, unchanged",
        inputs: &[
            req("k", Float, "[n, n_kv_heads·head_dim]"),
            req("v", Float, "[n, n_kv_heads·head_dim]"),
        ],
        outputs: &["k_rows", "v_rows"],
        params: &[],
    },
    Spec {
        op: Op::Cpy,
        doc: "out = x converted to the output's type: f32, f16/bf16 (round to nearest even), q8_0 \
              (ggml's reference quantisation)",
        inputs: &[req("x", Float, "any (q8_0: rows of whole blocks)")],
        outputs: &["out"],
        params: &[],
    },
    Spec {
        op: Op::Argmax,
        doc: "out[i] = the first index of the largest logit of row i (NaN never wins)",
        inputs: &[req("logits", Float, "[n, V]")],
        outputs: &["out"],
        params: &[],
    },
];

macro_rules! ops {
    ($( $(#[$doc:meta])* $v:ident = $name:literal, )*) => {
        /// What maths a launch does (DESIGN.md, "Ops and stages"); its contract is [`Op::spec`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op { $( $(#[$doc])* $v, )* }

        impl Op {
            /// Every op, in declaration order.
            pub const ALL: &'static [Op] = &[ $( Op::$v, )* ];

            /// The op's name (capture API, JSON, docs).
            pub fn name(self) -> &'static str {
                match self { $( Op::$v => $name, )* }
            }
        }
    };
}

ops! {
    /// Matrix times vector/matrix, any weight type, optional bias (GGML MUL_MAT).
    MulMat = "mul_mat",
    /// Mixture-of-experts matmul by expert id (GGML MUL_MAT_ID).
    MulMatId = "mul_mat_id",
    /// Embedding lookup (GGML GET_ROWS).
    GetRows = "get_rows",
    /// RMS norm (GGML RMS_NORM, with the weight multiply).
    RmsNorm = "rms_norm",
    /// Layer norm with weight and bias (GGML NORM).
    Norm = "norm",
    /// Rotary position embedding, NORM and NEOX modes (GGML ROPE).
    Rope = "rope",
    /// Attention scores q·kᵀ, masked.
    Scores = "scores",
    /// Row softmax with scale and mask (GGML SOFT_MAX).
    Softmax = "softmax",
    /// Probabilities times values.
    Pv = "pv",
    /// Fused attention (GGML FLASH_ATTN_EXT).
    Attention = "attention",
    /// Elementwise add with row broadcast (GGML ADD).
    Add = "add",
    /// Elementwise multiply with row broadcast (GGML MUL).
    Mul = "mul",
    /// x·scale + bias (GGML SCALE).
    Scale = "scale",
    /// SiLU (GGML UNARY silu).
    Silu = "silu",
    /// GELU, tanh approximation (GGML UNARY gelu).
    Gelu = "gelu",
    /// GELU, exact (GGML UNARY gelu_erf).
    GeluErf = "gelu_erf",
    /// Logistic sigmoid.
    Sigmoid = "sigmoid",
    /// Hyperbolic tangent.
    Tanh = "tanh",
    /// cap·tanh(x/cap).
    Softcap = "softcap",
    /// silu(gate)·up (GGML GLU swiglu).
    Swiglu = "swiglu",
    /// gelu(gate)·up (GGML GLU geglu).
    Geglu = "geglu",
    /// gelu_erf(gate)·up (GGML GLU geglu_erf).
    GegluErf = "geglu_erf",
    /// MoE router: gating, top-k, renormalisation (GGML ARGSORT/TOP_K + GET_ROWS + DIV).
    MoeRoute = "moe_route",
    /// KV-cache write (GGML SET_ROWS/CPY into the cache).
    KvWrite = "kv_write",
    /// Copy with a type cast (GGML CPY).
    Cpy = "cpy",
    /// Greedy sampling (GGML ARGMAX).
    Argmax = "argmax",
}

impl Op {
    /// The op's contract.
    pub fn spec(self) -> &'static Spec {
        SPECS
            .iter()
            .find(|s| s.op == self)
            .expect("every op has a spec (tested)")
    }

    /// The op named `name`, if greta knows it.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == name)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_one_spec_in_order() {
        assert_eq!(SPECS.len(), Op::ALL.len());
        for (s, &o) in SPECS.iter().zip(Op::ALL) {
            assert_eq!(s.op, o);
            assert_eq!(Op::from_name(o.name()), Some(o));
        }
    }
}
