"""Twin of texture_grey.wgsl: the values a host's texture stores -> the grey values the model
reads, as the CPU decoding makes them (sagitta's io: the DICOM modality rescale, then the
MONOCHROME1 mirror, in float64, rounded to float32; colour reduced to Rec. 709 luma).

`stored` holds what the texture's texels stand for: the integers of integer and normalized
formats (a normalized texel v/255 stands for v), the values of float formats; [H, W] or
[H, W, C].
"""

from __future__ import annotations

import torch

LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def texture_grey(stored: torch.Tensor, *, slope: float = 1.0, intercept: float = 0.0,
                 mirror_sum: float | None = None, luma: bool = False) -> torch.Tensor:
    v = stored.double()
    if v.dim() == 3:
        if luma:
            v = LUMA_WEIGHTS[0] * v[..., 0] + LUMA_WEIGHTS[1] * v[..., 1] + LUMA_WEIGHTS[2] * v[..., 2]
        else:
            v = v[..., 0]
    v = slope * v + intercept
    if mirror_sum is not None:
        v = mirror_sum - v
    return v.float()
