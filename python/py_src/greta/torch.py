"""torch glue: torch tensors become greta inputs/outputs through numpy (bf16 as raw bf16 bytes)."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_greta(t: Any):
    """A numpy array (or a :class:`greta.Raw` for bfloat16) with ``t``'s values, copied to the host."""
    import torch

    from . import Raw

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        b = t.view(torch.int16).numpy().view(np.uint8)
        return Raw(b, "bf16", list(t.shape))
    return t.numpy()


def from_greta(a: np.ndarray):
    """A torch tensor sharing ``a``'s memory."""
    import torch

    return torch.from_numpy(a)
