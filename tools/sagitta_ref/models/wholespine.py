"""The whole-spine model of SPEC-wholespine.md (paper 001): 45 landmarks on a whole-spine lateral
radiograph from a two-stage residual network (CPN: GlobalNet with Add, RefineNet with Concatenate)
with DSNT on the stage-2 heatmaps, an ensemble of members averaged in normalized coordinates.

Keys follow the SPEC: `members.{m}.s1.enc.{l}`, `members.{m}.s1.dec.{l}`, `members.{m}.s1.head`,
`members.{m}.s2.lat.{l}.{k}`, `members.{m}.s2.fuse.{0,1}`, `members.{m}.s2.head`, each a
pre-activation basic block with `bn1`, `conv1`, `bn2`, `conv2` and, when the channels or the
stride change, `skip`. Stage 1's head is trained but off the inference path. The config (stored as
JSON in the weights file's "sagitta" metadata entry) sets the input size, the level widths, the
lateral and fuse widths and the number of members, so that a small model of the same structure
exists for tests.
"""

from __future__ import annotations

import copy
import json

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..ops.map_back import input_to_original, norm_to_input
from .architecture import Architecture

ARCH = "wholespine-cpn-dsnt"
LANDMARK_COUNT = 45

_PAPER = {
    "format_version": 1,
    "arch": ARCH,
    "name": "wholespine-paper",
    "input_height": 864,
    "input_width": 480,
    "widths": [16, 32, 64, 128, 256, 256],
    "lateral": 32,
    "fuse": [32, 16],
    "landmarks": LANDMARK_COUNT,
    "members": 2,
    "bn_eps": 1e-5,
    "standardize_eps": 1e-6,
    "not_for_clinical_use": True,
}


def paper_config() -> dict:
    """The SPEC's network: 864x480 input, widths 16..256, two members."""
    return copy.deepcopy(_PAPER)


def small_config() -> dict:
    """The same structure at a 96x64 input with narrow levels, for tests."""
    cfg = paper_config()
    cfg.update({"name": "wholespine-small-test", "input_height": 96, "input_width": 64,
                "widths": [4, 6, 8, 8, 12, 12], "lateral": 4, "fuse": [6, 4]})
    return cfg


def check_config(config: dict) -> None:
    if config.get("arch") != ARCH:
        raise ValueError(f"not a {ARCH} config: arch {config.get('arch')!r}")
    if config.get("format_version") != 1:
        raise ValueError(f"format_version {config.get('format_version')!r}, expected 1")
    widths = config["widths"]
    if len(widths) != 6 or not all(isinstance(w, int) and 1 <= w <= 4096 for w in widths):
        raise ValueError(f"widths {widths!r}: six level widths in 1..4096")
    unit = 2 ** (len(widths) - 1)
    for key in ("input_height", "input_width"):
        v = config[key]
        if not (isinstance(v, int) and unit <= v <= 8192 and v % unit == 0):
            raise ValueError(f"{key} {v!r}: a multiple of {unit} in {unit}..8192 (five halvings)")
    for key in ("lateral", "landmarks", "members"):
        if not (isinstance(config[key], int) and 1 <= config[key] <= 4096):
            raise ValueError(f"{key} {config[key]!r} outside 1..4096")
    if config["landmarks"] != LANDMARK_COUNT:
        raise ValueError(f"landmarks {config['landmarks']}: the SPEC has {LANDMARK_COUNT}")
    if len(config["fuse"]) != 2 or not all(isinstance(f, int) and 1 <= f <= 4096
                                           for f in config["fuse"]):
        raise ValueError(f"fuse {config['fuse']!r}: two widths in 1..4096")
    if not isinstance(config.get("not_for_clinical_use"), bool):
        raise ValueError("not_for_clinical_use must be true or false")


def config_from_json(text: str) -> dict:
    config = json.loads(text)
    check_config(config)
    return config


def config_to_metadata(config: dict) -> dict[str, str]:
    check_config(config)
    return {"sagitta": json.dumps(config)}


def up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    """RB(a -> b, s): y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + skip(x), conv1 3x3 stride s,
    conv2 3x3, padding 1, biases; skip a 1x1 conv (stride s, bias) unless a = b and s = 1."""

    def __init__(self, a: int, b: int, stride: int = 1, bn_eps: float = 1e-5):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(a, eps=bn_eps)
        self.conv1 = nn.Conv2d(a, b, 3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(b, eps=bn_eps)
        self.conv2 = nn.Conv2d(b, b, 3, padding=1)
        self.skip = nn.Conv2d(a, b, 1, stride=stride) if (a != b or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.skip(x) if self.skip is not None else x)


class _Stage(nn.Module):
    pass


class Member(nn.Module):
    """One ensemble member: stage 1 (encoder, top-down decoder, head) and stage 2 (laterals, fuse,
    head) as the SPEC's "Network" section."""

    def __init__(self, config: dict):
        super().__init__()
        w, eps, k = config["widths"], config["bn_eps"], config["landmarks"]
        self.s1 = _Stage()
        self.s1.enc = nn.ModuleList([ResBlock(1, w[0], 1, eps)] +
                                    [ResBlock(w[i - 1], w[i], 2, eps) for i in range(1, 6)])
        self.s1.dec = nn.ModuleList([ResBlock(w[i + 1], w[i], 1, eps) for i in range(5)])
        self.s1.head = ResBlock(w[0], k, 1, eps)
        self.s2 = _Stage()
        lat = config["lateral"]
        self.s2.lat = nn.ModuleDict({
            str(level): nn.ModuleList([ResBlock(w[level], w[level] if j < level - 1 else lat, 1,
                                                eps) for j in range(level)])
            for level in range(1, 5)})
        f0, f1 = config["fuse"]
        self.s2.fuse = nn.ModuleList([ResBlock(4 * lat, f0, 1, eps), ResBlock(f0, f1, 1, eps)])
        self.s2.head = ResBlock(f1 + w[0], k, 1, eps)

    def stage1(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The top-down maps t0..t5."""
        e = []
        for block in self.s1.enc:
            x = block(x)
            e.append(x)
        t = [None] * 6
        t[5] = e[5]
        for level in range(4, -1, -1):
            t[level] = e[level] + up(self.s1.dec[level](t[level + 1]), e[level].shape[-2:])
        return t

    def stage1_logits(self, t: list[torch.Tensor]) -> torch.Tensor:
        """Stage 1's heatmaps (training only)."""
        return self.s1.head(t[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] standardized -> stage-2 logits [N, 45, H, W]."""
        t = self.stage1(x)
        r = {}
        for level in range(1, 5):
            h = t[level]
            for block in self.s2.lat[str(level)]:
                h = block(h)
            r[level] = h
        size1 = t[1].shape[-2:]
        c1 = torch.cat([r[1]] + [up(r[level], size1) for level in range(2, 5)], 1)
        f = self.s2.fuse[1](self.s2.fuse[0](c1))
        c0 = torch.cat([up(f, t[0].shape[-2:]), t[0]], 1)
        return self.s2.head(c0)


class WholeSpineModel(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        check_config(config)
        self.config = copy.deepcopy(config)
        self.members = nn.ModuleList([Member(config) for _ in range(config["members"])])
        self.eval()

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.config["input_height"], self.config["input_width"]

    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.input_hw
        resized = ops.resize_bicubic(image.float(), h, w)
        standardized = ops.standardize(resized, self.config["standardize_eps"])
        return resized, standardized

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict:
        """image [H0, W0] grey pixels -> every intermediate and the 45 landmarks [45, 4]
        (x, y, sd_x, sd_y) in original pixels."""
        h0, w0 = image.shape
        resized, standardized = self.preprocess(image)
        x = standardized[None, None]
        rows, logits = [], []
        for member in self.members:
            heatmaps = member(x)
            logits.append(heatmaps)
            coords, var = ops.softmax_dsnt(heatmaps)                  # [1, 45, 2] each
            rows.append(torch.cat([coords, var], -1)[0])              # [45, 4]
        member_rows = torch.cat(rows, 0)                              # [M * 45, 4]
        norm = ops.ensemble_mean(member_rows, len(self.members))      # [45, 4]
        hw = self.input_hw
        points_input = norm_to_input(norm[:, :2], hw)
        half = torch.tensor([hw[1], hw[0]], dtype=norm.dtype) / 2.0
        sd_input = norm[:, 2:].sqrt() * half
        points = input_to_original(points_input, hw, w0, h0)
        sd = sd_input * torch.tensor([w0 / hw[1], h0 / hw[0]], dtype=norm.dtype)
        return {"resized": resized, "standardized": standardized,
                "logits": torch.cat(logits, 1), "member_rows": member_rows, "norm": norm,
                "landmarks_input": torch.cat([points_input, sd_input], -1),
                "landmarks": torch.cat([points, sd], -1)}


ARCHITECTURE = Architecture(model=WholeSpineModel, config_from_json=config_from_json,
                            config_to_metadata=config_to_metadata,
                            presets={"paper": paper_config, "small": small_config})
