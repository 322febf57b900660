#!/usr/bin/env python3
"""Generate the dequantisation fixtures under tests/fixtures/dequant/.

For each GGML type greta dequantises, writes `<type>.bin` (raw blocks, as stored in a GGUF tensor) and
`<type>.f32` (the little-endian f32 values `gguf.quants.dequantize` returns for them). greta's Rust
dequantiser must reproduce the .f32 files bit for bit (tests/gguf.rs).

Blocks are random bytes (fixed numpy seed) with the f16 scale fields overwritten by finite values of
sensible magnitude, plus edge blocks: zero scales, negative mins, all nibbles at 0 or 15 (max), largest
and subnormal f16 scales. Run from the repository root:

    python3 tools/gen-dequant-fixtures.py

Needs numpy and the `gguf` package (tested with gguf 0.19.0). New types are appended to CASES so that
the earlier fixtures, drawn first from the one seeded generator, keep their bytes.
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = os.path.join("tests", "fixtures", "dequant")
rng = np.random.default_rng(20261122)


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def scales(n, lo=1e-4, hi=0.1):
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return mag * rng.choice([-1.0, 1.0], n)


def blocks(qtype, n):
    _, size = GGML_QUANT_SIZES[qtype]
    return rng.integers(0, 256, size=(n, size), dtype=np.uint8)


def with_edges(b, fields, edge_fill):
    """Overwrite f16 fields (byte offsets) with random scales, then apply edge rows."""
    for off in fields:
        b[:, off:off + 2] = f16_bytes(scales(len(b)))
    edge_fill(b)
    return b


def fill_nibbles(b, start, end, value):
    b[start:end] = value


def q_simple(qtype, n, fields, qs_start):
    def edges(b):
        b[0, fields[0]:fields[0] + 2] = f16_bytes([0.0])  # zero scale
        b[1, qs_start:] = 0xFF  # max nibbles
        b[2, qs_start:] = 0x00  # min nibbles
        b[3, fields[0]:fields[0] + 2] = f16_bytes([65504.0])  # largest f16
        b[4, fields[0]:fields[0] + 2] = f16_bytes([6e-8])  # subnormal f16
        if len(fields) > 1:
            b[5, fields[1]:fields[1] + 2] = f16_bytes([-3.5])  # negative min
            b[6, fields[1]:fields[1] + 2] = f16_bytes([0.0])
    return with_edges(blocks(qtype, n), fields, edges)


def q4_k(n):
    def edges(b):
        b[0, 0:2] = f16_bytes([0.0])
        b[1, 16:] = 0xFF
        b[1, 4:16] = 0xFF  # all 6-bit scales and mins at 63
        b[2, 4:16] = 0x00
        b[3, 2:4] = f16_bytes([-0.02])  # negative dmin
        b[4, 0:2] = f16_bytes([65504.0])
    return with_edges(blocks(T.Q4_K, n), [0, 2], edges)


def q6_k(n):
    def edges(b):
        b[0, 208:210] = f16_bytes([0.0])
        b[1, 0:192] = 0xFF  # q = 63 - 32 = 31
        b[2, 0:192] = 0x00  # q = -32
        b[3, 192:208] = np.array([-128] * 8 + [127] * 8, dtype=np.int8).view(np.uint8)
        b[4, 208:210] = f16_bytes([65504.0])
    return with_edges(blocks(T.Q6_K, n), [208], edges)


def edited(qtype, n, fields, edits):
    """Random blocks with finite f16 scales at `fields`, then `edits`: (row, start, end, value) byte
    fills, or (row, offset, f16 value) for a scale."""
    b = with_edges(blocks(qtype, n), fields, lambda b: None)
    for e in edits:
        if len(e) == 4:
            row, start, end, value = e
            b[row, start:end] = value
        else:
            row, off, value = e
            b[row, off:off + 2] = f16_bytes([value])
    return b


def q2_k(n):
    # [16 scales (low nibble scale, high nibble min)][64 qs][d][dmin]
    return edited(T.Q2_K, n, [80, 82], [
        (0, 80, 0.0),  # zero d
        (1, 16, 80, 0xFF), (1, 0, 16, 0xFF),  # q = 3, scale and min 15
        (2, 16, 80, 0x00), (2, 0, 16, 0x00),
        (3, 82, -0.02),  # negative dmin
        (4, 80, 65504.0),  # largest f16
        (5, 82, 6e-8),  # subnormal dmin
    ])


def q3_k(n):
    # [32 hmask][64 qs][12 scale bytes][d]
    return edited(T.Q3_K, n, [108], [
        (0, 108, 0.0),
        (1, 0, 32, 0x00), (1, 32, 96, 0x00),  # q = -4 everywhere
        (2, 0, 32, 0xFF), (2, 32, 96, 0xFF),  # q = 3
        (3, 96, 108, 0xFF),  # scales 63 - 32 = 31
        (4, 96, 108, 0x00),  # scales -32
        (5, 108, 65504.0),
        (6, 108, 6e-8),
    ])


def q5_k(n):
    # [d][dmin][12 scale bytes][32 qh][128 qs]
    return edited(T.Q5_K, n, [0, 2], [
        (0, 0, 0.0),
        (1, 16, 176, 0xFF), (1, 4, 16, 0xFF),  # q = 31, scales and mins 63
        (2, 16, 176, 0x00), (2, 4, 16, 0x00),
        (3, 2, -0.02),
        (4, 0, 65504.0),
        (5, 48, 176, 0xFF), (5, 16, 48, 0x00),  # fifth bit clear under full nibbles
    ])


def iq4_xs(n):
    # [d][scales_h u16][4 scales_l][128 qs]
    return edited(T.IQ4_XS, n, [0], [
        (0, 0, 0.0),
        (1, 2, 8, 0xFF),  # scales 63 - 32 = 31
        (2, 2, 8, 0x00),  # scales -32
        (3, 8, 136, 0xFF), (4, 8, 136, 0x00),  # code book ends
        (5, 0, 65504.0),
        (6, 0, 6e-8),
    ])


def f16(n):
    v = rng.standard_normal(n).astype(np.float16).view(np.uint16)
    v[:9] = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01]
    return v.view(np.uint8)


def bf16(n):
    v = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    v[:6] = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001]
    return v.view(np.uint8)


def f32(n):
    v = rng.standard_normal(n).astype(np.float32)
    v[:4] = [0.0, -0.0, np.inf, 1e-45]
    return v.view(np.uint8)


CASES = {
    "f32": (T.F32, lambda: f32(256)),
    "f16": (T.F16, lambda: f16(256)),
    "bf16": (T.BF16, lambda: bf16(256)),
    "q8_0": (T.Q8_0, lambda: q_simple(T.Q8_0, 32, [0], 2)),
    "q4_0": (T.Q4_0, lambda: q_simple(T.Q4_0, 32, [0], 2)),
    "q4_1": (T.Q4_1, lambda: q_simple(T.Q4_1, 32, [0, 2], 4)),
    "q4_k": (T.Q4_K, lambda: q4_k(12)),
    "q6_k": (T.Q6_K, lambda: q6_k(12)),
    # Issue 22: appended, so the fixtures above keep their bytes (one rng, drawn in this order).
    "q5_0": (T.Q5_0, lambda: q_simple(T.Q5_0, 32, [0], 2)),
    "q5_1": (T.Q5_1, lambda: q_simple(T.Q5_1, 32, [0, 2], 4)),
    "iq4_nl": (T.IQ4_NL, lambda: q_simple(T.IQ4_NL, 32, [0], 2)),
    "q2_k": (T.Q2_K, lambda: q2_k(12)),
    "q3_k": (T.Q3_K, lambda: q3_k(12)),
    "q5_k": (T.Q5_K, lambda: q5_k(12)),
    "iq4_xs": (T.IQ4_XS, lambda: iq4_xs(12)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (qtype, make) in CASES.items():
        raw = np.ascontiguousarray(make()).reshape(-1).astype(np.uint8)
        out = dequantize(raw, qtype).astype(np.float32, copy=False).reshape(-1)
        with open(os.path.join(OUT, f"{name}.bin"), "wb") as f:
            f.write(raw.tobytes())
        with open(os.path.join(OUT, f"{name}.f32"), "wb") as f:
            f.write(out.astype("<f4").tobytes())
        print(f"{name}: {raw.size} bytes -> {out.size} values")


if __name__ == "__main__":
    main()
