#!/usr/bin/env python3
"""Hugging Face transformers decode speed on the same GGUF model, for greta's GPU benchmark.

Loads the GGUF with transformers' own GGUF support (dequantised by the `gguf` package), runs eager
attention on the GPU in the given dtype, greedy-generates N tokens, and prints JSON with decode tokens/s:
decode time = time(generate N+1 new tokens) - time(generate 1 new token), best of --reps.

usage: hf-bench.py MODEL.gguf --prompt-ids 1,2,3 [--tokens 32] [--dtype float16|float32] [--reps 3]
"""
import argparse, json, os, sys, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM
    d, f = os.path.split(os.path.abspath(a.model))
    dtype = getattr(torch, a.dtype)
    t0 = time.time()
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=dtype, attn_implementation="eager").cuda().eval()
    load = time.time() - t0
    ids = torch.tensor([[int(x) for x in a.prompt_ids.split(",")]], device="cuda")

    def gen(n):
        torch.cuda.synchronize()
        t = time.time()
        with torch.no_grad():
            out = m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        return time.time() - t, out[0, ids.shape[1]:].tolist()

    gen(2)  # warm-up
    best_full, best_one, toks = float("inf"), float("inf"), None
    for _ in range(a.reps):
        t, toks = gen(a.tokens + 1)
        best_full = min(best_full, t)
        best_one = min(best_one, gen(1)[0])
    dec = best_full - best_one
    print(json.dumps({"dtype": a.dtype, "load_s": load, "decode_tokens": a.tokens, "decode_s": dec,
                      "decode_tok_s": a.tokens / dec, "generated_ids": toks,
                      "torch": torch.__version__, "device": torch.cuda.get_device_name(0)}))

if __name__ == "__main__":
    sys.exit(main())
