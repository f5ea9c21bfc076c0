"""The PyTorch twin of each WGSL kernel: plain functions, float32 in, float32 out.

Pixel convention (SPEC step 6): in input-image pixels the centre of the top-left pixel is (0, 0);
pixel (i, j) covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. Boxes are (x0, y0, x1, y1) in that frame.
Normalized coordinates u in [-1, 1] span a map edge to edge (dsntnn).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from .dsnt import dsnt, dsnt_variance, softmax2d

# Disc k (C2-C3 .. C7-T1) is boxed around these 4 landmarks: upper vertebra's pi, ai and lower
# vertebra's as, ps, i.e. indices 4k+2 .. 4k+5.
NUM_DISCS = 6


def disc_corner_indices(k: int) -> list[int]:
    return [4 * k + 2, 4 * k + 3, 4 * k + 4, 4 * k + 5]


# --- Step 1: preprocess -------------------------------------------------------------------------

def resize_bicubic(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """[H, W] -> [out_h, out_w], PyTorch bicubic (A = -0.75), align_corners=False, no antialias."""
    return F.interpolate(img[None, None], size=(out_h, out_w), mode="bicubic",
                         align_corners=False)[0, 0]


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit (population) variance over the whole image."""
    return (x - x.mean()) / torch.clamp(x.std(unbiased=False), min=eps)


# --- Networks ----------------------------------------------------------------------------------

def conv2d_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, pad: int,
                 prologue_scale: torch.Tensor | None = None,
                 prologue_shift: torch.Tensor | None = None,
                 residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """Convolution with a fused BN+ReLU prologue and a bias/residual/ReLU epilogue.

    x [N, IC, H, W]; weight [G, OC, IC, K, K], bias [G, OC] with G = 1 (shared weights) or G = N
    (sample n uses weight[n], bias[n]). Prologue: x = relu(x * scale + shift) per input channel,
    before the zero padding. Epilogue order: + bias, + residual, relu.
    """
    n = x.shape[0]
    g = weight.shape[0]
    if g not in (1, n) or bias.shape[0] != g:
        raise ValueError(f"weight groups {g} / bias groups {bias.shape[0]} for batch {n}")
    if (prologue_scale is None) != (prologue_shift is None):
        raise ValueError("prologue needs both scale and shift")
    if prologue_scale is not None:
        x = F.relu(x * prologue_scale[None, :, None, None] + prologue_shift[None, :, None, None])
    if g == 1:
        out = F.conv2d(x, weight[0], bias[0], stride=stride, padding=pad)
    else:
        out = torch.cat([F.conv2d(x[i:i + 1], weight[i], bias[i], stride=stride, padding=pad)
                         for i in range(n)], dim=0)
    if residual is not None:
        out = out + residual
    if relu:
        out = F.relu(out)
    return out


# Winograd F(2x2, 3x3) matrices (Lavin & Gray 2016), for correlation as F.conv2d computes it.
WINOGRAD_BT = torch.tensor([[1., 0., -1., 0.], [0., 1., 1., 0.], [0., -1., 1., 0.], [0., 1., 0., -1.]])
WINOGRAD_G = torch.tensor([[1., 0., 0.], [.5, .5, .5], [.5, -.5, .5], [0., 0., 1.]])
WINOGRAD_AT = torch.tensor([[1., 1., 1., 0.], [0., 1., -1., -1.]])


def winograd_filter(weight: torch.Tensor) -> torch.Tensor:
    """U = G g G^T for every 3x3 filter: [..., 3, 3] -> [..., 4, 4] (ops::winograd_filter)."""
    return WINOGRAD_G @ weight @ WINOGRAD_G.T


def conv3x3_winograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pad: int,
                     prologue_scale: torch.Tensor | None = None,
                     prologue_shift: torch.Tensor | None = None,
                     residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """conv2d_winograd.wgsl in PyTorch: conv2d_fused for 3x3 stride 1, by F(2x2, 3x3).

    Each 2x2 output tile is A^T [U (.) V] A with V = B^T d B of its 4x4 input patch; the sum over
    input channels happens in the transformed domain (16 GEMMs), as in the kernel.
    """
    n, _, h, w = x.shape
    g = weight.shape[0]
    if weight.shape[-2:] != (3, 3) or g not in (1, n):
        raise ValueError(f"3x3 weights with 1 or {n} groups expected, got {tuple(weight.shape)}")
    if prologue_scale is not None:
        x = F.relu(x * prologue_scale[None, :, None, None] + prologue_shift[None, :, None, None])
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    # Pad so that every tile has a full 4x4 patch (extra zeros only feed outputs that are cropped).
    xp = F.pad(x, (pad, 2 * tw + 2 - w - pad, pad, 2 * th + 2 - h - pad))
    patches = xp.unfold(2, 4, 2).unfold(3, 4, 2)                # [N, IC, th, tw, 4, 4]
    v = WINOGRAD_BT @ patches @ WINOGRAD_BT.T                     # [N, IC, th, tw, 4, 4]
    u = winograd_filter(weight).expand(n, -1, -1, -1, -1)        # [N, OC, IC, 4, 4]
    m = torch.einsum("noixy,nithxy->nothxy", u, v)                # [N, OC, th, tw, 4, 4]
    y = WINOGRAD_AT @ m @ WINOGRAD_AT.T                           # [N, OC, th, tw, 2, 2]
    out = y.permute(0, 1, 2, 4, 3, 5).reshape(n, -1, 2 * th, 2 * tw)[:, :, :oh, :ow]
    out = out + bias.expand(n, -1)[:, :, None, None]
    if residual is not None:
        out = out + residual
    if relu:
        out = F.relu(out)
    return out


def maxpool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool, stride 2, floor mode (an odd last row/column is dropped)."""
    return F.max_pool2d(x, kernel_size=2, stride=2)


def upsample_add(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """skip [N, C, 2h, 2w] + nearest x2 upsample of low [N, C, h, w]."""
    return skip + F.interpolate(low, scale_factor=2, mode="nearest")


def softmax_dsnt(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps [N, C, H, W] -> coords [N, C, 2] ([x, y] normalized), variance [N, C, 2]."""
    probs = softmax2d(h)
    return dsnt(probs), dsnt_variance(probs)


# --- Coordinates, boxes, crops -----------------------------------------------------------------

def norm_to_input(u: torch.Tensor, input_size: int) -> torch.Tensor:
    """Normalized [-1, 1] (edge to edge of an S x S image) -> input pixels: p = ((u + 1) S - 1) / 2."""
    return ((u + 1.0) * input_size - 1.0) / 2.0


def boxes_from_coarse(coarse_norm: torch.Tensor, input_size: int, margin: float,
                      min_side: float) -> torch.Tensor:
    """coarse_norm [29, 2] -> square boxes [6, 4] (x0, y0, x1, y1) in input pixels.

    Box k is centred on the bounding box of landmarks 4k+2 .. 4k+5, with
    side = max(max(w, h) * (1 + margin), min_side).
    """
    p = norm_to_input(coarse_norm, input_size)
    boxes = []
    for k in range(NUM_DISCS):
        q = p[disc_corner_indices(k)]                      # [4, 2]
        lo = q.amin(dim=0)
        hi = q.amax(dim=0)
        centre = (lo + hi) / 2.0
        extent = (hi - lo).amax()
        side = torch.clamp(extent * (1.0 + margin), min=min_side)
        half = side / 2.0
        boxes.append(torch.stack([centre[0] - half, centre[1] - half,
                                  centre[0] + half, centre[1] + half]))
    return torch.stack(boxes)


def roi_align_ours(img: torch.Tensor, boxes_ours: torch.Tensor, out_size: int,
                   sampling_ratio: int) -> torch.Tensor:
    """torchvision roi_align (aligned=True) over img [1, C, H, W] for boxes [K, 4] in our frame.

    torchvision's aligned frame puts pixel i's centre at i + 0.5, hence the + 0.5.
    Returns [K, C, out_size, out_size].
    """
    return torchvision.ops.roi_align(img, [boxes_ours + 0.5], output_size=out_size,
                                     spatial_scale=1.0, sampling_ratio=sampling_ratio,
                                     aligned=True)


def refined_to_input(refined_norm: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Box-space normalized coords [6, 4, 2] -> input pixels: x = cx + u side/2, y = cy + v side/2.

    cx = (x0 + x1)/2, cy = (y0 + y1)/2, side = x1 - x0 (boxes are square).
    """
    cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
    cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
    half = (boxes[:, 2] - boxes[:, 0]) / 2.0
    x = cx[:, None] + refined_norm[..., 0] * half[:, None]
    y = cy[:, None] + refined_norm[..., 1] * half[:, None]
    return torch.stack([x, y], dim=-1)


def input_to_original(p: torch.Tensor, input_size: int, width0: int, height0: int) -> torch.Tensor:
    """Input pixels (S x S) -> original pixels (W0 x H0), pixel centres at integers in both."""
    x = (p[..., 0] + 0.5) * width0 / input_size - 0.5
    y = (p[..., 1] + 0.5) * height0 / input_size - 0.5
    return torch.stack([x, y], dim=-1)
