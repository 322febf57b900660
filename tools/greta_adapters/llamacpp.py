"""Runs a prompt through llama.cpp (llama-cpp-python's low-level API) and captures its graph nodes.

The eval callback (`llama_context_params.cb_eval`) is ggml's scheduler hook: for every graph node it first
asks "do you want this one?" (`ask = true`), and for each yes it runs the graph up to that node and calls
again with the node computed (`ask = false`), before any later node can reuse its memory. We want every
node that computes something; views are read through their consumers. Observing a node splits the
scheduler's work into more pieces but runs the same kernels on the same data: on the CPU backend each
op's result does not depend on how the graph is split (checked by `test_recording_does_not_change_logits`).

Greedy decoding: prefill runs the prompt in one `llama_decode` call (phase `prefill`), then each new token
is one call (`decode0`, `decode1`, ...). The argmax is the adapter's own (numpy, first maximum), recorded
as greta's `argmax` stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ggml import Ggml, Node, snapshot
from .launches import Launch, Tensor
from .llamacpp_map import MappingError, map_graph

_SKIP = {"RESHAPE", "VIEW", "PERMUTE", "TRANSPOSE", "NONE"}


@dataclass
class Capture:
    """The result of a captured run."""

    launches: list[Launch] = field(default_factory=list)
    prompt: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    hparams: dict = field(default_factory=dict)
    version: str = ""


class LlamaCpp:
    """A llama.cpp model and context with the greta eval callback installed (or not, `observe=False`)."""

    def __init__(self, model_path: str, *, n_ctx: int = 512, threads: int = 2, observe: bool = True):
        import llama_cpp as L

        self.L = L
        self.ggml = Ggml()
        self.nodes: list[Node] = []
        self.error: BaseException | None = None
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(model_path.encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model_path}")
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_ctx
        cp.n_ubatch = n_ctx
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.flash_attn = False  # the mapping follows the kq -> softmax -> kqv graph
        if observe:
            self._cb = L.ggml_backend_sched_eval_callback(self._callback)
            cp.cb_eval = self._cb
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        n_embd = L.llama_model_n_embd(self.model)
        n_head = L.llama_model_n_head(self.model)
        self.hparams = {
            "n_embd": n_embd,
            "n_head": n_head,
            "n_head_kv": L.llama_model_n_head_kv(self.model),
            "head_dim": n_embd // n_head,
            "n_layer": L.llama_model_n_layer(self.model),
        }
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)

    def _callback(self, t, ask, _user):
        try:
            if ask:
                return True
            node = snapshot(self.ggml, t, depth=1, read=False)
            if node.op not in _SKIP:
                node = snapshot(self.ggml, t, depth=1, read=True)
            self.nodes.append(node)  # views too (no data): consumers resolve through them
            return True
        except BaseException as e:  # an exception must not unwind through C
            self.error = e
            return False

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        L = self.L
        raw = text.encode()
        buf = (L.llama_token * (len(raw) + 8))()
        n = L.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), add_special, True)
        if n < 0:
            raise RuntimeError("tokenize failed")
        return list(buf[:n])

    def decode(self, tokens: list[int], pos: int) -> np.ndarray:
        """Runs one graph over `tokens` at positions pos..; returns the logits of every row `[n, V]`."""
        L = self.L
        n = len(tokens)
        batch = L.llama_batch_init(n, 0, 1)
        try:
            for i, tok in enumerate(tokens):
                batch.token[i] = tok
                batch.pos[i] = pos + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1
            batch.n_tokens = n
            self.nodes = []
            rc = L.llama_decode(self.ctx, batch)
            if self.error is not None:
                raise self.error
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            ptr = L.llama_get_logits(self.ctx)
            return np.ctypeslib.as_array(ptr, shape=(n * self.n_vocab,)).reshape(n, self.n_vocab).copy()
        finally:
            L.llama_batch_free(batch)

    def close(self) -> None:
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def capture(model_path: str, tokens: list[int], max_tokens: int, *, threads: int = 2) -> Capture:
    """Prefill `tokens`, then `max_tokens` greedy decode steps; every step mapped to greta launches."""
    import llama_cpp

    eng = LlamaCpp(model_path, n_ctx=max(64, len(tokens) + max_tokens + 8), threads=threads)
    cap = Capture(prompt=list(tokens), hparams=dict(eng.hparams), version=llama_cpp.__version__)
    hp = dict(eng.hparams)
    try:
        pos, step, feed, phase = 0, 0, list(tokens), "prefill"
        while True:
            logits = eng.decode(feed, pos)
            launches = map_graph(eng.nodes, phase=phase, pos=pos, rows=len(feed), hp=hp, base=len(cap.launches))
            if not launches:
                raise MappingError("no greta stage found in the graph")
            last = logits[-1]
            tok = int(np.argmax(last))
            lm = len(cap.launches) + len(launches) - 1
            if launches[-1].stage != "lm_head":
                raise MappingError(f"the graph does not end in lm_head but {launches[-1].stage}")
            launches.append(Launch(phase, None, "argmax", "numpy:argmax f32", {"rows": 1, "pos": pos + len(feed) - 1},
                                   {"logits": Tensor(launches[-1].outputs["out"], (lm, "out"))},
                                   {"out": np.array([tok], dtype=np.int32)}))
            cap.launches.extend(launches)
            cap.logits.append(last)
            cap.generated.append(tok)
            # as greta's engine: the prefill yields the first token, each decode step one more
            if len(cap.generated) >= max_tokens:
                break
            pos += len(feed)
            feed = [tok]
            phase = f"decode{step}"
            step += 1
    finally:
        eng.close()
    return cap
