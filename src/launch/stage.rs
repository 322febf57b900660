//! Phases and stages: the names used everywhere (CLI, tape, JSON, docs), from DESIGN.md's vocabulary.

use super::names::named;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which part of the run a launch belongs to: the prompt (`prefill`) or decode step k (`decode<k>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// All prompt tokens at once, as many-row launches.
    Prefill,
    /// Decode step k (0-based): one new token, one-row launches.
    Decode(u32),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Prefill => write!(f, "prefill"),
            Phase::Decode(k) => write!(f, "decode{k}"),
        }
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "prefill" {
            return Ok(Phase::Prefill);
        }
        if let Some(k) = s.strip_prefix("decode") {
            if let Ok(k) = k.parse() {
                return Ok(Phase::Decode(k));
            }
        }
        Err(format!(
            "unknown phase `{s}`: expected `prefill` or `decode<k>` (decode0, decode1, ...)"
        ))
    }
}

named! {
    /// One kind of kernel launch in the forward pass (per layer unless noted as global).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub enum Stage ("stage", "stages") {
        /// Global: token ids to embedding rows.
        Embed = "embed",
        /// RMSNorm before attention.
        AttnNorm = "attn_norm",
        /// Query projection.
        QProj = "q_proj",
        /// Key projection.
        KProj = "k_proj",
        /// Value projection.
        VProj = "v_proj",
        /// Fused q/k/v projection (when a route fuses them).
        QkvProj = "qkv_proj",
        /// Rotary embedding of queries.
        RopeQ = "rope_q",
        /// Rotary embedding of keys.
        RopeK = "rope_k",
        /// Write of this launch's key and value rows into the KV cache.
        KvWrite = "kv_write",
        /// Attention scores q·k (scaled, causally masked).
        Qk = "qk",
        /// Row softmax of the scores.
        Softmax = "softmax",
        /// Probabilities times values.
        Pv = "pv",
        /// Fused attention (qk, softmax and pv in one launch).
        Attn = "attn",
        /// Attention output projection.
        OProj = "o_proj",
        /// Residual add after attention.
        AttnResidual = "attn_residual",
        /// RMSNorm before the FFN.
        FfnNorm = "ffn_norm",
        /// FFN gate projection.
        Gate = "gate",
        /// FFN up projection.
        Up = "up",
        /// silu(gate) * up.
        Swiglu = "swiglu",
        /// FFN down projection.
        Down = "down",
        /// Residual add after the FFN.
        FfnResidual = "ffn_residual",
        /// Global: RMSNorm after the last layer.
        FinalNorm = "final_norm",
        /// Global: logits from the last hidden row.
        LmHead = "lm_head",
        /// Global: greedy sampling.
        Argmax = "argmax",
    }
    unlisted {
        /// A stage greta does not know, recorded by another engine (open capture). Its name is in
        /// the launch's [`Foreign`](crate::launch::Foreign) record; greta keeps, lists and diffs it by
        /// hash but has no kernel or reference for it. Not in [`Stage::ALL`]; `--stage other` parses.
        Other = "other" => true,
    }
    later {
        // Format 5 (issue 29: Qwen, Gemma): declared after `Other`, so no serde index above moved.
        /// Global: embedding rows times a factor, `params.scale` (Gemma: sqrt(n_embd)).
        EmbedScale = "embed_scale",
        /// Query projection's bias add (Qwen2).
        QBias = "q_bias",
        /// Key projection's bias add (Qwen2).
        KBias = "k_bias",
        /// Value projection's bias add (Qwen2).
        VBias = "v_bias",
        /// RMSNorm of each query head over its head_dim values (Qwen3, Gemma 3).
        QNorm = "q_norm",
        /// RMSNorm of each key head over its head_dim values (Qwen3, Gemma 3).
        KNorm = "k_norm",
        /// RMSNorm of the attention output before the residual add (Gemma 3).
        AttnPostNorm = "attn_post_norm",
        /// RMSNorm of the FFN output before the residual add (Gemma 3).
        FfnPostNorm = "ffn_post_norm",
        /// gelu(gate) * up, GELU's tanh approximation (Gemma 3).
        Geglu = "geglu",
    }
}

impl Stage {
    /// True for stages that belong to no layer (`embed`, `final_norm`, `lm_head`, `argmax`).
    pub fn is_global(self) -> bool {
        matches!(
            self,
            Stage::Embed | Stage::EmbedScale | Stage::FinalNorm | Stage::LmHead | Stage::Argmax
        )
    }

    /// True for stages that multiply by a weight matrix (their route is a matmul variant).
    pub fn is_matmul(self) -> bool {
        matches!(
            self,
            Stage::QProj
                | Stage::KProj
                | Stage::VProj
                | Stage::QkvProj
                | Stage::OProj
                | Stage::Gate
                | Stage::Up
                | Stage::Down
                | Stage::LmHead
        )
    }

    /// True for the RMSNorm stages: x `[.., d]` and an `f32[d]` weight (q_norm/k_norm: d = head_dim,
    /// one norm per head).
    pub fn is_rms_norm(self) -> bool {
        matches!(
            self,
            Stage::AttnNorm
                | Stage::FfnNorm
                | Stage::FinalNorm
                | Stage::QNorm
                | Stage::KNorm
                | Stage::AttnPostNorm
                | Stage::FfnPostNorm
        )
    }

    /// True for the bias adds of the q/k/v projections.
    pub fn is_bias(self) -> bool {
        matches!(self, Stage::QBias | Stage::KBias | Stage::VBias)
    }

    /// True for the attention stages whose route is an attention variant.
    pub fn is_attention(self) -> bool {
        matches!(self, Stage::Qk | Stage::Softmax | Stage::Pv | Stage::Attn)
    }
}

impl Stage {
    /// Names of the stage's inputs, in order (docs/STAGES.md).
    pub fn input_roles(self) -> &'static [&'static str] {
        match self {
            Stage::Embed => &["ids", "table"],
            s if s.is_rms_norm() => &["x", "w"],
            s if s.is_matmul() => &["x", "w"],
            Stage::EmbedScale => &["x"],
            // The bias is the add's `r`, broadcast over rows (the op `add`).
            s if s.is_bias() => &["x", "r"],
            Stage::Geglu => &["gate", "up"],
            Stage::RopeQ | Stage::RopeK => &["x"],
            Stage::KvWrite => &["k", "v"],
            Stage::Qk => &["q", "k_cache"],
            Stage::Softmax => &["scores"],
            Stage::Pv => &["probs", "v_cache"],
            Stage::Attn => &["q", "k_cache", "v_cache"],
            Stage::AttnResidual | Stage::FfnResidual => &["x", "r"],
            Stage::Swiglu => &["gate", "up"],
            Stage::Argmax => &["logits"],
            _ => &[],
        }
    }

    /// Names of the stage's outputs, in order.
    pub fn output_roles(self) -> &'static [&'static str] {
        match self {
            Stage::KvWrite => &["k_rows", "v_rows"],
            _ => &["out"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>().unwrap(), s);
        }
        assert!("nope".parse::<Stage>().unwrap_err().contains("attn_norm"));
        assert_eq!("decode12".parse::<Phase>().unwrap(), Phase::Decode(12));
        assert_eq!(Phase::Decode(12).to_string(), "decode12");
        assert!("decodex".parse::<Phase>().is_err());
    }
}
