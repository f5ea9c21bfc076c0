"""The CSM classifier of SPEC-csm.md: one lateral cervical radiograph -> p(CSM).

torchvision's vgg16 layout and key names (`features.{0,2,5,...,28}`, `classifier.{0,2,4}`) with
a global average pool, built from a config whose `width` scales every stage's channels
(64, 128, 256, 512, 512) * width, so a small model with the same structure exists for tests, and
whose `fc` lists the hidden sizes of the classifier (128 and 64 in the paper). The forward pass:
area resize to `input_size`, min-max to [0, 1], one grey channel to three by (x - mean) / std,
the network, sigmoid. The config is stored as JSON in the weights file's metadata ("sagitta").
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

from .. import ops
from .architecture import Architecture

ARCH = "csm-vgg16"

# VGG16: convs per stage and each stage's channels at width 1.
STAGES = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

_PAPER = {
    "format_version": 1,
    "arch": ARCH,
    "name": "csm-paper",
    "input_size": 224,
    "width": 1.0,
    "fc": [128, 64],
    "input_mean": list(IMAGENET_MEAN),
    "input_std": list(IMAGENET_STD),
    "threshold": 0.5,
    "not_for_clinical_use": True,
}


def paper_config() -> dict:
    """The paper's VGG16 (224 input, full width, FC 128 and 64)."""
    return copy.deepcopy(_PAPER)


def small_config() -> dict:
    """Same structure at 1/8 width and a 64 px input, for tests."""
    cfg = paper_config()
    cfg.update({"name": "csm-small-test", "input_size": 64, "width": 0.125, "fc": [16, 8]})
    return cfg


def stage_channels(width: float) -> list[int]:
    """Each stage's channels: round(c * width), at least 1."""
    return [max(1, int(round(c * width))) for _, c in STAGES]


def feature_layers(width: float) -> list[tuple[int, int, int]]:
    """(features index, in channels, out channels) of the 13 convs in torchvision's numbering
    (conv, ReLU, ..., max-pool per stage)."""
    out, index, in_c = [], 0, 3
    for (convs, _), c in zip(STAGES, stage_channels(width)):
        for _ in range(convs):
            out.append((index, in_c, c))
            in_c = c
            index += 2
        index += 1  # the stage's max-pool
    return out


def check_config(config: dict) -> None:
    if config.get("arch") != ARCH:
        raise ValueError(f"not a {ARCH} config: arch {config.get('arch')!r}")
    if config.get("format_version") != 1:
        raise ValueError(f"format_version {config.get('format_version')!r}, expected 1")
    s = config["input_size"]
    if not (isinstance(s, int) and 32 <= s <= 4096 and s % 32 == 0):
        raise ValueError(f"input_size {s!r}: a multiple of 32 in 32..4096 (five 2x2 pools)")
    if not (0 < config["width"] <= 4):
        raise ValueError(f"width {config['width']!r} outside (0, 4]")
    if len(config["fc"]) > 8 or not all(isinstance(f, int) and 1 <= f <= 4096
                                         for f in config["fc"]):
        raise ValueError(f"fc {config['fc']!r}: up to 8 hidden sizes in 1..4096")
    for key in ("input_mean", "input_std"):
        if len(config[key]) != 3:
            raise ValueError(f"{key} needs 3 values")
    if not all(0 < s <= 1000 for s in config["input_std"]):
        raise ValueError("input_std must be in (0, 1000]")
    if not isinstance(config.get("not_for_clinical_use"), bool):
        raise ValueError("not_for_clinical_use must be true or false")
    if not 0 <= config["threshold"] <= 1:
        raise ValueError("threshold outside [0, 1]")


def config_from_json(text: str) -> dict:
    """The config stored in a weights file's "sagitta" metadata entry."""
    config = json.loads(text)
    check_config(config)
    return config


def config_to_metadata(config: dict) -> dict[str, str]:
    check_config(config)
    return {"sagitta": json.dumps(config)}


class CsmModel(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        check_config(config)
        self.config = copy.deepcopy(config)
        layers: list[nn.Module] = []
        convs = iter(feature_layers(config["width"]))
        for n, _ in STAGES:
            for _ in range(n):
                _, in_c, out_c = next(convs)
                layers += [nn.Conv2d(in_c, out_c, 3, padding=1), nn.ReLU(inplace=False)]
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        sizes = [stage_channels(config["width"])[-1], *config["fc"], 1]
        head: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            head.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                head.append(nn.ReLU(inplace=False))
        self.classifier = nn.Sequential(*head)
        self.eval()

    def preprocess(self, image: torch.Tensor):
        s = self.config["input_size"]
        resized = ops.resize_area(image.float(), s, s)[None, None]          # [1, 1, S, S]
        normalized = ops.minmax_normalize(resized)
        expanded = ops.channel_affine_expand(normalized, self.config["input_mean"],
                                             self.config["input_std"])    # [1, 3, S, S]
        return resized, normalized, expanded

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] -> logits [N, 1]."""
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict:
        """image [H0, W0] float32 grey pixels -> every intermediate and p."""
        resized, normalized, expanded = self.preprocess(image)
        logit = self.network(expanded)
        p = torch.sigmoid(logit)
        return {"resized": resized, "normalized": normalized, "expanded": expanded,
                "logit": logit, "p": p}


ARCHITECTURE = Architecture(model=CsmModel, config_from_json=config_from_json,
                            config_to_metadata=config_to_metadata,
                            presets={"paper": paper_config, "small": small_config})
