"""Engine-neutral launches: what an adapter hands to greta's recorder.

An adapter (llama.cpp's eval callback, transformers' forward hooks) turns the engine's own operations into
`Launch` objects in greta's vocabulary (docs/STAGES.md): phase, layer, stage, the inputs in the order the
stage contract lists them, the outputs, scalar params, and a route that names the engine's own kernel.
`write_tape` then writes them through the `greta` Python package. Keeping the two apart lets the tests
check an adapter's mapping (stage counts, shapes, order) without a tape, and lets both adapters share one
writer.

An input is either an array (`Tensor`), a weight referenced by its GGUF tensor name (`Weight`: the tape
stores the name and greta checks the model file's hash instead of copying the bytes), or the unchanged
output of an earlier launch (`Tensor` with `producer` set: recorded once, referenced after).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np


@dataclass
class Weight:
    """A model weight by GGUF tensor name (e.g. `blk.0.attn_q.weight`)."""

    name: str


@dataclass
class Tensor:
    """A host array; `producer` = (launch index, output name) when it is an earlier launch's output."""

    array: np.ndarray
    producer: tuple[int, str] | None = None


Input = Union[Tensor, Weight]


@dataclass
class Launch:
    """One engine operation: where it sits (phase, layer, stage: greta's or the engine's own name) and
    what it computes (`op`, docs/OPS.md; None: greta has no op for it, so it is kept and listed as
    unjudged, and `note` says why)."""

    phase: str
    layer: int | None
    stage: str
    route: str
    params: dict = field(default_factory=dict)
    inputs: dict[str, Input] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    op: str | None = None
    note: str = ""


def write_tape(path: str, launches: list[Launch], *, engine: str, engine_version: str, model: dict,
               prompt_tokens: list[int] | None = None, device: str = "cpu") -> int:
    """Writes `launches` to a greta tape at `path` through the `greta` package; returns the launch count.

    `model` is the tape header's model description; its `gguf` key names the GGUF file that weights are
    referenced in (greta hashes it and checks it on replay).
    """
    import greta  # the Python package built from python/ (maturin); see README "Recording your own engine"

    ids: dict[tuple[int, str], object] = {}
    with greta.Recorder(path, engine=engine, engine_version=engine_version, model=model, device=device,
                        prompt_tokens=list(prompt_tokens or [])) as rec:
        for i, la in enumerate(launches):
            inputs: dict[str, object] = {}
            input_ids: dict[str, object] = {}
            for role, x in la.inputs.items():
                if isinstance(x, Weight):
                    inputs[role] = greta.weight(x.name)
                elif x.producer is not None and x.producer in ids:
                    input_ids[role] = ids[x.producer]  # capture once: greta refers to that output
                else:
                    inputs[role] = np.ascontiguousarray(x.array)
            got = rec.launch(
                phase=la.phase,
                layer=la.layer,
                stage=la.stage,
                route=la.route,
                op=la.op,
                params=la.params,
                inputs=inputs,
                outputs={k: np.ascontiguousarray(v) for k, v in la.outputs.items()},
                input_ids=input_ids,
            )
            for name, oid in got.items():
                ids[(i, name)] = oid
    return len(launches)
