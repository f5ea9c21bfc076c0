"""The nine cervical parameters from the 29 landmarks: a Python port of src/measure/cervical.rs.

Same definitions as the Rust `measure::cervical` module (SPEC-cervical.md, "Parameters (9)"):
- coordinates are converted to mm first (x * column_mm, y * row_mm) when a spacing is known;
- canonical frame: anterior +x (x mirrored when the patient faces left, decided from the mean x of
  all anterior corners minus that of all posterior corners), superior -y (image y down);
- slope(P -> A) = atan2(A.y - P.y, A.x - P.x) in degrees; angle differences in (-180, 180];
- RJD > 0 when the C2 inferior endplate midpoint is below the McGregor line (PNS-OCC);
- CT > 0 when DENS is anterior of the vertical through the T1 superior endplate midpoint;
- CCA unsigned in [0, 180]; cSVA = x(C2 centroid) - x(C7_ps), horizontal.
"""

from __future__ import annotations

import math

from ..anatomy.cervical import LANDMARKS

PARAMETERS = ["C2-C7", "C2-C6", "C0-C2", "C7 slope", "T1 slope", "cSVA", "RJD", "CT", "CCA"]
UNITS = {"C2-C7": "deg", "C2-C6": "deg", "C0-C2": "deg", "C7 slope": "deg", "T1 slope": "deg",
         "cSVA": "mm", "RJD": "mm", "CT": "deg", "CCA": "deg"}
# The paper's external validation (79 images), median absolute error (SPEC, last section).
PAPER_MEDIAN_AE = {"T1 slope": 1.66, "C7 slope": 1.56, "C2-C7": 2.46, "C2-C6": 1.85,
                   "C0-C2": 1.25, "CT": 0.29, "CCA": 0.67, "cSVA": 0.55, "RJD": 0.47}

ANTERIOR = [0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23, 24]
POSTERIOR = [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22, 25]
C2, C6, C7 = 0, 16, 20
AS, PS, PI, AI = 0, 1, 2, 3
T1_AS, T1_PS, PNS, OCC, DENS = 24, 25, 26, 27, 28


def _norm_deg(a: float) -> float:
    w = (a + 180.0) % 360.0 - 180.0
    return w + 360.0 if w <= -180.0 else w


def cervical(points, spacing=None) -> dict:
    """points: 29 (x, y) in original pixels (SPEC order) or a {name: [x, y]} dict.
    spacing: (row_mm, column_mm) or None. Returns {name: value}, plus "_facing", "_unit"."""
    if isinstance(points, dict):
        points = [points[n] for n in LANDMARKS]
    if spacing is not None:
        row, col = float(spacing[0]), float(spacing[1])
    else:
        row = col = 1.0
    p = [(float(x) * col, float(y) * row) for x, y in points]
    xs = [q[0] for q in p]
    ys = [q[1] for q in p]
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    zero = extent * 1e-9
    amp = sum(p[i][0] for i in ANTERIOR) / 13 - sum(p[i][0] for i in POSTERIOR) / 13
    if amp > zero:
        facing = "right"
    elif amp < -zero:
        facing = "left"
    else:
        raise ValueError("ambiguous facing")
    if facing == "left":
        p = [(-x, y) for x, y in p]

    def slope(a, b):                      # from posterior a to anterior b
        return math.degrees(math.atan2(p[b][1] - p[a][1], p[b][0] - p[a][0]))

    def mid(a, b):
        return ((p[a][0] + p[b][0]) / 2, (p[a][1] + p[b][1]) / 2)

    def centroid(first):
        return (sum(p[first + i][0] for i in range(4)) / 4,
                sum(p[first + i][1] for i in range(4)) / 4)

    c2i = slope(C2 + PI, C2 + AI)
    c6i = slope(C6 + PI, C6 + AI)
    c7i = slope(C7 + PI, C7 + AI)
    c7s = slope(C7 + PS, C7 + AS)
    t1s = slope(T1_PS, T1_AS)
    mcg = slope(OCC, PNS)
    c2c = centroid(C2)
    sva = c2c[0] - p[C7 + PS][0]
    m2 = mid(C2 + PI, C2 + AI)
    dx, dy = p[PNS][0] - p[OCC][0], p[PNS][1] - p[OCC][1]
    if dx < 0:
        dx, dy = -dx, -dy
    ox, oy = m2[0] - p[OCC][0], m2[1] - p[OCC][1]
    rjd = (dx * oy - dy * ox) / math.hypot(dx, dy)
    t1m = mid(T1_PS, T1_AS)
    tdx, tdy = p[DENS][0] - t1m[0], p[DENS][1] - t1m[1]
    ct = math.degrees(math.atan2(tdx, -tdy))
    c7c = centroid(C7)
    ax, ay = p[OCC][0] - p[PNS][0], p[OCC][1] - p[PNS][1]
    bx, by = c7c[0] - p[PNS][0], c7c[1] - p[PNS][1]
    cca = math.degrees(math.atan2(abs(ax * by - ay * bx), ax * bx + ay * by))
    return {"C2-C7": _norm_deg(c7i - c2i), "C2-C6": _norm_deg(c6i - c2i),
            "C0-C2": _norm_deg(c2i - mcg), "C7 slope": c7s, "T1 slope": t1s, "cSVA": sva,
            "RJD": rjd, "CT": ct, "CCA": cca, "_facing": facing,
            "_unit": "mm" if spacing is not None else "px"}
