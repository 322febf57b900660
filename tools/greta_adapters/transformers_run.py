"""Greedy generation with transformers' LlamaForCausalLM under the greta hooks (transformers_map)."""

from __future__ import annotations

import os

import numpy as np

from .launches import Launch, Tensor
from .transformers_map import TransformersCapture


def load(gguf_path: str):
    """LlamaForCausalLM from a GGUF file (dequantised to f32), eager attention, CPU, eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(gguf_path)),
        gguf_file=os.path.basename(gguf_path),
        dtype="float32",
        attn_implementation="eager",
    )
    return model.eval()


def hparams(model) -> dict:
    c = model.config
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    theta = getattr(c, "rope_theta", None)
    if theta is None:
        theta = (getattr(c, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    tied = bool(getattr(c, "tie_word_embeddings", False))
    return {"n_embd": c.hidden_size, "n_head": c.num_attention_heads, "n_head_kv": c.num_key_value_heads,
            "head_dim": hd, "n_layer": c.num_hidden_layers, "rope_theta": float(theta),
            "lm_head_weight": "token_embd.weight" if tied else "output.weight"}


def capture(gguf_path: str, tokens: list[int], max_tokens: int):
    """Prefill + greedy decode; returns (launches, generated, hparams, transformers version)."""
    import torch
    import transformers
    from transformers import DynamicCache

    model = load(gguf_path)
    hp = hparams(model)
    cap = TransformersCapture(model, hp)
    generated: list[int] = []
    try:
        with torch.no_grad():
            cache = DynamicCache()
            feed, pos, step, phase = list(tokens), 0, 0, "prefill"
            while True:
                cap.begin(phase, pos, len(feed))
                ids = torch.tensor([feed], dtype=torch.long)
                out = model(input_ids=ids, past_key_values=cache, use_cache=True,
                            position_ids=torch.arange(pos, pos + len(feed)).unsqueeze(0))
                logits = cap.launches[-1].outputs["out"]
                tok = int(np.argmax(logits[-1]))
                assert cap.launches[-1].stage == "lm_head"
                cap.launches.append(Launch(phase, None, "argmax", "numpy:argmax f32",
                                           {"rows": 1, "pos": pos + len(feed) - 1},
                                           {"logits": Tensor(logits, (len(cap.launches) - 1, "out"))},
                                           {"out": np.array([tok], dtype=np.int32)}))
                del out
                generated.append(tok)
                if len(generated) >= max_tokens:
                    break
                pos += len(feed)
                feed, phase = [tok], f"decode{step}"
                step += 1
    finally:
        cap.close()
    return cap.launches, generated, hp, transformers.__version__
