"""Twin of resize_area.wgsl (SPEC-csm step 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_area(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """[H, W] -> [out_h, out_w] by area averaging, `F.interpolate(mode="area")` (=
    `F.adaptive_avg_pool2d`): output row i averages input rows floor(i*H/out_h) ..
    ceil((i+1)*H/out_h) - 1, columns likewise; an image smaller than the output repeats pixels."""
    return F.interpolate(img[None, None], size=(out_h, out_w), mode="area")[0, 0]
