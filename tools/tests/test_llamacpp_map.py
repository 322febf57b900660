"""The llama.cpp adapter's mapping on SmolLM2: stages, shapes, order, and layouts checked with numpy.

The layout checks recompute a stage in numpy f64 from the inputs the adapter hands to greta, following
docs/STAGES.md, and compare with llama.cpp's own output: a transposed cache, a wrong head order or swapped
inputs gives errors of order 1, while llama.cpp's f32/f16 arithmetic stays far below the tolerances.
The greta tape checks (verify, replay) are in test_llamacpp_tape.py.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
llama_cpp = pytest.importorskip("llama_cpp", reason="pip install -r tools/requirements-adapters.txt")

from greta_adapters.launches import Tensor, Weight  # noqa: E402
from greta_adapters.llamacpp import LlamaCpp, capture  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = [1, 9690, 198, 2683, 359, 253, 1342]  # any ids; 7 rows so prefill is a many-row launch
LAYER_STAGES = ["attn_norm", "q_proj", "rope_q", "k_proj", "rope_k", "v_proj", "kv_write", "attn", "o_proj",
                "attn_residual", "ffn_norm", "gate", "up", "swiglu", "down", "ffn_residual"]
# relative max error of llama.cpp's f32/f16 kernels against numpy f64 on the same inputs
LAYOUT_REL_TOL = 2e-3


@pytest.fixture(scope="module")
def cap():
    if not os.path.exists(MODEL):
        pytest.fail(f"{MODEL} missing: run tools/fetch-model")
    return capture(MODEL, PROMPT, 3)


def by(cap, phase, stage, layer):
    found = [la for la in cap.launches if (la.phase, la.stage, la.layer) == (phase, stage, layer)]
    assert len(found) == 1, (phase, stage, layer, len(found))
    return found[0]


def arr(x):
    assert isinstance(x, Tensor)
    return x.array.astype(np.float64)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def test_stage_count_per_layer_and_phase(cap):
    n_layer = cap.hparams["n_layer"]
    assert n_layer == 30
    phases = ["prefill", "decode0", "decode1"]
    assert len(cap.generated) == 3
    for ph in phases:
        got = Counter(la.stage for la in cap.launches if la.phase == ph and la.layer is not None)
        assert got == Counter({s: n_layer for s in LAYER_STAGES}), ph
        glob = [la.stage for la in cap.launches if la.phase == ph and la.layer is None]
        assert glob == ["embed", "final_norm", "lm_head", "argmax"], ph
        layers = [la.layer for la in cap.launches if la.phase == ph and la.layer is not None]
        assert layers == sorted(layers), "layers in order"


def test_shapes_follow_stages_md(cap):
    hp = cap.hparams
    dim, H, Hk, hd = hp["n_embd"], hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    n = len(PROMPT)
    for ph, rows, pos in [("prefill", n, 0), ("decode0", 1, n), ("decode1", 1, n + 1)]:
        assert arr(by(cap, ph, "attn_norm", 3).inputs["x"]).shape == (rows, dim)
        assert by(cap, ph, "q_proj", 3).outputs["out"].shape == (rows, H * hd)
        assert by(cap, ph, "k_proj", 3).outputs["out"].shape == (rows, Hk * hd)
        att = by(cap, ph, "attn", 3)
        assert att.params["pos"] == pos and att.params["rows"] == rows
        assert arr(att.inputs["k_cache"]).shape == (pos + rows, Hk * hd)
        assert arr(att.inputs["v_cache"]).shape == (pos + rows, Hk * hd)
        assert by(cap, ph, "gate", 29).outputs["out"].shape == (rows, 1536)
        assert by(cap, ph, "ffn_residual", 29).outputs["out"].shape == (rows, dim)
        assert by(cap, ph, "lm_head", None).outputs["out"].shape == (1, 49152)
        assert by(cap, ph, "q_proj", 0).route == "ggml:MUL_MAT q4_1×f32"
        assert isinstance(by(cap, ph, "q_proj", 0).inputs["w"], Weight)
        assert by(cap, ph, "q_proj", 0).inputs["w"].name == "blk.0.attn_q.weight"


def test_rmsnorm_and_swiglu_layouts(cap):
    la = by(cap, "prefill", "ffn_norm", 5)
    x = arr(la.inputs["x"])
    eps = la.params["eps"]
    y = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps)
    got = la.outputs["out"].astype(np.float64)
    # the weight is referenced by name; recover it per column from llama's output
    w = np.median(got / y, axis=0)
    assert rel(y * w, got) < LAYOUT_REL_TOL
    sw = by(cap, "prefill", "swiglu", 5)
    g, u = arr(sw.inputs["gate"]), arr(sw.inputs["up"])
    assert rel(g / (1 + np.exp(-g)) * u, sw.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL


def test_rope_layout(cap):
    for ph in ["prefill", "decode1"]:
        la = by(cap, ph, "rope_k", 7)
        x = arr(la.inputs["x"])
        n, pos, hd, theta = x.shape[0], la.params["pos"], la.params["head_dim"], la.params["rope_theta"]
        xs = x.reshape(n, -1, hd)
        j = np.arange(hd // 2)
        ang = (pos + np.arange(n))[:, None] * theta ** (-2.0 * j / hd)
        a, b = xs[..., 0::2], xs[..., 1::2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = np.empty_like(xs)
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
        assert rel(y.reshape(n, -1), la.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL


def attention_f64(q, k, v, pos, H, Hk, hd, scale):
    n = q.shape[0]
    ctx = k.shape[0]
    out = np.zeros((n, H * hd))
    for h in range(H):
        kh = k[:, (h // (H // Hk)) * hd:(h // (H // Hk) + 1) * hd]
        vh = v[:, (h // (H // Hk)) * hd:(h // (H // Hk) + 1) * hd]
        s = scale * q[:, h * hd:(h + 1) * hd] @ kh.T
        s[np.arange(ctx)[None, :] > (pos + np.arange(n))[:, None]] = -np.inf
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out[:, h * hd:(h + 1) * hd] = p @ vh
    return out


def test_attention_and_kv_cache_layout(cap):
    hp = cap.hparams
    for ph in ["prefill", "decode0", "decode1"]:
        la = by(cap, ph, "attn", 11)
        q, k, v = arr(la.inputs["q"]), arr(la.inputs["k_cache"]), arr(la.inputs["v_cache"])
        want = attention_f64(q, k, v, la.params["pos"], hp["n_head"], hp["n_head_kv"], hp["head_dim"],
                             la.params["scale"])
        assert rel(want, la.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL, ph
        # the cache rows attention reads are the rows kv_write wrote (f16), and those are the roped keys
        kw = by(cap, ph, "kv_write", 11)
        pos, rows = kw.params["pos"], kw.params["rows"]
        assert np.array_equal(kw.outputs["k_rows"], k[pos:pos + rows].astype(np.float32))
        assert np.array_equal(kw.outputs["v_rows"], v[pos:pos + rows].astype(np.float32))
        rk = by(cap, ph, "rope_k", 11).outputs["out"]
        assert np.array_equal(kw.outputs["k_rows"], rk.astype(np.float16).astype(np.float32))


def test_producers_link_to_the_right_outputs(cap):
    for i, la in enumerate(cap.launches):
        for role, x in la.inputs.items():
            if isinstance(x, Tensor) and x.producer is not None:
                j, out = x.producer
                assert j < i
                assert np.array_equal(cap.launches[j].outputs[out], x.array), (la.phase, la.layer, la.stage, role)
    # the residual stream runs layer to layer
    assert by(cap, "prefill", "attn_norm", 4).inputs["x"].producer[0] == cap.launches.index(
        by(cap, "prefill", "ffn_residual", 3))


def test_recording_does_not_change_logits(cap):
    eng = LlamaCpp(MODEL, observe=False)
    try:
        logits = eng.decode(PROMPT, 0)[-1]
        assert np.array_equal(logits, cap.logits[0])
        assert int(np.argmax(logits)) == cap.generated[0]
        assert np.array_equal(logits.reshape(1, -1), by(cap, "prefill", "lm_head", None).outputs["out"])
    finally:
        eng.close()
