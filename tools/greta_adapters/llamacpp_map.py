"""llama.cpp graph nodes -> greta launches (llama architecture: SmolLM2, Llama 2/3).

One `llama_decode` call computes one ggml graph; the eval callback gives us its nodes in execution order
(`ggml.Node`, data read right after each node ran). `map_graph` walks those nodes and emits one greta
launch per stage of docs/STAGES.md, identifying each node by its op and by the weight it multiplies (a
MUL_MAT whose src0 is `blk.7.ffn_up.weight` is layer 7's `up`) rather than by position, so a different
node order in another llama.cpp version still maps or fails loudly.

| greta stage | llama.cpp nodes (names from llm_build_llama) | inputs given to greta |
|---|---|---|
| embed | `inp_embd` GET_ROWS | ids (the token leaf), `token_embd.weight` |
| attn_norm / ffn_norm / final_norm | `attn_norm-L` / `ffn_norm-L` / `result_norm`: MUL(RMS_NORM(x), w) | x, w |
| q_proj k_proj v_proj o_proj gate up down lm_head | MUL_MAT(W, x) (`Qcur-L`, `Kcur-L`, `Vcur-L`, `attn_out-L`, `ffn_gate-L`, `ffn_up-L`, `ffn_out-L`, `result_output`) | x, W by GGUF name |
| rope_q / rope_k | ROPE (`Qcur-L` / `Kcur-L`, second node of that name) | x (the projection) |
| kv_write | SET_ROWS into `cache_k_lL` and `cache_v_lL` | k (roped), v; outputs: the cache rows written (f16 widened to f32) |
| attn | MUL_MAT(K, q) -> SOFT_MAX(kq, mask, scale) -> MUL_MAT(V, p) -> `kqv_out-L` | q (roped), K and V cache rows 0..ctx (f16 widened to f32) |
| attn_residual / ffn_residual | `ffn_inp-L` ADD(attn_out, x) / `l_out-L` ADD(ffn_out, ffn_inp) | x (the residual stream), r |
| swiglu | `ffn_swiglu-L` GLU SWIGLU(gate, up) | gate, up |

Layouts: a ggml tensor's `ne[0]` is its fastest dimension, so `ne = (576, 5)` is greta's row-major
`[5, 576]`; a roped `Qcur` with `ne = (64, 9, 5)` is `[5, 9*64]`, heads contiguous as STAGES.md wants.
The K cache is `[kv_size, kvd]` (row per cell); the V cache without flash attention is stored transposed,
`[kvd, kv_size]`, and is transposed back here. Cache cells must equal positions (one sequence, cache
cleared at start): the cell indices that SET_ROWS wrote and the attention mask are checked, and anything
else is an error rather than a silently wrong K/V.

The adapter asks llama.cpp for the logits of every prompt row, so that the last layer runs on all rows
(otherwise llama.cpp drops all but the last row before its FFN, which greta's per-layer stages do not);
every kernel involved works row by row, so the last row's values are the same either way. final_norm and
lm_head are recorded for the last row only, as greta's own engine runs them.

Route names: `ggml:<OP> <types>` with the weight type first for matmuls, e.g. `ggml:MUL_MAT q4_1×f32`.
"""

from __future__ import annotations

import re

import numpy as np

from .ggml import Node
from .launches import Launch, Tensor, Weight

# ops that compute nothing: a consumer's input is the data of the node they view.
_VIEWS = {"RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "NONE"}

_MATMUL_STAGE = {
    "attn_q": "q_proj",
    "attn_k": "k_proj",
    "attn_v": "v_proj",
    "attn_output": "o_proj",
    "ffn_gate": "gate",
    "ffn_up": "up",
    "ffn_down": "down",
}

_BLK = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")
_LAYER = re.compile(r"-(\d+)$")


class MappingError(Exception):
    """The graph does not have the shape this adapter maps (another architecture or llama.cpp version)."""


def _layer_of(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


class _Graph:
    """The nodes of one graph, by address, and the launches made so far (to link producers)."""

    def __init__(self, nodes: list[Node], base: int):
        self.by_addr = {n.addr: n for n in nodes}
        self.base = base
        # ggml node address -> (launch index, output role) of the launch that recorded it
        self.made: dict[int, tuple[int, str]] = {}

    def resolve(self, n: Node) -> Node:
        """Follows views (and identity GET_ROWS of all rows) back to the node that computed the data."""
        seen = 0
        while seen < 16:
            seen += 1
            full = self.by_addr.get(n.addr, n)
            if full.op in _VIEWS and full.src:
                n = full.src[0]
                continue
            if full.op == "GET_ROWS" and len(full.src) == 2 and full.name != "inp_embd":
                ids = full.src[1].data
                rows_in = full.src[0].ne[1]
                if ids is not None and np.array_equal(ids.reshape(-1), np.arange(rows_in)):
                    n = full.src[0]
                    continue
            return full
        raise MappingError(f"view chain too long at {n.name}")

    def tensor(self, n: Node, rows: int) -> Tensor:
        """The data of `n` (through views) as a greta row-major `[rows, -1]` f32 array, with its producer."""
        p = self.resolve(n)
        if p.data is None:
            raise MappingError(f"no data captured for `{p.name}` ({p.op})")
        arr = p.data.reshape(rows, -1)
        return Tensor(arr, self.made.get(p.addr))


def map_graph(nodes: list[Node], *, phase: str, pos: int, rows: int, hp: dict, base: int = 0) -> list[Launch]:
    """Maps the nodes of one `llama_decode` graph (rows tokens at positions pos..) to greta launches.

    `hp` holds the model's n_head, n_head_kv, head_dim. `base` is the index the first launch will have on
    the tape (so producers are numbered across graphs).
    """
    g = _Graph(nodes, base)
    out: list[Launch] = []
    H, Hk, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    kvd = Hk * hd
    common = {"rows": rows, "pos": pos, **_model_params(nodes, hp)}
    pending_kv: dict[int, dict] = {}
    last_row = slice(rows - 1, rows)

    def emit(la: Launch, node: Node | None, out_role: str = "out"):
        if node is not None:
            g.made[node.addr] = (base + len(out), out_role)
        out.append(la)

    for n in nodes:
        if n.data is None and n.op not in ("SET_ROWS",):
            continue
        layer = _layer_of(n.name)
        if n.op == "GET_ROWS" and n.name == "inp_embd":
            table, ids = n.src[0], n.src[1]
            if ids.data is None:
                raise MappingError("token ids of inp_embd were not captured")
            emit(
                Launch(phase, None, "embed", f"ggml:GET_ROWS {table.type}", dict(common),
                       {"ids": Tensor(ids.data.reshape(rows).astype(np.int32)), "table": Weight(table.name)},
                       {"out": n.data.reshape(rows, -1)}),
                n,
            )
        elif n.op == "MUL" and len(n.src) == 2 and n.src[0].op == "RMS_NORM":
            norm = g.by_addr.get(n.src[0].addr, n.src[0])
            stage = {"attn_norm": "attn_norm", "ffn_norm": "ffn_norm", "result_norm": "final_norm"}.get(
                re.sub(r"-\d+$", "", n.name))
            if stage is None:
                continue
            x = g.tensor(norm.src[0], rows)
            y = n.data.reshape(rows, -1)
            params = dict(common, eps=norm.param_f32(0))
            if stage == "final_norm":
                x = Tensor(x.array[last_row])
                y = y[last_row]
                params.update(rows=1, pos=pos + rows - 1)
            emit(Launch(phase, layer if stage != "final_norm" else None, stage, "ggml:RMS_NORM+MUL f32",
                        params, {"x": x, "w": Weight(n.src[1].name)}, {"out": y}), n)
        elif n.op == "MUL_MAT" and n.src and n.src[0].name.endswith(".weight"):
            w = n.src[0].name
            m = _BLK.match(w)
            if m:
                stage, layer = _MATMUL_STAGE.get(m.group(2)), int(m.group(1))
            elif w in ("output.weight", "token_embd.weight"):
                stage, layer = "lm_head", None
            else:
                stage = None
            if stage is None:
                continue
            x = g.tensor(n.src[1], rows)
            y = n.data.reshape(rows, -1)
            params = dict(common)
            if stage == "lm_head":
                x, y = Tensor(x.array[last_row]), y[last_row]
                params.update(rows=1, pos=pos + rows - 1)
            emit(Launch(phase, layer, stage, f"ggml:MUL_MAT {n.src[0].type}×{n.src[1].type}", params,
                        {"x": x, "w": Weight(w)}, {"out": y}), n)
        elif n.op == "ROPE":
            stage = {"Qcur": "rope_q", "Kcur": "rope_k"}.get(re.sub(r"-\d+$", "", n.name))
            if stage is None:
                continue
            heads = H if stage == "rope_q" else Hk
            mode = n.op_params[2]
            if mode != 0:
                raise MappingError(f"{n.name}: rope mode {mode}, greta's contract is NORM (mode 0)")
            params = dict(common, n_heads=H, n_kv_heads=Hk, head_dim=hd, rope_dim=n.op_params[1],
                          rope_theta=n.param_f32(5))
            emit(Launch(phase, layer, stage, "ggml:ROPE f32 mode=0", params,
                        {"x": g.tensor(n.src[0], rows)}, {"out": n.data.reshape(rows, heads * hd)}), n)
        elif n.op == "SET_ROWS" and (n.name.startswith("cache_k_l") or n.name.startswith("cache_v_l")):
            which = "k" if n.name.startswith("cache_k_l") else "v"
            layer = int(re.match(r"cache_[kv]_l(\d+)", n.name).group(1))
            cells = n.src[1].data
            if n.data is None or cells is None:
                raise MappingError(f"{n.name}: cache or cell indices not captured")
            cache = _cache_rows(n, which, kvd)
            want = np.arange(pos, pos + rows)
            got = cells.reshape(-1)
            if which == "v" and got.size == rows * kvd:
                # the transposed V cache is written element by element: cell index of element (i, c)
                got = got.reshape(rows, kvd)[:, 0] % cache.shape[0]
            if not np.array_equal(got, want):
                raise MappingError(f"{n.name}: rows written to cells {got[:8]}..., not positions {pos}..")
            d = pending_kv.setdefault(layer, {})
            d[which] = (n, g.tensor(n.src[0], rows), cache)
            if "k" in d and "v" in d:
                (kn, k_in, kc), (vn, v_in, vc) = d["k"], d["v"]
                emit(Launch(phase, layer, "kv_write", f"ggml:SET_ROWS f32→{kn.type}", dict(common, n_kv_heads=Hk, head_dim=hd),
                            {"k": k_in, "v": v_in},
                            {"k_rows": kc[pos:pos + rows].astype(np.float32),
                             "v_rows": vc[pos:pos + rows].astype(np.float32)}), None)
                hp.setdefault("_cache", {})[layer] = (kc, vc)
                del pending_kv[layer]
        elif n.op == "ADD" and (n.name.startswith("ffn_inp-") or n.name.startswith("l_out-")):
            stage = "attn_residual" if n.name.startswith("ffn_inp-") else "ffn_residual"
            # ggml adds (branch, residual stream); greta's contract is (x = residual stream, r = branch)
            emit(Launch(phase, layer, stage, "ggml:ADD f32×f32", dict(common),
                        {"x": g.tensor(n.src[1], rows), "r": g.tensor(n.src[0], rows)},
                        {"out": n.data.reshape(rows, -1)}), n)
        elif n.op == "SWIGLU":
            emit(Launch(phase, layer, "swiglu", "ggml:GLU SWIGLU f32", dict(common),
                        {"gate": g.tensor(n.src[0], rows), "up": g.tensor(n.src[1], rows)},
                        {"out": n.data.reshape(rows, -1)}), n)
        elif n.op == "CONT" and n.name.startswith("kqv_out-"):
            out.append(_attention(g, n, layer, phase, pos, rows, hp, common))
            g.made[n.addr] = (base + len(out) - 1, "out")
    return out


def _model_params(nodes: list[Node], hp: dict) -> dict:
    """The model-wide scalars greta's engine puts on every launch (eps, heads, rope, scale), read from the
    graph's own ops, so a diff against a greta tape compares like with like."""
    p = {"n_heads": hp["n_head"], "n_kv_heads": hp["n_head_kv"], "head_dim": hp["head_dim"]}
    for n in nodes:
        if n.op == "RMS_NORM" and "eps" not in p:
            p["eps"] = n.param_f32(0)
        elif n.op == "ROPE" and "rope_theta" not in p:
            p["rope_dim"], p["rope_theta"] = n.op_params[1], n.param_f32(5)
        elif n.op == "SOFT_MAX" and "scale" not in p:
            p["scale"] = n.param_f32(0)
    return p


def _cache_rows(n: Node, which: str, kvd: int) -> np.ndarray:
    """The whole KV cache of one layer after a SET_ROWS, as `[kv_size, kvd]` (f16)."""
    data = n.data.reshape(-1)
    kv_size = data.size // kvd
    if which == "k":
        return data.reshape(kv_size, kvd)
    return data.reshape(kvd, kv_size).T


def _attention(g: _Graph, n: Node, layer: int, phase: str, pos: int, rows: int, hp: dict, common: dict) -> Launch:
    """`kqv_out-L` and the chain behind it -> one fused `attn` launch on greta's contract."""
    H, Hk, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    perm = g.by_addr.get(n.src[0].addr, n.src[0])
    kqv = g.by_addr.get(perm.src[0].addr, perm.src[0])
    soft = g.by_addr.get(kqv.src[1].addr, kqv.src[1])
    kq = g.by_addr.get(soft.src[0].addr, soft.src[0])
    if (kqv.op, soft.op, kq.op) != ("MUL_MAT", "SOFT_MAX", "MUL_MAT"):
        raise MappingError(f"{n.name}: expected MUL_MAT(V, SOFT_MAX(MUL_MAT(K, q))), got {kqv.op}/{soft.op}/{kq.op}")
    ctx = pos + rows
    mask = soft.src[1].data if len(soft.src) > 1 else None
    if mask is not None:
        m = mask.reshape(-1, mask.shape[-1])
        visible = np.isfinite(m[rows - 1])
        if not (visible[:ctx].all() and not visible[ctx:].any()):
            raise MappingError(f"{n.name}: the mask of the last row does not show cells 0..{ctx}")
    kc, vc = hp["_cache"][layer]
    q = g.tensor(kq.src[1], rows)
    scale = soft.param_f32(0)
    params = dict(common, n_heads=H, n_kv_heads=Hk, head_dim=hd, scale=scale)
    route = f"ggml:MUL_MAT {kq.src[0].type}×f32+SOFT_MAX+MUL_MAT {kqv.src[0].type}×f32"
    return Launch(phase, layer, "attn", route, params,
                  {"q": q, "k_cache": Tensor(kc[:ctx].astype(np.float32)),
                   "v_cache": Tensor(vc[:ctx].astype(np.float32))},
                  {"out": n.data.reshape(rows, H * hd)})

