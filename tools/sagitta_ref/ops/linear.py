"""Twin of linear.wgsl."""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = ("relu", "sigmoid")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
           activation: str | None = None) -> torch.Tensor:
    """[N, IN] x weight [OUT, IN] (PyTorch layout) + bias [OUT], then "relu", "sigmoid" or None."""
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS} or None, got {activation!r}")
    y = F.linear(x, weight, bias)
    if activation == "relu":
        y = F.relu(y)
    elif activation == "sigmoid":
        y = torch.sigmoid(y)
    return y
