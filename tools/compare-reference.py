#!/usr/bin/env python3
"""Compare greta's f64 CPU route with the independent Python reference (tools/reference.py).

  GRETA=target/release/greta python3 tools/compare-reference.py --model M.gguf [options]

1. Tokens: for each of 3 prompts (PROMPTS below), run `greta run ... --precision f64 --ignore-eos
   --json` and the reference for --max-tokens (16) greedy tokens; the generated ids must be identical.
2. Stages: for one prompt (--stage-prompt, default the ChatML one), `greta record` a tape, list it with
   `greta ls --json`, `greta export` each prefill / decode0 launch, and compare every stage's output0
   with the reference, for prefill's last row (all rows with --all-rows) and for decode step 0, all
   layers. rel_err = max|a-b| / max(max|ref|, tiny) over finite entries; -inf vs -inf (masked
   scores) and masked zeros compare equal; -inf vs a finite value is an infinite error.
   Prints a table (phase, layer, stage, max_abs, rel_err), the worst figure, and a summary
   `N passed, M failed`. Exit 1 if any rel_err > --tol (1e-9), any token differs, or any stage
   is missing on either side.

Prompt ids: derived from the GGUF vocab/merges of SmolLM2-135M-Instruct (gpt2 byte-level BPE with
SmolLM2's individual-digit pre-split) by `Reference.tokenize` in tools/reference.py, which builds a
HF `tokenizers` BPE from tokenizer.ggml.tokens/merges; the ChatML ids match the model's published
chat template. Override with --prompt (repeatable, comma-separated ids) for other models.

Everything that touches greta's CLI is in the `Greta` class, so adapting to interface changes is
local. --tape reuses an existing tape (skip recording); --keep DIR keeps the exported launches.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as refmod  # noqa: E402

PROMPTS = {
    # ChatML: system + "What is the capital of France?" + assistant header (reference.chatml()).
    "chatml": [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
               407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
               520, 9531, 198],
    # "The quick brown fox jumps over the lazy dog. In 1987, the"
    "prose": [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 533, 216, 33, 41, 40, 39, 28, 260],
    # "def fibonacci(n):\n    if n < 2:\n        return n\n    return"
    "code": [1604, 3987, 46477, 24, 94, 727, 472, 585, 304, 2067, 216, 34, 42, 448, 1003, 304, 472, 1003],
}

TINY = 1e-300
SKIP_STAGES = {"kv_write"}


class Greta:
    """Thin wrapper around the greta CLI. Adapt here if the interface changes."""

    def __init__(self, exe: str, model: str, verbose: bool = False):
        self.exe = exe
        self.model = model
        self.verbose = verbose

    def _run(self, args, capture=True):
        cmd = [self.exe] + [str(a) for a in args]
        if self.verbose:
            print("+ " + " ".join(cmd), file=sys.stderr)
        p = subprocess.run(cmd, capture_output=capture, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
        return p.stdout

    @staticmethod
    def _ids(ids):
        return ",".join(str(i) for i in ids)

    def run(self, ids, max_tokens):
        out = self._run(["run", "--model", self.model, "--tokens", self._ids(ids), "--max-tokens",
                         max_tokens, "--precision", "f64", "--ignore-eos", "--json"])
        return json.loads(out.strip().splitlines()[-1])

    def record(self, ids, max_tokens, tape):
        self._run(["record", "--model", self.model, "--tokens", self._ids(ids), "--max-tokens",
                   max_tokens, "--precision", "f64", "--ignore-eos", "--out", tape])

    def ls(self, tape):
        return json.loads(self._run(["ls", tape, "--json"]))

    def export(self, tape, seq, outdir):
        """Return output0 of launch `seq` as a numpy array."""
        self._run(["export", tape, seq, "--out", outdir])
        return np.load(os.path.join(outdir, "output0.npy"))


def last_row(stage: str, a: np.ndarray) -> np.ndarray:
    """Slice the last row (token) of a stage output: [H, n, ctx] for qk/softmax, [n, ...] otherwise."""
    a = np.asarray(a)
    if stage in ("qk", "softmax"):
        return a[:, -1, :] if a.ndim == 3 else a
    if a.ndim >= 1:
        return a[-1:] if a.ndim == 1 else a[-1]
    return a


def compare(a: np.ndarray, b: np.ndarray):
    """(max_abs, rel_err, note) for greta `a` vs reference `b`."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        if a.size == b.size:
            a = a.reshape(b.shape)
            note = f"reshaped {a.shape}"
        else:
            return float("inf"), float("inf"), f"shape greta {a.shape} vs ref {b.shape}"
    else:
        note = ""
    if np.isnan(a).any() or np.isnan(b).any():
        return float("inf"), float("inf"), "NaN"
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    one_inf = (np.isinf(a) | np.isinf(b)) & ~both_inf
    if one_inf.any():
        return float("inf"), float("inf"), f"{int(one_inf.sum())} inf mismatches"
    fin = ~both_inf
    if not fin.any():
        return 0.0, 0.0, note
    d = np.abs(a[fin] - b[fin])
    max_abs = float(d.max())
    denom = max(float(np.abs(b[fin]).max()), TINY)
    return max_abs, max_abs / denom, note


def compare_stages(args, greta, ref, stage_ids):
    """Record, export and compare every prefill/decode0 stage. Returns (passed, failed, failures)."""
    passed = failed = 0
    failures = []
    refs = {}

    def keep(phase, layer, stage, a):
        if phase in ("prefill", "decode0"):
            refs[(phase, layer, stage)] = a

    ref.generate(stage_ids, max(args.max_tokens, 2), dump_cb=keep)

    work = args.keep or tempfile.mkdtemp(prefix="greta-cmp-")
    os.makedirs(work, exist_ok=True)
    try:
        tape = args.tape or os.path.join(work, "ref.tape")
        if not args.tape:
            greta.record(stage_ids, max(args.max_tokens, 2), tape)
        launches = greta.ls(tape)
        todo = []
        for L in launches:
            phase, stage = L.get("phase"), L.get("stage")
            if phase not in ("prefill", "decode0") or stage in SKIP_STAGES:
                continue
            route = L.get("route", "")
            if route and "f64" not in route:
                print(f"  note: seq {L['seq']} {phase} {stage} route {route} is not f64")
            todo.append(L)

        def fetch(L):
            d = os.path.join(work, f"launch{L['seq']}")
            return L, greta.export(tape, L["seq"], d)

        rows = []
        seen = set()
        with cf.ThreadPoolExecutor(max(1, args.jobs)) as ex:
            for L, out in ex.map(fetch, todo):
                phase, layer, stage = L["phase"], L.get("layer"), L["stage"]
                key = (phase, layer, stage)
                if stage == "attn":  # fused attention: compare with pv
                    key = (phase, layer, "pv")
                if stage == "qkv_proj":
                    b = np.concatenate([refs[(phase, layer, s)] for s in ("q_proj", "k_proj", "v_proj")], axis=-1)
                elif key in refs:
                    b = refs[key]
                else:
                    rows.append((phase, layer, stage, float("inf"), float("inf"), "no reference stage"))
                    continue
                seen.add(key)
                if stage == "qkv_proj":
                    seen.update((phase, layer, s) for s in ("q_proj", "k_proj", "v_proj"))
                if phase == "prefill" and not args.all_rows:
                    a_, b_ = last_row(stage, out), last_row(stage, b)
                else:
                    a_, b_ = out, b
                rows.append((phase, layer, stage) + compare(a_, b_))
        fused = {(L["phase"], L.get("layer")) for L in todo if L["stage"] == "attn"}
        for key in refs:
            if key not in seen:
                if key[2] in ("qk", "softmax") and (key[0], key[1]) in fused:
                    # The fused attention route has no separate qk/softmax launch; its output is
                    # compared with the reference's pv above.
                    continue
                rows.append(key + (float("inf"), float("inf"), "missing in tape"))

        order = {s: i for i, s in enumerate(["embed"] + refmod.LAYER_STAGES + ["final_norm", "lm_head", "argmax"])}
        rows.sort(key=lambda r: (0 if r[0] == "prefill" else 1, -1 if r[1] is None and r[2] == "embed" else
                                 (10**6 if r[1] is None else r[1]), order.get(r[2], 99)))
        print(f"  {'phase':<8} {'layer':>5} {'stage':<14} {'max_abs':>12} {'rel_err':>12}")
        worst = first_fail = None
        for phase, layer, stage, max_abs, rel, note in rows:
            ok = rel <= args.tol
            if ok:
                passed += 1
            else:
                failed += 1
                failures.append(f"{phase} L{layer} {stage}")
                if first_fail is None:
                    first_fail = (phase, layer, stage, rel)
            if worst is None or rel > worst[4]:
                worst = (phase, layer, stage, max_abs, rel)
            lay = "-" if layer is None else str(layer)
            print(f"  {phase:<8} {lay:>5} {stage:<14} {max_abs:12.3e} {rel:12.3e}"
                  f"{'' if ok else '  FAIL'}{'  ' + note if note else ''}")
        if worst:
            lay = "-" if worst[1] is None else worst[1]
            print(f"\n  worst: {worst[0]} L{lay} {worst[2]}: max_abs {worst[3]:.3e}, rel_err {worst[4]:.3e} "
                  f"(tol {args.tol:g})")
        if first_fail:
            lay = "-" if first_fail[1] is None else first_fail[1]
            print(f"  first failure (forward order): {first_fail[0]} L{lay} {first_fail[2]}: "
                  f"rel_err {first_fail[3]:.3e}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return passed, failed, failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("GRETA_MODEL", "/tmp/dl/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--greta", default=os.environ.get("GRETA", "target/release/greta"))
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prompt", action="append", help="comma-separated prompt ids (repeatable); "
                    "replaces the built-in prompts")
    ap.add_argument("--stage-prompt", default="0", help="index of the prompt used for the stage "
                    "comparison (default 0: ChatML)")
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--tape", help="reuse this tape instead of recording one (must be of the stage prompt)")
    ap.add_argument("--keep", help="directory to keep the tape and exported launches in")
    ap.add_argument("--all-rows", action="store_true", help="compare all prefill rows, not only the last")
    ap.add_argument("--skip-tokens", action="store_true", help="skip the token-id check")
    ap.add_argument("--skip-stages", action="store_true", help="skip the stage comparison")
    ap.add_argument("--jobs", type=int, default=4, help="parallel `greta export` calls")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    if args.prompt:
        prompts = [(f"p{i}", [int(t) for t in p.split(",") if t.strip()]) for i, p in enumerate(args.prompt)]
    else:
        prompts = list(PROMPTS.items())
    stage_name, stage_ids = prompts[int(args.stage_prompt)]

    greta = Greta(args.greta, args.model, args.verbose)
    t0 = time.time()
    ref = refmod.Reference(args.model)
    print(f"reference loaded in {time.time() - t0:.1f}s")
    passed = failed = 0
    failures = []

    # ---- 1. greedy tokens ------------------------------------------------------------------
    if not args.skip_tokens:
        print(f"\n== greedy tokens ({args.max_tokens}, f64) ==")
        for name, ids in prompts:
            want = ref.generate(ids, args.max_tokens)
            try:
                got = greta.run(ids, args.max_tokens)
                got_ids = [int(t) for t in got["generated_ids"]]
                pids = got.get("prompt_ids")
                err = None
                if pids is not None and [int(t) for t in pids] != list(ids):
                    err = f"prompt_ids echoed differently: {pids}"
            except Exception as e:  # noqa: BLE001
                got_ids, err = None, str(e)
            ok = err is None and got_ids == want
            if ok:
                passed += 1
                print(f"  PASS {name}: {want} {ref.detokenize(want)!r}")
            else:
                failed += 1
                failures.append(f"tokens {name}")
                first = None
                if got_ids is not None:
                    first = next((i for i, (x, y) in enumerate(zip(got_ids, want)) if x != y),
                                 min(len(got_ids), len(want)))
                print(f"  FAIL {name}: ref   {want}\n              greta {got_ids}"
                      + (f"\n              first difference at index {first}" if first is not None else "")
                      + (f"\n              {err}" if err else ""))

    # ---- 2. stage by stage -----------------------------------------------------------------
    if not args.skip_stages:
        print(f"\n== stages, prompt {stage_name} ({len(stage_ids)} ids): prefill "
              f"{'all rows' if args.all_rows else 'last row'}, decode0 ==")
        try:
            p, f, fl = compare_stages(args, greta, ref, stage_ids)
        except Exception as e:  # noqa: BLE001
            print(f"  FAIL stage comparison did not run: {e}")
            p, f, fl = 0, 1, ["stage comparison"]
        passed += p
        failed += f
        failures += fl

    if failures:
        print("\nfailed: " + ", ".join(failures[:20]) + (" ..." if len(failures) > 20 else ""))
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
