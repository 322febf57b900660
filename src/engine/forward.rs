//! One forward pass over a block of rows, launch by launch (docs/STAGES.md gives the order and contracts).
//! The architecture ([`crate::model::config::Arch`]) adds its stages to llama's sequence: q/k/v biases
//! (Qwen2), per-head q/k norms (Qwen3, Gemma 3), the embedding scale, post norms and GeGLU (Gemma 3), and
//! per layer a rope base and sliding window (Gemma 3's local layers).

use super::{EngineError, KvCache, Model};
use crate::launch::{Launcher, Params, Phase, Stage, Tensor, Variant};
use crate::model::config::Ffn;

/// Runs the model through a launcher.
pub struct Engine<'m> {
    model: &'m Model,
    /// The launcher every op goes through.
    pub launcher: Launcher,
    kv: KvCache,
    base: Params,
}

impl<'m> Engine<'m> {
    /// An engine for `model` launching through `launcher`.
    pub fn new(model: &'m Model, launcher: Launcher) -> Engine<'m> {
        let c = &model.config;
        let base = Params {
            rows: 0,
            pos: 0,
            n_heads: c.n_heads as u32,
            n_kv_heads: c.n_kv_heads as u32,
            head_dim: c.head_dim as u32,
            rope_dim: c.rope_dim as u32,
            rope_theta: c.rope_theta,
            eps: c.eps,
            scale: 1.0 / (c.head_dim as f64).sqrt(),
            kv_block: 0,
            rope_mode: c.spec.rope_mode,
            window: 0,
        };
        Engine {
            model,
            launcher,
            kv: KvCache::new(c.n_layers),
            base,
        }
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    fn one(
        &mut self,
        stage: Stage,
        layer: Option<u32>,
        inputs: &[&Tensor],
        p: Params,
    ) -> Result<Tensor, EngineError> {
        let mut out = self.launcher.launch(stage, layer, inputs, p)?;
        if out.len() != 1 {
            return Err(EngineError::BadOutput {
                stage: stage.name(),
                what: format!("{} outputs", out.len()),
            });
        }
        Ok(out.pop().expect("one output"))
    }

    /// Runs `ids` at positions `pos..pos+n` in `phase`, writing the KV cache, and returns the greedy next
    /// token after the last row.
    pub fn forward(&mut self, phase: Phase, ids: &[u32], pos: usize) -> Result<u32, EngineError> {
        let c = &self.model.config;
        let w = &self.model.weights;
        let n = ids.len();
        if n == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab) {
            return Err(EngineError::BadToken { id, vocab: c.vocab });
        }
        self.launcher.set_phase(phase);
        let p = Params {
            rows: n as u32,
            pos: pos as u32,
            ..self.base
        };
        let idt = Tensor::i32(vec![n], ids.iter().map(|&i| i as i32).collect());
        let mut x = self.one(Stage::Embed, None, &[&idt, &w.token_embd], p)?;
        if c.spec.embed_scale {
            // Gemma: sqrt(n_embd) (llama.cpp's build_gemma3: ggml_scale(inpL, sqrtf(n_embd))).
            let ps = Params {
                scale: (c.dim as f64).sqrt(),
                ..p
            };
            x = self.one(Stage::EmbedScale, None, &[&x], ps)?;
        }
        for (l, lw) in w.layers.iter().enumerate() {
            let li = Some(l as u32);
            let la = c.spec.layer(l, c.rope_theta);
            // This layer's rope base and window (Gemma 3's local layers differ from its global ones).
            let p = Params {
                rope_theta: la.rope_theta,
                window: la.window as u32,
                ..p
            };
            let h = self.one(Stage::AttnNorm, li, &[&x, &lw.attn_norm], p)?;
            let mut q = self.one(Stage::QProj, li, &[&h, &lw.wq], p)?;
            let mut k = self.one(Stage::KProj, li, &[&h, &lw.wk], p)?;
            let mut v = self.one(Stage::VProj, li, &[&h, &lw.wv], p)?;
            if let Some([bq, bk, bv]) = &lw.qkv_bias {
                q = self.one(Stage::QBias, li, &[&q, bq], p)?;
                k = self.one(Stage::KBias, li, &[&k, bk], p)?;
                v = self.one(Stage::VBias, li, &[&v, bv], p)?;
            }
            if let Some([nq, nk]) = &lw.qk_norm {
                q = self.one(Stage::QNorm, li, &[&q, nq], p)?;
                k = self.one(Stage::KNorm, li, &[&k, nk], p)?;
            }
            let q = self.one(Stage::RopeQ, li, &[&q], p)?;
            let k = self.one(Stage::RopeK, li, &[&k], p)?;
            let kv = self.launcher.launch(Stage::KvWrite, li, &[&k, &v], p)?;
            let [kr, vr] = kv.as_slice() else {
                return Err(EngineError::BadOutput {
                    stage: "kv_write",
                    what: format!("{} outputs", kv.len()),
                });
            };
            self.kv
                .write(l, pos, kr, vr)
                .map_err(|what| EngineError::BadOutput {
                    stage: "kv_write",
                    what,
                })?;
            let (kc, vc) = self
                .kv
                .view(self.launcher.backend().as_ref(), l, pos + n)
                .map_err(gather_err)?;
            let attn = if self.launcher.policy.choose(Stage::Attn, n).variant == Variant::Fused {
                let pf = Params {
                    kv_block: crate::backend::cpu::DEFAULT_KV_BLOCK as u32,
                    ..p
                };
                self.one(Stage::Attn, li, &[&q, &kc, &vc], pf)?
            } else {
                let s = self.one(Stage::Qk, li, &[&q, &kc], p)?;
                let pr = self.one(Stage::Softmax, li, &[&s], p)?;
                self.one(Stage::Pv, li, &[&pr, &vc], p)?
            };
            let mut o = self.one(Stage::OProj, li, &[&attn, &lw.wo], p)?;
            if let Some([pa, _]) = &lw.post_norms {
                o = self.one(Stage::AttnPostNorm, li, &[&o, pa], p)?;
            }
            let x1 = self.one(Stage::AttnResidual, li, &[&x, &o], p)?;
            let h2 = self.one(Stage::FfnNorm, li, &[&x1, &lw.ffn_norm], p)?;
            let g = self.one(Stage::Gate, li, &[&h2, &lw.gate], p)?;
            let u = self.one(Stage::Up, li, &[&h2, &lw.up], p)?;
            let act = match c.spec.ffn {
                Ffn::Swiglu => Stage::Swiglu,
                Ffn::Geglu => Stage::Geglu,
            };
            let s = self.one(act, li, &[&g, &u], p)?;
            let mut d = self.one(Stage::Down, li, &[&s, &lw.down], p)?;
            if let Some([_, pf]) = &lw.post_norms {
                d = self.one(Stage::FfnPostNorm, li, &[&d, pf], p)?;
            }
            x = self.one(Stage::FfnResidual, li, &[&x1, &d], p)?;
        }
        // Only the last row feeds the next token.
        let last = if n == 1 {
            x
        } else {
            super::kv_cache::gathered(self.launcher.backend().as_ref(), &[(&x, n - 1, 1)])
                .map_err(gather_err)?
        };
        let p1 = Params {
            rows: 1,
            pos: (pos + n - 1) as u32,
            ..self.base
        };
        let hn = self.one(Stage::FinalNorm, None, &[&last, &w.output_norm], p1)?;
        let logits = self.one(Stage::LmHead, None, &[&hn, &w.output], p1)?;
        let id = self.one(Stage::Argmax, None, &[&logits], p1)?;
        // The token id comes back to the host (from the device on GPU backends).
        let bytes = id.to_host_bytes().map_err(|what| EngineError::BadOutput {
            stage: "argmax",
            what,
        })?;
        let next = bytes
            .get(..4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|&v| v >= 0)
            .ok_or_else(|| EngineError::BadOutput {
                stage: "argmax",
                what: "no token id".into(),
            })?;
        Ok(next as u32)
    }
}

fn gather_err(e: crate::backend::BackendError) -> EngineError {
    EngineError::BadOutput {
        stage: "gather_rows",
        what: e.to_string(),
    }
}
