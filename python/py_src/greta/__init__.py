"""greta: record another engine's kernel launches to a greta tape, and read greta tapes as numpy arrays.

A tape written here is an ordinary greta tape: ``greta verify``, ``greta ls``, ``greta replay
--reference f64`` and ``greta diff`` work on it. Name launches with greta's vocabulary (phase
``prefill``/``decode<k>``, the layer, a stage such as ``q_proj`` or ``attn_norm``, and greta's input roles
such as ``x`` and ``w``) and greta's f64 reference can judge them; any other stage name is kept, listed
and diffed by hash.

Writing::

    import numpy as np, greta
    with greta.Recorder("run.tape", engine="my-engine", engine_version="0.1") as rec:
        x = np.ones((1, 8), np.float32)
        w = np.ones(8, np.float32)
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w
        ids = rec.launch(phase="prefill", layer=0, stage="attn_norm", route="my_rmsnorm",
                         params={"eps": 1e-5}, inputs={"x": x, "w": w}, outputs={"out": y})

Reading::

    t = greta.open("run.tape")
    for l in t.launches():
        print(l["seq"], l["phase"], l["layer"], l["stage"], l["route"])
    outs = t.outputs(0)   # {"out": ndarray}
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from . import _greta
from ._greta import FORMAT_VERSION, GretaError

__all__ = [
    "Recorder",
    "Tape",
    "open",
    "weight",
    "raw",
    "Weight",
    "Raw",
    "GretaError",
    "FORMAT_VERSION",
]
__version__ = _greta.__version__

# numpy dtype -> greta dtype name, for arrays passed as they are.
_NP_TO_GRETA = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.float16): "f16",
    np.dtype(np.int32): "i32",
}
_DTYPES = (
    "f32", "f64", "f16", "bf16", "i32", "q8_0", "q4_0", "q4_1", "q4_k", "q6_k",
    "q5_0", "q5_1", "q2_k", "q3_k", "q5_k", "iq4_nl", "iq4_xs",
)


class Weight:
    """A model weight referenced by its GGUF tensor name (see :func:`weight`)."""

    def __init__(self, name: str) -> None:
        self.name = str(name)

    def __repr__(self) -> str:
        return f"greta.weight({self.name!r})"


class Raw:
    """Raw little-endian bytes of a given greta dtype and shape (see :func:`raw`)."""

    def __init__(self, data: Any, dtype: str, shape: List[int]) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}: one of {', '.join(_DTYPES)}")
        if isinstance(data, (bytes, bytearray, memoryview)):
            arr = np.frombuffer(bytes(data), dtype=np.uint8)
        else:
            arr = np.ascontiguousarray(np.asarray(data)).reshape(-1).view(np.uint8)
        self.data = arr
        self.dtype = dtype
        self.shape = [int(d) for d in shape]

    def __repr__(self) -> str:
        return f"greta.raw(<{self.data.size} bytes>, dtype={self.dtype!r}, shape={self.shape})"


def weight(name: str) -> Weight:
    """An input that is the model weight ``name`` of the GGUF file named by ``Recorder(model={"gguf": ...})``.

    It is referenced by name (and its blake3), never copied into the tape.
    """
    return Weight(name)


def raw(data: Any, dtype: str, shape: List[int]) -> Raw:
    """An input or output given as raw bytes (``bytes`` or a uint8 array) of greta dtype ``dtype``.

    Use it for GGML block types (``q4_1``, ``q8_0``, ...) and bf16; the byte count must match
    ``shape`` exactly (whole blocks for block types).
    """
    return Raw(data, dtype, shape)


def _as_numpy(v: Any) -> Union[np.ndarray, Raw]:
    if isinstance(v, Raw):
        return v
    if hasattr(v, "detach") and hasattr(v, "dtype"):  # a torch tensor
        from . import torch as _torch

        return _torch.to_greta(v)
    return np.asarray(v)


def _tensor(role: str, v: Any):
    """(dtype name, shape, uint8 bytes) of an array-like value."""
    v = _as_numpy(v)
    if isinstance(v, Raw):
        return v.dtype, v.shape, v.data
    dt = _NP_TO_GRETA.get(v.dtype)
    if dt is None:
        raise ValueError(
            f"`{role}`: numpy dtype {v.dtype} is not recorded as is; use float32/float64/float16/int32 "
            "or greta.raw(bytes, dtype=..., shape=...)"
        )
    a = np.ascontiguousarray(v)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return dt, [int(d) for d in a.shape], a.reshape(-1).view(np.uint8)


def _inputs(inputs: Optional[Mapping[str, Any]], input_ids: Optional[Mapping[str, int]]):
    inputs = dict(inputs or {})
    input_ids = dict(input_ids or {})
    both = set(inputs) & set(input_ids)
    if both:
        raise ValueError(f"inputs {sorted(both)} given both as values and as ids: give one")
    out = []
    for role, v in inputs.items():
        if isinstance(v, Weight):
            out.append((role, "weight", "", [], None, v.name, None))
        else:
            dt, shape, b = _tensor(role, v)
            out.append((role, "host", dt, shape, b, None, None))
    for role, i in input_ids.items():
        out.append((role, "id", "", [], None, None, int(i)))
    return out


def _params(params: Optional[Mapping[str, float]]):
    return [(str(k), float(v)) for k, v in (params or {}).items()]


class Recorder:
    """Records another engine's kernel launches to a greta tape at ``path``.

    Args:
        path: the tape to write (``path.incomplete`` until :meth:`close`).
        engine: the engine's name, e.g. ``"llama.cpp"``.
        engine_version: its version.
        model: ``None`` or a dict describing the model (architecture, sizes, ...). Its keys ``gguf``
            (path of the GGUF file the engine loaded) and ``gguf_blake3`` (hex, checked if given) are
            taken out: with a GGUF, inputs may be :func:`weight` references by tensor name.
        device: free text.
        prompt_tokens: the prompt's token ids, if known.
        sync: when True, :meth:`begin` returns only once the launch's Begin record is in the file, so a
            crash inside the engine's kernel leaves the launch named (costs a round trip per launch).

    Thread-safe. Use it as a context manager: the tape is completed on exit; on an exception it is left
    ``.incomplete`` (still readable).
    """

    def __init__(
        self,
        path: str,
        engine: str,
        engine_version: str = "",
        model: Optional[Mapping[str, Any]] = None,
        device: str = "",
        prompt_tokens: Optional[List[int]] = None,
        sync: bool = False,
    ) -> None:
        desc = None
        gguf = None
        gguf_blake3 = None
        if model is not None:
            m = dict(model)
            gguf = m.pop("gguf", None)
            gguf_blake3 = m.pop("gguf_blake3", None)
            desc = json.dumps(m)
        self.path = str(path)
        self._rec = _greta._Recorder(
            self.path,
            engine,
            engine_version,
            desc,
            None if gguf is None else str(gguf),
            gguf_blake3,
            device,
            [int(t) for t in (prompt_tokens or [])],
            bool(sync),
        )
        self._closed = False

    def begin(
        self,
        *,
        phase: str,
        layer: Optional[int],
        stage: str,
        route: str,
        op: Optional[str] = None,
        params: Optional[Mapping[str, float]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        input_ids: Optional[Mapping[str, int]] = None,
    ) -> int:
        """Writes the Begin record of a launch before the engine runs it; returns its seq for :meth:`end`.

        ``op`` names the maths the launch does (docs/OPS.md: ``rms_norm``, ``rope``, ``attention``, ...) when
        ``stage`` is not one of greta's; a known op's contract is enforced: a missing required param, an
        unknown input role or param, or shapes that do not fit raise ``ValueError`` and nothing is recorded.
        """
        return self._rec.begin(
            phase, layer, stage, route, _params(params), _inputs(inputs, input_ids), op
        )

    def end(
        self,
        seq: int,
        outputs: Optional[Mapping[str, Any]] = None,
        output_ids: Optional[Mapping[str, int]] = None,
    ) -> Dict[str, int]:
        """Writes the End record of launch ``seq``; returns ``{role: tensor id}`` of its outputs.

        Pass an id to a later launch's ``input_ids`` to say "this input is that output, unchanged"
        (recorded once, never copied again). ``output_ids`` chooses ids (below 2**63) instead.
        """
        output_ids = dict(output_ids or {})
        outs = []
        for role, v in (outputs or {}).items():
            dt, shape, b = _tensor(role, v)
            i = output_ids.get(role)
            outs.append((role, dt, shape, b, None if i is None else int(i)))
        ids = self._rec.end(int(seq), outs)
        return {o[0]: i for o, i in zip(outs, ids)}

    def launch(
        self,
        *,
        phase: str,
        layer: Optional[int],
        stage: str,
        route: str,
        op: Optional[str] = None,
        params: Optional[Mapping[str, float]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        outputs: Optional[Mapping[str, Any]] = None,
        input_ids: Optional[Mapping[str, int]] = None,
        output_ids: Optional[Mapping[str, int]] = None,
    ) -> Dict[str, int]:
        """Records a whole launch (:meth:`begin` then :meth:`end`); returns ``{role: tensor id}`` of its outputs."""
        seq = self.begin(
            phase=phase,
            layer=layer,
            stage=stage,
            route=route,
            op=op,
            params=params,
            inputs=inputs,
            input_ids=input_ids,
        )
        return self.end(seq, outputs, output_ids)

    def close(self) -> Dict[str, Any]:
        """Completes the tape; returns ``{"launches", "fingerprint", "path"}``."""
        n, fp, path = self._rec.close()
        self._closed = True
        return {"launches": n, "fingerprint": fp, "path": path}

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._closed:
            self.close()


def _decode(dtype: str, shape: List[int], b: np.ndarray) -> np.ndarray:
    if dtype == "f32":
        return b.view("<f4").reshape(shape)
    if dtype == "f64":
        return b.view("<f8").reshape(shape)
    if dtype == "f16":
        return b.view("<f2").reshape(shape)
    if dtype == "i32":
        return b.view("<i4").reshape(shape)
    if dtype == "bf16":
        return (b.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return b  # GGML block types: the raw bytes


class Tape:
    """A greta tape opened for reading (any producer: greta itself, the C ABI, this package)."""

    def __init__(self, path: str, model: Optional[str] = None) -> None:
        self._t = _greta._Tape(str(path), None if model is None else str(model))
        self.header: Dict[str, Any] = json.loads(self._t.header_json())
        self.version: int = self._t.version()

    def __len__(self) -> int:
        return len(self._t)

    def launch(self, seq: int) -> Dict[str, Any]:
        """Launch ``seq``: seq, phase, layer, stage, route, backend, engine, params, complete, inputs, outputs."""
        return json.loads(self._t.launch_json(int(seq)))

    def launches(
        self, phase: Optional[str] = None, layer: Optional[int] = None, stage: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Every launch (as :meth:`launch`), optionally only those of a phase, layer or stage."""
        out = []
        for s in self._t.seqs():
            l = self.launch(s)
            if phase is not None and l["phase"] != phase:
                continue
            if layer is not None and l["layer"] != layer:
                continue
            if stage is not None and stage not in (l["stage"], l["greta_stage"]):
                continue
            out.append(l)
        return out

    def _arrays(self, seq: int, outputs: bool) -> Dict[str, np.ndarray]:
        return {
            role: _decode(dt, [int(d) for d in shape], b)
            for role, dt, shape, b in self._t.tensors(int(seq), outputs)
        }

    def inputs(self, seq: int) -> Dict[str, np.ndarray]:
        """Launch ``seq``'s inputs as numpy arrays (f32/f64/f16/i32 as such, bf16 widened to float32,
        GGML block types as uint8 bytes). Weights are read from the model file the header names."""
        return self._arrays(seq, False)

    def outputs(self, seq: int) -> Dict[str, np.ndarray]:
        """Launch ``seq``'s outputs as numpy arrays (see :meth:`inputs`)."""
        return self._arrays(seq, True)


def open(path: str, model: Optional[str] = None) -> Tape:  # noqa: A001 - the package's reading entry point
    """Opens a tape for reading. ``model``: the GGUF file for weights referenced by name (default: the
    path in the tape's header)."""
    return Tape(path, model)
