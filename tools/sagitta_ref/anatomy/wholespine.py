"""The whole-spine layout (SPEC-wholespine.md, "Landmarks"): the 45 landmark names in SPEC order.
Pure data (no torch); the Rust table is LANDMARK_NAMES in src/anatomy/wholespine.rs."""

from __future__ import annotations

CENTRES: tuple[str, ...] = tuple(
    [f"C{v}_c" for v in range(2, 8)] + [f"T{v}_c" for v in range(1, 13)]
    + [f"L{v}_c" for v in range(1, 6)])

LANDMARKS: tuple[str, ...] = (
    "C2_dens", "C2_ai", "C2_pi", "C7_ai", "C7_ps", "C7_pi", "T1_as", "T1_ps",
    "T5_as", "T5_ps", "T5_pi", "T5_ai", "T12_ai", "T12_pi", "L1_as", "L1_ps", "L4_as", "L4_ps",
    "S1_as", "S1_ps", "FH1", "FH2") + CENTRES
NUM_LANDMARKS = 45
assert len(LANDMARKS) == NUM_LANDMARKS

# The (anterior, posterior) pairs whose x difference decides the facing.
FACING_PAIRS: tuple[tuple[str, str], ...] = (
    ("C2_ai", "C2_pi"), ("C7_ai", "C7_pi"), ("T1_as", "T1_ps"), ("T5_as", "T5_ps"),
    ("T5_ai", "T5_pi"), ("T12_ai", "T12_pi"), ("L1_as", "L1_ps"), ("L4_as", "L4_ps"),
    ("S1_as", "S1_ps"))
