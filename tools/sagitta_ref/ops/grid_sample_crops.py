"""Twin of grid_sample_crops.wgsl: fixed-size crops of one image, bicubic, border clamping."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def grid_sample_crops(image: torch.Tensor, boxes: torch.Tensor, out_h: int,
                      out_w: int) -> torch.Tensor:
    """image [1, C, H, W], boxes [K, 4] = (x0, y0, x1, y1) in input pixels -> [K, C, out_h, out_w].
    Output pixel (i, j) samples x = x0 + (j + 1/2) (x1 - x0) / out_w (y likewise) by
    `F.grid_sample(mode="bicubic", padding_mode="border", align_corners=False)` at
    (2x + 1)/W - 1, (2y + 1)/H - 1 (SPEC-lumbar step 6)."""
    _, c, h, w = image.shape
    k = boxes.shape[0]
    j = torch.arange(out_w, dtype=torch.float32, device=image.device) + 0.5
    i = torch.arange(out_h, dtype=torch.float32, device=image.device) + 0.5
    x = boxes[:, 0:1] + j[None, :] * ((boxes[:, 2:3] - boxes[:, 0:1]) / out_w)   # [K, out_w]
    y = boxes[:, 1:2] + i[None, :] * ((boxes[:, 3:4] - boxes[:, 1:2]) / out_h)   # [K, out_h]
    gx = (2 * x + 1) / w - 1
    gy = (2 * y + 1) / h - 1
    grid = torch.stack([gx[:, None, :].expand(k, out_h, out_w),
                        gy[:, :, None].expand(k, out_h, out_w)], dim=-1)
    return F.grid_sample(image.expand(k, c, h, w), grid, mode="bicubic",
                         padding_mode="border", align_corners=False)
