//! Architectures: what the forward pass does per layer, read from GGUF metadata alone
//! (`general.architecture` plus `{arch}.*` keys), following llama.cpp's model code for each family
//! (`src/models/{llama,qwen2,qwen3,gemma3}.cpp`, hyper-parameters as `llama-model.cpp` loads them).
//!
//! | family | rope | q/k/v bias | q/k norm | post norms | embed scale | FFN | sliding window |
//! |---|---|---|---|---|---|---|---|
//! | llama | NORM | – | – | – | – | SwiGLU | – |
//! | qwen2 | NEOX | `attn_{q,k,v}.bias` | – | – | – | SwiGLU | – |
//! | qwen3 | NEOX | – | `attn_{q,k}_norm` (per head) | – | – | SwiGLU | – |
//! | gemma3 | NEOX | – | `attn_{q,k}_norm` (per head) | `post_attention_norm`, `post_ffw_norm` | √n_embd | GeGLU (tanh GELU) | every layer but each 6th: `{arch}.attention.sliding_window`, rope base 10000 |
//!
//! Everything else is shared: RMSNorm before attention and FFN, grouped-query attention with scale
//! `1/sqrt(head_dim)`, `head_dim` from `{arch}.attention.key_length` when present (Qwen3, Gemma 3 may
//! differ from `n_embd / n_head`), lm_head from `output.weight` or the tied embedding.
//!
//! Gemma's norm weights: HF Gemma computes `x·(1 + w)`; llama.cpp's GGUF conversion already adds the 1,
//! so a GGUF's norm weights are used as they are, exactly as for llama. Gemma 3's attention scale is
//! `1/sqrt(head_dim)` (`f_attention_scale`; llama.cpp's 27B exception, `1/sqrt(n_embd/n_head)`, is not
//! taken) and greta applies it to the scores (llama.cpp scales Q before the product: the same maths,
//! another rounding).
//!
//! An architecture the engine does not run is refused in one line that names it and the ones it runs
//! ([`GgufError::UnsupportedArchitecture`]).

use super::error::GgufError;
use super::gguf::Gguf;
use serde::{Deserialize, Serialize};

/// A model family greta's engine runs, by its `general.architecture` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// Llama, SmolLM2, Llama-3 (and Mistral files converted as `llama`).
    Llama,
    /// Qwen2 / Qwen2.5: q/k/v biases, NEOX rope.
    Qwen2,
    /// Qwen3: per-head q/k RMSNorm, NEOX rope.
    Qwen3,
    /// Gemma 3: embedding scale, q/k norms, post norms, GeGLU, interleaved sliding-window layers.
    Gemma3,
}

impl Family {
    /// Every family, in the order error messages list them.
    pub const ALL: [Family; 4] = [Family::Llama, Family::Qwen2, Family::Qwen3, Family::Gemma3];

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Gemma3 => "gemma3",
        }
    }

    /// The family of a `general.architecture` value, if the engine runs it.
    pub fn from_name(arch: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == arch)
    }

    /// The names the engine runs, comma-separated (for error messages).
    pub fn names() -> String {
        Family::ALL.map(Family::name).join(", ")
    }
}

/// The FFN's gated activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ffn {
    /// silu(gate)·up (stage `swiglu`).
    Swiglu,
    /// gelu_tanh(gate)·up (stage `geglu`).
    Geglu,
}

/// What the forward pass does per layer, beyond llama's sequence (docs/STAGES.md, "Architectures").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// The family.
    pub family: Family,
    /// RoPE mode in GGML's numbering (`launch::ROPE_NORM` or `launch::ROPE_NEOX`).
    pub rope_mode: u32,
    /// q/k/v projections have biases (`blk.N.attn_{q,k,v}.bias`): stages q_bias, k_bias, v_bias.
    pub qkv_bias: bool,
    /// Per-head RMSNorm of q and k before rope (`blk.N.attn_{q,k}_norm.weight`, `[head_dim]`).
    pub qk_norm: bool,
    /// RMSNorm of the attention and FFN outputs before their residual adds
    /// (`blk.N.post_attention_norm.weight`, `blk.N.post_ffw_norm.weight`).
    pub post_norms: bool,
    /// Embedding rows are multiplied by sqrt(n_embd) (stage embed_scale).
    pub embed_scale: bool,
    /// The FFN's gated activation.
    pub ffn: Ffn,
    /// Sliding window of the local layers (`{arch}.attention.sliding_window`); 0: none.
    pub sliding_window: usize,
    /// Every `swa_pattern`-th layer (1-based: layers `p-1, 2p-1, ...`) is global, the others local
    /// (llama.cpp's `set_swa_pattern`); 0 with a window: every layer is local.
    pub swa_pattern: usize,
    /// RoPE base of the local layers (llama.cpp's `rope_freq_base_train_swa`); the global layers use
    /// `{arch}.rope.freq_base`.
    pub rope_theta_swa: f64,
}

/// One layer's attention: its window (0: none) and rope base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerAttn {
    /// Sliding window; 0: causal only.
    pub window: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
}

impl Arch {
    /// The description of `family` with its fixed traits (llama.cpp's per-architecture constants); the
    /// window is read from the file by [`Arch::from_gguf`].
    pub fn of(family: Family) -> Arch {
        let neox = crate::launch::ROPE_NEOX;
        let norm = crate::launch::ROPE_NORM;
        let base = Arch {
            family,
            rope_mode: norm,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            embed_scale: false,
            ffn: Ffn::Swiglu,
            sliding_window: 0,
            swa_pattern: 0,
            rope_theta_swa: 0.0,
        };
        match family {
            Family::Llama => base,
            Family::Qwen2 => Arch {
                rope_mode: neox,
                qkv_bias: true,
                ..base
            },
            Family::Qwen3 => Arch {
                rope_mode: neox,
                qk_norm: true,
                ..base
            },
            Family::Gemma3 => Arch {
                rope_mode: neox,
                qk_norm: true,
                post_norms: true,
                embed_scale: true,
                ffn: Ffn::Geglu,
                // llama.cpp, LLM_ARCH_GEMMA3: set_swa_pattern(6), rope_freq_base_train_swa = 10000.
                swa_pattern: 6,
                rope_theta_swa: 10_000.0,
                ..base
            },
        }
    }

    /// The architecture of a GGUF: its family (refused in one line when the engine does not run it)
    /// and the window keys.
    pub fn from_gguf(g: &Gguf) -> Result<Arch, GgufError> {
        let name = g.get_str("general.architecture")?;
        let family = Family::from_name(name)
            .ok_or_else(|| GgufError::UnsupportedArchitecture(name.to_string()))?;
        let mut a = Arch::of(family);
        if family == Family::Gemma3 {
            let key = format!("{name}.attention.sliding_window");
            a.sliding_window = g.get_u32(&key)? as usize;
        }
        Ok(a)
    }

    /// Layer `l`'s attention, with `rope_theta` the file's `{arch}.rope.freq_base`.
    pub fn layer(&self, l: usize, rope_theta: f64) -> LayerAttn {
        let local = self.sliding_window > 0
            && (self.swa_pattern == 0 || l % self.swa_pattern < self.swa_pattern - 1);
        if local {
            LayerAttn {
                window: self.sliding_window,
                rope_theta: if self.rope_theta_swa > 0.0 {
                    self.rope_theta_swa
                } else {
                    rope_theta
                },
            }
        } else {
            LayerAttn {
                window: 0,
                rope_theta,
            }
        }
    }

    /// The per-layer stage sequence, in words (docs, `greta show`).
    pub fn describe(&self) -> String {
        let mut s = vec!["attn_norm", "q_proj", "k_proj", "v_proj"];
        if self.qkv_bias {
            s.extend(["q_bias", "k_bias", "v_bias"]);
        }
        if self.qk_norm {
            s.extend(["q_norm", "k_norm"]);
        }
        s.extend(["rope_q", "rope_k", "kv_write", "attention", "o_proj"]);
        if self.post_norms {
            s.push("attn_post_norm");
        }
        s.extend(["attn_residual", "ffn_norm", "gate", "up"]);
        s.push(match self.ffn {
            Ffn::Swiglu => "swiglu",
            Ffn::Geglu => "geglu",
        });
        s.push("down");
        if self.post_norms {
            s.push("ffn_post_norm");
        }
        s.push("ffn_residual");
        s.join(" → ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma3_layers_alternate_five_local_one_global() {
        let mut a = Arch::of(Family::Gemma3);
        a.sliding_window = 512;
        let kinds: Vec<usize> = (0..12).map(|l| a.layer(l, 1e6).window).collect();
        assert_eq!(
            kinds,
            [512, 512, 512, 512, 512, 0, 512, 512, 512, 512, 512, 0]
        );
        assert_eq!(a.layer(0, 1e6).rope_theta, 10_000.0);
        assert_eq!(a.layer(5, 1e6).rope_theta, 1e6);
        let q = Arch::of(Family::Qwen3);
        assert_eq!(
            q.layer(3, 1e6),
            LayerAttn {
                window: 0,
                rope_theta: 1e6
            }
        );
        assert!(q.describe().contains("q_norm → k_norm → rope_q"));
    }

    #[test]
    fn families_round_trip_by_name() {
        for f in Family::ALL {
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
        assert_eq!(Family::from_name("mamba"), None);
        assert_eq!(Family::names(), "llama, qwen2, qwen3, gemma3");
    }
}
