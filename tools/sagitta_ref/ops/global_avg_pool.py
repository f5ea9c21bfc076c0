"""Twin of global_avg_pool.wgsl."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C]: `AdaptiveAvgPool2d(1)` flattened."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)
