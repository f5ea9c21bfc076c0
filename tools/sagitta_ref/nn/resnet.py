"""torchvision's `resnet50` (the twin of src/nn/resnet.rs) with every width scaled by `width`, so
that a small network of the same structure exists for tests; at width 1 its state_dict keys and
shapes are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`, ...)
and its forward pass is torchvision's (tools/make_paper_size.py checks both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Bottlenecks per stage and each stage's planes at width 1 (output channels = planes * 4).
RESNET50_BLOCKS = [3, 4, 6, 3]
RESNET50_PLANES = [64, 128, 256, 512]
EXPANSION = 4


def scaled(channels: int, width: float) -> int:
    """A channel count at `width`: round half up, at least 1 (the Rust loader's rule)."""
    return max(1, int(channels * width + 0.5))


class Bottleneck(nn.Module):
    """1x1, 3x3 carrying the stride, 1x1 (x4), each conv without bias and followed by BN; the
    residual (a 1x1/s projection + BN where the shape changes) added before the last ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int, bn_eps: float):
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=bn_eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=bn_eps)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out, eps=bn_eps)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride,
                                                      bias=False),
                                            nn.BatchNorm2d(out, eps=bn_eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


class ResNet50(nn.Module):
    """[N, 3, S, S] -> logits [N, classes] (7x7/2 stem, max-pool 3x3/2 pad 1, four stages of
    bottlenecks, global average pool, linear)."""

    def __init__(self, classes: int, width: float = 1.0, blocks=RESNET50_BLOCKS,
                 bn_eps: float = 1e-5):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=bn_eps)
        inplanes = stem
        for stage, (count, planes) in enumerate(zip(blocks, RESNET50_PLANES)):
            planes = scaled(planes, width)
            layer = []
            for k in range(count):
                stride = 2 if (k == 0 and stage > 0) else 1
                layer.append(Bottleneck(inplanes, planes, stride, bn_eps))
                inplanes = planes * EXPANSION
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.features = inplanes
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))
