//! Routes: which kernel variant runs a launch, and the documented rule that picks it.
//!
//! A production engine runs the same math through different kernels depending on the launch shape:
//! one-row decode launches go through a `gemv`, many-row prefill launches through a tiled `gemm` that
//! reduces in another order; decode attention is a fused flash-decoding kernel, prefill attention three
//! launches. Those choices are exactly what makes decode step k differ from prefill's row k, so greta
//! makes them explicit, records them, and lets any of them be forced.
//!
//! The rule ([`RoutePolicy::choose`]):
//! - matmul stages: forced variant if any; else `gemm_invariant` in invariant mode; else `gemv` for a
//!   one-row launch and `gemm_tiled` for more rows.
//! - attention: forced variant if any; else `manual` in invariant mode; else `fused` for one row and
//!   `manual` for more.
//! - a backend may name its own default for a stage ([`Backend::preferred`](super::Backend::preferred)),
//!   used in the default mode when nothing is forced: the GPU backend defaults matmuls to the engine-style
//!   routes (`gemm_mma` for prefill, `gemv_q8` for one-row decode on quantized weights).
//! - every other stage: `direct` (one kernel, whose per-row result never depends on the row count).
//! - precision: the policy's precision (`f32` or `f64` on the CPU; `f16` accumulation is a GPU attention route).

use super::names::named;
use super::stage::Stage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

named! {
    /// A kernel variant.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Variant ("route variant", "variants") {
        /// Matmul, one row at a time; each output is one dot product with a fixed 8-lane reduction.
        Gemv = "gemv",
        /// Matmul over row tiles with the reduction split in K-blocks (another summation order than gemv).
        GemmTiled = "gemm_tiled",
        /// Matmul over row tiles with exactly gemv's per-row reduction order: batch-invariant.
        GemmInvariant = "gemm_invariant",
        /// Attention as three launches: qk, softmax, pv.
        Manual = "manual",
        /// Attention as one launch with an online softmax over key blocks (flash-decoding).
        Fused = "fused",
        /// The single variant of non-matmul, non-attention stages.
        Direct = "direct",
    }
    unlisted {
        /// Another engine's own kernel (open capture): its name is in the launch's
        /// [`Foreign`](crate::launch::Foreign) record. greta cannot run it; not in [`Variant::ALL`], and
        /// `engine` does not parse as a route.
        Engine = "engine" => false,
    }
    later {
        /// Matmul as llama.cpp-style engines decode: activations quantised to Q8_1 blocks of 32, integer
        /// dot products with the weight's quants per block, blocks scaled and summed in f32
        /// (kernels/q8.cu). Tape format 4.
        GemvQ8 = "gemv_q8",
        /// Matmul on matrix cores (tensor cores / MFMA): f16 inputs, f32 accumulation per k-slice of 16
        /// (kernels/mma.cu). Batch-invariant; the CPU's emulation of it is close, not bit-exact. Tape
        /// format 4.
        GemmMma = "gemm_mma",
    }
}

/// The op family a stage belongs to, for `--route FAMILY=VARIANT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpFamily {
    /// Weight matmuls: q/k/v/o projections, gate, up, down, lm_head.
    Matmul,
    /// qk, softmax, pv, or fused attn.
    Attention,
    /// Everything else.
    Elementwise,
}

impl OpFamily {
    /// The family of a stage.
    pub fn of(stage: Stage) -> OpFamily {
        if stage.is_matmul() {
            OpFamily::Matmul
        } else if stage.is_attention() {
            OpFamily::Attention
        } else {
            OpFamily::Elementwise
        }
    }

    /// The variants valid for this family.
    pub fn variants(self) -> &'static [Variant] {
        match self {
            OpFamily::Matmul => &[
                Variant::Gemv,
                Variant::GemmTiled,
                Variant::GemmInvariant,
                Variant::GemvQ8,
                Variant::GemmMma,
            ],
            OpFamily::Attention => &[Variant::Manual, Variant::Fused],
            OpFamily::Elementwise => &[Variant::Direct],
        }
    }

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OpFamily::Matmul => "matmul",
            OpFamily::Attention => "attention",
            OpFamily::Elementwise => "elementwise",
        }
    }
}

impl Variant {
    /// The variants a stage has kernels for: its family's, narrowed for attention (`qk`, `softmax` and
    /// `pv` are the three launches of `manual`, `attn` is the one launch of `fused`). Each backend's
    /// [`Backend::routes`](super::Backend::routes) pairs these with the precisions it runs.
    pub fn of_stage(stage: Stage) -> &'static [Variant] {
        match stage {
            Stage::Qk | Stage::Softmax | Stage::Pv => &[Variant::Manual],
            Stage::Attn => &[Variant::Fused],
            s => OpFamily::of(s).variants(),
        }
    }
}

named! {
    /// Arithmetic precision of a route: what the kernel computes and accumulates in.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Precision ("precision", "precisions") {
        /// f64 everywhere: the reference.
        F64 = "f64",
        /// f32 arithmetic and accumulation: the fast path.
        F32 = "f32",
        /// f16 accumulation (GPU attention route); storage stays f32.
        F16 = "f16",
    }
}

/// The route a launch ran on: variant plus precision. Printed as `variant/precision`, e.g. `gemv/f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// The kernel variant.
    pub variant: Variant,
    /// What it computes in.
    pub precision: Precision,
}

impl Route {
    /// A route from its parts.
    pub fn new(variant: Variant, precision: Precision) -> Route {
        Route { variant, precision }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.variant, self.precision)
    }
}

impl FromStr for Route {
    type Err = String;
    /// Parses `variant/precision` or a bare `variant` (precision f32).
    fn from_str(s: &str) -> Result<Self, String> {
        let (v, p) = s.split_once('/').unwrap_or((s, "f32"));
        Ok(Route::new(v.parse()?, p.parse()?))
    }
}

/// A bad `--route` or `--routes` value.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Not of the form OP=VARIANT.
    #[error(
        "bad route `{0}`: expected OP=VARIANT, e.g. matmul=gemv, q_proj=gemm_tiled, attention=fused"
    )]
    Syntax(String),
    /// OP is neither a family nor a stage.
    #[error(
        "unknown op `{op}` in --route: valid ops are matmul, attention, or a stage name ({stages})"
    )]
    UnknownOp {
        /// What was given.
        op: String,
        /// The valid stage names.
        stages: String,
    },
    /// VARIANT does not exist or does not fit OP.
    #[error("route variant `{variant}` is not valid for `{op}`: valid variants are {valid}")]
    BadVariant {
        /// The op.
        op: String,
        /// What was given.
        variant: String,
        /// The valid ones for this op.
        valid: String,
    },
}

named! {
    /// Which default rule is in force (`--routes`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
    pub enum RouteMode ("route rule", "route rules") {
        /// Shape-dependent routes, like a production engine.
        #[default]
        Default = "default",
        /// Batch-invariant routes: a row's result does not depend on how many rows share the launch.
        Invariant = "invariant",
    }
}

/// The rule that picks a route for each launch, plus the routes forced by the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutePolicy {
    /// Precision of every route.
    pub precision: Precision,
    /// Default or invariant rule.
    pub mode: RouteMode,
    /// Forced variants per op family.
    pub family: BTreeMap<OpFamily, Variant>,
    /// Forced variants per stage (win over family).
    pub stage: BTreeMap<Stage, Variant>,
    /// Precision forced per op family (`--route attention=fused/f16`), else `precision`.
    #[serde(default)]
    pub family_precision: BTreeMap<OpFamily, Precision>,
    /// A change to the route rule itself, as a code change would make: consulted by [`RoutePolicy::choose`]
    /// but not part of the options ([`RoutePolicy::describe`]). Set only from the `GRETA_DEBUG_ROUTE_RULE`
    /// environment variable (`stage=variant,...`), so tests can show that a golden check catches a changed
    /// route rule. Never set it in production.
    #[serde(skip)]
    pub rule_change: BTreeMap<Stage, Variant>,
}

impl RoutePolicy {
    /// The default rule at a precision.
    pub fn new(precision: Precision) -> RoutePolicy {
        let mut p = RoutePolicy {
            precision,
            mode: RouteMode::Default,
            family: BTreeMap::new(),
            stage: BTreeMap::new(),
            family_precision: BTreeMap::new(),
            rule_change: BTreeMap::new(),
        };
        if let Ok(spec) = std::env::var("GRETA_DEBUG_ROUTE_RULE") {
            for part in spec.split(',').filter(|s| !s.is_empty()) {
                if let Some((st, v)) = part.split_once('=') {
                    if let (Ok(st), Ok(v)) = (st.parse::<Stage>(), v.parse::<Variant>()) {
                        p.rule_change.insert(st, v);
                    }
                }
            }
        }
        p
    }

    /// Applies one `OP=VARIANT[/PRECISION]` override (OP: `matmul`, `attention` or a stage name); a
    /// precision applies to the op's whole family (e.g. `attention=fused/f16` on the GPU).
    pub fn force(&mut self, spec: &str) -> Result<(), RouteError> {
        let (op, var) = spec
            .split_once('=')
            .ok_or_else(|| RouteError::Syntax(spec.to_string()))?;
        let (var, precision) = match var.split_once('/') {
            Some((v, p)) => (
                v,
                Some(
                    p.parse::<Precision>()
                        .map_err(|_| RouteError::Syntax(spec.to_string()))?,
                ),
            ),
            None => (var, None),
        };
        let (family, stage) = match op {
            "matmul" => (OpFamily::Matmul, None),
            "attention" | "attn" => (OpFamily::Attention, None),
            _ => match op.parse::<Stage>() {
                Ok(st) => (OpFamily::of(st), Some(st)),
                Err(_) => {
                    let stages: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
                    return Err(RouteError::UnknownOp {
                        op: op.to_string(),
                        stages: stages.join(", "),
                    });
                }
            },
        };
        let bad = || RouteError::BadVariant {
            op: op.to_string(),
            variant: var.to_string(),
            valid: family
                .variants()
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let v: Variant = var.parse().map_err(|_| bad())?;
        if !family.variants().contains(&v) {
            return Err(bad());
        }
        if let Some(p) = precision {
            self.family_precision.insert(family, p);
        }
        // Attention is one choice for the whole block (qk/softmax/pv or attn), so a stage-level force
        // on an attention stage applies to the family.
        match stage {
            Some(st) if family != OpFamily::Attention => {
                self.stage.insert(st, v);
            }
            _ => {
                self.family.insert(family, v);
            }
        }
        Ok(())
    }

    /// The route for a launch of `stage` over `rows` rows (see the module doc for the rule).
    pub fn choose(&self, stage: Stage, rows: usize) -> Route {
        self.choose_with(stage, rows, None)
    }

    /// [`choose`](Self::choose) with the backend's own default for the stage (see
    /// [`Backend::preferred`](super::Backend::preferred)): used in the default mode where nothing is
    /// forced, so a GPU backend can default to the routes production engines run.
    pub fn choose_with(&self, stage: Stage, rows: usize, preferred: Option<Variant>) -> Route {
        let family = OpFamily::of(stage);
        let forced = self
            .rule_change
            .get(&stage)
            .or_else(|| self.stage.get(&stage))
            .or_else(|| self.family.get(&family))
            .copied();
        let preferred = preferred.filter(|_| self.mode == RouteMode::Default);
        let variant = forced.or(preferred).unwrap_or(match (family, self.mode) {
            (OpFamily::Matmul, RouteMode::Invariant) => Variant::GemmInvariant,
            (OpFamily::Matmul, RouteMode::Default) if rows == 1 => Variant::Gemv,
            (OpFamily::Matmul, RouteMode::Default) => Variant::GemmTiled,
            (OpFamily::Attention, RouteMode::Invariant) => Variant::Manual,
            (OpFamily::Attention, RouteMode::Default) if rows == 1 => Variant::Fused,
            (OpFamily::Attention, RouteMode::Default) => Variant::Manual,
            (OpFamily::Elementwise, _) => Variant::Direct,
        });
        Route::new(
            variant,
            self.family_precision
                .get(&family)
                .copied()
                .unwrap_or(self.precision),
        )
    }

    /// One line per forced route, `op=variant`, for headers and reports.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!("precision={}", self.precision)];
        if self.mode == RouteMode::Invariant {
            out.push("mode=invariant".into());
        }
        out.extend(
            self.family
                .iter()
                .map(|(f, v)| format!("{}={}", f.name(), v)),
        );
        out.extend(self.stage.iter().map(|(s, v)| format!("{}={}", s, v)));
        out.extend(
            self.family_precision
                .iter()
                .map(|(f, p)| format!("{}.precision={}", f.name(), p)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule() {
        let p = RoutePolicy::new(Precision::F32);
        assert_eq!(p.choose(Stage::QProj, 1).variant, Variant::Gemv);
        assert_eq!(p.choose(Stage::QProj, 7).variant, Variant::GemmTiled);
        assert_eq!(p.choose(Stage::Qk, 7).variant, Variant::Manual);
        assert_eq!(p.choose(Stage::Attn, 1).variant, Variant::Fused);
        assert_eq!(p.choose(Stage::AttnNorm, 7).variant, Variant::Direct);
    }

    #[test]
    fn forcing() {
        let mut p = RoutePolicy::new(Precision::F64);
        p.force("matmul=gemv").unwrap();
        p.force("down=gemm_tiled").unwrap();
        p.force("attention=manual").unwrap();
        assert_eq!(
            p.choose(Stage::Up, 9),
            Route::new(Variant::Gemv, Precision::F64)
        );
        assert_eq!(p.choose(Stage::Down, 1).variant, Variant::GemmTiled);
        assert_eq!(p.choose(Stage::Qk, 1).variant, Variant::Manual);
        let e = p.force("matmul=fused").unwrap_err().to_string();
        assert!(e.contains("gemv, gemm_tiled, gemm_invariant"), "{e}");
        assert!(
            p.force("bogus=gemv")
                .unwrap_err()
                .to_string()
                .contains("q_proj")
        );
        assert!(p.force("nonsense").is_err());
        p.force("attention=fused/f16").unwrap();
        assert_eq!(
            p.choose(Stage::Attn, 1),
            Route::new(Variant::Fused, Precision::F16)
        );
        assert_eq!(p.choose(Stage::Up, 1).precision, Precision::F64);
        assert_eq!(
            "gemv/f64".parse::<Route>().unwrap(),
            Route::new(Variant::Gemv, Precision::F64)
        );
    }
}
