"""llama.cpp graph nodes -> greta launches, op by op, for any architecture llama.cpp runs.

One `llama_decode` call computes one ggml graph; the eval callback gives us its nodes in execution order
(`ggml.Node`, the bytes of each copied right after it ran). `map_graph` records **every node that computes
something** as one launch: its op from the ggml op (the table below), its layer from the tensor name, its
stage from where it sits. Nothing here knows an architecture: heads, head size, rope mode and dims, eps,
scales and masks are read from each node's own shapes and `op_params`, never from the model's name.

| ggml op | greta op | inputs given to greta (row-major, outermost first) | params from the node |
|---|---|---|---|
| MUL_MAT (2-D src0) | mul_mat | x = src1 `[n, k]`, w = src0 `[m, k]` (a weight by GGUF name) | |
| MUL_MAT (batched: K·q, several kv heads) | -, unjudged | the scores of every cell, unscaled and unmasked: no contract says that | |
| MUL_MAT (batched: V·softmax) | pv | probs `[H, n, kv]`, v_cache `[kv, Hk·hd]` | pos; heads from the shapes |

(With one kv head, K·q and V·probs are plain 2-D matmuls, `mul_mat` with the cache view as `w`.)
| MUL_MAT_ID | mul_mat_id | x `[n, k]`, w `[E, m, k]`, ids `[n, top_k]` | |
| GET_ROWS | get_rows | ids `[n]`, table `[V, d]` (weight, or an activation) | |
| RMS_NORM / NORM | rms_norm / norm | x `[.., d]` (no weight: the MUL after it is its own launch) | eps = op_params[0] |
| ROPE (mode 0, 2) | rope | x `[n, H·hd]`, positions (src1), freq_factors (src2) | n_dims [1], mode [2], n_ctx_orig [4], freq_base [5], freq_scale [6], ext_factor [7], attn_factor [8], beta_fast [9], beta_slow [10] |
| SOFT_MAX | softmax | scores `[H, n, kv]`, mask `[n, kv]` | scale = op_params[0]; max_bias [1] ≠ 0 (ALiBi) or sinks: unjudged |
| FLASH_ATTN_EXT | attention | q `[n, H·hd]`, k_cache, v_cache `[kv, Hk·hd]`, sinks | scale [0], softcap [2], window and causality read from the mask; max_bias ≠ 0: unjudged |
| ADD / MUL | add / mul | x = src0 `[.., d]`, r / y = src1 (same shape or one row) | |
| SCALE | scale | x | scale [0], bias [1] |
| UNARY SILU, GELU, GELU_ERF, SIGMOID, TANH | silu, gelu, gelu_erf, sigmoid, tanh | x | |
| GLU SWIGLU, GEGLU, GEGLU_ERF | swiglu, geglu, geglu_erf | gate, up (the halves of src0 when there is no src1) | swapped [1] |
| CPY, DUP, CONT | cpy | x = src0 in the output's shape | the output's type |
| SET_ROWS (into the KV cache) | cpy | x = the rows written, out = the rows as stored (f16) | |
| ARGMAX | argmax | logits `[n, V]` | |
| RESHAPE, VIEW, PERMUTE, TRANSPOSE | not recorded | they move no value: a consumer's input is read through them | |
| anything else | -, unjudged | src0, src1, ... as they are | stage = the ggml op name |

Layouts: a ggml tensor's `ne[0]` is its fastest dimension, so `ne = (576, 5)` is greta's row-major
`[5, 576]`; a roped `Qcur` with `ne = (64, 9, 5)` is `[5, 9·64]`, heads contiguous as the contracts want.
Views are read through: an input is taken from the bytes of the node that computed it (copied when it
ran, before any in-place consumer could overwrite them), through the view's own strides and offset, so a
permuted q, a transposed V cache or a K cache view read exactly what the kernel read. Where a node's
layout cannot be expressed in its op's contract (a batched matmul whose two sides are not a greta op, a
mask that is not causal, a rope of another mode), the node is recorded **unjudged** (no op) rather than
judged wrongly.

Layer: the `-N` suffix of llama.cpp's node names (`attn_norm-5`), the `_lN` of its cache tensors
(`cache_k_l5`), a `blk.N.` weight among the node's sources, else the layer of the node that consumes it
(Gemma's `ffn_post_norm` is named without a layer; its weight is `blk.N.post_ffw_norm.weight`).

Stage: greta's stage where a node is one (docs/STAGES.md): the matmul of `blk.N.attn_q.weight` is
`q_proj`, the ROPE named `Qcur-N` is `rope_q`, the MUL named `attn_norm-N` (the norm weight after
RMS_NORM) is `attn_norm`, `ffn_inp-N`/`sa_out-N` is `attn_residual`, `l_out-N` `ffn_residual`, the CONT
or FLASH_ATTN_EXT that yields the attention output is `attn`; otherwise the node's own name without its
layer suffix (`norm`, `kq`, `Qcur_normed`), or the ggml op's name for an unnamed node.

Cache cells must equal positions (one sequence, cache cleared at start) for the attention contracts:
the mask is checked row by row, and anything else leaves the launch unjudged.

Route names: `ggml:<OP> <types>` with the weight type first for matmuls, e.g. `ggml:MUL_MAT q4_1×f32`.
"""

from __future__ import annotations

import re

import numpy as np

from .ggml import Node, span_bytes, strided
from .launches import Launch, Tensor, Weight

# ops that compute nothing: a consumer's input is read through them.
VIEWS = {"RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "NONE"}

_MATMUL_STAGE = {
    "attn_q": "q_proj",
    "attn_k": "k_proj",
    "attn_v": "v_proj",
    "attn_qkv": "qkv_proj",
    "attn_output": "o_proj",
    "ffn_gate": "gate",
    "ffn_up": "up",
    "ffn_down": "down",
}
# llama.cpp's node names (llm_graph_context callbacks, shared by its model builders) -> greta stages
_NAMED_STAGE = {
    ("MUL", "attn_norm"): "attn_norm",
    ("MUL", "ffn_norm"): "ffn_norm",
    ("MUL", "result_norm"): "final_norm",
    ("ROPE", "Qcur"): "rope_q",
    ("ROPE", "Kcur"): "rope_k",
    ("ADD", "ffn_inp"): "attn_residual",
    ("ADD", "sa_out"): "attn_residual",
    ("ADD", "l_out"): "ffn_residual",
    ("SWIGLU", "ffn_swiglu"): "swiglu",
    ("GET_ROWS", "inp_embd"): "embed",
}
# greta's own stage names (docs/STAGES.md, src/launch/stage.rs): a launch at one of them is checked
# against that stage's contract unless it names its op, so an unjudged node never takes one
GRETA_STAGES = {
    "embed", "attn_norm", "q_proj", "k_proj", "v_proj", "qkv_proj", "rope_q", "rope_k", "kv_write", "qk",
    "softmax", "pv", "attn", "o_proj", "attn_residual", "ffn_norm", "gate", "up", "swiglu", "down",
    "ffn_residual", "final_norm", "lm_head", "argmax",
}
_UNARY = {"SILU": "silu", "GELU": "gelu", "GELU_ERF": "gelu_erf", "SIGMOID": "sigmoid", "TANH": "tanh"}
_GLU = {"SWIGLU": "swiglu", "GEGLU": "geglu", "GEGLU_ERF": "geglu_erf"}
_COPY_TO = {"f32", "f16", "bf16"}  # output types greta's `cpy` judges from numpy arrays

_BLK = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
_SUFFIX = re.compile(r"-(\d+)$")
_CACHE = re.compile(r"^cache_[a-z]+_l(\d+)")
_PAREN = re.compile(r"(\s*\([^)]*\))+$")
_UNNAMED = re.compile(r"^(node|leaf)_\d+$")  # ggml's default names


class MappingError(Exception):
    """The graph cannot be read as llama.cpp builds it (a broken invariant, not an unknown op)."""


class Unjudged(Exception):
    """This node's layout or params do not fit its op's contract: record it without an op (`stage`:
    what to call an unnamed node)."""

    def __init__(self, why: str, stage: str = ""):
        super().__init__(why)
        self.stage = stage


class Unmapped(Unjudged):
    """A ggml op greta has no op for."""


def base_name(name: str) -> str:
    """A node name without ggml's view suffixes (` (view)`, ` (reshaped)`) and llama.cpp's `-N`."""
    return _SUFFIX.sub("", _PAREN.sub("", name))


def direct_layer(n: Node) -> int | None:
    """The layer a node names itself, or names through a `blk.N.` weight it reads."""
    name = _PAREN.sub("", n.name)
    m = _SUFFIX.search(name) or _CACHE.match(name)
    if m:
        return int(m.group(1))
    for s in n.src:
        m = _BLK.match(s.root_name if s.is_view else s.name)
        if m:
            return int(m.group(1))
    return None


def stage_of(n: Node) -> str:
    """greta's stage for a node where it is one, else the node's own name (or op) without the layer."""
    if n.op in ("MUL_MAT", "MUL_MAT_ID") and n.src and n.src[0].is_weight:
        w = n.src[0].name
        m = _BLK.match(w)
        if m and m.group(2) in _MATMUL_STAGE:
            return _MATMUL_STAGE[m.group(2)]
        if w in ("output.weight", "token_embd.weight"):
            return "lm_head"
    name = base_name(n.name)
    if _UNNAMED.match(name):
        name = ""
    if not name and n.op == "MUL_MAT" and n.src:  # attention's products with the cache (unnamed)
        m = _CACHE.match(n.src[0].root_name)
        if m:
            return {"cache_k": "kq", "cache_v": "kqv"}.get(m.group(0)[: -len(m.group(1)) - 2], "mul_mat")
    got = _NAMED_STAGE.get((n.op, name))
    if got:
        return got
    name = _CACHE.sub(lambda m: m.group(0)[: -len(m.group(1)) - 2], name)  # cache_k_l5 -> cache_k
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_")
    return name or n.op.lower()


class _Memory:
    """The bytes each computed node left, in execution order: an input is read from the latest copy
    that holds its whole span, through its own strides (views, permutes, caches)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, np.ndarray, tuple | None]] = []
        self.by_start: dict[int, int] = {}

    def put(self, n: Node, out: tuple | None) -> None:
        """`out` = (launch index, role, recorded shape) when the launch recorded these bytes as they are."""
        if n.raw is None:
            return
        self.by_start[n.data_addr] = len(self.entries)
        self.entries.append((n.data_addr, n.data_addr + n.raw.size, n.raw, out))

    def read(self, s: Node) -> tuple[np.ndarray, tuple | None]:
        """The values of source `s` as a (ne3, ne2, ne1, ne0) array, and the launch output it is, if any."""
        if s.data is not None:  # a leaf, read with its consumer
            return s.data, None
        if s.type not in ("f32", "f16", "i32", "i64", "f64", "i16", "i8") or not s.data_addr:
            raise Unjudged(f"`{s.name}` is {s.type}: not readable as values")
        span = span_bytes(s.type, s.ne, s.nb)
        i = self.by_start.get(s.data_addr)
        cands = ([i] if i is not None else []) + list(range(len(self.entries) - 1, -1, -1))
        for k in cands:
            start, end, raw, out = self.entries[k]
            if start <= s.data_addr and s.data_addr + span <= end:
                arr = strided(raw, s.data_addr - start, s.type, s.ne, s.nb)
                natural = out is not None and start == s.data_addr and _contiguous(s) and arr.size * arr.itemsize == raw.size
                return arr, (out if natural else None)
        raise MappingError(f"no computed node holds the data of `{s.name}` ({s.op})")


def _contiguous(s: Node) -> bool:
    want = np.dtype({"f32": np.float32, "f16": np.float16, "i32": np.int32}.get(s.type, np.uint8)).itemsize
    for ne, nb in zip(s.ne, s.nb):
        if ne > 1 and nb != want:
            return False
        want *= ne
    return True


def _f32(name: str, v: float) -> float:
    if not np.isfinite(v):
        raise Unjudged(f"{name} is {v}")
    return float(v)


class _Graph:
    def __init__(self, nodes: list[Node], base: int, phase: str, pos: int, rows: int):
        self.nodes = nodes
        self.base = base
        self.phase = phase
        self.pos = pos
        self.rows = rows
        self.mem = _Memory()
        self.launches: list[Launch] = []
        self.layers = _layers(nodes)

    def tensor(self, s: Node, shape: tuple[int, ...] | None = None) -> Tensor:
        """Source `s` as a Tensor of `shape` (row-major), linked to the launch that produced it when that
        launch recorded exactly these values in this shape."""
        arr, out = self.mem.read(s)
        if shape is not None:
            arr = arr.reshape(shape)
        prod = None
        if out is not None and tuple(out[2]) == tuple(arr.shape):
            prod = (out[0], out[1])
        return Tensor(arr, prod)

    def operand(self, s: Node, shape: tuple[int, ...] | None = None):
        """A weight by name, else the values."""
        if s.is_weight:
            return Weight(s.name)
        return self.tensor(s, shape)


def _layers(nodes: list[Node]) -> dict[int, int | None]:
    """Layer per node address: its own (name or weight), else the layer of the nodes that read it
    (through views and other unnamed nodes) when it reads a node of some layer itself. So a node before
    the first layer (the embedding, its scaling) or after the last (the final norm) keeps None."""
    direct = {n.addr: direct_layer(n) for n in nodes}
    srcs = {n.addr: [s.addr for s in n.src] for n in nodes}
    consumers: dict[int, list[int]] = {}
    for n in nodes:
        for s in n.src:
            consumers.setdefault(s.addr, []).append(n.addr)

    def find(addr: int, edges: dict, memo: dict, depth: int) -> int | None:
        if direct.get(addr) is not None:
            return direct[addr]
        if addr in memo or depth > 12:
            return memo.get(addr)
        memo[addr] = None
        for other in edges.get(addr, []):
            got = find(other, edges, memo, depth + 1)
            if got is not None:
                memo[addr] = got
                break
        return memo[addr]

    up_memo: dict = {}
    down_memo: dict = {}
    out: dict[int, int | None] = {}
    for n in nodes:
        if direct[n.addr] is not None:
            out[n.addr] = direct[n.addr]
            continue
        up = find(n.addr, srcs, up_memo, 0)
        down = find(n.addr, consumers, down_memo, 0)
        out[n.addr] = down if up is not None else None
    return out


def rows2(a: np.ndarray) -> np.ndarray:
    """A (ne3, ne2, ne1, ne0) array as `[rows, ne0]`."""
    return a.reshape(-1, a.shape[-1])


def map_graph(nodes: list[Node], *, phase: str, pos: int, rows: int, base: int = 0) -> list[Launch]:
    """Maps the nodes of one `llama_decode` graph (`rows` tokens at positions pos..) to greta launches,
    one per computing node. `base` is the index the first launch will have on the tape (producers are
    numbered across graphs)."""
    g = _Graph(nodes, base, phase, pos, rows)
    for n in nodes:
        if n.op in VIEWS:
            continue
        if n.raw is None:
            raise MappingError(f"no data captured for `{n.name}` ({n.op})")
        idx = base + len(g.launches)
        try:
            la, natural = _map_node(g, n)
        except Unmapped as e:
            la, natural = _unjudged(g, n, str(e), known=False), True
        except Unjudged as e:
            la, natural = _unjudged(g, n, str(e), known=True), True
            if e.stage and la.stage == n.op.lower():
                la.stage = e.stage
        la.layer = g.layers.get(n.addr)
        g.launches.append(la)
        out = None
        if natural and "out" in la.outputs:
            out = (idx, "out", la.outputs["out"].shape)
        g.mem.put(n, out)
    return g.launches


def _route(n: Node, extra: str = "") -> str:
    types = "×".join(s.type for s in n.src if s.type) or n.type
    return f"ggml:{n.op} {types}{extra}"


def _launch(g: _Graph, n: Node, op: str, inputs: dict, outputs: dict, params: dict | None = None,
            route: str | None = None) -> Launch:
    p = {"rows": g.rows}
    p.update(params or {})
    return Launch(g.phase, None, stage_of(n), route or _route(n), p, inputs, outputs, op=op)


def _unjudged(g: _Graph, n: Node, why: str, known: bool) -> Launch:
    """The node as it is, without an op: kept, diffed by hash, listed as unjudged. Stage: the ggml op's
    name for an op greta has none for (`known` False), else where the node sits."""
    inputs: dict = {}
    for i, s in enumerate(n.src):
        if s.is_weight:
            inputs[f"src{i}"] = Weight(s.name)
            continue
        try:
            inputs[f"src{i}"] = g.tensor(s, (-1, int(s.ne[0])))
        except (Unjudged, MappingError, ValueError):
            continue  # a source not readable as values (a quantized view): the output is still recorded
    outputs = {"out": rows2(n.data)} if n.data is not None else {}
    stage = stage_of(n) if known else n.op.lower()
    if stage in GRETA_STAGES:  # its own name: greta's stage would hold it to that stage's contract
        own = base_name(n.name)
        stage = own if own and not _UNNAMED.match(own) and own not in GRETA_STAGES else n.op.lower()
    la = Launch(g.phase, None, stage, _route(n), {"rows": g.rows}, inputs, outputs, op=None)
    la.note = why
    return la


def _map_node(g: _Graph, n: Node) -> tuple[Launch, bool]:
    """(launch, whether its `out` is the node's bytes in their natural order)."""
    op = n.op
    if op == "MUL_MAT":
        return _mul_mat(g, n)
    if op == "MUL_MAT_ID":
        return _mul_mat_id(g, n)
    if op == "GET_ROWS":
        return _get_rows(g, n), True
    if op in ("RMS_NORM", "NORM"):
        x = g.tensor(n.src[0], rows2(n.data).shape)
        return _launch(g, n, op.lower(), {"x": x}, {"out": rows2(n.data)},
                       {"eps": _f32("eps", n.param_f32(0))}, f"ggml:{op} {n.src[0].type}"), True
    if op == "ROPE":
        return _rope(g, n), True
    if op == "SOFT_MAX":
        return _softmax(g, n), True
    if op == "FLASH_ATTN_EXT":
        return _flash_attn(g, n), True
    if op in ("ADD", "MUL"):
        return _binary(g, n), True
    if op == "SCALE":
        x = g.tensor(n.src[0], rows2(n.data).shape)
        return _launch(g, n, "scale", {"x": x}, {"out": rows2(n.data)},
                       {"scale": _f32("scale", n.param_f32(0)), "bias": _f32("bias", n.param_f32(1))}), True
    if op in _UNARY:
        x = g.tensor(n.src[0], rows2(n.data).shape)
        return _launch(g, n, _UNARY[op], {"x": x}, {"out": rows2(n.data)}, route=f"ggml:UNARY {op} {n.src[0].type}"), True
    if op in _GLU:
        return _glu(g, n), True
    if op in ("CPY", "DUP", "CONT"):
        return _copy(g, n)
    if op == "SET_ROWS":
        return _set_rows(g, n), False
    if op == "ARGMAX":
        x = g.tensor(n.src[0], (-1, int(n.src[0].ne[0])))
        return _launch(g, n, "argmax", {"logits": x}, {"out": n.data.reshape(-1).astype(np.int32)}), False
    raise Unmapped(f"ggml op {op} has no greta op")


def _mul_mat(g: _Graph, n: Node) -> tuple[Launch, bool]:
    a, b = n.src[0], n.src[1]
    k, m = int(a.ne[0]), int(a.ne[1])
    if a.ne[2] == 1 and a.ne[3] == 1:
        if a.is_weight:
            w = Weight(a.name)
        else:
            w = g.tensor(a, (m, k))
        x = g.tensor(b, (int(np.prod(b.ne[1:])), k))
        return _launch(g, n, "mul_mat", {"x": x, "w": w}, {"out": rows2(n.data)},
                       route=f"ggml:MUL_MAT {a.type}×{b.type}"), True
    return _batched_mul_mat(g, n), False


def _visible(mask: np.ndarray, pos: int, n: int, kv: int) -> int:
    """Checks that row i of `mask` ([>= n, kv]) shows exactly keys s_i ..= pos + i with zero bias, the
    causal mask with an optional sliding window; returns the window (0: none)."""
    if mask.shape[0] < n or mask.shape[1] != kv:
        raise Unjudged(f"mask {mask.shape} does not cover {n} rows of {kv} keys")
    window = 0
    starts = []
    for i in range(n):
        row = mask[i].astype(np.float64)
        vis = np.isfinite(row)
        p = pos + i
        if p >= kv or not vis[p] or vis[p + 1:].any():
            raise Unjudged(f"mask row {i} does not end at key {p}: cache cells are not positions")
        idx = np.flatnonzero(vis)
        s = int(idx[0])
        if idx.size != p - s + 1:
            raise Unjudged(f"mask row {i} is not one contiguous range of keys")
        if np.any(row[vis] != 0.0):
            raise Unjudged("the mask adds a bias (ALiBi, relative positions): not a causal mask")
        starts.append((p, s))
    wins = {p - s + 1 for p, s in starts if s > 0}
    if len(wins) > 1:
        raise Unjudged(f"mask windows differ by row: {sorted(wins)}")
    if wins:
        window = wins.pop()
        if any(s == 0 and p + 1 > window for p, s in starts):
            raise Unjudged("mask window is not the same for every row")
    return window


def _batched_mul_mat(g: _Graph, n: Node) -> Launch:
    """K·q (unjudged: the scores of every cell, unscaled and unmasked, are no op's contract) or V·probs,
    which is greta's `pv` when the probabilities are zero outside the causal range."""
    a, b = n.src[0], n.src[1]
    if a.ne[3] != 1 or b.ne[3] != 1:
        raise Unjudged("a 4-D batched matmul")
    kv, hd, hk = int(a.ne[0]), int(a.ne[1]), int(a.ne[2])
    rows, heads = int(b.ne[1]), int(b.ne[2])
    probs, pout = g.mem.read(b)
    from_softmax = pout is not None and g.launches[pout[0] - g.base].op == "softmax"
    if not from_softmax:
        kq = "kq" if _CACHE.match(a.root_name) else ""
        raise Unjudged("a batched matmul that is not probabilities times the V cache (K·q: the scores of "
                       "every cache cell, unscaled and unmasked, are no op's contract)", kq)
    if heads % hk or rows != g.rows:
        raise Unjudged(f"{heads} heads over {hk} kv heads, {rows} rows")
    probs = probs.reshape(heads, rows, kv)
    for i in range(rows):
        if np.any(probs[:, i, g.pos + i + 1:] != 0):
            raise Unjudged("probabilities outside the causal range are not zero")
    v, _ = g.mem.read(a)  # (1, Hk, hd, kv)
    v = v.reshape(hk, hd, kv).transpose(2, 0, 1).reshape(kv, hk * hd)
    if not np.isfinite(v).all():
        raise Unjudged("the V cache holds non-finite values")
    out = n.data.reshape(heads, rows, hd).transpose(1, 0, 2).reshape(rows, heads * hd)
    p_in = Tensor(probs, (pout[0], pout[1])) if tuple(pout[2]) == probs.shape else Tensor(probs)
    la = _launch(g, n, "pv", {"probs": p_in, "v_cache": Tensor(np.ascontiguousarray(v))},
                 {"out": out}, {"pos": g.pos, "n_heads": heads, "n_kv_heads": hk, "head_dim": hd},
                 route=f"ggml:MUL_MAT {a.type}×{b.type} (V·probs)")
    if la.stage in ("mul_mat", "kqv"):  # unnamed: it is greta's pv, in greta's layout
        la.stage = "pv"
    return la


def _mul_mat_id(g: _Graph, n: Node) -> tuple[Launch, bool]:
    a, b, ids = n.src[0], n.src[1], n.src[2]
    if not a.is_weight or b.ne[3] != 1:
        raise Unjudged("mul_mat_id of a non-weight or 4-D input")
    k, m, e = int(a.ne[0]), int(a.ne[1]), int(a.ne[2])
    top, nt = int(ids.ne[0]), int(ids.ne[1])
    xb, _ = g.mem.read(b)  # (1, n, b.ne1, k): b.ne1 is 1 (broadcast) or top_k
    if b.ne[1] != 1:
        raise Unjudged("mul_mat_id with per-expert input rows")
    x = Tensor(xb.reshape(nt, k))
    ids_arr, _ = g.mem.read(ids)
    out = n.data.reshape(nt, top, m)
    return _launch(g, n, "mul_mat_id", {"x": x, "w": Weight(a.name),
                                        "ids": Tensor(ids_arr.reshape(nt, top).astype(np.int32))},
                   {"out": out}, route=f"ggml:MUL_MAT_ID {a.type}×{b.type}"), True


def _get_rows(g: _Graph, n: Node) -> Launch:
    t, ids = n.src[0], n.src[1]
    if t.ne[2] != 1 or t.ne[3] != 1 or ids.ne[1] != 1 or ids.ne[2] != 1:
        raise Unjudged("a batched get_rows")
    d = int(t.ne[0])
    table = Weight(t.name) if t.is_weight else g.tensor(t, (int(t.ne[1]), d))
    idv, _ = g.mem.read(ids)
    return _launch(g, n, "get_rows", {"ids": Tensor(idv.reshape(-1).astype(np.int32)), "table": table},
                   {"out": rows2(n.data)}, route=f"ggml:GET_ROWS {t.type}")


def _rope(g: _Graph, n: Node) -> Launch:
    x, p = n.src[0], n.src[1]
    mode = int(n.op_params[2])
    if mode not in (0, 2):
        raise Unjudged(f"rope mode {mode} (greta's contract: 0 NORM, 2 NEOX)")
    if x.ne[3] != 1:
        raise Unjudged("a 4-D rope")
    hd, heads, rows = int(x.ne[0]), int(x.ne[1]), int(x.ne[2])
    pv, _ = g.mem.read(p)
    positions = pv.reshape(-1).astype(np.int32)
    if positions.size != rows:
        raise Unjudged(f"{positions.size} positions for {rows} rows")
    f = n.param_f32
    params = {
        "pos": int(positions[0]), "n_heads": heads, "head_dim": hd, "rope_dim": int(n.op_params[1]),
        "mode": mode, "n_ctx_orig": int(n.op_params[4]), "rope_theta": _f32("freq_base", f(5)),
        "freq_scale": _f32("freq_scale", f(6)), "ext_factor": _f32("ext_factor", f(7)),
        "attn_factor": _f32("attn_factor", f(8)), "beta_fast": _f32("beta_fast", f(9)),
        "beta_slow": _f32("beta_slow", f(10)),
    }
    inputs = {"x": g.tensor(x, (rows, heads * hd)), "positions": Tensor(positions)}
    if len(n.src) > 2:
        ff = n.src[2]
        inputs["freq_factors"] = Weight(ff.name) if ff.is_weight else g.tensor(ff, (-1,))
    return _launch(g, n, "rope", inputs, {"out": n.data.reshape(rows, heads * hd)}, params,
                   f"ggml:ROPE {x.type} mode={mode}")


def _softmax(g: _Graph, n: Node) -> Launch:
    x = n.src[0]
    if _f32("max_bias", n.param_f32(1)) != 0.0:
        raise Unjudged("softmax with ALiBi (max_bias != 0)")
    if len(n.src) > 2:
        raise Unjudged("softmax with attention sinks")
    kv, rows, heads = int(x.ne[0]), int(x.ne[1]), int(x.ne[2] * x.ne[3])
    inputs = {"scores": g.tensor(x, (heads, rows, kv))}
    if len(n.src) > 1:
        m = n.src[1]
        if m.ne[2] != 1 or m.ne[3] != 1:
            raise Unjudged("a mask per head or sequence")
        mv, _ = g.mem.read(m)
        mv = mv.reshape(int(m.ne[1]), kv)
        if mv.shape[0] < rows:
            raise Unjudged(f"mask of {mv.shape[0]} rows for {rows}")
        inputs["mask"] = Tensor(np.ascontiguousarray(mv[:rows]))
    mt = f" mask={n.src[1].type}" if len(n.src) > 1 else ""
    return _launch(g, n, "softmax", inputs, {"out": n.data.reshape(heads, rows, kv)},
                   {"scale": _f32("scale", n.param_f32(0))}, f"ggml:SOFT_MAX {x.type}{mt}")


def _flash_attn(g: _Graph, n: Node) -> Launch:
    q, k, v = n.src[0], n.src[1], n.src[2]
    mask = n.src[3] if len(n.src) > 3 else None
    sinks = n.src[4] if len(n.src) > 4 else None
    if _f32("max_bias", n.param_f32(1)) != 0.0:
        raise Unjudged("flash attention with ALiBi (max_bias != 0)")
    if q.ne[3] != 1 or k.ne[3] != 1:
        raise Unjudged("flash attention over several sequences")
    hd, rows, heads = int(q.ne[0]), int(q.ne[1]), int(q.ne[2])
    kv, hk = int(k.ne[1]), int(k.ne[2])
    if int(v.ne[0]) != hd or int(k.ne[0]) != hd:
        raise Unjudged("k, v and q heads of different sizes")
    if mask is None:
        raise Unjudged("flash attention without a mask: not causal")
    mv, _ = g.mem.read(mask)
    window = _visible(mv.reshape(int(mask.ne[1]), int(mask.ne[0]))[:, :kv], g.pos, rows, kv)
    qa, _ = g.mem.read(q)
    ka, _ = g.mem.read(k)
    va, _ = g.mem.read(v)
    to_rows = lambda a, r, h: np.ascontiguousarray(a.reshape(h, r, hd).transpose(1, 0, 2).reshape(r, h * hd))  # noqa: E731
    inputs = {"q": Tensor(to_rows(qa, rows, heads)), "k_cache": Tensor(to_rows(ka, kv, hk)),
              "v_cache": Tensor(to_rows(va, kv, hk))}
    if sinks is not None:
        inputs["sinks"] = g.tensor(sinks, (heads,))
    params = {"pos": g.pos, "n_heads": heads, "n_kv_heads": hk, "head_dim": hd,
              "scale": _f32("scale", n.param_f32(0)), "softcap": _f32("softcap", n.param_f32(2)), "window": window}
    la = _launch(g, n, "attention", inputs, {"out": n.data.reshape(rows, heads * hd)}, params,
                 f"ggml:FLASH_ATTN_EXT {q.type}×{k.type}×{v.type}")
    la.stage = "attn"
    return la


def _binary(g: _Graph, n: Node) -> Launch:
    a, b = n.src[0], n.src[1]
    d = int(a.ne[0])
    shape = rows2(n.data).shape
    if tuple(a.ne) != tuple(n.ne):
        raise Unjudged(f"{n.op} broadcasts its first operand")
    if tuple(b.ne) == tuple(a.ne):
        other = g.operand(b, shape) if not b.is_weight else Weight(b.name)
    elif int(b.ne[0]) == d and all(int(x) == 1 for x in b.ne[1:]):
        other = Weight(b.name) if b.is_weight else g.tensor(b, (d,))
    else:
        raise Unjudged(f"{n.op} broadcasts {tuple(b.ne)} over {tuple(a.ne)}")
    role = "r" if n.op == "ADD" else "y"
    return _launch(g, n, n.op.lower(), {"x": g.tensor(a, shape), role: other}, {"out": rows2(n.data)},
                   route=f"ggml:{n.op} {a.type}×{b.type}")


def _glu(g: _Graph, n: Node) -> Launch:
    swapped = bool(n.op_params[1])
    out = rows2(n.data)
    if len(n.src) > 1 and n.src[1] is not None:
        gate, up = g.tensor(n.src[0], out.shape), g.tensor(n.src[1], out.shape)
    else:
        both, _ = g.mem.read(n.src[0])
        both = rows2(both)
        d = out.shape[1]
        gate, up = Tensor(np.ascontiguousarray(both[:, :d])), Tensor(np.ascontiguousarray(both[:, d:2 * d]))
    if swapped:
        gate, up = up, gate
    return _launch(g, n, _GLU[n.op], {"gate": gate, "up": up}, {"out": out},
                   route=f"ggml:GLU {n.op} {n.src[0].type}")


def _copy(g: _Graph, n: Node) -> tuple[Launch, bool]:
    if n.type not in _COPY_TO:
        raise Unjudged(f"a copy to {n.type}")
    out = rows2(n.data)
    x = g.tensor(n.src[0], out.shape)
    la = _launch(g, n, "cpy", {"x": x}, {"out": out}, route=f"ggml:{n.op} {n.src[0].type}→{n.type}")
    if base_name(n.name) == "kqv_out":  # the attention output, as greta's `attn` yields it
        la.stage = "attn"
    return la, _contiguous(n)


def _set_rows(g: _Graph, n: Node) -> Launch:
    """Rows written into the (KV cache) tensor: a copy from the values to the rows as stored."""
    vals, idx = n.src[0], n.src[1]
    if n.type not in _COPY_TO:
        raise Unjudged(f"rows written as {n.type}")
    d = int(vals.ne[0])
    if int(n.ne[0]) != d:
        raise Unjudged("rows of different widths")
    xv, _ = g.mem.read(vals)
    xv = xv.reshape(-1, d)
    iv, _ = g.mem.read(idx)
    iv = iv.reshape(-1).astype(np.int64)
    if iv.size != xv.shape[0]:
        raise Unjudged("as many row indices as rows")
    dst = rows2(n.data)
    stored = dst[iv]
    if d == 1 and xv.shape[0] % g.rows == 0:  # a transposed V cache, element by element: [tokens, width]
        xv, stored = xv.reshape(g.rows, -1), stored.reshape(g.rows, -1)
    x = g.tensor(vals, xv.shape)
    return _launch(g, n, "cpy", {"x": x}, {"out": np.ascontiguousarray(stored)},
                   route=f"ggml:SET_ROWS {vals.type}→{n.type}")
