"""Twin of upsample_bilinear.wgsl and upsample_bilinear_add.wgsl (+ bilinear_sample.wgsl)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_bilinear(x: torch.Tensor, out_h: int, out_w: int,
                      align_corners: bool = False) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, out_h, out_w], bilinear, no antialias."""
    return F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=align_corners)


def upsample_bilinear_add(x: torch.Tensor, skip: torch.Tensor,
                          align_corners: bool = False) -> torch.Tensor:
    """skip [N, C, h, w] + bilinear resize of x [N, C, H, W] to h x w."""
    return skip + upsample_bilinear(x, skip.shape[2], skip.shape[3], align_corners)
