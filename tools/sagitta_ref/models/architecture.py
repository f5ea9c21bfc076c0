"""What the registry holds for one model family (see models/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class Architecture:
    """One model family, keyed in ARCHITECTURES by its config's "arch".

    model: the torch module class, built as model(config);
    config_from_json: the "sagitta" metadata JSON text of a weights file -> config dict (checked);
    config_to_metadata: config dict -> the metadata entries that describe it ("sagitta": JSON);
    presets: named config builders (e.g. "paper", "small");
    training_only: key prefixes a training checkpoint may hold that inference never reads
    (torchvision Inception3's `AuxLogits.` and `fc.`): the converter drops them.
    """

    model: type[nn.Module]
    config_from_json: Callable[[str], dict]
    config_to_metadata: Callable[[dict], dict[str, str]]
    presets: dict[str, Callable[[], dict]] = field(default_factory=dict)
    training_only: tuple[str, ...] = ()
