"""The lumbar layout (SPEC-lumbar.md, "Landmarks"): 24 levels C2..S1, four corners each (as, ps,
pi, ai), landmark 4v + c. Pure data (no torch); the Rust table is src/anatomy/lumbar.rs."""

from __future__ import annotations

LEVELS: tuple[str, ...] = tuple(
    [f"C{v}" for v in range(2, 8)] + [f"T{v}" for v in range(1, 13)]
    + [f"L{v}" for v in range(1, 6)] + ["S1"])
NUM_LEVELS = 24
assert len(LEVELS) == NUM_LEVELS
CORNERS: tuple[str, ...] = ("as", "ps", "pi", "ai")
LANDMARKS: tuple[str, ...] = tuple(f"{v}_{c}" for v in LEVELS for c in CORNERS)
NUM_LANDMARKS = 96
