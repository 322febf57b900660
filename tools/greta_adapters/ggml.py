"""ggml tensors seen from Python: the `struct ggml_tensor` layout and a strided reader.

llama.cpp's eval callback (`cb_eval`, `ggml_backend_sched_eval_callback`) hands us a raw
`struct ggml_tensor *`. This module mirrors that struct with ctypes (ggml/include/ggml.h of the llama.cpp
vendored by llama-cpp-python, pinned in tools/requirements-adapters.txt: GGML_MAX_DIMS 4,
GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64) and reads a tensor's bytes through its `ne`
(elements per dimension, ne[0] fastest) and `nb` (byte strides) into a numpy array in greta's row-major
order (outermost first), so a non-contiguous view (a permuted or transposed KV cache) reads correctly.

Op and type names come from ggml itself (`ggml_op_name`, `ggml_type_name` in libggml-base), never from a
copy of its enums, which change between versions.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

import numpy as np

GGML_MAX_DIMS = 4
GGML_MAX_OP_PARAMS = 64
GGML_MAX_SRC = 10
GGML_MAX_NAME = 64


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` (ggml.h)."""


GgmlTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
    ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(GgmlTensor) * GGML_MAX_SRC),
    ("view_src", ctypes.POINTER(GgmlTensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * GGML_MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]

# numpy dtypes of the ggml types whose elements we read one by one; block types are read as raw bytes.
_NUMPY = {
    "f32": np.float32,
    "f16": np.float16,
    "i32": np.int32,
    "i64": np.int64,
    "f64": np.float64,
    "i16": np.int16,
    "i8": np.int8,
}


class Ggml:
    """Names from libggml-base: op and type names of the running ggml."""

    def __init__(self) -> None:
        import llama_cpp

        lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        self.lib = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))
        self.lib.ggml_op_name.restype = ctypes.c_char_p
        self.lib.ggml_op_name.argtypes = [ctypes.c_int]
        self.lib.ggml_type_name.restype = ctypes.c_char_p
        self.lib.ggml_type_name.argtypes = [ctypes.c_int]
        self.lib.ggml_unary_op_name.restype = ctypes.c_char_p
        self.lib.ggml_unary_op_name.argtypes = [ctypes.c_int]
        self.lib.ggml_op_desc.restype = ctypes.c_char_p
        self.lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
        self.lib.ggml_nbytes.restype = ctypes.c_size_t
        self.lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
        self._ops: dict[int, str] = {}
        self._types: dict[int, str] = {}

    def op_name(self, op: int) -> str:
        if op not in self._ops:
            self._ops[op] = self.lib.ggml_op_name(op).decode()
        return self._ops[op]

    def op_desc(self, ptr: int) -> str:
        """Op name, with the unary/GLU sub-op where there is one (e.g. `SWIGLU`)."""
        return self.lib.ggml_op_desc(ptr).decode()

    def nbytes(self, ptr: int) -> int:
        """Bytes a tensor spans in memory from its data pointer (`ggml_nbytes`: strides included)."""
        return int(self.lib.ggml_nbytes(ptr))

    def type_name(self, t: int) -> str:
        if t not in self._types:
            self._types[t] = self.lib.ggml_type_name(t).decode()
        return self._types[t]


@dataclass
class Node:
    """A snapshot of one ggml tensor: metadata always, data when it was read."""

    name: str
    op: str
    type: str
    ne: tuple[int, ...]
    nb: tuple[int, ...]
    addr: int
    data_addr: int
    op_params: tuple[int, ...] = ()
    # the tensor at the root of its view chain (`view_src`): a leaf (op NONE: weights, graph inputs, the
    # KV cache) or a computed node
    root_name: str = ""
    root_is_leaf: bool = False
    is_view: bool = False

    @property
    def is_weight(self) -> bool:
        """A model weight itself (a leaf named `*.weight`), referenced by GGUF name, never read."""
        return self.op == "NONE" and not self.is_view and self.name.endswith(".weight")

    def param_f32(self, i: int) -> float:
        """op_params[i] read as the f32 it stores (ggml keeps floats there bit for bit)."""
        return float(np.array([self.op_params[i]], dtype=np.int32).view(np.float32)[0])

    src: list["Node"] = field(default_factory=list)
    data: np.ndarray | None = None
    # the bytes the tensor spans (`ggml_nbytes` from its data pointer), copied when the node was computed
    raw: np.ndarray | None = None

    def shape(self) -> tuple[int, ...]:
        """Row-major shape, outermost first, trailing unit dimensions dropped (ne reversed)."""
        ne = list(self.ne)
        while len(ne) > 1 and ne[-1] == 1:
            ne.pop()
        return tuple(reversed(ne))


def snapshot(ggml: Ggml, ptr: int, depth: int = 1, read: bool = True, leaves: bool = True) -> Node:
    """Copies a tensor's metadata (and its sources' to `depth`) and, when `read`, the bytes it spans.

    Sources whose view chain ends in a leaf that is not a weight (token ids, positions, masks, cache row
    indices, the KV cache) are read here, with their consumer: the graph allocator never reuses a leaf's
    memory, so they still hold what the consumer read. Sources computed by the graph are not read here
    (an in-place consumer may have overwritten them): the mapper finds them in the bytes copied when
    their own node was computed. Weights are never read: the tape references them by GGUF name.
    """
    t = ctypes.cast(ptr, ctypes.POINTER(GgmlTensor)).contents
    root = t
    hops = 0
    while root.view_src and hops < 64:
        root = root.view_src.contents
        hops += 1
    node = Node(
        name=t.name.decode(errors="replace"),
        op=ggml.op_desc(ptr),
        type=ggml.type_name(t.type),
        ne=tuple(t.ne),
        nb=tuple(t.nb),
        addr=ptr,
        data_addr=t.data or 0,
        op_params=tuple(t.op_params),
        root_name=root.name.decode(errors="replace"),
        root_is_leaf=ggml.op_name(root.op) == "NONE",
        is_view=bool(t.view_src),
    )
    if depth > 0:
        for s in t.src:
            if not s:
                continue
            sp = ctypes.cast(s, ctypes.c_void_p).value
            src = snapshot(ggml, sp, depth - 1, read=False)
            if (leaves and src.root_is_leaf and not src.root_name.endswith(".weight") and src.type in _NUMPY
                    and src.data_addr):
                src.data = read_strided(src.data_addr, src.type, src.ne, src.nb)
            node.src.append(src)
    if read and node.data_addr:
        n = ggml.nbytes(ptr)
        node.raw = np.frombuffer((ctypes.c_char * n).from_address(node.data_addr), dtype=np.uint8).copy()
        if node.type in _NUMPY:
            node.data = strided(node.raw, 0, node.type, node.ne, node.nb)
    return node


def strided(raw: np.ndarray, offset: int, type_name: str, ne, nb) -> np.ndarray:
    """The tensor (ne, nb) at byte `offset` of `raw`, as a C-contiguous (ne3, ne2, ne1, ne0) array."""
    dt = np.dtype(_NUMPY[type_name])
    shape = tuple(int(x) for x in reversed(ne))
    strides = tuple(int(x) for x in reversed(nb))
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + dt.itemsize
    if offset < 0 or offset + span > raw.size:
        raise ValueError(f"a {type_name} view of {span} bytes at {offset} leaves a {raw.size}-byte copy")
    if any(x % dt.itemsize for x in strides):
        raise ValueError(f"strides {strides} are not whole {type_name} elements")
    base = raw[offset:offset + span]
    if (base.ctypes.data % dt.itemsize) != 0:
        base = base.copy()
    flat = base.view(dt) if span % dt.itemsize == 0 else base[:span - span % dt.itemsize].view(dt)
    return np.array(np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides), copy=True)


def span_bytes(type_name: str, ne, nb) -> int:
    """Bytes a tensor of a numpy-readable type spans from its first element."""
    dt = np.dtype(_NUMPY[type_name])
    return sum((int(n) - 1) * int(s) for n, s in zip(ne, nb)) + dt.itemsize


def read_strided(addr: int, type_name: str, ne, nb) -> np.ndarray:
    """Copies the tensor at host address `addr` into a C-contiguous array of shape (ne3, ne2, ne1, ne0).

    The caller (the eval callback) guarantees the memory is live: ggml calls it right after the node was
    computed, before any later node can reuse the buffer.
    """
    dt = np.dtype(_NUMPY[type_name])
    shape = tuple(int(x) for x in reversed(ne))
    strides = tuple(int(x) for x in reversed(nb))
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + dt.itemsize
    buf = (ctypes.c_char * span).from_address(addr)
    if span % dt.itemsize or any(x % dt.itemsize for x in strides):
        raise ValueError(f"strides {strides} are not whole {type_name} elements")
    flat = np.frombuffer(buf, dtype=dt, count=span // dt.itemsize)
    return np.array(np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides), copy=True)
