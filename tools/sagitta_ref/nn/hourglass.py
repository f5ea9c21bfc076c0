"""Stacked hourglass network with pre-activation bottlenecks (the twin of src/nn/hourglass.rs).

The structure follows bearpaw/pytorch-pose (Newell et al. 2016), made configurable (input channels,
number of stacks, blocks, features, depth); max-pool and upsample-add are the ops' twins. Module
attribute names are part of the contract: the Rust loader reads the state_dict keys they produce,
e.g.

    conv1.weight, bn1.running_var, layer1.0.downsample.0.weight,
    hg.0.hg.3.3.0.conv2.weight, res.1.0.bn3.bias, fc.0.0.weight, fc.0.1.running_mean,
    score.1.weight, fc_.0.bias, score_.0.weight
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import maxpool2, upsample_add


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1, + shortcut."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, downsample: nn.Module | None = None,
                 bn_eps: float = 1e-5):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=bn_eps)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes, eps=bn_eps)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes, eps=bn_eps)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return out + shortcut


def make_residual(inplanes: int, planes: int, blocks: int, bn_eps: float = 1e-5) -> nn.Sequential:
    """`blocks` bottlenecks taking `inplanes` to `2 * planes` channels.

    The first block gets a 1x1 projection shortcut (``downsample.0``) when the channel count changes.
    """
    outplanes = planes * Bottleneck.expansion
    downsample = None
    if inplanes != outplanes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, kernel_size=1, bias=True))
    layers = [Bottleneck(inplanes, planes, downsample, bn_eps)]
    layers += [Bottleneck(outplanes, planes, None, bn_eps) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class Hourglass(nn.Module):
    """One hourglass of `depth` levels on `2 * planes` channels.

    ``hg[i]`` is the level i+1 from the bottom: residuals [0] skip branch (up1), [1] after the
    max-pool (low1), [2] before the upsample (low3); ``hg[0]`` has a 4th, the innermost (low2).
    """

    def __init__(self, num_blocks: int, planes: int, depth: int, bn_eps: float = 1e-5):
        super().__init__()
        self.depth = depth
        ch = planes * Bottleneck.expansion
        levels = []
        for i in range(depth):
            count = 4 if i == 0 else 3
            levels.append(nn.ModuleList(
                [make_residual(ch, planes, num_blocks, bn_eps) for _ in range(count)]))
        self.hg = nn.ModuleList(levels)

    def _level(self, n: int, x: torch.Tensor) -> torch.Tensor:
        level = self.hg[n - 1]
        up1 = level[0](x)
        low1 = maxpool2(x)
        low1 = level[1](low1)
        low2 = self._level(n - 1, low1) if n > 1 else level[3](low1)
        low3 = level[2](low2)
        return upsample_add(low3, up1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class HourglassNet(nn.Module):
    """Stem (7x7/2 conv, 3 residuals, one max-pool) + `num_stacks` hourglasses with intermediate
    supervision. Returns the list of per-stack heatmaps [N, num_classes, H/4, W/4]."""

    def __init__(self, in_channels: int, num_stacks: int, num_blocks: int, num_classes: int,
                 features: int, depth: int, bn_eps: float = 1e-5):
        super().__init__()
        self.num_stacks = num_stacks
        self.depth = depth
        stem = features // 2
        ch = features * Bottleneck.expansion
        self.conv1 = nn.Conv2d(in_channels, stem, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(stem, eps=bn_eps)
        self.layer1 = make_residual(stem, stem, 1, bn_eps)               # stem -> features
        self.layer2 = make_residual(stem * 2, stem, 1, bn_eps)           # features -> features
        self.layer3 = make_residual(stem * 2, features, 1, bn_eps)       # features -> 2*features
        self.hg = nn.ModuleList(
            [Hourglass(num_blocks, features, depth, bn_eps) for _ in range(num_stacks)])
        self.res = nn.ModuleList(
            [make_residual(ch, features, num_blocks, bn_eps) for _ in range(num_stacks)])
        self.fc = nn.ModuleList([
            nn.Sequential(nn.Conv2d(ch, ch, kernel_size=1, bias=True),
                          nn.BatchNorm2d(ch, eps=bn_eps), nn.ReLU())
            for _ in range(num_stacks)])
        self.score = nn.ModuleList(
            [nn.Conv2d(ch, num_classes, kernel_size=1, bias=True) for _ in range(num_stacks)])
        self.fc_ = nn.ModuleList(
            [nn.Conv2d(ch, ch, kernel_size=1, bias=True) for _ in range(num_stacks - 1)])
        self.score_ = nn.ModuleList(
            [nn.Conv2d(num_classes, ch, kernel_size=1, bias=True) for _ in range(num_stacks - 1)])

    def check_input_size(self, h: int, w: int) -> None:
        """Heatmaps are at input/4; each hourglass halves them `depth` times."""
        unit = 4 * 2 ** self.depth
        if h % unit != 0 or w % unit != 0:
            raise ValueError(
                f"input {h}x{w}: input/4 must be divisible by 2**depth = {2 ** self.depth} "
                f"(height and width multiples of {unit})")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input_size(x.shape[-2], x.shape[-1])
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = maxpool2(x)
        x = self.layer2(x)
        x = self.layer3(x)
        out = []
        for i in range(self.num_stacks):
            y = self.hg[i](x)
            y = self.res[i](y)
            y = self.fc[i](y)
            score = self.score[i](y)
            out.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return out
