"""Twin of ensemble_mean.wgsl."""

from __future__ import annotations

import torch


def ensemble_mean_shape(shape: tuple[int, ...] | torch.Size, members: int) -> list[int]:
    """The outermost axis longer than 1 divided by `members` (src/ops/ensemble_mean.rs)."""
    out = list(shape)
    if members > 1:
        axis = next(i for i, d in enumerate(shape) if d > 1)
        assert shape[axis] % members == 0, (shape, members)
        out[axis] //= members
    return out


def ensemble_mean(stacked: torch.Tensor, members: int) -> torch.Tensor:
    """The element-wise mean of the `members` equal contiguous blocks of `stacked` (a [K, ...]
    tensor, or [1, K * C, H, W] written by K channel views)."""
    out = ensemble_mean_shape(stacked.shape, members)
    return stacked.reshape(members, -1).mean(0).reshape(out)
