"""Twin of pool2d.wgsl: general max- and average-pooling, floor mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool2d(x: torch.Tensor, kind: str, kernel: tuple[int, int], stride: tuple[int, int],
           padding: tuple[int, int], count_include_pad: bool = True) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, out_h, out_w], out = (in + 2 pad - kernel) // stride + 1.
    kind "max": `F.max_pool2d` (padding never wins); "avg": `F.avg_pool2d`, dividing by the
    window size (count_include_pad) or by its real pixels."""
    if kind == "max":
        return F.max_pool2d(x, kernel, stride, padding)
    assert kind == "avg", kind
    return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
