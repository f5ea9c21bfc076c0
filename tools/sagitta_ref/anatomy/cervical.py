"""The cervical layout (SPEC-cervical.md, "Landmarks"): the 29 landmark names in SPEC order and
the 6 disc groups the boxes are drawn around. Pure data (no torch), shared by the model and
measure modules and by phantom.py; the Rust table is LANDMARK_NAMES in src/measure/cervical.rs.

Vertebral corners: `as` anterior-superior, `ps` posterior-superior, `pi` posterior-inferior,
`ai` anterior-inferior.
"""

from __future__ import annotations

LANDMARKS: tuple[str, ...] = tuple(
    ["C2_as", "C2_ps", "C2_pi", "C2_ai"]
    + [f"C{v}_{c}" for v in range(3, 8) for c in ("as", "ps", "pi", "ai")]
    + ["T1_as", "T1_ps", "PNS", "OCC", "DENS"]
)
NUM_LANDMARKS = 29
assert len(LANDMARKS) == NUM_LANDMARKS

# Disc k (C2-C3 .. C7-T1) is boxed around 4 landmarks: the upper vertebra's pi, ai and the lower
# vertebra's as, ps, i.e. indices 4k+2 .. 4k+5. Refiner k predicts them in this order.
DISCS: tuple[str, ...] = ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1")
NUM_DISCS = 6
assert len(DISCS) == NUM_DISCS


def disc_corner_indices(k: int) -> list[int]:
    """The landmark indices of disc k's group: [4k+2, 4k+3, 4k+4, 4k+5]."""
    return [4 * k + 2, 4 * k + 3, 4 * k + 4, 4 * k + 5]


DISC_GROUPS: tuple[tuple[int, ...], ...] = tuple(
    tuple(disc_corner_indices(k)) for k in range(NUM_DISCS))

# Landmarks taken from the global model; every other one comes from the refiner of its disc.
GLOBAL_ONLY: tuple[int, ...] = (0, 1, 26, 27, 28)
assert sorted(GLOBAL_ONLY + sum(DISC_GROUPS, ())) == list(range(NUM_LANDMARKS))
