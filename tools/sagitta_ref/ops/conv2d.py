"""Twins of the convolution kernels (shaders/conv2d/: direct, tiled, tensor-core, Winograd).

`conv2d_fused` is what every variant computes (square or rectangular kernels, per-axis stride and
padding, ReLU or sigmoid epilogue); `conv3x3_winograd` + `winograd_filter` are the
Winograd kernel's algorithm in torch (`make_fixtures.py` checks it equals `conv2d_fused`).
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F


ACTIVATIONS = ("relu", "sigmoid")


def _pair(v, what: str) -> int | tuple[int, int]:
    """An int, or a (y, x) pair of ints, checked; an int stays an int (F.conv2d gets what it got)."""
    try:
        if isinstance(v, (tuple, list)):
            if len(v) == 2 and not any(isinstance(e, bool) for e in v):
                return (operator.index(v[0]), operator.index(v[1]))
        elif not isinstance(v, bool):
            return operator.index(v)
    except TypeError:
        pass
    raise ValueError(f"{what} must be an int or a (y, x) pair of ints, got {v!r}")


def conv2d_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 stride: int | tuple[int, int], pad: int | tuple[int, int],
                 prologue_scale: torch.Tensor | None = None,
                 prologue_shift: torch.Tensor | None = None,
                 residual: torch.Tensor | None = None, relu: bool = False, *,
                 activation: str | None = None) -> torch.Tensor:
    """Convolution with a fused BN+ReLU prologue and a bias/residual/activation epilogue.

    x [N, IC, H, W]; weight [G, OC, IC, KH, KW], bias [G, OC] with G = 1 (shared weights) or G = N
    (sample n uses weight[n], bias[n]). `stride` and `pad` are an int or a (y, x) pair. Prologue:
    x = relu(x * scale + shift) per input channel, before the zero padding. Epilogue order:
    + bias, + residual, activation ("relu", "sigmoid" or None). `relu=True` is the older spelling
    of `activation="relu"`; giving both is an error.
    """
    stride = _pair(stride, "stride")
    pad = _pair(pad, "pad")
    if relu and activation is not None:
        raise ValueError("give either relu=True or activation=..., not both")
    if relu:
        activation = "relu"
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS} or None, got {activation!r}")
    n = x.shape[0]
    g = weight.shape[0]
    if weight.dim() != 5 or g not in (1, n) or bias.shape[0] != g:
        raise ValueError(f"weight {tuple(weight.shape)} / bias groups {bias.shape[0]} for batch {n}")
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
    if activation == "relu":
        out = F.relu(out)
    elif activation == "sigmoid":
        out = torch.sigmoid(out)
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
