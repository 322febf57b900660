"""A llama.cpp tape of SmolLM2 through the `greta` package: verify passes, greta reads it back, and
greta's f64 reference judges llama.cpp's launches (replay --reference f64) with a small local error.

Needs llama-cpp-python, the `greta` Python package and the greta binary (target/release/greta or on
PATH). CI sets GRETA_REQUIRE_ADAPTERS=1, so a missing piece fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TOKENS = "504,3575,282,4649,314"  # "The capital of France is" in SmolLM2's vocabulary
REQUIRE = os.environ.get("GRETA_REQUIRE_ADAPTERS") == "1"
# local error of one llama.cpp f32 RMSNorm against greta's f64 on the same inputs (relative to max |y|)
RMSNORM_LOCAL_MAX_REL = 1e-5
# a Q4_1 matmul: llama.cpp rounds the activations to Q8_1 first, so its local error is far larger
MATMUL_LOCAL_MAX_REL = 5e-2


def need(mod):
    if REQUIRE:
        return __import__(mod)
    return pytest.importorskip(mod)


def greta_bin() -> str:
    local = os.path.join(ROOT, "target", "release", "greta")
    found = local if os.path.exists(local) else shutil.which("greta")
    if not found:
        if REQUIRE:
            pytest.fail("greta binary not built: cargo build --release")
        pytest.skip("greta binary not built")
    return found


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    need("llama_cpp")
    need("greta")
    out = str(tmp_path_factory.mktemp("llama") / "llama.tape")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "capture-llamacpp"), "--model", MODEL,
                        "--tokens", TOKENS, "--max-tokens", "3", "--out", out, "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["generated"][0] == 7042, "SmolLM2 says ' Paris' (greta's engine agrees)"
    return out


def run(*args):
    return subprocess.run([greta_bin(), *args], capture_output=True, text=True)


def test_verify_passes(tape):
    r = run("verify", tape)
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_reads_back_the_mapping(tape):
    import greta

    t = greta.open(tape)
    assert t.header["engine"]["name"] == "llama.cpp"
    per_layer = [la for la in t.launches(phase="prefill", layer=5)]
    assert [la["stage"] for la in per_layer] == [
        "attn_norm", "q_proj", "rope_q", "k_proj", "rope_k", "v_proj", "kv_write", "attn", "o_proj",
        "attn_residual", "ffn_norm", "gate", "up", "swiglu", "down", "ffn_residual"]
    q = next(la for la in per_layer if la["stage"] == "q_proj")
    assert q["route"] == "ggml:MUL_MAT q4_1×f32"
    ins = t.inputs(q["seq"])
    assert ins["x"].shape == (5, 576) and ins["x"].dtype == np.float32
    assert t.outputs(q["seq"])["out"].shape == (5, 576)
    assert len(t.launches(phase="decode1", layer=29)) == 16


def local(tape, *sel):
    r = run("replay", tape, *sel, "--reference", "f64", "--json")
    assert r.returncode in (0, 1), r.stderr
    rows = json.loads(r.stdout)
    assert rows, "selection matched"
    return rows


def test_rmsnorm_local_error_is_small(tape):
    for row in local(tape, "--phase", "prefill", "--layer", "3", "--stage", "attn_norm"):
        assert row["error"] is None, row
        loc = row["local"]
        assert loc is not None and loc["n"] == 5 * 576
        assert 0 < loc["max_abs"], "llama.cpp's f32 is not f64"
        assert loc["rel_l2"] < RMSNORM_LOCAL_MAX_REL, row


def test_matmul_local_error_shows_q8_1_activations(tape):
    (row,) = local(tape, "--phase", "decode0", "--layer", "3", "--stage", "q_proj")
    assert row["error"] is None, row
    rel = row["local"]["rel_l2"]
    # larger than an f32 dot product's rounding (~1e-7), as expected from Q8_1 activations, and bounded
    assert 1e-5 < rel < MATMUL_LOCAL_MAX_REL, row
