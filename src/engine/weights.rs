//! Weight handles by role, looked up once by their GGUF names.

use crate::launch::Tensor;
use crate::model::config::LlamaConfig;
use crate::model::gguf::{Gguf, GgufError};

/// One transformer block's weights.
pub struct LayerWeights {
    /// blk.N.attn_norm.weight
    pub attn_norm: Tensor,
    /// blk.N.attn_q.weight
    pub wq: Tensor,
    /// blk.N.attn_k.weight
    pub wk: Tensor,
    /// blk.N.attn_v.weight
    pub wv: Tensor,
    /// blk.N.attn_output.weight
    pub wo: Tensor,
    /// blk.N.ffn_norm.weight
    pub ffn_norm: Tensor,
    /// blk.N.ffn_gate.weight
    pub gate: Tensor,
    /// blk.N.ffn_up.weight
    pub up: Tensor,
    /// blk.N.ffn_down.weight
    pub down: Tensor,
    /// blk.N.attn_{q,k,v}.bias (Qwen2).
    pub qkv_bias: Option<[Tensor; 3]>,
    /// blk.N.attn_{q,k}_norm.weight (Qwen3, Gemma 3).
    pub qk_norm: Option<[Tensor; 2]>,
    /// blk.N.post_attention_norm.weight and blk.N.post_ffw_norm.weight (Gemma 3).
    pub post_norms: Option<[Tensor; 2]>,
}

/// All weights of a llama model.
pub struct Weights {
    /// token_embd.weight
    pub token_embd: Tensor,
    /// Per layer.
    pub layers: Vec<LayerWeights>,
    /// output_norm.weight
    pub output_norm: Tensor,
    /// output.weight, or token_embd.weight when the embeddings are tied.
    pub output: Tensor,
}

impl Weights {
    /// Every weight tensor once (a tied output is the embedding table).
    pub fn all(&self) -> Vec<&Tensor> {
        let mut v = vec![&self.token_embd];
        for l in &self.layers {
            v.extend([
                &l.attn_norm,
                &l.wq,
                &l.wk,
                &l.wv,
                &l.wo,
                &l.ffn_norm,
                &l.gate,
                &l.up,
                &l.down,
            ]);
            for opt in [
                l.qkv_bias.as_ref().map(|b| &b[..]),
                l.qk_norm.as_ref().map(|n| &n[..]),
                l.post_norms.as_ref().map(|n| &n[..]),
            ]
            .into_iter()
            .flatten()
            {
                v.extend(opt);
            }
        }
        v.push(&self.output_norm);
        if self.output.id != self.token_embd.id {
            v.push(&self.output);
        }
        v
    }

    /// Looks up every weight (mapped views, no copies).
    pub fn load(g: &Gguf, c: &LlamaConfig) -> Result<Weights, GgufError> {
        let layers = (0..c.n_layers)
            .map(|l| {
                let t = |s: &str| g.tensor(&format!("blk.{l}.{s}.weight"));
                let b = |s: &str| g.tensor(&format!("blk.{l}.{s}.bias"));
                let spec = &c.spec;
                Ok(LayerWeights {
                    qkv_bias: match spec.qkv_bias {
                        true => Some([b("attn_q")?, b("attn_k")?, b("attn_v")?]),
                        false => None,
                    },
                    qk_norm: match spec.qk_norm {
                        true => Some([t("attn_q_norm")?, t("attn_k_norm")?]),
                        false => None,
                    },
                    post_norms: match spec.post_norms {
                        true => Some([t("post_attention_norm")?, t("post_ffw_norm")?]),
                        false => None,
                    },
                    attn_norm: t("attn_norm")?,
                    wq: t("attn_q")?,
                    wk: t("attn_k")?,
                    wv: t("attn_v")?,
                    wo: t("attn_output")?,
                    ffn_norm: t("ffn_norm")?,
                    gate: t("ffn_gate")?,
                    up: t("ffn_up")?,
                    down: t("ffn_down")?,
                })
            })
            .collect::<Result<Vec<_>, GgufError>>()?;
        let token_embd = g.tensor("token_embd.weight")?;
        let output = if g.tensor_info("output.weight").is_some() {
            g.tensor("output.weight")?
        } else {
            token_embd.clone()
        };
        Ok(Weights {
            token_embd,
            layers,
            output_norm: g.tensor("output_norm.weight")?,
            output,
        })
    }
}
