"""Twin of boxes.wgsl (SPEC step 3): square boxes around groups of landmarks.

The groups arrive as data (the model's table; the cervical one is anatomy.cervical.DISC_GROUPS).
Boxes are (x0, y0, x1, y1) in input pixels, the centre of the top-left pixel at (0, 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..anatomy import cervical as _cervical
from .map_back import norm_to_input


def boxes_from_points(coarse_norm: torch.Tensor, groups: Sequence[Sequence[int]],
                      input_hw: tuple[int, int], margin: float, min_side: float) -> torch.Tensor:
    """coarse_norm [L, 2] (normalized over an input of input_hw = (height, width)) and `groups`
    (one list of landmark indices per box, or an int tensor [B, G]) -> square boxes [B, 4].

    Box k is centred on the bounding box, in input pixels, of the landmarks in groups[k], with
    side = max(max(w, h) * (1 + margin), min_side).
    """
    p = norm_to_input(coarse_norm, tuple(input_hw))
    boxes = []
    for group in groups:
        q = p[torch.as_tensor(group, dtype=torch.long, device=p.device)]     # [G, 2]
        lo = q.amin(dim=0)
        hi = q.amax(dim=0)
        centre = (lo + hi) / 2.0
        extent = (hi - lo).amax()
        side = torch.clamp(extent * (1.0 + margin), min=min_side)
        half = side / 2.0
        boxes.append(torch.stack([centre[0] - half, centre[1] - half,
                                  centre[0] + half, centre[1] + half]))
    return torch.stack(boxes)


def boxes_about_mean(coarse_norm: torch.Tensor, groups: Sequence[Sequence[int]],
                     frame_hw: tuple[int, int], margin: float, min_side: float) -> torch.Tensor:
    """boxes.wgsl's `about_mean` mode (SPEC-lumbar step 5): coarse_norm [L, 2] normalized over a
    frame of frame_hw = (height, width) -> boxes [B, 4] (x0, y0, x1, y1) in that frame's pixels,
    centred on the mean of each group's points, each side = the group's extent along it times
    (1 + margin), at least min_side."""
    p = norm_to_input(coarse_norm, tuple(frame_hw))
    idx = torch.as_tensor(groups, dtype=torch.long, device=p.device)       # [B, G]
    q = p[idx]                                                             # [B, G, 2]
    centre = q.mean(dim=1)
    side = torch.clamp((q.amax(dim=1) - q.amin(dim=1)) * (1.0 + margin), min=min_side)
    return torch.cat([centre - side / 2, centre + side / 2], dim=1)


def boxes_from_coarse(coarse_norm: torch.Tensor, input_size: int, margin: float,
                      min_side: float) -> torch.Tensor:
    """The cervical case: coarse_norm [29, 2] on an S x S input -> boxes [6, 4] around the disc
    groups 4k+2 .. 4k+5 (`boxes_from_points` with anatomy.cervical.DISC_GROUPS)."""
    return boxes_from_points(coarse_norm, _cervical.DISC_GROUPS, (input_size, input_size),
                             margin, min_side)
