"""The llama.cpp adapter's op-by-op mapping on SmolLM2: every computing node is a launch, greta stages are
where they should be, and the layouts are checked with numpy.

The layout checks recompute an op in numpy f64 from the inputs the adapter hands to greta, following
docs/OPS.md, and compare with llama.cpp's own output: a transposed cache, a wrong head order or swapped
inputs gives errors of order 1, while llama.cpp's f32/f16 arithmetic stays far below the tolerances.
The greta tape checks (verify, replay, diff, judged share) are in test_llamacpp_tape.py.
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
from greta_adapters.llamacpp_map import map_graph  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = [1, 9690, 198, 2683, 359, 253, 1342]  # any ids; 7 rows so prefill is a many-row launch
# greta stages found once per layer (the nodes between them keep llama.cpp's own names)
GRETA_STAGES = ["attn_norm", "q_proj", "k_proj", "v_proj", "rope_q", "rope_k", "pv", "attn", "o_proj",
                "attn_residual", "ffn_norm", "gate", "up", "swiglu", "down", "ffn_residual"]
# SmolLM2's layer without flash attention, op by op: every node that computes something
LAYER_OPS = Counter({"rms_norm": 2, "mul": 2, "mul_mat": 7, "rope": 2, "cpy": 3, "softmax": 1, "pv": 1,
                     "add": 2, "swiglu": 1, None: 1})
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


def test_header_has_the_models_own_hyper_parameters(cap):
    hp = cap.hparams
    assert hp["architecture"] == "llama"
    assert hp["llama.block_count"] == 30 and hp["n_layer"] == 30
    assert hp["head_dim"] == 64 and hp["n_head"] == 9 and hp["n_head_kv"] == 3


def test_every_node_op_by_op(cap):
    assert len(cap.generated) == 3
    for ph in ["prefill", "decode0", "decode1"]:
        for layer in [0, 13, 29]:
            got = Counter(la.op for la in cap.launches if la.phase == ph and la.layer == layer)
            # the last layer keeps the rows whose logits are asked for (all of them): two get_rows
            want = LAYER_OPS + Counter({"get_rows": 2}) if layer == 29 else LAYER_OPS
            assert got == want, (ph, layer, got)
            stages = [la.stage for la in cap.launches if la.phase == ph and la.layer == layer]
            for s in GRETA_STAGES:
                assert stages.count(s) == 1, (ph, layer, s, stages)
            unjudged = [la for la in cap.launches if la.phase == ph and la.layer == layer and la.op is None]
            assert [la.stage for la in unjudged] == ["kq"] and "unmasked" in unjudged[0].note
        glob = [(la.stage, la.op) for la in cap.launches if la.phase == ph and la.layer is None]
        assert glob == [("embed", "get_rows"), ("norm", "rms_norm"), ("final_norm", "mul"),
                        ("lm_head", "mul_mat"), ("argmax", "argmax")], glob
        layers = [la.layer for la in cap.launches if la.phase == ph and la.layer is not None]
        assert layers == sorted(layers), "layers in order"


def test_shapes_follow_the_contracts(cap):
    hp = cap.hparams
    dim, H, Hk, hd = hp["n_embd"], hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    n = len(PROMPT)
    for ph, rows, pos in [("prefill", n, 0), ("decode0", 1, n), ("decode1", 1, n + 1)]:
        assert arr(by(cap, ph, "attn_norm", 3).inputs["x"]).shape == (rows, dim)
        assert by(cap, ph, "q_proj", 3).outputs["out"].shape == (rows, H * hd)
        assert by(cap, ph, "k_proj", 3).outputs["out"].shape == (rows, Hk * hd)
        pv = by(cap, ph, "pv", 3)
        assert pv.params["pos"] == pos and pv.params["rows"] == rows
        kv = arr(pv.inputs["v_cache"]).shape[0]
        assert kv >= pos + rows and arr(pv.inputs["v_cache"]).shape == (kv, Hk * hd)
        assert arr(pv.inputs["probs"]).shape == (H, rows, kv)
        assert by(cap, ph, "attn", 3).outputs["out"].shape == (rows, H * hd)
        assert by(cap, ph, "gate", 29).outputs["out"].shape == (rows, 1536)
        assert by(cap, ph, "ffn_residual", 29).outputs["out"].shape == (rows, dim)
        assert by(cap, ph, "lm_head", None).outputs["out"].shape == (rows, 49152)
        q = by(cap, ph, "q_proj", 0)
        assert q.route == "ggml:MUL_MAT q4_1×f32" and q.op == "mul_mat"
        assert isinstance(q.inputs["w"], Weight) and q.inputs["w"].name == "blk.0.attn_q.weight"


def test_norm_then_weight_and_swiglu_layouts(cap):
    norm = [la for la in cap.launches if (la.phase, la.layer, la.stage) == ("prefill", 5, "norm")][1]
    x = arr(norm.inputs["x"])
    y = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + norm.params["eps"])
    assert rel(y, norm.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL
    fn = by(cap, "prefill", "ffn_norm", 5)
    assert fn.op == "mul" and fn.inputs["y"].name == "blk.5.ffn_norm.weight"
    assert np.array_equal(fn.inputs["x"].array, norm.outputs["out"])
    sw = by(cap, "prefill", "swiglu", 5)
    g, u = arr(sw.inputs["gate"]), arr(sw.inputs["up"])
    assert rel(g / (1 + np.exp(-g)) * u, sw.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL


def test_rope_layout(cap):
    for ph in ["prefill", "decode1"]:
        la = by(cap, ph, "rope_k", 7)
        assert la.params["mode"] == 0 and la.params["n_heads"] == cap.hparams["n_head_kv"]
        x = arr(la.inputs["x"])
        n, pos, hd, theta = x.shape[0], la.params["pos"], la.params["head_dim"], la.params["rope_theta"]
        assert np.array_equal(la.inputs["positions"].array, np.arange(pos, pos + n))
        xs = x.reshape(n, -1, hd)
        j = np.arange(hd // 2)
        ang = (pos + np.arange(n))[:, None] * theta ** (-2.0 * j / hd)
        a, b = xs[..., 0::2], xs[..., 1::2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = np.empty_like(xs)
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
        assert rel(y.reshape(n, -1), la.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL


def test_softmax_pv_and_kv_cache_layout(cap):
    hp = cap.hparams
    H, Hk, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    for ph in ["prefill", "decode0", "decode1"]:
        sm = by(cap, ph, "soft_max", 11)
        s, mask = arr(sm.inputs["scores"]), arr(sm.inputs["mask"])
        z = s * sm.params["scale"] + mask[None]
        p = np.exp(z - z.max(axis=2, keepdims=True))
        p /= p.sum(axis=2, keepdims=True)
        assert rel(p, sm.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL, ph
        pv = by(cap, ph, "pv", 11)
        assert pv.inputs["probs"].producer is not None, "probs are the softmax's output"
        probs, v = arr(pv.inputs["probs"]), arr(pv.inputs["v_cache"])
        n = probs.shape[1]
        want = np.stack([probs[h] @ v[:, (h // (H // Hk)) * hd:(h // (H // Hk) + 1) * hd] for h in range(H)], 1)
        assert rel(want.reshape(n, H * hd), pv.outputs["out"].astype(np.float64)) < LAYOUT_REL_TOL, ph
        # the attention output (CONT of the permuted V·probs) is exactly pv's output in greta's layout
        assert np.array_equal(by(cap, ph, "attn", 11).outputs["out"], pv.outputs["out"])
        # the cache rows written are the roped keys rounded to f16, and attention reads them back
        ck = by(cap, ph, "cache_k", 11)
        rk = by(cap, ph, "rope_k", 11).outputs["out"]
        assert ck.op == "cpy" and ck.outputs["out"].dtype == np.float16
        assert np.array_equal(ck.outputs["out"], rk.astype(np.float16))
        cv = by(cap, ph, "cache_v", 11)
        pos = pv.params["pos"]
        assert np.array_equal(cv.outputs["out"].astype(np.float64), v[pos:pos + n])


def test_producers_link_to_the_right_outputs(cap):
    for i, la in enumerate(cap.launches):
        for role, x in la.inputs.items():
            if isinstance(x, Tensor) and x.producer is not None:
                j, out = x.producer
                assert j < i
                assert np.array_equal(cap.launches[j].outputs[out], x.array), (la.phase, la.layer, la.stage, role)
    # the residual stream runs layer to layer: layer 4's first norm reads layer 3's ffn_residual
    first_norm = next(la for la in cap.launches if (la.phase, la.layer, la.stage) == ("prefill", 4, "norm"))
    assert first_norm.inputs["x"].producer[0] == cap.launches.index(by(cap, "prefill", "ffn_residual", 3))


def test_recording_does_not_change_logits(cap):
    eng = LlamaCpp(MODEL, observe=False)
    try:
        logits = eng.decode(PROMPT, 0)[-1]
        assert np.array_equal(logits, cap.logits[0])
        assert int(np.argmax(logits)) == cap.generated[0]
        assert np.array_equal(logits, by(cap, "prefill", "lm_head", None).outputs["out"][-1])
    finally:
        eng.close()


def test_flash_attention_is_one_judged_attention_node():
    fa = capture(MODEL, PROMPT, 2, flash_attn=True)
    hp = fa.hparams
    for ph in ["prefill", "decode0"]:
        att = by(fa, ph, "attn", 4)
        assert att.op == "attention" and att.route.startswith("ggml:FLASH_ATTN_EXT")
        assert att.params["window"] == 0 and att.params["n_kv_heads"] == hp["n_head_kv"]
        assert [la for la in fa.launches if la.phase == ph and la.op is None] == []


def test_an_unjudged_node_keeps_its_own_name_and_is_recorded(tmp_path):
    """A node whose params no contract fits (here: every ROPE made to claim mode 8, M-RoPE) is recorded
    without an op under its own name, never under greta's rope_q (whose contract capture would enforce)."""
    eng = LlamaCpp(MODEL, n_ctx=64, threads=1)
    try:
        eng.decode(PROMPT, 0)
        nodes = eng.nodes
    finally:
        eng.close()
    for n in nodes:
        if n.op == "ROPE":
            n.op_params = n.op_params[:2] + (8,) + n.op_params[3:]
    launches = map_graph(nodes, phase="prefill", pos=0, rows=len(PROMPT))
    ropes = [la for la in launches if la.route.startswith("ggml:ROPE")]
    assert len(ropes) == 60 and {la.stage for la in ropes} == {"Qcur", "Kcur"}
    assert all(la.op is None and "mode 8" in la.note for la in ropes)
    greta = pytest.importorskip("greta")
    from greta_adapters.launches import write_tape

    n = write_tape(str(tmp_path / "t.tape"), launches, engine="llama.cpp", engine_version="test",
                   model={"gguf": MODEL})
    assert n == len(launches) and len(greta.open(str(tmp_path / "t.tape"))) == n
