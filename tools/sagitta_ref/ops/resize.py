"""Twin of resize_bicubic.wgsl (SPEC step 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_bicubic(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """[H, W] -> [out_h, out_w], PyTorch bicubic (A = -0.75), align_corners=False, no antialias."""
    return F.interpolate(img[None, None], size=(out_h, out_w), mode="bicubic",
                         align_corners=False)[0, 0]
