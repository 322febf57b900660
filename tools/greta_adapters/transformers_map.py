"""Hugging Face transformers (`LlamaForCausalLM`) -> greta launches, through forward hooks.

The model is loaded from the same GGUF file (`from_pretrained(dir, gguf_file=...)`, which dequantises to
f32 and needs the `gguf` package) and run in f32 on the CPU with eager attention. Most stages are module
calls and are caught with forward hooks; the rest are inline Python in `LlamaDecoderLayer.forward` and are
caught where their results land:

| greta stage | where in transformers |
|---|---|
| embed | `model.embed_tokens` hook |
| attn_norm / ffn_norm / final_norm | `input_layernorm` / `post_attention_layernorm` / `model.norm` hooks |
| q_proj k_proj v_proj o_proj gate up down lm_head | the `nn.Linear` hooks |
| rope_q / rope_k | a wrapper around `modeling_llama.apply_rotary_pos_emb` |
| kv_write | the roped k and the v projection (what `DynamicCache.update` stores) |
| attn | a wrapper around `modeling_llama.eager_attention_forward` (q, the whole K/V cache, output) |
| attn_residual | x = the decoder layer's input (pre-hook), r = o_proj's output, out = post_attention_layernorm's input |
| swiglu | gate, up = the projections' outputs, out = down_proj's input |
| ffn_residual | x = attn_residual's output, r = down_proj's output, out = the decoder layer's output |

Layout: transformers' GGUF loader un-permutes the q and k weights of llama models (llama.cpp interleaves
rotary pairs `(2j, 2j+1)`, Hugging Face uses halves `(j, j+hd/2)`, "rotate_half"). The same values in
another order within each head: the adapter permutes q and k activations back to the GGUF order that
STAGES.md's rope contract uses, so q_proj/k_proj reference the GGUF weights by name and rope, attention
and greta's reference line up. V, o_proj and the FFN are not permuted.
"""

from __future__ import annotations

import numpy as np

from .launches import Launch, Tensor, Weight


def hf_to_gguf_heads(a: np.ndarray, heads: int) -> np.ndarray:
    """`[n, heads*hd]` in Hugging Face rotary order -> llama.cpp's interleaved order (per head)."""
    n = a.shape[0]
    hd = a.shape[1] // heads
    return a.reshape(n, heads, 2, hd // 2).transpose(0, 1, 3, 2).reshape(n, heads * hd)


class TransformersCapture:
    """Installs hooks on a LlamaForCausalLM and turns each forward call into greta launches."""

    def __init__(self, model, hp: dict):
        import torch  # noqa: F401  (the caller has it)
        from transformers.models.llama import modeling_llama as ml

        self.model, self.hp, self.ml = model, hp, ml
        self.launches: list[Launch] = []
        # the model-wide scalars greta's engine puts on every launch, so a diff compares like with like
        self.model_params = {"n_heads": hp["n_head"], "n_kv_heads": hp["n_head_kv"], "head_dim": hp["head_dim"],
                             "rope_dim": hp["head_dim"], "rope_theta": hp["rope_theta"],
                             "eps": float(np.float32(model.config.rms_norm_eps)), "scale": hp["head_dim"] ** -0.5}
        self.phase, self.pos, self.rows = "prefill", 0, 0
        self.layer: int | None = None
        self.cur: dict = {}
        self.k_cache: dict[int, np.ndarray] = {}
        self.v_cache: dict[int, np.ndarray] = {}
        self._handles = []
        self._orig_rope = ml.apply_rotary_pos_emb
        self._orig_attn = ml.eager_attention_forward
        ml.apply_rotary_pos_emb = self._rope
        ml.eager_attention_forward = self._attn
        m = model.model
        self._hook(m.embed_tokens, self._embed)
        for i, layer in enumerate(m.layers):
            self._handles.append(layer.register_forward_pre_hook(self._layer_in(i)))
            self._hook(layer, self._layer_out(i))
            self._hook(layer.input_layernorm, self._norm("attn_norm", f"blk.{i}.attn_norm.weight"))
            self._hook(layer.post_attention_layernorm, self._post_attn_norm(i))
            a = layer.self_attn
            self._hook(a.q_proj, self._linear("q_proj", f"blk.{i}.attn_q.weight", permute=hp["n_head"]))
            self._hook(a.k_proj, self._linear("k_proj", f"blk.{i}.attn_k.weight", permute=hp["n_head_kv"]))
            self._hook(a.v_proj, self._linear("v_proj", f"blk.{i}.attn_v.weight"))
            self._hook(a.o_proj, self._linear("o_proj", f"blk.{i}.attn_output.weight"))
            f = layer.mlp
            self._hook(f.gate_proj, self._linear("gate", f"blk.{i}.ffn_gate.weight"))
            self._hook(f.up_proj, self._linear("up", f"blk.{i}.ffn_up.weight"))
            self._hook(f.down_proj, self._down(i))
        self._hook(m.norm, self._norm("final_norm", "output_norm.weight", last=True))
        self._hook(model.lm_head, self._linear("lm_head", hp.get("lm_head_weight", "output.weight"), last=True))

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self.ml.apply_rotary_pos_emb = self._orig_rope
        self.ml.eager_attention_forward = self._orig_attn

    # -- helpers ---------------------------------------------------------------------------------------
    def _hook(self, mod, fn):
        self._handles.append(mod.register_forward_hook(fn))

    def _np(self, t) -> np.ndarray:
        return t.detach().to("cpu").float().numpy().reshape(-1, t.shape[-1]).copy()

    def _emit(self, stage, route, inputs, outputs, layer="cur", last=False, **params) -> int:
        # final_norm and lm_head run on the last row only, as in greta's engine
        rows, pos = (1, self.pos + self.rows - 1) if last else (self.rows, self.pos)
        full = dict(self.model_params, rows=rows, pos=pos)
        full.update(params)
        la = Launch(self.phase, self.layer if layer == "cur" else layer, stage, route, full, inputs, outputs)
        self.launches.append(la)
        return len(self.launches) - 1

    def _produced(self, key, arr) -> Tensor:
        """`arr` with its producer when `key` names an earlier output of this forward call."""
        return Tensor(arr, self.cur.get(key))

    def begin(self, phase: str, pos: int, rows: int) -> None:
        self.phase, self.pos, self.rows, self.layer, self.cur = phase, pos, rows, None, {}

    # -- hooks -----------------------------------------------------------------------------------------
    def _embed(self, mod, args, out):
        ids = args[0].detach().cpu().numpy().reshape(-1).astype(np.int32)
        i = self._emit("embed", "torch:embedding f32", {"ids": Tensor(ids), "table": Weight("token_embd.weight")},
                       {"out": self._np(out)}, layer=None)
        self.cur["x"] = (i, "out")

    def _layer_in(self, i):
        def hook(mod, args):
            self.layer = i
            self.cur["layer_in"] = self.cur.get("x")
        return hook

    def _layer_out(self, i):
        def hook(mod, args, out):
            h = out[0] if isinstance(out, tuple) else out
            x, r = self.cur["ffn_x"], self.cur["down_out"]
            j = self._emit("ffn_residual", "torch:add f32", {"x": x, "r": r}, {"out": self._np(h)})
            self.cur["x"] = (j, "out")
        return hook

    def _norm(self, stage, wname, last=False):
        def hook(mod, args, out):
            x, y = self._np(args[0]), self._np(out)
            params = {"eps": float(np.float32(mod.variance_epsilon))}  # torch adds it in f32
            if last:
                x, y = x[-1:], y[-1:]
            i = self._emit(stage, "torch:rmsnorm f32", {"x": Tensor(x) if last else self._produced("x", x),
                                                        "w": Weight(wname)}, {"out": y},
                           layer=None if last else "cur", last=last, **params)
            self.cur["normed"] = (i, "out")
        return hook

    def _post_attn_norm(self, i):
        norm = self._norm("ffn_norm", f"blk.{i}.ffn_norm.weight")

        def hook(mod, args, out):
            # the residual add is inline: its output is this norm's input
            h = self._np(args[0])
            j = self._emit("attn_residual", "torch:add f32",
                           {"x": self._produced("layer_in", self._layer_input()), "r": self._produced("o", self.cur["o_arr"])},
                           {"out": h})
            self.cur["x"] = (j, "out")
            self.cur["ffn_x"] = Tensor(h, (j, "out"))
            norm(mod, args, out)
        return hook

    def _layer_input(self) -> np.ndarray:
        i, role = self.cur["layer_in"]
        return self.launches[i].outputs[role]

    def _linear(self, stage, wname, permute: int | None = None, last=False):
        def hook(mod, args, out):
            x, y = self._np(args[0]), self._np(out)
            if last:
                x, y = x[-1:], y[-1:]
            if permute:
                y = hf_to_gguf_heads(y, permute)
            i = self._emit(stage, f"torch:linear {str(mod.weight.dtype).replace('torch.', '')}",
                           {"x": Tensor(x, self.cur.get("normed") if stage not in ("o_proj", "lm_head") else None),
                            "w": Weight(wname)}, {"out": y}, layer=None if last else "cur", last=last)
            self.cur[stage] = (i, "out")
            if stage == "o_proj":
                self.cur["o"], self.cur["o_arr"] = (i, "out"), y
            if stage in ("gate", "up"):
                self.cur[stage + "_arr"] = y
        return hook

    def _down(self, i):
        lin = self._linear("down", f"blk.{i}.ffn_down.weight")

        def hook(mod, args, out):
            s = self._np(args[0])
            j = self._emit("swiglu", "torch:silu*mul f32",
                           {"gate": Tensor(self.cur["gate_arr"], self.cur["gate"]),
                            "up": Tensor(self.cur["up_arr"], self.cur["up"])}, {"out": s})
            self.cur["normed"] = (j, "out")
            lin(mod, args, out)
            k = len(self.launches) - 1
            self.cur["down_out"] = Tensor(self.launches[k].outputs["out"], (k, "out"))
        return hook

    def _rope(self, q, k, cos, sin, *a, **kw):
        qe, ke = self._orig_rope(q, k, cos, sin, *a, **kw)
        H, Hk, hd = self.hp["n_head"], self.hp["n_head_kv"], self.hp["head_dim"]

        def flat(t):  # [1, heads, n, hd] -> [n, heads*hd]
            return t.detach().float().numpy()[0].transpose(1, 0, 2).reshape(self.rows, -1).copy()

        common = dict(n_heads=H, n_kv_heads=Hk, head_dim=hd, rope_dim=hd, rope_theta=self.hp["rope_theta"])
        qi = self._emit("rope_q", "torch:rotate_half f32",
                        {"x": Tensor(hf_to_gguf_heads(flat(q), H), self.cur.get("q_proj"))},
                        {"out": hf_to_gguf_heads(flat(qe), H)}, **common)
        ki = self._emit("rope_k", "torch:rotate_half f32",
                        {"x": Tensor(hf_to_gguf_heads(flat(k), Hk), self.cur.get("k_proj"))},
                        {"out": hf_to_gguf_heads(flat(ke), Hk)}, **common)
        self.cur["rq"], self.cur["rk"] = (qi, "out"), (ki, "out")
        k_rows = self.launches[ki].outputs["out"]
        v_rows = self.launches[self.cur["v_proj"][0]].outputs["out"]
        self._emit("kv_write", "torch:DynamicCache.update f32",
                   {"k": Tensor(k_rows, (ki, "out")), "v": Tensor(v_rows, self.cur["v_proj"])},
                   {"k_rows": k_rows.copy(), "v_rows": v_rows.copy()}, n_kv_heads=Hk, head_dim=hd)
        L = self.layer
        self.k_cache[L] = np.concatenate([self.k_cache.get(L, np.zeros((0, Hk * hd), np.float32)), k_rows])
        self.v_cache[L] = np.concatenate([self.v_cache.get(L, np.zeros((0, Hk * hd), np.float32)), v_rows])
        return qe, ke

    def _attn(self, module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        out, weights = self._orig_attn(module, query, key, value, attention_mask, scaling, dropout, **kw)
        H, Hk, hd = self.hp["n_head"], self.hp["n_head_kv"], self.hp["head_dim"]
        L = self.layer
        q = self.launches[self.cur["rq"][0]].outputs["out"]
        o = out.detach().float().numpy()[0].reshape(self.rows, H * hd).copy()  # [n, H, hd] after transpose
        self._emit("attn", "torch:eager_attention f32",
                   {"q": Tensor(q, self.cur["rq"]), "k_cache": Tensor(self.k_cache[L]),
                    "v_cache": Tensor(self.v_cache[L])},
                   {"out": o}, n_heads=H, n_kv_heads=Hk, head_dim=hd, scale=float(scaling))
        return out, weights
