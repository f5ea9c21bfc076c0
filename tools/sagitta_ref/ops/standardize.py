"""Twin of standardize.wgsl + standardize_apply.wgsl (SPEC step 1)."""

from __future__ import annotations

import torch


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit (population) variance over the whole image."""
    return (x - x.mean()) / torch.clamp(x.std(unbiased=False), min=eps)
