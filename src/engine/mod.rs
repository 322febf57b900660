//! The llama-family forward pass: prefill, decode, KV cache, greedy sampling — every op through the seam.
