"""Accuracy of the lumbar model on labelled phantoms, beside the paper's numbers (SPEC-lumbar.md,
"What the paper reports").

    python3 tools/make_heldout_lumbar.py /tmp/lu_heldout --dicom
    target/release/sagitta analyze /tmp/lu_heldout --model lumbar --out /tmp/lu_engine -q
    python3 tools/evaluate_lumbar.py /tmp/lu_heldout /tmp/lu_engine \
        --torch weights/lumbar_default.safetensors [--markdown] [--json OUT.json]

GT_DIR holds tools/phantom_lumbar.py phantoms: `<stem>.json` with "image", "present_levels" and
"landmarks" {"L1_as": [x, y], ...} (present levels only; original pixels, centre of the top-left
pixel at (0, 0)). Engine records (`sagitta analyze --out`): the "lumbar" block's "levels" [{"name",
"probability", "present"}] and "landmarks" [{"name", "x", "y"}] (present levels only, refined).
The PyTorch reference (sagitta_ref.models.lumbar through convert.load_model) runs on the same
files and the same decoded pixels; it also gives the step-I (localisation) corners, which the
engine's record does not carry: every step-I number below is the reference's.

Scored as the SPEC says where the paper is silent: a vertebra's width and height are its
ground-truth corners' x and y extents; a corner's error is |dx| in % of the width and |dy| in % of
the height, medians over the corners of the levels that are present in the truth and found present
by the model that predicts them; S1 by its upper endplate (`as`, `ps`) only; PCK@10 % = share of
those corners whose radial error is at most 10 % of the width. Angles (L1-L5, L1-S1, SS) with
sagitta_ref.measure.lumbar from the predicted and the true corners, as the paper's unsigned angles
between lines; median absolute error, share above 5 deg, worst. Level labelling: the 24 presence
flags against the truth's present levels, per level and per image (all 24 right).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import load_image  # noqa: E402
from sagitta_ref.anatomy.lumbar import CORNERS, LANDMARKS, LEVELS  # noqa: E402
from sagitta_ref.measure.lumbar import PARAMETERS, lumbar  # noqa: E402

SCORED = ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
# SPEC-lumbar.md: median % errors step I -> II, x (width) and y (height), n test images, PCK@10 %.
PAPER = {
    "T9": ((3.94, 2.95), (8.89, 5.64), 15, 80), "T10": ((2.86, 2.50), (3.47, 2.96), 66, 90),
    "T11": ((2.56, 2.50), (3.09, 2.50), 139, 92), "T12": ((2.52, 2.32), (2.53, 2.06), 188, 87),
    "L1": ((2.16, 1.97), (2.11, 1.84), 194, 92), "L2": ((1.71, 1.56), (2.12, 1.71), 195, 96),
    "L3": ((1.52, 1.59), (1.79, 1.44), 195, 96), "L4": ((1.59, 1.52), (1.68, 1.40), 195, 97),
    "L5": ((2.01, 1.86), (2.21, 2.05), 195, 94), "S1": ((3.27, 2.44), (2.51, 2.38), 195, 89),
}
PAPER_ANGLES = {"L1-L5": 1.84, "L1-S1": 2.43, "SS": 1.98}
PAPER_ANGLES_OVER5 = {"L1-L5": 15, "L1-S1": 20, "SS": 16}


def read_gt(gt_dir):
    out = []
    for p in sorted(glob.glob(os.path.join(gt_dir, "*.json"))):
        with open(p) as f:
            d = json.load(f)
        if d.get("generator", "").find("lumbar") < 0 or not isinstance(d.get("landmarks"), dict):
            continue
        d["_stem"] = os.path.splitext(os.path.basename(p))[0]
        d["_dir"] = gt_dir
        pts = np.full((len(LANDMARKS), 2), np.nan)
        for i, n in enumerate(LANDMARKS):
            if n in d["landmarks"]:
                pts[i] = d["landmarks"][n]
        d["_pts"] = pts
        d["_present"] = np.array([lv in d["present_levels"] for lv in LEVELS])
        out.append(d)
    return out


def read_engine(out_dir, stem):
    """-> (presence probabilities [24], present flags [24], corners [96, 2] NaN where not
    reported) or None."""
    p = os.path.join(out_dir, f"{stem}.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        d = json.load(f)
    block = d.get("lumbar")
    if not block:
        return None
    prob = np.array([lv["probability"] for lv in block["levels"]], np.float64)
    present = np.array([lv["present"] for lv in block["levels"]])
    pts = np.full((len(LANDMARKS), 2), np.nan)
    for r in block["landmarks"]:
        pts[LANDMARKS.index(r["name"])] = (r["x"], r["y"])
    return prob, present, pts


def torch_predict(weights, gts, threads):
    import torch
    from sagitta_ref.convert import load_model
    torch.set_num_threads(threads)
    model, config = load_model(weights)
    model.eval()
    out = []
    for g in gts:
        img = load_image(os.path.join(g["_dir"], g["image"]))
        r = model(torch.from_numpy(img))
        prob = r["presence"].double().numpy()
        out.append({"prob": prob, "present": prob >= config["threshold"],
                    "coarse": r["coarse"][:, :2].double().numpy(),
                    "refined": r["landmarks"][:, :2].double().numpy()})
    return out


def corner_errors(gts, preds, founds):
    """Per scored level: arrays of |dx| % width, |dy| % height, radial % width (corners of levels
    present in the truth and in `founds`)."""
    res = {lv: ([], [], []) for lv in SCORED}
    for g, p, found in zip(gts, preds, founds):
        for lv in SCORED:
            v = LEVELS.index(lv)
            if not (g["_present"][v] and found[v]):
                continue
            gt = g["_pts"][4 * v:4 * v + 4]
            w = gt[:, 0].max() - gt[:, 0].min()
            h = gt[:, 1].max() - gt[:, 1].min()
            corners = range(2) if lv == "S1" else range(4)
            for c in corners:
                d = p[4 * v + c] - gt[c]
                res[lv][0].append(abs(d[0]) / w * 100)
                res[lv][1].append(abs(d[1]) / h * 100)
                res[lv][2].append(np.hypot(*d) / w * 100)
    return {lv: tuple(np.array(a) for a in t) for lv, t in res.items()}


def angles(gts, preds, founds):
    """{parameter: (truth unsigned, predicted unsigned)} over the images where both exist."""
    out = {k: ([], []) for k in PARAMETERS}
    for g, p, found in zip(gts, preds, founds):
        spacing = g.get("pixel_spacing_mm")
        t_lv = {lv: g["_pts"][4 * v:4 * v + 4] for v, lv in enumerate(LEVELS) if g["_present"][v]}
        p_lv = {lv: p[4 * v:4 * v + 4] for v, lv in enumerate(LEVELS) if found[v]}
        try:
            tv, pv = lumbar(t_lv, spacing), lumbar(p_lv, spacing)
        except ValueError:
            continue
        for k in PARAMETERS:
            a, b = tv[f"{k} unsigned"], pv[f"{k} unsigned"]
            if a is not None and b is not None:
                out[k][0].append(a)
                out[k][1].append(b)
    return {k: (np.array(a), np.array(b)) for k, (a, b) in out.items()}


def labelling(gts, presents):
    flags = np.stack([p == g["_present"] for g, p in zip(gts, presents)])       # [N, 24]
    truth = np.stack([g["_present"] for g in gts])
    pres = np.stack(presents)
    return {"images_all_right_pct": 100 * float(flags.all(1).mean()),
            "flags_right_pct": 100 * float(flags.mean()),
            "present_levels_found_pct": 100 * float(pres[truth].mean()),
            "false_present": int((pres & ~truth).sum()),
            "missed": int((~pres & truth).sum()),
            "per_level_right_pct": {lv: 100 * float(flags[:, v].mean())
                                    for v, lv in enumerate(LEVELS) if lv in SCORED}}


def fmt(v, nd=2):
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def med(a):
    return float(np.median(a)) if len(a) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt_dir")
    ap.add_argument("engine_dir", nargs="?", help="the engine's <stem>.json records")
    ap.add_argument("--torch", metavar="WEIGHTS", help="also run the PyTorch reference (step I "
                    "and the engine-vs-PyTorch comparison need it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--json", metavar="OUT", help="also write every number to this JSON file")
    args = ap.parse_args(argv)

    gts = read_gt(args.gt_dir)
    if args.limit:
        gts = gts[:args.limit]
    if not gts:
        print(f"no lumbar ground truth in {args.gt_dir}", file=sys.stderr)
        return 1
    eng = None
    if args.engine_dir:
        kept, eng = [], []
        for g in gts:
            e = read_engine(args.engine_dir, g["_stem"])
            if e is not None:
                kept.append(g)
                eng.append(e)
        if len(kept) < len(gts):
            print(f"warning: {len(gts) - len(kept)} images have no engine record; left out",
                  file=sys.stderr)
        gts = kept
    tp = torch_predict(args.torch, gts, args.threads) if args.torch else None
    if eng is None and tp is None:
        print("give ENGINE_DIR and/or --torch", file=sys.stderr)
        return 2
    n = len(gts)
    report = {"images": n, "gt_dir": args.gt_dir}

    # step II: the engine's when there, else the reference's; step I: the reference's
    if eng is not None:
        label2 = "engine"
        pred2 = [e[2] for e in eng]
        found2 = [e[1] for e in eng]
    else:
        label2 = "PyTorch"
        pred2 = [t["refined"] for t in tp]
        found2 = [t["present"] for t in tp]
    err2 = corner_errors(gts, pred2, found2)
    err1 = corner_errors(gts, [t["coarse"] for t in tp], [t["present"] for t in tp]) \
        if tp is not None else None
    err2t = corner_errors(gts, [t["refined"] for t in tp], [t["present"] for t in tp]) \
        if (tp is not None and eng is not None) else None

    lab = labelling(gts, found2)
    report["labelling_" + label2] = lab
    if tp is not None and eng is not None:
        report["labelling_PyTorch"] = labelling(gts, [t["present"] for t in tp])

    print(f"{n} images in {args.gt_dir}; step II from the {label2}"
          + ("; step I from the PyTorch reference" if tp is not None else "; no step I (no "
             "--torch)"))
    print(f"\nlevel labelling ({label2}): all 24 flags right in {lab['images_all_right_pct']:.1f} "
          f"% of images; flags right {lab['flags_right_pct']:.2f} %; present levels found "
          f"{lab['present_levels_found_pct']:.2f} %; {lab['false_present']} absent levels called "
          f"present, {lab['missed']} present levels missed (paper: levels labelled right 98.4 %)")
    print("  per level right: " + ", ".join(f"{lv} {v:.1f}"
                                            for lv, v in lab["per_level_right_pct"].items()))

    head = ["level", "n (corners)", "x % step I", "x % step II", "y % step I", "y % step II",
            "PCK@10 % II", "paper n", "paper x % I->II", "paper y % I->II", "paper PCK@10 %"]
    if err2t is not None:
        head[6:6] = ["x/y % II PyTorch"]
    rows, levels_json = [], {}
    tot = {"n": 0, "x1": 0.0, "x2": 0.0, "y1": 0.0, "y2": 0.0}
    for lv in SCORED:
        x2, y2, r2 = err2[lv]
        x1 = err1[lv][0] if err1 else np.array([])
        y1 = err1[lv][1] if err1 else np.array([])
        pck = 100 * float((r2 <= 10).mean()) if len(r2) else float("nan")
        (px1, px2), (py1, py2), pn, ppck = PAPER[lv]
        row = [lv, str(len(x2)), fmt(med(x1)), fmt(med(x2)), fmt(med(y1)), fmt(med(y2)),
               fmt(pck, 1), str(pn), f"{px1}->{px2}", f"{py1}->{py2}", str(ppck)]
        if err2t is not None:
            row[6:6] = [f"{fmt(med(err2t[lv][0]))}/{fmt(med(err2t[lv][1]))}"]
        rows.append(row)
        levels_json[lv] = {"n_corners": len(x2), "x_pct_step1": med(x1), "x_pct_step2": med(x2),
                           "y_pct_step1": med(y1), "y_pct_step2": med(y2), "pck10_step2": pck}
        if len(x2):
            tot["n"] += len(x2)
            for key, arr in (("x1", x1), ("x2", x2), ("y1", y1), ("y2", y2)):
                tot[key] += med(arr) * len(x2) if len(arr) else float("nan")
    allx2 = np.concatenate([err2[lv][0] for lv in SCORED])
    ally2 = np.concatenate([err2[lv][1] for lv in SCORED])
    allr2 = np.concatenate([err2[lv][2] for lv in SCORED])
    allx1 = np.concatenate([err1[lv][0] for lv in SCORED]) if err1 else np.array([])
    ally1 = np.concatenate([err1[lv][1] for lv in SCORED]) if err1 else np.array([])
    cw = {k: tot[k] / tot["n"] for k in ("x1", "x2", "y1", "y2")}
    rows.append(["count-weighted", str(tot["n"]), fmt(cw["x1"]), fmt(cw["x2"]), fmt(cw["y1"]),
                 fmt(cw["y2"]), fmt(100 * float((allr2 <= 10).mean()), 1), "",
                 "2.20->1.98", "2.04->1.68 (rows: 2.34->1.98)", ""])
    if err2t is not None:
        rows[-1][6:6] = [""]
    rows.append(["all corners", str(len(allx2)), fmt(med(allx1)), fmt(med(allx2)),
                 fmt(med(ally1)), fmt(med(ally2)), "", "", "", "", ""])
    if err2t is not None:
        rows[-1][6:6] = [""]
    worst = (float(allx2.max()), float(ally2.max()))
    report["levels"] = levels_json
    report["count_weighted"] = cw
    report["all_corners_median"] = {"x_pct_step1": med(allx1), "x_pct_step2": med(allx2),
                                    "y_pct_step1": med(ally1), "y_pct_step2": med(ally2)}
    report["worst_pct_step2"] = {"x": worst[0], "y": worst[1]}
    print(f"\ncorner errors, median % of vertebra width (x) / height (y); step II {label2}, "
          f"step I PyTorch")
    table(head, rows, args.markdown)
    print(f"worst step II: x {worst[0]:.1f} %, y {worst[1]:.1f} % (paper: 77 / 120 %)")

    ang = angles(gts, pred2, found2)
    head = ["angle", "n", "truth mean (deg)", f"{label2} median AE", "mean AE", "> 5 deg %",
            "worst", "paper median AE", "paper > 5 deg %"]
    arows, ajson = [], {}
    for k in PARAMETERS:
        a, b = ang[k]
        ae = np.abs(a - b)
        arows.append([k, str(len(a)), fmt(float(a.mean()), 1), fmt(med(ae)), fmt(float(ae.mean())),
                      fmt(100 * float((ae > 5).mean()), 1), fmt(float(ae.max()), 1),
                      f"{PAPER_ANGLES[k]}", f"{PAPER_ANGLES_OVER5[k]}"])
        ajson[k] = {"n": len(a), "median_ae": med(ae), "mean_ae": float(ae.mean()),
                    "over5_pct": 100 * float((ae > 5).mean()), "worst": float(ae.max())}
    report["angles_" + label2] = ajson
    print(f"\nangles (unsigned, between lines, as the paper's), {label2}")
    table(head, arows, args.markdown)

    if tp is not None and eng is not None:
        dmax, where, pmax, flips, dall = 0.0, None, 0.0, 0, []
        for g, e, t in zip(gts, eng, tp):
            pmax = max(pmax, float(np.abs(e[0] - t["prob"]).max()))
            flips += int((e[1] != t["present"]).sum())
            m = ~np.isnan(e[2][:, 0])
            d = np.abs(e[2][m] - t["refined"][m])
            if d.size:
                dall.append(d.ravel())
                if d.max() > dmax:
                    dmax = float(d.max())
                    where = (g["_stem"], [n for n, k in zip(LANDMARKS, m) if k][
                        int(np.argmax(d.max(1)))])
        dall = np.concatenate(dall)
        report["engine_vs_torch"] = {"max_corner_px": dmax, "where": where,
                                     "median_corner_px": float(np.median(dall)),
                                     "max_probability": pmax, "presence_flips": flips}
        print(f"\nengine vs PyTorch: largest corner coordinate difference {dmax:.4f} px {where}, "
              f"median {np.median(dall):.5f} px (records round to float32); largest presence "
              f"probability difference {pmax:.2e} (records round to 1e-6); {flips} presence "
              f"flags differ")
        lt = report["labelling_PyTorch"]
        print(f"PyTorch labelling: all right in {lt['images_all_right_pct']:.1f} % of images, "
              f"flags right {lt['flags_right_pct']:.2f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return 0


def table(head, rows, markdown):
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
