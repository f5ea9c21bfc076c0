"""How well the quality flags of `sagitta analyze` work, and the calibration of their thresholds.

    # phantoms no model was trained on: calibration (seeds 600 000+) and held-out (500 000+)
    python3 tools/make_heldout.py /tmp/calib --calibration
    python3 tools/make_heldout.py /tmp/heldout
    sagitta analyze /tmp/calib --out /tmp/calib_out --quiet
    sagitta analyze /tmp/heldout --out /tmp/heldout_out --quiet
    # choose the confidence thresholds on the calibration set (prints the grid and the choice)
    python3 tools/calibrate_quality.py /tmp/calib /tmp/calib_out --sweep
    # the flags as the engine set them, on the held-out set (the figures in README.md)
    python3 tools/calibrate_quality.py /tmp/heldout /tmp/heldout_out

A value is "wrong" when it is off by more than 5 deg (angles) or 3 mm (distances) from the value
computed from the ground-truth landmarks, and "right" within 2 deg / 1 mm. Printed per parameter
and overall: the share of wrong values flagged (recall, aim >= 95 %) and the share of right values
flagged (false flags, aim <= 10 %).

--sweep recomputes the four threshold-dependent rules (low landmark confidence, refiner/global
disagreement, low median confidence, standard error propagated from the heatmap spreads) from the records' landmarks for a grid of thresholds, keeping
every other reason the engine reported (plausible range, geometry, DICOM header; they do not
depend on the thresholds), exactly as src/measure/cervical_quality.rs combines them. --geometry
prints the spread of the vertebral ratios in the ground truth next to the engine's anatomical
limits.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref.anatomy.cervical import LANDMARKS  # noqa: E402
from sagitta_ref.measure import cervical as cp  # noqa: E402

WRONG = {"deg": 5.0, "mm": 3.0}
RIGHT = {"deg": 2.0, "mm": 1.0}
GROSS = {"deg": 10.0, "mm": 6.0}
THRESHOLD_REASONS = {"low_landmark_confidence", "refinement_disagreement", "image_low_confidence",
                     "uncertain_value"}

# The landmarks each parameter is computed from (src/measure/cervical_quality.rs).
C2, C6, C7 = 0, 16, 20
AS, PS, PI, AI = 0, 1, 2, 3
T1_AS, T1_PS, PNS, OCC, DENS = 24, 25, 26, 27, 28
USED = {
    "C2-C7": [C2 + PI, C2 + AI, C7 + PI, C7 + AI],
    "C2-C6": [C2 + PI, C2 + AI, C6 + PI, C6 + AI],
    "C0-C2": [C2 + PI, C2 + AI, OCC, PNS],
    "C7 slope": [C7 + PS, C7 + AS],
    "T1 slope": [T1_PS, T1_AS],
    "cSVA": [C2 + AS, C2 + PS, C2 + PI, C2 + AI, C7 + PS],
    "RJD": [C2 + PI, C2 + AI, OCC, PNS],
    "CT": [DENS, T1_PS, T1_AS],
    "CCA": [PNS, OCC, C7 + AS, C7 + PS, C7 + PI, C7 + AI],
}


def effective_confidences(conf: list) -> list:
    """A refined corner counts with the lowest confidence of its disc crop (4k+2 .. 4k+5)."""
    out = list(conf)
    for disc in range(6):
        members = range(2 + 4 * disc, 6 + 4 * disc)
        values = [conf[i] for i in members]
        lowest = None if any(v is None for v in values) else min(values)
        for i in members:
            out[i] = lowest
    return out


def median_width_px(points: np.ndarray) -> float:
    widths = []
    for v in range(1, 6):
        a, p, pi, ai = points[4 * v:4 * v + 4]
        widths.append(0.5 * (np.linalg.norm(a - p) + np.linalg.norm(ai - pi)))
    return float(np.median(widths))


def load(gt_dir: str, out_dir: str) -> list[dict]:
    """Per image: the truth values, the record's values, statuses, reasons and landmark data."""
    cases = []
    for gt_path in sorted(glob.glob(os.path.join(gt_dir, "*.json"))):
        gt = json.load(open(gt_path))
        if "landmarks" not in gt:
            continue
        stem = os.path.splitext(os.path.basename(gt_path))[0]
        rec_path = os.path.join(out_dir, stem + ".json")
        if not os.path.exists(rec_path):
            continue
        rec = json.load(open(rec_path))
        if rec.get("status") == "error":
            continue
        row_mm, col_mm = gt["pixel_spacing_mm"]
        truth = cp.cervical([gt["landmarks"][n] for n in LANDMARKS], (row_mm, col_mm))
        marks = rec["landmarks"]
        points = np.array([[m["x"], m["y"]] for m in marks], dtype=np.float64)
        case = {
            "stem": stem,
            "points": points,
            "confidence": [m["confidence"] for m in marks],
            "shift": [m.get("refinement_shift_px", 0.0) for m in marks],
            "params": {},
        }
        for p in rec["parameters"]:
            unit = p["unit"]
            value = p["value"]
            if unit == "px":
                value *= col_mm
                unit = "mm"
            se = p.get("standard_error")
            if se is not None and p["unit"] == "px":
                se *= col_mm
            case["params"][p["name"]] = {
                "error": abs(value - truth[p["name"]]),
                "standard_error": se,
                "unit": unit,
                "status": p["status"],
                "fixed_reasons": [r for r in p["reasons"] if r not in THRESHOLD_REASONS],
            }
        cases.append(case)
    return cases


def flags_for(case: dict, min_conf: float, max_shift: float, min_median: float,
              max_se: dict) -> dict:
    """The engine's rule with these thresholds: {parameter: flagged}."""
    if "effective" not in case:
        known = [c for c in case["confidence"] if c is not None]
        case["effective"] = effective_confidences(case["confidence"])
        case["median_confidence"] = float(np.median(known)) if known else None
        case["width_px"] = median_width_px(case["points"])
    eff = case["effective"]
    image_low = case["median_confidence"] is None or case["median_confidence"] < min_median
    limit = max_shift * case["width_px"]
    out = {}
    for name, p in case["params"].items():
        used = USED[name]
        low = any(eff[i] is None or eff[i] < min_conf for i in used)
        far = any(not math.isfinite(case["shift"][i]) or case["shift"][i] > limit for i in used)
        se = p["standard_error"]
        uncertain = se is None or se > max_se[name]
        out[name] = bool(p["fixed_reasons"]) or low or far or image_low or uncertain
    return out


def score(cases: list[dict], flagged_of) -> dict:
    """Recall on wrong values and false-flag rate on right values, per parameter and overall."""
    table = {}
    for name in cp.PARAMETERS:
        wrong = right = wrong_flagged = right_flagged = 0
        for case in cases:
            p = case["params"].get(name)
            if p is None:
                continue
            flagged = flagged_of(case)[name]
            if p["error"] > WRONG[p["unit"]]:
                wrong += 1
                wrong_flagged += flagged
            elif p["error"] <= RIGHT[p["unit"]]:
                right += 1
                right_flagged += flagged
        table[name] = (wrong, wrong_flagged, right, right_flagged)
    totals = tuple(sum(t[i] for t in table.values()) for i in range(4))
    table["all"] = totals
    return table


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:5.1f} %" if b else "   -   "


def print_table(table: dict) -> None:
    print(f"{'parameter':10s} {'wrong':>6s} {'flagged':>9s} {'right':>6s} {'flagged':>9s}")
    for name, (w, wf, r, rf) in table.items():
        print(f"{name:10s} {w:6d} {pct(wf, w):>9s} {r:6d} {pct(rf, r):>9s}")


def geometry(gt_dir: str) -> None:
    """The spread of each ratio the geometric checks use, over the ground truth."""
    stats: dict[str, list[float]] = {k: [] for k in
                                     ["aspect C2", "aspect C3-C7", "width/median", "height/median",
                                      "T1/C7 width", "disc gap/median height"]}
    for gt_path in sorted(glob.glob(os.path.join(gt_dir, "*.json"))):
        gt = json.load(open(gt_path))
        if "landmarks" not in gt:
            continue
        row_mm, col_mm = gt["pixel_spacing_mm"]
        pts = np.array([[gt["landmarks"][n][0] * col_mm, gt["landmarks"][n][1] * row_mm]
                        for n in LANDMARKS])
        widths, heights, sup, inf = [], [], [], []
        for v in range(6):
            a, p, pi, ai = pts[4 * v:4 * v + 4]
            widths.append(0.5 * (np.linalg.norm(a - p) + np.linalg.norm(ai - pi)))
            heights.append(0.5 * (np.linalg.norm(a - ai) + np.linalg.norm(p - pi)))
            sup.append((a + p) / 2)
            inf.append((ai + pi) / 2)
        mw, mh = np.median(widths[1:]), np.median(heights[1:])
        stats["aspect C2"].append(heights[0] / widths[0])
        stats["aspect C3-C7"] += [heights[v] / widths[v] for v in range(1, 6)]
        stats["width/median"] += [w / mw for w in widths]
        stats["height/median"] += [h / mh for h in heights[1:]]
        stats["T1/C7 width"].append(np.linalg.norm(pts[24] - pts[25]) / np.linalg.norm(pts[22] - pts[23]))
        sup.append((pts[24] + pts[25]) / 2)
        for v in range(6):
            axis = (inf[v] - sup[v]) / np.linalg.norm(inf[v] - sup[v])
            stats["disc gap/median height"].append(float(np.dot(sup[v + 1] - inf[v], axis) / mh))
    print("ground-truth spread of the geometric ratios (min / median / max):")
    for k, v in stats.items():
        v = np.array(v)
        print(f"  {k:24s} {v.min():6.3f} {np.median(v):6.3f} {v.max():6.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt_dir")
    ap.add_argument("records_dir")
    ap.add_argument("--sweep", action="store_true", help="choose the thresholds on this set")
    ap.add_argument("--geometry", action="store_true", help="print the ground truth's ratios")
    ap.add_argument("--max-false-flags", type=float, default=0.10,
                    help="choose the highest recall whose false-flag share stays below this")
    ap.add_argument("--min-recall", type=float, default=None,
                    help="instead: the fewest false flags whose recall reaches this")
    args = ap.parse_args(argv)
    if args.geometry:
        geometry(args.gt_dir)
    cases = load(args.gt_dir, args.records_dir)
    print(f"{len(cases)} analysed images")
    print("\nflags as the engine set them:")
    print_table(score(cases, lambda c: {n: p["status"] != "ok" for n, p in c["params"].items()}))
    gross = [(p["status"] != "ok") for c in cases for p in c["params"].values()
             if p["error"] > GROSS[p["unit"]]]
    print(f"grossly wrong (> {GROSS['deg']:g} deg / {GROSS['mm']:g} mm): {sum(gross)} of "
          f"{len(gross)} flagged ({pct(sum(gross), len(gross)).strip()})")
    if not args.sweep:
        return 0
    print("\nsweep: min landmark confidence and max refinement shift / median width for all "
          "values; per parameter the largest standard error whose false flags stay within the "
          "limit (min median confidence 0.2)")
    se_grid = [2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 1e9]
    best = None
    for min_conf, max_shift, per_limit in [(c, m, p) for c in [0.0, 0.02, 0.05, 0.1]
                                           for m in [0.5, 1e9]
                                           for p in [1.0, 1.5, 2.0]]:
        if True:
            # Each parameter's own false-flag share may exceed or undercut the overall target by
            # per_limit: the overall share is what the choice is held to.
            max_se = {}
            for name in cp.PARAMETERS:
                choice = None
                for limit in se_grid:
                    trial = {n: 1e9 for n in cp.PARAMETERS}
                    trial[name] = limit
                    flags = {id(c): flags_for(c, min_conf, max_shift, 0.2, trial) for c in cases}
                    w, wf, r, rf = score(cases, lambda c: flags[id(c)])[name]
                    recall = wf / w if w else 1.0
                    false = rf / r if r else 0.0
                    if args.min_recall is None:
                        key = (false <= args.max_false_flags * per_limit, recall, limit)
                    else:
                        key = (recall >= args.min_recall * min(1.0, per_limit), -false, limit)
                    if choice is None or key > choice[0]:
                        choice = (key, limit)
                max_se[name] = choice[1]
            flags = {id(c): flags_for(c, min_conf, max_shift, 0.2, max_se) for c in cases}
            w, wf, r, rf = score(cases, lambda c: flags[id(c)])["all"]
            recall = wf / w if w else 1.0
            false = rf / r if r else 0.0
            print(f"  {min_conf:4.2f} {max_shift:6.1f} x{per_limit:4.2f}: recall {100 * recall:5.1f} % ({wf}/{w}), "
                  f"false {100 * false:5.1f} % ({rf}/{r}); standard errors "
                  + ", ".join(f"{n} {v:g}" for n, v in max_se.items()))
            if args.min_recall is None:
                key = (false <= args.max_false_flags, recall, -false)
            else:
                key = (recall >= args.min_recall, -false, recall)
            if best is None or key > best[0]:
                best = (key, (min_conf, max_shift, 0.2, max_se))
    min_conf, max_shift, min_median, max_se = best[1]
    goal = (f"highest recall with false flags <= {100 * args.max_false_flags:.0f} %"
            if args.min_recall is None else
            f"fewest false flags with recall >= {100 * args.min_recall:.0f} %")
    print(f"\nchosen ({goal}): "
          f"min_landmark_confidence {min_conf}, max_refinement_shift {max_shift}, "
          f"min_median_confidence {min_median}")
    print("max_standard_error: [" + ", ".join(f"{max_se[n]:.1f}" for n in cp.PARAMETERS) + "]")
    flags = {id(c): flags_for(c, *best[1]) for c in cases}
    print_table(score(cases, lambda c: flags[id(c)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
