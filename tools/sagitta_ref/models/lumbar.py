"""The lumbar 2-step model of SPEC-lumbar.md (papers 002/004): level presence from a ResNet50
(`identify.`), the 96 corners by DSNT from an Inception3 + 1x1 heatmap conv (`locate.`), then each
level's corners refined on its own 512x512 crop by a second Inception3 (`refine.`) and mapped back.

Keys are torchvision's under the three prefixes (nn/resnet.py, nn/inception.py). The config (JSON
in the weights file's "sagitta" metadata entry) holds the SPEC's fields (`input_size`,
`crop_size`, `box_scale`, `min_box`, `threshold`, `input_mean`, `input_std`) and a width
multiplier per network (1 = the paper's torchvision networks), so that a small model of the same
structure exists for tests. Every level is refined (the engine does the same); absent levels'
results are computed and not reported.
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

from .. import ops
from ..anatomy.lumbar import NUM_LANDMARKS, NUM_LEVELS
from ..nn.inception import InceptionHeatmaps
from ..nn.resnet import RESNET50_BLOCKS, ResNet50
from ..ops.map_back import norm_to_input
from .architecture import Architecture

ARCH = "lumbar-resnet50-inception3-dsnt"
CORNERS = 4

_PAPER = {
    "format_version": 1,
    "arch": ARCH,
    "name": "lumbar-paper",
    "input_size": 1024,
    "crop_size": 512,
    "box_scale": 1.7,
    "min_box": 16.0,
    "threshold": 0.5,
    "input_mean": [0.0, 0.0, 0.0],
    "input_std": [1.0, 1.0, 1.0],
    "identify_width": 1.0,
    "identify_blocks": list(RESNET50_BLOCKS),
    "locate_width": 1.0,
    "refine_width": 1.0,
    "not_for_clinical_use": True,
}


def paper_config() -> dict:
    """The SPEC's networks: resnet50 and two Inception3 at full width, 1024 input, 512 crops."""
    return copy.deepcopy(_PAPER)


def small_config() -> dict:
    """The same structure at 1/16 width, a 192 input and 128 crops, for tests."""
    cfg = paper_config()
    cfg.update({"name": "lumbar-small-test", "input_size": 192, "crop_size": 128,
                "identify_width": 1 / 16, "identify_blocks": [1, 2, 1, 1],
                "locate_width": 1 / 16, "refine_width": 1 / 16, "min_box": 4.0})
    return cfg


def check_config(config: dict) -> None:
    if config.get("arch") != ARCH:
        raise ValueError(f"not a {ARCH} config: arch {config.get('arch')!r}")
    if config.get("format_version") != 1:
        raise ValueError(f"format_version {config.get('format_version')!r}, expected 1")
    # Inception3 needs 75 px (its unpadded reductions) to keep a 1x1 map at the end.
    for key in ("input_size", "crop_size"):
        v = config[key]
        if not (isinstance(v, int) and 75 <= v <= 4096):
            raise ValueError(f"{key} {v!r} outside 75..4096")
    for key in ("identify_width", "locate_width", "refine_width"):
        if not (0 < config[key] <= 4):
            raise ValueError(f"{key} {config[key]!r} outside (0, 4]")
    blocks = config["identify_blocks"]
    if len(blocks) != 4 or not all(isinstance(b, int) and 1 <= b <= 64 for b in blocks):
        raise ValueError(f"identify_blocks {blocks!r}: four counts in 1..64")
    if not (1 <= config["box_scale"] <= 10):
        raise ValueError(f"box_scale {config['box_scale']!r} outside [1, 10]")
    if not (0 < config["min_box"] <= 4096):
        raise ValueError(f"min_box {config['min_box']!r} outside (0, 4096]")
    if not 0 <= config["threshold"] <= 1:
        raise ValueError("threshold outside [0, 1]")
    for key in ("input_mean", "input_std"):
        if len(config[key]) != 3:
            raise ValueError(f"{key} needs 3 values")
    if not all(0 < s <= 1000 for s in config["input_std"]):
        raise ValueError("input_std must be in (0, 1000]")
    if not isinstance(config.get("not_for_clinical_use"), bool):
        raise ValueError("not_for_clinical_use must be true or false")


def config_from_json(text: str) -> dict:
    config = json.loads(text)
    check_config(config)
    return config


def config_to_metadata(config: dict) -> dict[str, str]:
    check_config(config)
    return {"sagitta": json.dumps(config)}


class LumbarModel(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        check_config(config)
        self.config = copy.deepcopy(config)
        self.identify = ResNet50(NUM_LEVELS, config["identify_width"], config["identify_blocks"])
        self.locate = InceptionHeatmaps(NUM_LANDMARKS, config["locate_width"])
        self.refine = InceptionHeatmaps(CORNERS, config["refine_width"])
        self.eval()

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        return ops.channel_affine_expand(x, self.config["input_mean"], self.config["input_std"])

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict:
        """image [H0, W0] grey pixels -> every intermediate, the presence probabilities [24] and
        the 96 corners [96, 4] (x, y, sd_x, sd_y) in original pixels, refined."""
        c = self.config
        h0, w0 = image.shape
        s = c["input_size"]
        image = image.float()
        resized = ops.resize_bicubic(image, s, s)
        low, high = resized.min(), resized.max()
        normalized = ops.minmax_normalize(resized)
        x = self._expand(normalized[None, None])                            # [1, 3, S, S]
        presence = torch.sigmoid(self.identify(x))[0]                       # [24]
        locate_heatmaps = self.locate(x)                                    # [1, 96, M, M]
        coarse_xy, coarse_var = ops.softmax_dsnt(locate_heatmaps)           # [1, 96, 2] each
        coarse_rows = torch.cat([coarse_xy, coarse_var], -1)[0]             # [96, 4]
        coarse_px = norm_to_input(coarse_rows[:, :2], (h0, w0))              # step 4
        half = torch.tensor([w0, h0], dtype=torch.float32, device=image.device) / 2
        coarse = torch.cat([coarse_px, coarse_rows[:, 2:].sqrt() * half], -1)
        groups = [list(range(CORNERS * v, CORNERS * v + CORNERS)) for v in range(NUM_LEVELS)]
        boxes = ops.boxes_about_mean(coarse_rows[:, :2], groups, (h0, w0), c["box_scale"] - 1.0,
                                     c["min_box"])
        # Step 6 reads the original image through step 1's [0, 1] map.
        original01 = (image - low) / (high - low) if high > low else torch.zeros_like(image)
        k = c["crop_size"]
        crops = ops.grid_sample_crops(original01[None, None], boxes, k, k)    # [24, 1, K, K]
        refined_xy, refined_var = ops.softmax_dsnt(self.refine(self._expand(crops)))
        refined_rows = torch.cat([refined_xy, refined_var], -1).reshape(NUM_LANDMARKS, 4)
        box_of = boxes.repeat_interleave(CORNERS, 0)                        # [96, 4]
        centre = (box_of[:, :2] + box_of[:, 2:]) / 2
        half_side = (box_of[:, 2:] - box_of[:, :2]) / 2
        points = centre + refined_rows[:, :2] * half_side                   # step 8
        sd = refined_rows[:, 2:].sqrt() * half_side
        return {"resized": resized, "normalized": normalized, "presence": presence,
                "locate_heatmaps": locate_heatmaps, "coarse_rows": coarse_rows, "coarse": coarse, "boxes": boxes, "crops": crops,
                "refined_rows": refined_rows, "landmarks": torch.cat([points, sd], -1)}


ARCHITECTURE = Architecture(model=LumbarModel, config_from_json=config_from_json,
                            config_to_metadata=config_to_metadata,
                            presets={"paper": paper_config, "small": small_config},
                            training_only=tuple(f"{net}.{head}." for net in ("locate", "refine")
                                                for head in ("AuxLogits", "fc")))
