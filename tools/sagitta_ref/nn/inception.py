"""torchvision's `Inception3` trunk through `Mixed_7c` (the twin of src/nn/inception.rs) with every
width scaled by `width` (`resnet.scaled`), followed by a 1x1 heatmap conv `hm_conv` without bias
(SPEC-lumbar steps 3 and 7). At width 1 its state_dict keys and shapes are torchvision's under the
same names (`Conv2d_1a_3x3.conv`, `Mixed_5b.branch5x5_2.bn`, `Mixed_7c.branch3x3dbl_3b.conv`, ...;
no `AuxLogits`, no `fc`) and its trunk computes what torchvision's does with
`transform_input=False` (tools/make_paper_size.py checks both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import scaled

BN_EPS = 1e-3


class BasicConv2d(nn.Module):
    """conv (no bias) + BN (eps 1e-3) + ReLU."""

    def __init__(self, in_c: int, out_c: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_c, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1)    # count_include_pad: divides by 9


class InceptionA(nn.Module):
    def __init__(self, in_c: int, pool_features: int, s):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_c, s(64), 1)
        self.branch5x5_1 = BasicConv2d(in_c, s(48), 1)
        self.branch5x5_2 = BasicConv2d(s(48), s(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_c, s(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(s(64), s(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(s(96), s(96), 3, padding=1)
        self.branch_pool = BasicConv2d(in_c, s(pool_features), 1)
        self.out_c = s(64) + s(64) + s(96) + s(pool_features)

    def forward(self, x):
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, in_c: int, s):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_c, s(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_c, s(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(s(64), s(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(s(96), s(96), 3, stride=2)
        self.out_c = s(384) + s(96) + in_c

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_c: int, channels_7x7: int, s):
        super().__init__()
        c7 = s(channels_7x7)
        self.branch1x1 = BasicConv2d(in_c, s(192), 1)
        self.branch7x7_1 = BasicConv2d(in_c, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, s(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_c, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, s(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_c, s(192), 1)
        self.out_c = 4 * s(192)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, in_c: int, s):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_c, s(192), 1)
        self.branch3x3_2 = BasicConv2d(s(192), s(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_c, s(192), 1)
        self.branch7x7x3_2 = BasicConv2d(s(192), s(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(s(192), s(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(s(192), s(192), 3, stride=2)
        self.out_c = s(320) + s(192) + in_c

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    def __init__(self, in_c: int, s):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_c, s(320), 1)
        self.branch3x3_1 = BasicConv2d(in_c, s(384), 1)
        self.branch3x3_2a = BasicConv2d(s(384), s(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(s(384), s(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_c, s(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(s(448), s(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(s(384), s(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(s(384), s(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_c, s(192), 1)
        self.out_c = s(320) + 4 * s(384) + s(192)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                          self.branch_pool(_avg_pool(x))], 1)


class InceptionHeatmaps(nn.Module):
    """Inception3 through Mixed_7c, then `hm_conv` (1x1, no bias) to `maps` heatmaps."""

    def __init__(self, maps: int, width: float = 1.0):
        super().__init__()

        def s(c: int) -> int:
            return scaled(c, width)

        self.Conv2d_1a_3x3 = BasicConv2d(3, s(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(s(32), s(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(s(32), s(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(s(64), s(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(s(80), s(192), 3)
        self.Mixed_5b = InceptionA(s(192), 32, s)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_c, 64, s)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_c, 64, s)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_c, s)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_c, 128, s)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_c, 160, s)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_c, 160, s)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_c, 192, s)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_c, s)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_c, s)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_c, s)
        self.features = self.Mixed_7c.out_c
        self.hm_conv = nn.Conv2d(self.features, maps, 1, bias=False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] -> Mixed_7c's output."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hm_conv(self.trunk(x))
