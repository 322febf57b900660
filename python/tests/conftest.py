import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def greta_bin() -> str:
    """The greta CLI: $GRETA_BIN, else the repo's release build."""
    b = os.environ.get("GRETA_BIN") or str(REPO / "target" / "release" / "greta")
    if not os.path.exists(b):
        pytest.fail(f"greta binary not found at {b}: run `cargo build --release` (or set GRETA_BIN)")
    return b


def run_greta(*args, expect=0):
    p = subprocess.run([greta_bin(), *map(str, args)], capture_output=True, text=True)
    assert p.returncode == expect, f"greta {args} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    """A tiny synthetic llama GGUF (greta gen-model, seed 3, q4_1)."""
    p = tmp_path_factory.mktemp("model") / "tiny.gguf"
    run_greta("gen-model", "--preset", "tiny", "--dtype", "q4_1", "--seed", "3", "--out", p)
    return p
