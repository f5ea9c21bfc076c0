"""The cervical model: global stacked hourglass + 6 disc refiners, SPEC-cervical.md steps 1-6.

The config dict is stored as JSON in the weights file's safetensors metadata (key "sagitta").
The landmark layout (names, disc groups) comes from anatomy/cervical.py and reaches the box and
map-back ops as data.
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

from .. import ops
from ..anatomy.cervical import DISC_GROUPS, GLOBAL_ONLY, LANDMARKS, NUM_DISCS  # noqa: F401
from ..nn.hourglass import HourglassNet
from .architecture import Architecture

ARCH = "cervical-hourglass-dsnt"

# Optional config fields, ours where the paper is silent (absent = the paper's pipeline, so that
# files written before a field existed keep their meaning and bytes):
# - "crop_standardize" (bool): each ROIAlign crop is standardized again on its own (zero mean,
#   unit variance, ops.standardize_planes) before its refiner. Crops are cut from the image
#   standardized as a whole, so a disc under the shoulders reaches its refiner nearly flat.

_PAPER = {
    "format_version": 1,
    "arch": ARCH,
    "name": "cervical-paper",
    "input_size": 1024,
    "crop_size": 128,
    "box_margin": 0.7,
    "box_min_side": 32.0,
    "roi_sampling_ratio": 2,
    "bn_eps": 1e-5,
    "standardize_eps": 1e-6,
    "landmarks": list(LANDMARKS),
    "global": {"in_channels": 1, "stacks": 2, "blocks": 1, "features": 128, "depth": 4,
               "num_classes": 29},
    "refiner": {"in_channels": 1, "stacks": 1, "blocks": 1, "features": 128, "depth": 4,
                "num_classes": 4, "count": 6},
}


def paper_config() -> dict:
    """The paper-size model: 1024 input, 128 crops, 2-stack global, 6 single-stack refiners."""
    return copy.deepcopy(_PAPER)


def small_config() -> dict:
    """A tiny model with the same structure, for tests (128 input, 32 crops)."""
    cfg = paper_config()
    cfg["name"] = "cervical-small-test"
    cfg["input_size"] = 128
    cfg["crop_size"] = 32
    cfg["box_min_side"] = 8.0
    cfg["global"].update({"stacks": 2, "blocks": 1, "features": 16, "depth": 3})
    cfg["refiner"].update({"stacks": 1, "blocks": 1, "features": 8, "depth": 2})
    return cfg


def config_from_json(text: str) -> dict:
    """The config stored in a weights file's "sagitta" metadata entry."""
    config = json.loads(text)
    if config.get("arch") != ARCH:
        raise ValueError(f"not a {ARCH} config: arch {config.get('arch')!r}")
    if not isinstance(config.get("crop_standardize", False), bool):
        raise ValueError(f"crop_standardize must be true or false, got "
                         f"{config['crop_standardize']!r}")
    return config


def config_to_metadata(config: dict) -> dict[str, str]:
    """The metadata entries describing `config` in a weights file."""
    return {"sagitta": json.dumps(config)}


def _hourglass_net(net_cfg: dict, bn_eps: float, num_stacks: int, num_classes: int) -> HourglassNet:
    return HourglassNet(in_channels=net_cfg["in_channels"], num_stacks=num_stacks,
                        num_blocks=net_cfg["blocks"], num_classes=num_classes,
                        features=net_cfg["features"], depth=net_cfg["depth"], bn_eps=bn_eps)


class CervicalModel(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        if config.get("arch") != ARCH:
            raise ValueError(f"unknown arch {config.get('arch')!r}")
        if len(config["landmarks"]) != len(LANDMARKS) or \
                config["global"]["num_classes"] != len(LANDMARKS):
            raise ValueError("the cervical model has 29 landmarks")
        ref = config["refiner"]
        group = len(DISC_GROUPS[0])
        if ref["count"] != NUM_DISCS or ref["num_classes"] != group or ref["stacks"] != 1:
            raise ValueError("the cervical model has 6 single-stack refiners of 4 landmarks")
        self.config = copy.deepcopy(config)
        s = config["input_size"]
        self.input_hw = (s, s)
        # The layout as data for the box and map-back ops (refiner k predicts group k in order).
        self.groups = [list(g) for g in DISC_GROUPS]
        self.sources = ops.sources_from_groups(self.groups, len(LANDMARKS))
        eps = config["bn_eps"]
        g = config["global"]
        self.global_net = _hourglass_net(g, eps, g["stacks"], g["num_classes"])
        self.refiners = nn.ModuleList(
            [_hourglass_net(ref, eps, 1, group) for _ in range(ref["count"])])
        self.global_net.check_input_size(*self.input_hw)
        self.refiners[0].check_input_size(config["crop_size"], config["crop_size"])
        self.eval()  # BatchNorm uses running statistics

    # Step 1 -------------------------------------------------------------------------------------
    def preprocess(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.input_hw
        resized = ops.resize_bicubic(image, h, w)
        standardized = ops.standardize(resized, self.config["standardize_eps"])
        return resized, standardized

    # Step 2 -------------------------------------------------------------------------------------
    def global_landmarks(self, standardized: torch.Tensor):
        heatmaps = self.global_net(standardized[None, None])[-1]          # [1, 29, S/4, S/4]
        coords, var = ops.softmax_dsnt(heatmaps)
        return heatmaps[0], coords[0], var[0]

    # Step 3 -------------------------------------------------------------------------------------
    def boxes(self, coarse_norm: torch.Tensor) -> torch.Tensor:
        c = self.config
        return ops.boxes_from_points(coarse_norm, self.groups, self.input_hw, c["box_margin"],
                                     c["box_min_side"])

    # Step 4 -------------------------------------------------------------------------------------
    def crops(self, standardized: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        c = self.config
        crops = ops.roi_align_ours(standardized[None, None], boxes, c["crop_size"],
                                   c["roi_sampling_ratio"])                # [6, 1, C, C]
        if c.get("crop_standardize", False):
            crops = ops.standardize_planes(crops, c["standardize_eps"])
        return crops

    # Step 5 -------------------------------------------------------------------------------------
    def refine(self, crops: torch.Tensor):
        """Refiner k on crop k -> heatmaps [6, 4, C/4, C/4], coords and variances [6, 4, 2]."""
        heatmaps, coords, variances = [], [], []
        for k, refiner in enumerate(self.refiners):
            h = refiner(crops[k:k + 1])[-1]                                 # [1, 4, C/4, C/4]
            c, v = ops.softmax_dsnt(h)
            heatmaps.append(h[0])
            coords.append(c[0])
            variances.append(v[0])
        return torch.stack(heatmaps), torch.stack(coords), torch.stack(variances)

    # Step 6 -------------------------------------------------------------------------------------
    def assemble(self, coarse_norm: torch.Tensor, refined_norm: torch.Tensor,
                 boxes: torch.Tensor) -> torch.Tensor:
        """The 29 landmarks in input pixels: global ones from coarse, the rest from the refiners
        (refined_norm [6, 4, 2], row 4k+j = refiner k's point j)."""
        return ops.landmarks_to_input(coarse_norm, refined_norm, boxes, self.sources,
                                      self.input_hw)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict:
        """image [H0, W0] float32 original grey pixels -> dict of every intermediate."""
        h0, w0 = image.shape
        resized, standardized = self.preprocess(image.float())
        heatmaps, coarse_norm, coarse_var = self.global_landmarks(standardized)
        boxes = self.boxes(coarse_norm)
        crops = self.crops(standardized, boxes)
        refined_heatmaps, refined_norm, refined_var = self.refine(crops)
        landmarks_input = self.assemble(coarse_norm, refined_norm, boxes)
        landmarks = ops.input_to_original(landmarks_input, self.input_hw, w0, h0)
        return {
            "resized": resized,
            "standardized": standardized,
            "global_heatmaps": heatmaps,          # [29, S/4, S/4], last stack
            "coarse_norm": coarse_norm,
            "coarse_var": coarse_var,
            "boxes": boxes,
            "crops": crops,
            "refined_heatmaps": refined_heatmaps,  # [6, 4, C/4, C/4]
            "refined_norm": refined_norm,
            "refined_var": refined_var,
            "landmarks_input": landmarks_input,
            "landmarks": landmarks,
        }


ARCHITECTURE = Architecture(model=CervicalModel, config_from_json=config_from_json,
                            config_to_metadata=config_to_metadata,
                            presets={"paper": paper_config, "small": small_config})
