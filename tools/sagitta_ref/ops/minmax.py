"""Twin of minmax.wgsl + minmax_apply.wgsl (SPEC-csm step 1)."""

from __future__ import annotations

import torch


def minmax_normalize(x: torch.Tensor) -> torch.Tensor:
    """The whole tensor to [0, 1]: (x - min) / (max - min), all zeros where max == min."""
    low, high = x.min(), x.max()
    if high == low:
        return torch.zeros_like(x)
    return (x - low) / (high - low)
