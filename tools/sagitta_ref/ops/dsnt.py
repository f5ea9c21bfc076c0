"""Twin of softmax_dsnt.wgsl (SPEC steps 2 and 5): spatial softmax + DSNT (differentiable spatial
to numerical transform), dsntnn's conventions.

Normalized coordinates: the centre of pixel j of a W-wide map is (2j + 1) / W - 1, so the map spans
[-1, 1] edge to edge; x runs along columns, y along rows. Coordinates are returned as [x, y].
"""

from __future__ import annotations

import torch

def normalized_linspace(length: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Pixel centres in normalized coordinates: (2j + 1) / length - 1."""
    j = torch.arange(length, dtype=dtype, device=device)
    return (2.0 * j + 1.0) / length - 1.0


def softmax2d(h: torch.Tensor) -> torch.Tensor:
    """Softmax over the flattened H*W of each heatmap (max subtracted first). [..., H, W]."""
    flat = h.flatten(-2)
    flat = flat - flat.amax(dim=-1, keepdim=True)
    e = flat.exp()
    return (e / e.sum(dim=-1, keepdim=True)).view_as(h)


def _axes(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = probs.shape[-2], probs.shape[-1]
    xs = normalized_linspace(w, probs.dtype, probs.device)
    ys = normalized_linspace(h, probs.dtype, probs.device)
    return xs, ys


def dsnt(probs: torch.Tensor) -> torch.Tensor:
    """Expected position under `probs` [..., H, W] -> [..., 2] = [x, y]."""
    xs, ys = _axes(probs)
    x = (probs.sum(dim=-2) * xs).sum(dim=-1)   # marginal over rows, then columns
    y = (probs.sum(dim=-1) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def dsnt_variance(probs: torch.Tensor) -> torch.Tensor:
    """Per-axis variance sum p * (coord - mean)^2 -> [..., 2] = [var_x, var_y]."""
    xs, ys = _axes(probs)
    mean = dsnt(probs)
    dx = (xs - mean[..., 0:1]) ** 2                # [..., W]
    dy = (ys - mean[..., 1:2]) ** 2                # [..., H]
    var_x = (probs.sum(dim=-2) * dx).sum(dim=-1)
    var_y = (probs.sum(dim=-1) * dy).sum(dim=-1)
    return torch.stack([var_x, var_y], dim=-1)


def softmax_dsnt(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps [N, C, H, W] -> coords [N, C, 2] ([x, y] normalized), variance [N, C, 2]."""
    probs = softmax2d(h)
    return dsnt(probs), dsnt_variance(probs)
