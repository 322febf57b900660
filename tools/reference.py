#!/usr/bin/env python3
"""Independent float64 reference of the llama-family forward pass (greta's oracle).

Written from the GGUF / llama.cpp semantics and docs/STAGES.md, not from greta's Rust code.

* Weights are read with ``gguf.GGUFReader`` and dequantised with ``gguf.quants.dequantize``
  (f32 values, bit-exact with GGML), then widened to float64 once.
* Every piece of arithmetic is float64 numpy: matmuls, RMSNorm, RoPE (angles and cos/sin),
  softmax, SiLU.
* Prefill runs all prompt rows as one matrix; decode runs one row per step with a KV cache.
* ``--dump DIR`` writes each stage's output as .npy (float64; ``argmax`` as int32, like the
  contract's ``i32[n]``):
  ``prefill.L{l}.{stage}.npy`` / ``prefill.{stage}.npy`` (all rows) and
  ``decode{K}.L{l}.{stage}.npy`` / ``decode{K}.{stage}.npy`` for decode step K (``--dump-decode``).

Usage:
  python3 tools/reference.py --model M.gguf --tokens 1,2,3 [--max-tokens N] [--dump DIR]
                             [--dump-decode K] [--stop-at-eos] [--json]
  python3 tools/reference.py --model M.gguf --text "..."   # needs the `tokenizers` package
  python3 tools/reference.py --model M.gguf --chat "What is the capital of France?"

Phases: the prefill's argmax is generated token 0; decode step k (phase ``decode{k}``) consumes
generated token k at position len(prompt)+k and yields generated token k+1. So N generated tokens
take the prefill plus N-1 decode steps.

Importable: ``Reference(path)`` with ``.generate(ids, max_tokens, dump_cb=...)``, ``.detokenize(ids)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover
    sys.exit("reference.py needs the `gguf` package: pip install -r tools/requirements-reference.txt")

LAYER_STAGES = [
    "attn_norm", "q_proj", "k_proj", "v_proj", "rope_q", "rope_k", "qk", "softmax", "pv",
    "o_proj", "attn_residual", "ffn_norm", "gate", "up", "swiglu", "down", "ffn_residual",
]
GLOBAL_STAGES_PRE = ["embed"]
GLOBAL_STAGES_POST = ["final_norm", "lm_head", "argmax"]


def _field(reader: "gguf.GGUFReader", key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level BPE byte -> printable-char table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


class Reference:
    def __init__(self, path: str, verbose: bool = False):
        t0 = time.time()
        r = gguf.GGUFReader(path)
        self.reader = r
        arch = _field(r, "general.architecture", "llama")
        self.arch = arch

        def hp(name, default=None):
            v = _field(r, f"{arch}.{name}", default)
            if v is None:
                raise KeyError(f"missing GGUF metadata {arch}.{name}")
            return v

        self.n_layer = int(hp("block_count"))
        self.dim = int(hp("embedding_length"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.head_dim = self.dim // self.n_head
        self.ffn = int(hp("feed_forward_length"))
        self.rope_dim = int(_field(r, f"{arch}.rope.dimension_count", self.head_dim))
        # f32 metadata values widened exactly to f64 (np.float32 -> float).
        self.eps = float(np.float32(hp("attention.layer_norm_rms_epsilon")))
        self.theta = float(np.float32(_field(r, f"{arch}.rope.freq_base", 10000.0)))
        self.eos_id = _field(r, "tokenizer.ggml.eos_token_id")
        self.tokens = _field(r, "tokenizer.ggml.tokens")
        self.token_types = _field(r, "tokenizer.ggml.token_type")
        assert self.n_head % self.n_head_kv == 0
        assert self.rope_dim % 2 == 0 and self.rope_dim <= self.head_dim

        tensors = {t.name: t for t in r.tensors}
        self.weight_types = {}

        def load(name: str) -> np.ndarray:
            t = tensors[name]
            # GGUF dims (ne0, ne1, ...) -> row-major array [..., ne1, ne0].
            shape = tuple(int(d) for d in reversed([int(x) for x in t.shape]))
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            w = np.asarray(w, dtype=np.float32).reshape(shape)
            self.weight_types[name] = t.tensor_type.name
            return w.astype(np.float64)

        self.token_embd = load("token_embd.weight")  # [V, dim]
        self.vocab = self.token_embd.shape[0]
        self.tied = "output.weight" not in tensors
        self.output = self.token_embd if self.tied else load("output.weight")
        self.output_norm = load("output_norm.weight")
        self.layers = []
        for l in range(self.n_layer):
            p = f"blk.{l}."
            self.layers.append({
                "attn_norm": load(p + "attn_norm.weight"),
                "wq": load(p + "attn_q.weight"),
                "wk": load(p + "attn_k.weight"),
                "wv": load(p + "attn_v.weight"),
                "wo": load(p + "attn_output.weight"),
                "ffn_norm": load(p + "ffn_norm.weight"),
                "w_gate": load(p + "ffn_gate.weight"),
                "w_up": load(p + "ffn_up.weight"),
                "w_down": load(p + "ffn_down.weight"),
            })
        L0 = self.layers[0]
        kvd = self.n_head_kv * self.head_dim
        assert L0["wq"].shape == (self.dim, self.dim), L0["wq"].shape
        assert L0["wk"].shape == (kvd, self.dim) and L0["wv"].shape == (kvd, self.dim)
        assert L0["w_gate"].shape == (self.ffn, self.dim) and L0["w_down"].shape == (self.dim, self.ffn)
        assert self.output.shape == (self.vocab, self.dim)
        # RoPE inverse frequencies, f64: theta^(-2j/rope_dim), j < rope_dim/2.
        j = np.arange(self.rope_dim // 2, dtype=np.float64)
        self.inv_freq = self.theta ** (-2.0 * j / self.rope_dim)
        self.load_seconds = time.time() - t0
        if verbose:
            print(f"loaded {path}: {self.n_layer} layers, dim {self.dim}, heads {self.n_head}/"
                  f"{self.n_head_kv}, hd {self.head_dim}, ffn {self.ffn}, vocab {self.vocab}, "
                  f"rope_dim {self.rope_dim}, theta {self.theta}, eps {self.eps!r}, tied {self.tied} "
                  f"({self.load_seconds:.1f}s)", file=sys.stderr)

    # ---- kernels (float64) -------------------------------------------------------------
    def rmsnorm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        ms = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(ms + self.eps) * w

    @staticmethod
    def matmul(x: np.ndarray, W: np.ndarray) -> np.ndarray:
        return x @ W.T  # W is [out, in]

    def rope(self, x: np.ndarray, pos: int, n_heads: int) -> np.ndarray:
        """llama.cpp NORM rope: adjacent pairs (2j, 2j+1) inside each head."""
        n = x.shape[0]
        hd = self.head_dim
        y = x.reshape(n, n_heads, hd).copy()
        p = np.arange(pos, pos + n, dtype=np.float64)
        ang = p[:, None] * self.inv_freq[None, :]  # [n, rope_dim/2]
        c = np.cos(ang)[:, None, :]
        s = np.sin(ang)[:, None, :]
        a = y[:, :, 0:self.rope_dim:2].copy()
        b = y[:, :, 1:self.rope_dim:2].copy()
        y[:, :, 0:self.rope_dim:2] = a * c - b * s
        y[:, :, 1:self.rope_dim:2] = a * s + b * c
        return y.reshape(n, n_heads * hd)

    def qk(self, q: np.ndarray, K: np.ndarray, pos: int) -> np.ndarray:
        n = q.shape[0]
        ctx = K.shape[0]
        H, Hk, hd = self.n_head, self.n_head_kv, self.head_dim
        grp = H // Hk
        qh = q.reshape(n, H, hd)
        Kh = K.reshape(ctx, Hk, hd)
        scale = 1.0 / np.sqrt(np.float64(hd))
        s = np.empty((H, n, ctx), dtype=np.float64)
        for h in range(H):
            s[h] = scale * (qh[:, h, :] @ Kh[:, h // grp, :].T)
        i = np.arange(n)[:, None]
        j = np.arange(ctx)[None, :]
        mask = j > (pos + i)  # [n, ctx]
        s[:, mask] = -np.inf
        return s

    @staticmethod
    def softmax(s: np.ndarray) -> np.ndarray:
        m = np.max(s, axis=-1, keepdims=True)
        e = np.exp(s - m)  # exp(-inf) == 0 exactly
        return e / np.sum(e, axis=-1, keepdims=True)

    def pv(self, p: np.ndarray, V: np.ndarray) -> np.ndarray:
        H, n, ctx = p.shape
        Hk, hd = self.n_head_kv, self.head_dim
        grp = H // Hk
        Vh = V.reshape(ctx, Hk, hd)
        o = np.empty((n, H, hd), dtype=np.float64)
        for h in range(H):
            o[:, h, :] = p[h] @ Vh[:, h // grp, :]
        return o.reshape(n, H * hd)

    @staticmethod
    def swiglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
        return g / (1.0 + np.exp(-g)) * u

    # ---- forward -----------------------------------------------------------------------
    def new_cache(self):
        kvd = self.n_head_kv * self.head_dim
        return [{"k": np.zeros((0, kvd)), "v": np.zeros((0, kvd))} for _ in range(self.n_layer)]

    def forward(self, ids, pos: int, cache, emit=None) -> int:
        """Run rows `ids` at positions pos..pos+n; append to cache; return argmax of last row.

        emit(layer_or_None, stage, array) is called with each stage's full output."""
        def out(layer, stage, a):
            if emit is not None:
                emit(layer, stage, a)
            return a

        ids = np.asarray(ids, dtype=np.int64)
        x = out(None, "embed", self.token_embd[ids].copy())
        for l, W in enumerate(self.layers):
            c = cache[l]
            assert c["k"].shape[0] == pos
            h = out(l, "attn_norm", self.rmsnorm(x, W["attn_norm"]))
            q = out(l, "q_proj", self.matmul(h, W["wq"]))
            k = out(l, "k_proj", self.matmul(h, W["wk"]))
            v = out(l, "v_proj", self.matmul(h, W["wv"]))
            q = out(l, "rope_q", self.rope(q, pos, self.n_head))
            k = out(l, "rope_k", self.rope(k, pos, self.n_head_kv))
            c["k"] = np.concatenate([c["k"], k], axis=0)  # kv_write (a copy)
            c["v"] = np.concatenate([c["v"], v], axis=0)
            s = out(l, "qk", self.qk(q, c["k"], pos))
            p = out(l, "softmax", self.softmax(s))
            a = out(l, "pv", self.pv(p, c["v"]))
            o = out(l, "o_proj", self.matmul(a, W["wo"]))
            x = out(l, "attn_residual", x + o)
            h = out(l, "ffn_norm", self.rmsnorm(x, W["ffn_norm"]))
            g = out(l, "gate", self.matmul(h, W["w_gate"]))
            u = out(l, "up", self.matmul(h, W["w_up"]))
            sw = out(l, "swiglu", self.swiglu(g, u))
            d = out(l, "down", self.matmul(sw, W["w_down"]))
            x = out(l, "ffn_residual", x + d)
        xn = out(None, "final_norm", self.rmsnorm(x[-1:], self.output_norm))
        logits = out(None, "lm_head", self.matmul(xn, self.output))
        am = out(None, "argmax", np.argmax(logits, axis=-1).astype(np.int32))
        return int(am[-1])

    def generate(self, prompt_ids, max_tokens: int = 16, stop_at_eos: bool = False, dump_cb=None):
        """Greedy generation. dump_cb(phase, layer, stage, array) sees every stage output."""
        cache = self.new_cache()
        gen = []
        if max_tokens <= 0:
            return gen

        def emit_for(phase):
            if dump_cb is None:
                return None
            return lambda layer, stage, a: dump_cb(phase, layer, stage, a)

        pos = 0
        tok = self.forward(prompt_ids, pos, cache, emit_for("prefill"))
        pos += len(prompt_ids)
        gen.append(tok)
        step = 0
        while len(gen) < max_tokens and not (stop_at_eos and tok == self.eos_id):
            tok = self.forward([tok], pos, cache, emit_for(f"decode{step}"))
            pos += 1
            step += 1
            gen.append(tok)
        return gen

    # ---- tokens ------------------------------------------------------------------------
    def detokenize(self, ids) -> str:
        """Byte-level (GPT-2 style) decode from the GGUF vocab; control tokens as literal text."""
        inv = {c: b for b, c in _bytes_to_unicode().items()}
        buf = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self.token_types is not None and self.token_types[i] in (3, 4):
                buf += t.encode("utf-8")
            else:
                for ch in t:
                    if ch in inv:
                        buf.append(inv[ch])
                    else:
                        buf += ch.encode("utf-8")
        return buf.decode("utf-8", errors="replace")

    def tokenize(self, text: str):
        """Encode with HF `tokenizers` built from the GGUF vocab/merges (gpt2 BPE, byte-level,
        individual digits as in SmolLM2's `smollm` pre-tokenizer). Optional dependency."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
        merges = _field(self.reader, "tokenizer.ggml.merges")
        vocab = {t: i for i, t in enumerate(self.tokens)}
        tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
        pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if _field(self.reader, "tokenizer.ggml.pre") == "smollm":
            pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tk.pre_tokenizer = pre_tokenizers.Sequence(pre)
        tk.decoder = decoders.ByteLevel()
        tk.add_special_tokens([AddedToken(self.tokens[i], special=True)
                               for i in range(len(self.tokens)) if self.token_types[i] == 3])
        return tk.encode(text).ids


def chatml(user: str, system: str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face") -> str:
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tokens", help="comma-separated prompt token ids")
    g.add_argument("--text", help="prompt text (needs `tokenizers`)")
    g.add_argument("--chat", help="user message wrapped in the ChatML template (needs `tokenizers`)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--stop-at-eos", action="store_true")
    ap.add_argument("--dump", help="directory for per-stage .npy dumps")
    ap.add_argument("--dump-decode", type=int, default=0, help="decode step to dump (default 0)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    ref = Reference(args.model, verbose=not args.json)
    if args.tokens is not None:
        prompt = [int(t) for t in args.tokens.split(",") if t.strip()]
    elif args.text is not None:
        prompt = ref.tokenize(args.text)
    else:
        prompt = ref.tokenize(chatml(args.chat))
    if not prompt:
        sys.exit("empty prompt")
    for t in prompt:
        if not 0 <= t < ref.vocab:
            sys.exit(f"token id {t} out of range (vocab {ref.vocab})")

    dump_cb = None
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        want = {"prefill", f"decode{args.dump_decode}"}

        def dump_cb(phase, layer, stage, a):
            if phase not in want:
                return
            name = f"{phase}.{stage}.npy" if layer is None else f"{phase}.L{layer}.{stage}.npy"
            np.save(os.path.join(args.dump, name), a)

    t0 = time.time()
    gen = ref.generate(prompt, args.max_tokens, args.stop_at_eos, dump_cb)
    secs = time.time() - t0
    text = ref.detokenize(gen)
    if args.json:
        print(json.dumps({"prompt_ids": prompt, "generated_ids": gen, "text": text, "seconds": secs}))
    else:
        print(f"prompt_ids: {prompt}")
        print(f"generated_ids: {gen}")
        print(f"text: {text!r}")
        print(f"seconds: {secs:.2f} (load {ref.load_seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
