"""The 3 lumbar parameters from the present levels' corners: a Python port of
src/measure/lumbar.rs (SPEC-lumbar.md, "Parameters (3)").

- coordinates in mm first when a spacing is known; anterior +x (x mirrored when the summed
  as.x - ps.x + ai.x - pi.x over the present L1-L5, plus S1_as.x - S1_ps.x, is negative);
- slope(P -> A) = atan2(A.y - P.y, A.x - P.x); differences wrapped to [-180, 180);
- a value is None when a level it reads is absent; beside each signed value the paper's
  unsigned angle between the lines, min(|a| mod 180, 180 - |a| mod 180).
"""

from __future__ import annotations

import math

from ..anatomy.lumbar import CORNERS
from .wholespine import wrap_deg

PARAMETERS = ["L1-L5", "L1-S1", "SS"]
READ = ("L1", "L2", "L3", "L4", "L5", "S1")


def unsigned_line_angle(a: float) -> float:
    folded = abs(a) % 180.0
    return min(folded, 180.0 - folded)


def lumbar(levels: dict, spacing=None) -> dict:
    """levels: {level name: [4 (x, y) corners as, ps, pi, ai] in original pixels} for the present
    levels. spacing: (row_mm, column_mm) or None. Returns {name: value or None,
    name + " unsigned": value or None, "_facing": "left" / "right" / None}."""
    row, col = (float(spacing[0]), float(spacing[1])) if spacing is not None else (1.0, 1.0)
    p = {}
    for level in READ:
        if level in levels:
            corners = CORNERS[:2] if level == "S1" else CORNERS
            for c in corners:
                x, y = levels[level][CORNERS.index(c)]
                p[f"{level}_{c}"] = (float(x) * col, float(y) * row)
    out = {name: None for name in PARAMETERS}
    out |= {f"{name} unsigned": None for name in PARAMETERS}
    out["_facing"] = None
    if not p:
        return out
    xs = [q[0] for q in p.values()]
    ys = [q[1] for q in p.values()]
    zero = max(max(xs) - min(xs), max(ys) - min(ys)) * 1e-9
    pairs = [(f"{v}_{a}", f"{v}_{b}") for a, b in (("as", "ps"), ("ai", "pi")) for v in READ
             if not (v == "S1" and a == "ai") and f"{v}_{a}" in p]
    amp = sum(p[a][0] - p[b][0] for a, b in pairs) / len(pairs)
    if abs(amp) <= zero:
        raise ValueError("ambiguous facing")
    facing = "right" if amp > 0 else "left"
    if facing == "left":
        p = {n: (-x, y) for n, (x, y) in p.items()}

    def slope(a, b):
        if a not in p or b not in p:
            return None
        return math.degrees(math.atan2(p[b][1] - p[a][1], p[b][0] - p[a][0]))

    l1, l5, s1 = slope("L1_ps", "L1_as"), slope("L5_pi", "L5_ai"), slope("S1_ps", "S1_as")
    values = {
        "L1-L5": wrap_deg(l5 - l1) if l1 is not None and l5 is not None else None,
        "L1-S1": wrap_deg(s1 - l1) if l1 is not None and s1 is not None else None,
        "SS": wrap_deg(s1) if s1 is not None else None,
    }
    out |= values
    out |= {f"{name} unsigned": None if v is None else unsigned_line_angle(v)
            for name, v in values.items()}
    out["_facing"] = facing
    return out

