"""PyTorch reference for sagitta's cervical-spine landmark model.

The oracle the WGSL engine is tested against (see /work/shared/SPEC-cervical.md for the contract):

- ``hourglass``: stacked hourglass network (bearpaw/pytorch-pose structure, configurable).
- ``dsnt``: spatial softmax + DSNT expectation (dsntnn conventions).
- ``ops``: one plain function per WGSL kernel (the kernels' PyTorch twins).
- ``cervical``: the whole pipeline, one function per SPEC step, and the configs.
- ``convert``: checkpoint (.pt) -> safetensors with the config in the metadata.
- ``st_io``: a byte-deterministic safetensors writer.
- ``testdata``: synthetic radiographs and the "peaked" random-weight recipe for fixtures.
"""

from .cervical import CervicalModel, paper_config, small_config  # noqa: F401
