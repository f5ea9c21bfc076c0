"""Whole models, one module per family, and the registry the converter picks them from.

Adding a family: a model module here (the model class, its configs and its `ARCHITECTURE` entry),
an anatomy table (sagitta_ref/anatomy/), a measure module (sagitta_ref/measure/), and one line in
ARCHITECTURES below.
"""

from __future__ import annotations

from . import cervical, csm, lumbar, wholespine
from .architecture import Architecture

ARCHITECTURES: dict[str, Architecture] = {
    "cervical-hourglass-dsnt": cervical.ARCHITECTURE,
    "csm-vgg16": csm.ARCHITECTURE,
    "wholespine-cpn-dsnt": wholespine.ARCHITECTURE,
    lumbar.ARCH: lumbar.ARCHITECTURE,
}


class UnknownArchitecture(ValueError):
    pass


def architecture(arch) -> Architecture:
    """The registry entry for `arch` (a config's "arch"); the error lists the registered ones."""
    try:
        return ARCHITECTURES[arch]
    except (KeyError, TypeError):
        known = ", ".join(repr(a) for a in sorted(ARCHITECTURES))
        raise UnknownArchitecture(
            f"unknown arch {arch!r}; registered architectures: {known}") from None


def build_model(config: dict):
    """The model of config["arch"], built from `config`."""
    return architecture(config.get("arch")).model(config)
