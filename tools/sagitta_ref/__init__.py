"""PyTorch reference for sagitta's landmark models: the oracle the WGSL engine is tested against
(see SPEC-cervical.md for the contract). Its layers mirror the Rust crate's (PyTorch itself plays
the engine):

- ``ops``: one module per op family, the PyTorch twin of each WGSL kernel;
- ``nn``: network blocks built from torch modules (stacked hourglass);
- ``models``: whole models, one module per family, and the ``ARCHITECTURES`` registry;
- ``anatomy``: landmark names and groupings per family (pure data);
- ``measure``: clinical parameters from landmarks (pure Python);
- ``convert``: checkpoint (.pt) -> safetensors with the config in the metadata;
- ``st_io``: a byte-deterministic safetensors writer;
- ``testdata``: synthetic radiographs and the "peaked" random-weight recipe for fixtures.

``anatomy`` and ``measure`` do not import torch; the names below are loaded on first use.
"""

__all__ = ["CervicalModel", "paper_config", "small_config"]


def __getattr__(name):
    if name in __all__:
        from .models import cervical

        return getattr(cervical, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
