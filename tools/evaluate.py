"""Accuracy of landmark predictions on labelled phantoms, next to the paper's table.

    # the engine's records (`sagitta analyze GT_DIR --out ENGINE_OUT` writes ENGINE_OUT/<stem>.json)
    python3 tools/evaluate.py GT_DIR ENGINE_OUT
    # also run the PyTorch reference on the same images and compare it with the engine
    python3 tools/evaluate.py GT_DIR ENGINE_OUT --torch weights/cervical_default.safetensors
    # PyTorch only (no engine records)
    python3 tools/evaluate.py GT_DIR --torch weights/cervical_default.safetensors

GT_DIR holds phantoms written by tools/phantom.py / tools/make_heldout.py: `<stem>.json` with
"image", "pixel_spacing_mm" [row, col], "landmarks" {name: [x, y]} (original pixels, centre of the
top-left pixel at (0, 0)), beside the image (PNG 16-bit or DICOM).

Engine records: "landmarks": [{"name", "x", "y", ...}] in original pixels; "parameters":
[{"name", "value", "unit"}]. Ground-truth parameters are computed from the ground-truth landmarks
with sagitta_ref/measure/cervical.py (a port of src/measure/cervical.rs; tools/cervical_params.py
re-exports it). Predicted parameters are recomputed from the predicted landmarks with the ground
truth's pixel spacing, so PNGs (which carry no spacing) are scored in mm too; where the engine
reported its own parameters in deg/mm they are checked against the port (largest difference
printed).

Printed: landmark radial error median / 90th percentile in mm and px, PCK at 2 and 4 mm, per
landmark medians, and per parameter the median absolute error and ICC(2,1) (two-way random,
absolute agreement, single measure) next to the paper's median absolute errors.
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

from sagitta_ref.measure import cervical as cp  # noqa: E402  (pure Python, no torch)

LANDMARKS = cp.LANDMARKS


def icc_2_1(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(2,1) of two raters (Shrout & Fleiss): two-way random effects, absolute agreement."""
    y = np.stack([a, b], 1).astype(np.float64)
    n, k = y.shape
    if n < 2:
        return float("nan")
    gm = y.mean()
    ssr = k * ((y.mean(1) - gm) ** 2).sum()
    ssc = n * ((y.mean(0) - gm) ** 2).sum()
    sst = ((y - gm) ** 2).sum()
    sse = sst - ssr - ssc
    msr = ssr / (n - 1)
    msc = ssc / (k - 1)
    mse = sse / ((n - 1) * (k - 1))
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / den) if den > 0 else float("nan")


def load_image(path: str) -> np.ndarray:
    if path.lower().endswith((".dcm", ".dicom")):
        import pydicom
        ds = pydicom.dcmread(path)
        a = ds.pixel_array.astype(np.float32)
        if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            a = a.max() - a
        return a
    from PIL import Image
    im = Image.open(path)
    a = np.array(im)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32).mean(-1)
    return a.astype(np.float32)


def read_gt(gt_dir: str) -> list[dict]:
    out = []
    for p in sorted(glob.glob(os.path.join(gt_dir, "*.json"))):
        with open(p) as f:
            d = json.load(f)
        if "landmarks" not in d or not isinstance(d["landmarks"], dict):
            continue
        d["_stem"] = os.path.splitext(os.path.basename(p))[0]
        d["_dir"] = gt_dir
        d["_pts"] = np.array([d["landmarks"][n] for n in LANDMARKS], np.float64)
        out.append(d)
    return out


def read_engine(out_dir: str, stem: str, image: str | None):
    cands = [os.path.join(out_dir, f"{stem}.json")]
    if image:
        cands.append(os.path.join(out_dir, f"{os.path.splitext(image)[0]}.json"))
    for p in cands:
        if os.path.exists(p):
            with open(p) as f:
                d = json.load(f)
            lms = d.get("landmarks")
            if isinstance(lms, list):
                by = {r["name"]: (r["x"], r["y"]) for r in lms}
            else:
                by = lms
            pts = np.array([by[n] for n in LANDMARKS], np.float64)
            params = {r["name"]: (r["value"], r.get("unit")) for r in d.get("parameters", [])}
            return pts, params
    return None, None


def summarize(name: str, gts: list[dict], preds: list[np.ndarray], engine_params=None) -> None:
    px_err, mm_err = [], []
    gt_par = {k: [] for k in cp.PARAMETERS}
    pr_par = {k: [] for k in cp.PARAMETERS}
    port_diff = {k: 0.0 for k in cp.PARAMETERS}
    for i, (g, p) in enumerate(zip(gts, preds)):
        row, col = g["pixel_spacing_mm"]
        d = p - g["_pts"]
        px_err.append(np.hypot(d[:, 0], d[:, 1]))
        mm_err.append(np.hypot(d[:, 0] * col, d[:, 1] * row))
        gp = cp.cervical(g["_pts"], (row, col))
        pp = cp.cervical(p, (row, col))
        for k in cp.PARAMETERS:
            gt_par[k].append(gp[k])
            pr_par[k].append(pp[k])
        if engine_params is not None and engine_params[i]:
            for k in cp.PARAMETERS:
                if k in engine_params[i]:
                    v, unit = engine_params[i][k]
                    if unit in ("deg", "mm"):
                        port_diff[k] = max(port_diff[k], abs(v - pp[k]))
    px_err = np.stack(px_err)
    mm_err = np.stack(mm_err)
    n = len(gts)
    print(f"\n== {name}: {n} images, {n * 29} landmarks ==")
    print(f"landmark radial error: median {np.median(mm_err):.2f} mm ({np.median(px_err):.2f} px), "
          f"90th percentile {np.percentile(mm_err, 90):.2f} mm ({np.percentile(px_err, 90):.2f} px), "
          f"mean {mm_err.mean():.2f} mm, max {mm_err.max():.2f} mm")
    print(f"PCK@2mm {100 * (mm_err <= 2).mean():.1f}%   PCK@4mm {100 * (mm_err <= 4).mean():.1f}%")
    med = np.median(mm_err, 0)
    p90 = np.percentile(mm_err, 90, 0)
    print("per landmark, median / p90 mm:")
    for j in range(0, 29, 6):
        print("  " + "  ".join(f"{LANDMARKS[k]:>6} {med[k]:5.2f}/{p90[k]:5.2f}"
                               for k in range(j, min(j + 6, 29))))
    print(f"\n{'parameter':<10} {'unit':>4} {'median AE':>10} {'p90 AE':>8} {'ICC(2,1)':>9} "
          f"{'paper median AE':>16}")
    for k in cp.PARAMETERS:
        a = np.array(gt_par[k])
        b = np.array(pr_par[k])
        ae = np.abs(a - b)
        print(f"{k:<10} {cp.UNITS[k]:>4} {np.median(ae):10.2f} {np.percentile(ae, 90):8.2f} "
              f"{icc_2_1(a, b):9.3f} {cp.PAPER_MEDIAN_AE[k]:16.2f}")
    if engine_params is not None and any(engine_params):
        print("engine's own parameters vs tools/cervical_params.py on the engine's landmarks, "
              "largest |difference|: "
              + ", ".join(f"{k} {v:.2g}" for k, v in port_diff.items()))


def torch_predict(weights: str, gts: list[dict], threads: int) -> list[np.ndarray]:
    import torch
    from sagitta_ref.convert import load_model
    torch.set_num_threads(threads)
    model, _ = load_model(weights)
    model.eval()
    out = []
    for g in gts:
        img = load_image(os.path.join(g["_dir"], g["image"]))
        r = model(torch.from_numpy(img))
        out.append(r["landmarks"].double().numpy())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt_dir")
    ap.add_argument("engine_dir", nargs="?", help="directory of the engine's <stem>.json records")
    ap.add_argument("--torch", metavar="WEIGHTS", help="also run the PyTorch reference")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-engine", metavar="WEIGHTS", nargs="?", const="",
                    help="first run `sagitta analyze GT_DIR --out ENGINE_DIR` (the release binary, "
                         "built by cargo if needed) with these weights (default: the default model)")
    args = ap.parse_args(argv)

    if args.run_engine is not None:
        if not args.engine_dir:
            print("--run-engine needs ENGINE_DIR", file=sys.stderr)
            return 2
        import subprocess
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = ["cargo", "run", "--release", "--quiet", "--manifest-path", os.path.join(repo, "Cargo.toml"),
               "--", "analyze", args.gt_dir, "--out", args.engine_dir, "--quiet"]
        if args.run_engine:
            cmd += ["--weights", args.run_engine]
        print("running:", " ".join(cmd), flush=True)
        code = subprocess.run(cmd).returncode
        if code not in (0, 1):  # 1: some images failed; they are reported as missing below
            return code

    gts = read_gt(args.gt_dir)
    if args.limit:
        gts = gts[:args.limit]
    if not gts:
        print(f"no ground-truth JSON in {args.gt_dir}", file=sys.stderr)
        return 1
    print(f"{len(gts)} labelled images in {args.gt_dir}")
    print("paper (external validation, 79 images, median AE): "
          + ", ".join(f"{k} {v}" for k, v in cp.PAPER_MEDIAN_AE.items()))

    eng_preds = None
    if args.engine_dir:
        eng_preds, eng_params, kept = [], [], []
        missing = []
        for g in gts:
            p, par = read_engine(args.engine_dir, g["_stem"], g.get("image"))
            if p is None:
                missing.append(g["_stem"])
                continue
            kept.append(g)
            eng_preds.append(p)
            eng_params.append(par)
        if missing:
            print(f"warning: {len(missing)} images have no engine record (e.g. {missing[0]}); "
                  "they are left out", file=sys.stderr)
        gts_e = kept
        summarize(f"engine ({args.engine_dir})", gts_e, eng_preds, eng_params)

    if args.torch:
        tp = torch_predict(args.torch, gts, args.threads)
        summarize(f"PyTorch reference ({args.torch})", gts, tp)
        if eng_preds is not None:
            by_stem = {g["_stem"]: p for g, p in zip(gts, tp)}
            diffs = [np.hypot(*(e - by_stem[g["_stem"]]).T) for g, e in zip(gts_e, eng_preds)]
            if diffs:
                d = np.stack(diffs)
                i, j = np.unravel_index(np.argmax(d), d.shape)
                print(f"\nengine vs PyTorch: largest landmark difference {d.max():.3f} px "
                      f"({gts_e[i]['_stem']}, {LANDMARKS[j]}), median {np.median(d):.4f} px, "
                      f"over {len(diffs)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
