"""The 18 whole-spine parameters from the 45 landmarks: a Python port of
src/measure/wholespine.rs (SPEC-wholespine.md, "Parameters (18)").

- coordinates in mm first (x * column_mm, y * row_mm) when a spacing is known;
- canonical frame: anterior +x (x mirrored when the summed x(anterior) - x(posterior) over the
  SPEC's nine endplate pairs is negative; zero is refused), superior -y (image y down);
- slope(P -> A) = atan2(A.y - P.y, A.x - P.x); tilt(P -> Q) = atan2(Q.x - P.x, P.y - Q.y);
- every angle wrapped to [-180, 180); PI = SS + PT; Barrey is None when x(HA) = x(S1_ps).
"""

from __future__ import annotations

import math

from ..anatomy.wholespine import FACING_PAIRS, LANDMARKS

PARAMETERS = ["PI", "SS", "PT", "LL", "SVA", "CL", "T1S", "cSVA", "GTK", "PTK", "MTK", "L4SL",
              "LPA", "SSA", "GT", "TPA", "Barrey", "OD-HA"]
UNITS = {name: "deg" for name in PARAMETERS} | {"SVA": "mm", "cSVA": "mm", "Barrey": "ratio"}


def wrap_deg(a: float) -> float:
    w = (a + 180.0) % 360.0 - 180.0
    return w - 360.0 if w >= 180.0 else w


def wholespine(points, spacing=None) -> dict:
    """points: 45 (x, y) in original pixels (SPEC order) or a {name: [x, y]} dict.
    spacing: (row_mm, column_mm) or None. Returns {name: value}, plus "_facing", "_unit"."""
    if isinstance(points, dict):
        points = [points[n] for n in LANDMARKS]
    row, col = (float(spacing[0]), float(spacing[1])) if spacing is not None else (1.0, 1.0)
    p = {n: (float(x) * col, float(y) * row) for n, (x, y) in zip(LANDMARKS, points)}
    xs = [q[0] for q in p.values()]
    ys = [q[1] for q in p.values()]
    zero = max(max(xs) - min(xs), max(ys) - min(ys)) * 1e-9
    amp = sum(p[a][0] - p[b][0] for a, b in FACING_PAIRS) / len(FACING_PAIRS)
    if abs(amp) <= zero:
        raise ValueError("ambiguous facing")
    facing = "right" if amp > 0 else "left"
    if facing == "left":
        p = {n: (-x, y) for n, (x, y) in p.items()}

    def slope(a, b):                      # from posterior a to anterior b
        return math.degrees(math.atan2(p[b][1] - p[a][1], p[b][0] - p[a][0]))

    def tilt(f, t):                       # from the upward vertical, + towards anterior
        return math.degrees(math.atan2(t[0] - f[0], f[1] - t[1]))

    def mid(a, b):
        return ((p[a][0] + p[b][0]) / 2, (p[a][1] + p[b][1]) / 2)

    s1m, ha = mid("S1_ps", "S1_as"), mid("FH1", "FH2")
    ss = wrap_deg(slope("S1_ps", "S1_as"))
    pt = wrap_deg(-tilt(ha, s1m))
    t1 = slope("T1_ps", "T1_as")
    t12 = slope("T12_pi", "T12_ai")
    c7_from_s1m = tilt(s1m, p["C7_c"])
    sva = p["C7_c"][0] - p["S1_ps"][0]
    sfd = ha[0] - p["S1_ps"][0]
    return {
        "PI": wrap_deg(ss + pt), "SS": ss, "PT": pt,
        "LL": wrap_deg(ss - slope("L1_ps", "L1_as")), "SVA": sva,
        "CL": wrap_deg(slope("C7_pi", "C7_ai") - slope("C2_pi", "C2_ai")), "T1S": wrap_deg(t1),
        "cSVA": p["C2_c"][0] - p["C7_ps"][0], "GTK": wrap_deg(t1 - t12),
        "PTK": wrap_deg(t1 - slope("T5_pi", "T5_ai")),
        "MTK": wrap_deg(slope("T5_ps", "T5_as") - t12),
        "L4SL": wrap_deg(ss - slope("L4_ps", "L4_as")),
        "LPA": wrap_deg(tilt(ha, p["L1_c"]) + pt), "SSA": wrap_deg(90.0 + ss - c7_from_s1m),
        "GT": wrap_deg(c7_from_s1m + pt), "TPA": wrap_deg(tilt(ha, p["T1_c"]) + pt),
        "Barrey": sva / sfd if abs(sfd) > zero else None,
        "OD-HA": wrap_deg(tilt(ha, p["C2_dens"])),
        "_facing": facing, "_unit": "mm" if spacing is not None else "px",
    }
