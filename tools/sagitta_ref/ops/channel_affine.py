"""Twin of channel_affine.wgsl (SPEC-csm step 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def channel_affine_expand(x: torch.Tensor, mean: Sequence[float],
                          std: Sequence[float]) -> torch.Tensor:
    """[N, 1, H, W] -> [N, C, H, W], channel c = (x - mean[c]) / std[c] (C = len(mean) <= 4)."""
    if x.dim() != 4 or x.shape[1] != 1 or len(mean) != len(std) or not 1 <= len(mean) <= 4:
        raise ValueError(f"input {tuple(x.shape)}, {len(mean)} means, {len(std)} stds")
    # On the input's device: the benchmark runs the reference on CUDA.
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[None, :, None, None]
    return (x.expand(-1, len(mean), -1, -1) - m) / s
