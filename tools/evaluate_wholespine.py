"""Accuracy of the whole-spine model on labelled phantoms, beside the paper's Table 1.

    python3 tools/make_heldout_wholespine.py /tmp/ws_heldout --dicom
    target/release/sagitta analyze /tmp/ws_heldout --model wholespine --out /tmp/ws_engine -q
    python3 tools/evaluate_wholespine.py /tmp/ws_heldout /tmp/ws_engine \
        --torch weights/wholespine_default.safetensors

GT_DIR holds tools/phantom_wholespine.py phantoms: `<stem>.json` with "image",
"pixel_spacing_mm" [row, col] and "landmarks" {name: [x, y]} (original pixels, centre of the
top-left pixel at (0, 0)). Engine records (`sagitta analyze --out`): the "wholespine" block's
"landmarks" [{"name", "x", "y", ...}] and "parameters" [{"name", "value", "unit"}]. The PyTorch
reference (sagitta_ref.models.wholespine through convert.load_model) runs on the same file and the
same decoded pixels.

Every parameter, true and predicted, is computed from landmarks with
sagitta_ref/measure/wholespine.py (the port of src/measure/wholespine.rs) and the ground truth's
spacing, so PNGs are scored in mm too; where the engine reported its own values they are checked
against the port on its landmarks (largest difference printed).

Printed per parameter: the ground truth's mean (SD), the engine's median and mean absolute error,
ICC(2,1) (two-way random, absolute agreement, single measure) and Pearson R, the PyTorch
reference's median AE and ICC, and the paper's Table 1 (truth mean, mean AE, median AE, R; 400
internal test images, SPEC-wholespine.md); then landmark radial errors in mm and px by region, and
the largest engine-vs-PyTorch landmark difference. `--markdown` prints the table for the model card.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import icc_2_1, load_image  # noqa: E402
from sagitta_ref.anatomy.wholespine import LANDMARKS  # noqa: E402
from sagitta_ref.measure.wholespine import PARAMETERS, UNITS, wholespine  # noqa: E402

# Table 1 of the paper (SPEC-wholespine.md, "What the paper reports"): truth mean, truth SD,
# mean AE, median AE, Pearson R.
PAPER = {
    "PI": (51.6, 13.1, 3.8, 1.9, .854), "SS": (35.9, 12.1, 3.5, 1.9, .875),
    "PT": (15.6, 11.0, 1.1, 0.6, .983), "LL": (47.0, 17.4, 5.1, 3.0, .885),
    "SVA": (25.2, 47.3, 1.9, 1.0, .998), "CL": (9.4, 17.3, 6.6, 5.3, .864),
    "T1S": (24.4, 11.3, 5.3, 3.8, .787), "cSVA": (20.2, 13.4, 1.1, 0.7, .991),
    "GTK": (37.7, 14.4, 6.6, 4.9, .798), "PTK": (13.7, 9.7, 6.7, 4.8, .558),
    "MTK": (26.7, 13.5, 5.4, 4.2, .840), "L4SL": (31.3, 11.5, 4.3, 2.3, .810),
    "LPA": (8.3, 8.3, 1.0, 0.5, .971), "SSA": (124.4, 14.8, 3.4, 1.9, .919),
    "GT": (17.2, 15.0, 1.2, 0.6, .988), "TPA": (13.1, 12.0, 1.0, 0.5, .987),
    "Barrey": (0.4, 3.1, 0.3, 0.03, .893), "OD-HA": (-0.4, 3.9, 0.1, 0.1, .999),
}
# Landmark regions as the paper reports them (median errors, mm).
REGIONS = {
    "cervical": [n for n in LANDMARKS if n.startswith("C")],
    "thoracic": [n for n in LANDMARKS if n.startswith("T")],
    "lumbosacral": [n for n in LANDMARKS if n.startswith(("L", "S"))],
    "femoral heads": ["FH1", "FH2"],
}
PAPER_REGIONS = {"cervical": "1.75-2.64", "thoracic": "2.21-3.07", "lumbosacral": "1.76-2.63",
                 "femoral heads": "2.75, 3.39"}


def read_gt(gt_dir):
    out = []
    for p in sorted(glob.glob(os.path.join(gt_dir, "*.json"))):
        with open(p) as f:
            d = json.load(f)
        if not isinstance(d.get("landmarks"), dict) or "C2_dens" not in d["landmarks"]:
            continue
        d["_stem"] = os.path.splitext(os.path.basename(p))[0]
        d["_dir"] = gt_dir
        d["_pts"] = np.array([d["landmarks"][n] for n in LANDMARKS], np.float64)
        out.append(d)
    return out


def read_engine(out_dir, stem):
    p = os.path.join(out_dir, f"{stem}.json")
    if not os.path.exists(p):
        return None, None
    with open(p) as f:
        d = json.load(f)
    spine = d.get("wholespine")
    if not spine:
        return None, None
    by = {r["name"]: (r["x"], r["y"]) for r in spine["landmarks"]}
    params = {r["name"]: (r["value"], r.get("unit")) for r in spine.get("parameters", [])}
    return np.array([by[n] for n in LANDMARKS], np.float64), params


def torch_predict(weights, gts, threads):
    import torch
    from sagitta_ref.convert import load_model
    torch.set_num_threads(threads)
    model, _ = load_model(weights)
    model.eval()
    out = []
    for g in gts:
        img = load_image(os.path.join(g["_dir"], g["image"]))
        out.append(model(torch.from_numpy(img))["landmarks"][:, :2].double().numpy())
    return out


def score(gts, preds):
    """Per parameter (truth, prediction) arrays and landmark errors [N, 45] in mm and px."""
    truth = {k: [] for k in PARAMETERS}
    pred = {k: [] for k in PARAMETERS}
    mm, px = [], []
    for g, p in zip(gts, preds):
        row, col = g["pixel_spacing_mm"]
        d = p - g["_pts"]
        px.append(np.hypot(d[:, 0], d[:, 1]))
        mm.append(np.hypot(d[:, 0] * col, d[:, 1] * row))
        gp = wholespine(g["_pts"], (row, col))
        pp = wholespine(p, (row, col))
        for k in PARAMETERS:
            if gp[k] is not None and pp[k] is not None:
                truth[k].append(gp[k])
                pred[k].append(pp[k])
    return ({k: (np.array(truth[k]), np.array(pred[k])) for k in PARAMETERS},
            np.stack(mm), np.stack(px))


def stats(a, b):
    ae = np.abs(a - b)
    r = float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 else float("nan")
    return float(np.median(ae)), float(ae.mean()), icc_2_1(a, b), r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt_dir")
    ap.add_argument("engine_dir", nargs="?", help="the engine's <stem>.json records")
    ap.add_argument("--torch", metavar="WEIGHTS", help="also run the PyTorch reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)

    gts = read_gt(args.gt_dir)
    if args.limit:
        gts = gts[:args.limit]
    if not gts:
        print(f"no whole-spine ground truth in {args.gt_dir}", file=sys.stderr)
        return 1
    eng, eng_params, kept = None, [], gts
    if args.engine_dir:
        kept, eng = [], []
        for g in gts:
            p, par = read_engine(args.engine_dir, g["_stem"])
            if p is None:
                continue
            kept.append(g)
            eng.append(p)
            eng_params.append(par)
        if len(kept) < len(gts):
            print(f"warning: {len(gts) - len(kept)} images have no engine record; left out",
                  file=sys.stderr)
    tp = torch_predict(args.torch, kept, args.threads) if args.torch else None
    main_preds = eng if eng is not None else tp
    if main_preds is None:
        print("give ENGINE_DIR and/or --torch", file=sys.stderr)
        return 2
    label = "engine" if eng is not None else "PyTorch"
    params, mm, px = score(kept, main_preds)
    tparams = score(kept, tp)[0] if (tp is not None and eng is not None) else None
    n = len(kept)
    print(f"{n} images in {args.gt_dir}; {label} predictions"
          + (" and the PyTorch reference" if tparams else ""))

    head = ["parameter", "unit", "truth mean (SD)", f"{label} median AE", f"{label} mean AE",
            "ICC(2,1)", "R"]
    if tparams:
        head += ["PyTorch median AE", "PyTorch ICC"]
    head += ["paper truth", "paper mean AE", "paper median AE", "paper R"]
    rows = []
    for k in PARAMETERS:
        a, b = params[k]
        med, mean, icc, r = stats(a, b)
        unit = UNITS[k]
        row = [k, unit, f"{a.mean():.1f} ({a.std():.1f})", f"{med:.2f}", f"{mean:.2f}",
               f"{icc:.3f}", f"{r:.3f}"]
        if tparams:
            ta, tb = tparams[k]
            tmed, _, ticc, _ = stats(ta, tb)
            row += [f"{tmed:.2f}", f"{ticc:.3f}"]
        pm, psd, pmean, pmed, pr = PAPER[k]
        row += [f"{pm} ({psd})", f"{pmean}", f"{pmed}", f"{pr:.3f}"]
        rows.append(row)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))

    print(f"\nlandmark radial error ({label}, {n} images x 45): median {np.median(mm):.2f} mm "
          f"({np.median(px):.2f} px), 90th percentile {np.percentile(mm, 90):.2f} mm "
          f"({np.percentile(px, 90):.2f} px), mean {mm.mean():.2f} mm, max {mm.max():.1f} mm")
    for region, names in REGIONS.items():
        idx = [LANDMARKS.index(nm) for nm in names]
        per = np.median(mm[:, idx], 0)
        print(f"  {region:<14} median {np.median(mm[:, idx]):.2f} mm "
              f"({np.median(px[:, idx]):.2f} px); per-landmark medians {per.min():.2f}-"
              f"{per.max():.2f} mm (paper: {PAPER_REGIONS[region]} mm)")
    if eng is not None and eng_params:
        diff = {k: 0.0 for k in PARAMETERS}
        for g, p, par in zip(kept, eng, eng_params):
            pp = wholespine(p, tuple(g["pixel_spacing_mm"]))
            for k in PARAMETERS:
                if k in par and pp[k] is not None and par[k][1] in ("deg", "mm", "ratio"):
                    diff[k] = max(diff[k], abs(par[k][0] - pp[k]))
        print("engine's own parameters vs the Python port on the engine's landmarks, largest "
              "|difference| (the record rounds to 0.01): "
              + ", ".join(f"{k} {v:.3g}" for k, v in diff.items()))
    if tp is not None and eng is not None:
        d = np.stack([np.hypot(*(e - t).T) for e, t in zip(eng, tp)])
        i, j = np.unravel_index(np.argmax(d), d.shape)
        print(f"engine vs PyTorch: largest landmark difference {d.max():.4f} px "
              f"({kept[i]['_stem']}, {LANDMARKS[j]}), median {np.median(d):.4f} px "
              f"(records round to 0.01 px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
