"""Twin of maxpool2.wgsl."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def maxpool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool, stride 2, floor mode (an odd last row/column is dropped)."""
    return F.max_pool2d(x, kernel_size=2, stride=2)
