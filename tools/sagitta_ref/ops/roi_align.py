"""Twin of roi_align.wgsl (SPEC step 4)."""

from __future__ import annotations

import torch
import torchvision


def roi_align_ours(img: torch.Tensor, boxes_ours: torch.Tensor, out_size: int,
                   sampling_ratio: int) -> torch.Tensor:
    """torchvision roi_align (aligned=True) over img [1, C, H, W] for boxes [K, 4] in our frame.

    torchvision's aligned frame puts pixel i's centre at i + 0.5, hence the + 0.5.
    Returns [K, C, out_size, out_size].
    """
    return torchvision.ops.roi_align(img, [boxes_ours + 0.5], output_size=out_size,
                                     spatial_scale=1.0, sampling_ratio=sampling_ratio,
                                     aligned=True)
