#!/usr/bin/env python3
"""Independent check of greta's tokenizer against Hugging Face `tokenizers`.

The reference tokenizer is built from the SAME GGUF file's metadata with transformers' own GGUF
tokenizer converter (`convert_gguf_tokenizer`: byte-level BPE from `tokenizer.ggml.tokens` and
`.merges`, the split regex from `tokenizer.ggml.pre`, control/user-defined tokens as added tokens).
The metadata is read with llama.cpp's `gguf` package, because transformers' own GGUF reader imports
torch. No tokenizer.json from the model's repository is involved, so both sides see exactly the
vocabulary greta sees.

greta is run as a command: `$GRETA_TOKENIZE_CMD --model M --json -- TEXT`, which must print
`{"ids": [...]}`. The default command is `target/release/greta tokenize`; during development
(`target/release/greta tokenize` by default).

Usage: tools/check-tokenizer.py [--model PATH] [-v]
Exit status: 0 all strings agree, 1 some differ, 2 setup error.
Needs: pip install gguf transformers tokenizers   (no torch)
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

DEFAULT_MODEL = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"

# Varied on purpose: each line exercises a different part of the pipeline (regex branches,
# multi-byte UTF-8, whitespace runs, special tokens cut out of text, long merges).
STRINGS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a land far, far away, there lived a small dragon who loved books.",
    "What is the capital of France?",
    "Machine learning models are trained on large datasets to recognize patterns.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    'fn main() {\n\tprintln!("{}", 42);\n}',
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
    "12345",
    "3.14159",
    "1,000,000 and 0.001 and -42 and 1e-9",
    "Version 2.0.1 released on 2024-01-15 at 10:30:00.",
    "!!!???...,,,;;;",
    "--- *** ### @@@ $$$ %%% ^^^ &&&",
    "a  b   c    d",
    "line1\nline2\n\nline4\n\n\n",
    "tab\tseparated\t\tvalues",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "\n",
    "\t \n \r\n",
    "don't",
    "I'LL do it, you'd've, we're, they've, it's, I'm",
    "DON'T SHOUT",
    "café naïve résumé façade",
    "Привет, как дела? Всё хорошо.",
    "日本語のテキストです。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "Emoji: 🎉🚀👍🏽 and 👨‍👩‍👧‍👦",
    "Ελληνικά και العربية و עברית",
    "mixed: abc123def 456ghi",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text before<|endoftext|>text after",
    "<|im_start|><|im_end|><|im_start|>",
    "<|im_start partial special |im_end|>",
    "x" * 300,
    " " * 50 + "word",
    "https://example.com/path?query=1&b=2#frag",
    "user@example.com",
    "C:\\Users\\name\\file.txt",
    "$x^2 + y^2 = z^2$ \\frac{a}{b}",
    "Hello World HELLO world hello WORLD",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "-5 starts with a dash",
    "",
    # SmolLM2 has no token for bytes 0x04, 0x06, 0x13, 0x14, 0x16, 0x1d: both sides drop them.
    "control\x04bytes\x07 and\x1d\x7f",
]


def fail_setup(msg):
    print(f"check-tokenizer: {msg}", file=sys.stderr)
    sys.exit(2)


def reference(model_path):
    """(tokenizers.Tokenizer, add_bos, bos_id) built from the GGUF's metadata."""
    try:
        from gguf import GGUFReader
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_TOKENIZER_MAPPING,
            convert_gguf_tokenizer,
        )
    except ImportError as e:
        fail_setup(f"{e}; run: pip install gguf transformers tokenizers")
    reader = GGUFReader(model_path)
    md = {name: field.contents() for name, field in reader.fields.items()}
    tokenizer_dict = {
        name: md[f"tokenizer.{key}"]
        for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
        if f"tokenizer.{key}" in md
    }
    tok, _ = convert_gguf_tokenizer(md["general.architecture"], tokenizer_dict)
    return tok, bool(md.get("tokenizer.ggml.add_bos_token", False)), md.get("tokenizer.ggml.bos_token_id")


def greta_ids(cmd, model_path, text):
    argv = shlex.split(cmd) + ["--model", model_path, "--json", "--", text]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    try:
        return json.loads(proc.stdout)["ids"], None
    except (ValueError, KeyError) as e:
        return None, f"bad output {proc.stdout[:200]!r}: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("GRETA_SMOLLM2", DEFAULT_MODEL))
    ap.add_argument("-v", "--verbose", action="store_true", help="print ids of passing strings too")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        fail_setup(f"model {args.model} not found; run tools/fetch-model or pass --model / set GRETA_SMOLLM2")
    cmd = os.environ.get("GRETA_TOKENIZE_CMD", "target/release/greta tokenize")

    ref, add_bos, bos = reference(args.model)
    passed = failed = 0
    for text in STRINGS:
        want = ref.encode(text, add_special_tokens=False).ids
        if add_bos and bos is not None:
            want = [bos] + want
        got, err = greta_ids(cmd, args.model, text)
        shown = repr(text) if len(text) <= 70 else repr(text[:67]) + "..."
        if got == want:
            passed += 1
            print(f"PASS {len(want):4d} ids  {shown}" + (f"  {want}" if args.verbose else ""))
            continue
        failed += 1
        print(f"FAIL {shown}")
        if err is not None:
            print(f"     greta failed: {err}")
        else:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            print(f"     first difference at index {first}")
            print(f"     greta: {got}")
            print(f"     ref:   {want}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
