"""Runs a prompt through llama.cpp (llama-cpp-python's low-level API) and captures its graph nodes.

The eval callback (`llama_context_params.cb_eval`) is ggml's scheduler hook: for every graph node it first
asks "do you want this one?" (`ask = true`), and for each yes it runs the graph up to that node and calls
again with the node computed (`ask = false`), before any later node can reuse its memory. We want every
node: each computing node's bytes are copied then; views keep their metadata only and are read through
by their consumers (llamacpp_map.py). Observing a node splits the
scheduler's work into more pieces but runs the same kernels on the same data: on the CPU backend each
op's result does not depend on how the graph is split (checked by `test_recording_does_not_change_logits`).

Greedy decoding: prefill runs the prompt in one `llama_decode` call (phase `prefill`), then each new token
is one call (`decode0`, `decode1`, ...). The argmax is the adapter's own (numpy, first maximum), recorded
as greta's `argmax` stage.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

from .ggml import Ggml, Node, snapshot
from .launches import Launch, Tensor
from .llamacpp_map import VIEWS, MappingError, map_graph


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

    def __init__(self, model_path: str, *, n_ctx: int = 512, threads: int = 2, observe: bool = True,
                 flash_attn: bool = False):
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
        cp.flash_attn = flash_attn  # off: K·q, softmax and V·probs are nodes of their own
        if observe:
            self._cb = L.ggml_backend_sched_eval_callback(self._callback)
            cp.cb_eval = self._cb
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.metadata = self._metadata()
        self.hparams = self._hparams()

    def _metadata(self) -> dict[str, str]:
        """The GGUF metadata as llama.cpp read it (`llama_model_meta_*`), tokenizer tables left out."""
        L = self.L
        out = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(L.llama_model_meta_count(self.model)):
            if L.llama_model_meta_key_by_index(self.model, i, buf, len(buf)) < 0:
                continue
            key = buf.value.decode(errors="replace")
            if key.startswith("tokenizer."):
                continue
            if L.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf)) < 0:
                continue
            out[key] = buf.value.decode(errors="replace")
        return out

    def _hparams(self) -> dict:
        """The model's architecture and hyper-parameters for the tape header: `general.architecture`,
        every `{arch}.` key of the GGUF (numbers as numbers), and the sizes greta's tools read by name.
        head_dim is `{arch}.attention.key_length` when the file has it (Gemma: 256, not n_embd/n_head)."""
        L = self.L
        meta = self.metadata
        arch = meta.get("general.architecture", "")
        n_embd = L.llama_model_n_embd(self.model)
        n_head = L.llama_model_n_head(self.model)
        hp: dict = {"architecture": arch}
        if "general.name" in meta:
            hp["name"] = meta["general.name"]
        for k, v in meta.items():
            if k.startswith(arch + "."):
                hp[k] = _number(v)
        key_length = hp.get(f"{arch}.attention.key_length")
        hp.update({
            "n_embd": n_embd,
            "n_head": n_head,
            "n_head_kv": L.llama_model_n_head_kv(self.model),
            "head_dim": int(key_length) if isinstance(key_length, (int, float)) else n_embd // n_head,
            "n_layer": L.llama_model_n_layer(self.model),
            "n_vocab": self.n_vocab,
        })
        return hp

    def _callback(self, t, ask, _user):
        try:
            if ask:
                return True
            node = snapshot(self.ggml, t, depth=1, read=False, leaves=False)
            if node.op not in VIEWS:
                node = snapshot(self.ggml, t, depth=1, read=True)
            self.nodes.append(node)  # views too (metadata only): the layer of a node is found through them
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


def capture(model_path: str, tokens: list[int], max_tokens: int, *, threads: int = 1,
            flash_attn: bool = False) -> Capture:
    """Prefill `tokens`, then `max_tokens` greedy decode steps; every computing node of every graph
    recorded as a greta launch, plus the adapter's own argmax per step.

    One thread by default: observing every node makes ggml compute the graph one node at a time, and
    with more threads each of those ~1000 pieces starts and joins its workers (30x slower here, 2 cores
    shared); the kernels compute each output element the same way whatever the thread count
    (test_recording_does_not_change_logits compares with an unobserved 2-thread run)."""
    import llama_cpp

    eng = LlamaCpp(model_path, n_ctx=max(64, len(tokens) + max_tokens + 8), threads=threads,
                   flash_attn=flash_attn)
    cap = Capture(prompt=list(tokens), hparams=dict(eng.hparams), version=llama_cpp.__version__)
    try:
        pos, step, feed, phase = 0, 0, list(tokens), "prefill"
        while True:
            logits = eng.decode(feed, pos)
            launches = map_graph(eng.nodes, phase=phase, pos=pos, rows=len(feed), base=len(cap.launches))
            if not launches:
                raise MappingError("the graph computed nothing")
            last = logits[-1]
            tok = int(np.argmax(last))
            # greta's argmax stage: the first maximum of the last row's logits (llama.cpp samples outside
            # its graph; these are the logits llama_get_logits returned)
            launches.append(Launch(phase, None, "argmax", "numpy:argmax f32", {"rows": 1},
                                   {"logits": Tensor(last.reshape(1, -1))},
                                   {"out": np.array([tok], dtype=np.int32)}, op="argmax"))
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


def _number(v: str):
    """A metadata value as llama.cpp prints it: an int or float when it is one, else the text."""
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v
