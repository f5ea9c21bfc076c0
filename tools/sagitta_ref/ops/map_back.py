"""Twin of map_back.wgsl (SPEC step 6): landmarks from normalized and box-relative coordinates to
input pixels, then to the original image's pixels.

Which landmark comes from where arrives as data, the model's `sources` table [L, 2]: row i is
(refined row, box) when landmark i is the refined point of that row (box-relative), or
(GLOBAL_POINT, GLOBAL_POINT) when it keeps its global point. `sources_from_groups` builds it
from the box groups when group k's refiner predicts exactly the landmarks of group k, in order.

Pixel convention: in input pixels the centre of the top-left pixel is (0, 0); pixel (i, j) covers
[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. Boxes are (x0, y0, x1, y1) in that frame. Normalized
coordinates u in [-1, 1] span a map edge to edge (dsntnn). Sizes are an int S (an S x S image) or
(height, width).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..anatomy import cervical as _cervical

# Row value of a landmark that keeps its global point (map_back.wgsl's NONE).
GLOBAL_POINT = -1


def _hw(size) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        h, w = size
        return h, w
    return size, size


def norm_to_input(u: torch.Tensor, input_size) -> torch.Tensor:
    """Normalized [-1, 1] (edge to edge of the input) -> input pixels: p = ((u + 1) S - 1) / 2,
    with S the width for x and the height for y. `input_size`: S or (height, width)."""
    if not isinstance(input_size, (tuple, list)):
        return ((u + 1.0) * input_size - 1.0) / 2.0
    h, w = input_size
    x = ((u[..., 0] + 1.0) * w - 1.0) / 2.0
    y = ((u[..., 1] + 1.0) * h - 1.0) / 2.0
    return torch.stack([x, y], dim=-1)


def input_to_original(p: torch.Tensor, input_size, width0: int, height0: int) -> torch.Tensor:
    """Input pixels (S x S, or (height, width)) -> original pixels (W0 x H0), pixel centres at
    integers in both."""
    h, w = _hw(input_size)
    x = (p[..., 0] + 0.5) * width0 / w - 0.5
    y = (p[..., 1] + 0.5) * height0 / h - 0.5
    return torch.stack([x, y], dim=-1)


def box_to_input(rel: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Box-relative normalized coords [..., 2] in boxes [..., 4] (broadcast) -> input pixels:
    x = cx + u side/2, y = cy + v side/2 with cx = (x0 + x1)/2, cy = (y0 + y1)/2 and
    side = x1 - x0 (the boxes are square)."""
    cx = (boxes[..., 0] + boxes[..., 2]) / 2.0
    cy = (boxes[..., 1] + boxes[..., 3]) / 2.0
    half = (boxes[..., 2] - boxes[..., 0]) / 2.0
    x = cx + rel[..., 0] * half
    y = cy + rel[..., 1] * half
    return torch.stack([x, y], dim=-1)


def refined_to_input(refined_norm: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Box-space normalized coords [B, K, 2] (K points per box, e.g. the cervical [6, 4, 2]) ->
    input pixels [B, K, 2]; see `box_to_input`."""
    return box_to_input(refined_norm, boxes[:, None, :])


def sources_from_groups(groups: Sequence[Sequence[int]], num_landmarks: int) -> torch.Tensor:
    """The sources table [L, 2] (int64) when the refined rows are the groups' members in order:
    member j of group k is row sum(len(groups[:k])) + j, in box k; other landmarks keep their
    global point."""
    sources = torch.full((num_landmarks, 2), GLOBAL_POINT, dtype=torch.int64)
    row = 0
    for k, group in enumerate(groups):
        for i in group:
            i = int(i)
            if sources[i, 0] != GLOBAL_POINT:
                raise ValueError(f"landmark {i} is in two groups")
            sources[i, 0] = row
            sources[i, 1] = k
            row += 1
    return sources


def landmarks_to_input(coarse_norm: torch.Tensor, refined_norm: torch.Tensor,
                       boxes: torch.Tensor, sources: torch.Tensor, input_size) -> torch.Tensor:
    """Landmarks in input pixels [L, 2]: global points coarse_norm [L, 2] (normalized), replaced
    where `sources` [L, 2] names a row of refined_norm [R, 2] (rows may come as [B, K, 2]; they are
    flattened) by that row mapped through its box of boxes [B, 4]."""
    sources = torch.as_tensor(sources, dtype=torch.int64, device=coarse_norm.device)
    if sources.shape != (coarse_norm.shape[0], 2):
        raise ValueError(f"sources {tuple(sources.shape)} for {coarse_norm.shape[0]} landmarks")
    rows = refined_norm.reshape(-1, 2)
    out = norm_to_input(coarse_norm, input_size).clone()
    refined = sources[:, 0] != GLOBAL_POINT
    row, box = sources[refined, 0], sources[refined, 1]
    if len(row) and (row.min() < 0 or row.max() >= rows.shape[0] or box.min() < 0
                     or box.max() >= boxes.shape[0]):
        raise ValueError("sources names a refined row or box that does not exist")
    out[refined] = box_to_input(rows[row], boxes[box])
    return out


def map_back(coarse_norm: torch.Tensor, refined_norm: torch.Tensor, boxes: torch.Tensor,
             sources: torch.Tensor, input_size, width0: int, height0: int) -> torch.Tensor:
    """`landmarks_to_input` then `input_to_original`: the landmarks in original pixels [L, 2]."""
    p = landmarks_to_input(coarse_norm, refined_norm, boxes, sources, input_size)
    return input_to_original(p, input_size, width0, height0)


# --- The cervical layout (the old fixed-layout names, same signatures) ---------------------------

def cervical_sources() -> torch.Tensor:
    """The cervical sources table [29, 2]: landmark 4k+2+j <- (row 4k+j, box k)."""
    return sources_from_groups(_cervical.DISC_GROUPS, _cervical.NUM_LANDMARKS)


def cervical_landmarks_to_input(coarse_norm: torch.Tensor, refined_norm: torch.Tensor,
                                boxes: torch.Tensor, input_size: int) -> torch.Tensor:
    """coarse_norm [29, 2], refined_norm [6, 4, 2], boxes [6, 4] -> the 29 landmarks in input
    pixels: global ones from coarse, the rest from the refiners."""
    return landmarks_to_input(coarse_norm, refined_norm, boxes, cervical_sources(), input_size)
