"""The transformers adapter's mapping on SmolLM2 (opt-in: needs torch, transformers, gguf, accelerate —
tools/requirements-transformers.txt, about 5.6 GB and 7 minutes to install from PyPI, too much for CI).

Checks the same layouts as the llama.cpp tests with numpy f64, and across engines: both load the same GGUF,
so embed rows are bit-identical and layer 0's q projection (permuted back to GGUF order) agrees.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("torch", reason="opt-in: pip install -r tools/requirements-transformers.txt")
pytest.importorskip("transformers")

from greta_adapters.transformers_run import capture  # noqa: E402
from test_llamacpp_map import LAYER_STAGES, MODEL, PROMPT, attention_f64, rel  # noqa: E402


@pytest.fixture(scope="module")
def hf():
    launches, gen, hp, _ = capture(MODEL, PROMPT, 3)
    return launches, gen, hp


def get(launches, phase, stage, layer):
    (la,) = [x for x in launches if (x.phase, x.stage, x.layer) == (phase, stage, layer)]
    return la


def test_stage_counts(hf):
    launches, gen, hp = hf
    assert len(gen) == 3
    for ph in ["prefill", "decode0", "decode1"]:
        got = Counter(la.stage for la in launches if la.phase == ph and la.layer is not None)
        assert got == Counter({s: hp["n_layer"] for s in LAYER_STAGES}), ph
        assert [la.stage for la in launches if la.phase == ph and la.layer is None] == \
            ["embed", "final_norm", "lm_head", "argmax"]


def test_rope_and_attention_layouts(hf):
    launches, _, hp = hf
    H, Hk, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    for ph in ["prefill", "decode1"]:
        la = get(launches, ph, "rope_q", 4)
        x = la.inputs["x"].array.astype(np.float64)
        n, pos = x.shape[0], la.params["pos"]
        xs = x.reshape(n, H, hd)
        j = np.arange(hd // 2)
        ang = (pos + np.arange(n))[:, None] * hp["rope_theta"] ** (-2.0 * j / hd)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = np.empty_like(xs)
        y[..., 0::2] = xs[..., 0::2] * c - xs[..., 1::2] * s
        y[..., 1::2] = xs[..., 0::2] * s + xs[..., 1::2] * c
        assert rel(y.reshape(n, -1), la.outputs["out"].astype(np.float64)) < 1e-5
        at = get(launches, ph, "attn", 4)
        want = attention_f64(*(at.inputs[k].array.astype(np.float64) for k in ("q", "k_cache", "v_cache")),
                             at.params["pos"], H, Hk, hd, at.params["scale"])
        assert rel(want, at.outputs["out"].astype(np.float64)) < 1e-5


def test_same_gguf_same_values_as_llamacpp(hf):
    pytest.importorskip("llama_cpp")
    from greta_adapters.llamacpp import capture as llama_capture

    launches, gen, _ = hf
    lc = llama_capture(MODEL, PROMPT, 1)
    lget = lambda st, layer: [x for x in lc.launches if (x.phase, x.stage, x.layer) == ("prefill", st, layer)][0]  # noqa: E731
    assert np.array_equal(get(launches, "prefill", "embed", None).outputs["out"], lget("embed", None).outputs["out"])
    # same weights in the same (GGUF) order; llama.cpp's Q8_1 activations keep them ~1e-3 apart
    a = get(launches, "prefill", "q_proj", 0).outputs["out"].astype(np.float64)
    b = lget("q_proj", 0).outputs["out"].astype(np.float64)
    assert rel(a, b) < 2e-2
    assert gen[0] == lc.generated[0]
