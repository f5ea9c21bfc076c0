"""Score a CSM classifier on labelled CSM phantoms (phantom_csm.py), beside the paper's numbers.

    python3 evaluate_csm.py HELDOUT_DIR --weights ../weights/csm_default.safetensors \
        [--engine ENGINE.json] [--out RESULTS.json]

HELDOUT_DIR holds `<stem>.png` + `<stem>.json` pairs with the "csm" label. The PyTorch reference
(`CsmModel`, float32) runs on every PNG as the engine reads it (16-bit grey, no rescaling: min-max
follows); `--engine` takes the JSON array `sagitta analyze --model csm --weights W -q DIR` prints
(records with "file" or "image", and "csm": {"p_csm", ...}) and adds the engine's metrics and the
largest |p_engine - p_torch| over the images both scored.

Metrics at the weights' threshold: accuracy, sensitivity (recall), specificity, precision, and the
AUC (Mann-Whitney) with a percentile bootstrap 95 % CI (2000 resamples of the images, seed 0).
The JSON written by --out has the metrics and the per-image label, min_torg_pavlov and
probabilities.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref import convert  # noqa: E402
from train_csm import auc  # noqa: E402

# SPEC-csm.md, "What the paper reports": 62 test radiographs (29 CSM, 33 non-CSM).
PAPER = {"n": 62, "accuracy": 0.871, "auc": 0.864, "auc_ci95": [0.780, 0.949],
         "sensitivity": 0.864, "precision": 0.889, "specificity": None}


def load_png(path: str) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(path)).astype(np.float32)


def metrics(labels: np.ndarray, p: np.ndarray, threshold: float, boot: int = 2000) -> dict:
    pred = p >= threshold
    tp = int((pred & (labels == 1)).sum())
    tn = int((~pred & (labels == 0)).sum())
    fp = int((pred & (labels == 0)).sum())
    fn = int((~pred & (labels == 1)).sum())
    rng = np.random.default_rng(0)
    aucs = []
    for _ in range(boot):
        i = rng.integers(0, len(labels), len(labels))
        aucs.append(auc(labels[i], p[i]))
    lo, hi = np.nanpercentile(aucs, [2.5, 97.5])
    return {"n": int(len(labels)), "positives": int(labels.sum()), "threshold": threshold,
            "accuracy": (tp + tn) / len(labels), "auc": auc(labels, p),
            "auc_ci95": [float(lo), float(hi)],
            "sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1),
            "precision": tp / max(tp + fp, 1), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def table(columns: dict[str, dict]) -> str:
    rows = [("n (positives)", lambda m: f"{m['n']}" + (f" ({m['positives']})"
                                                         if "positives" in m else "")),
            ("accuracy", lambda m: f"{100 * m['accuracy']:.1f} %"),
            ("AUC (95 % CI)", lambda m: f"{m['auc']:.3f} ({m['auc_ci95'][0]:.3f}-"
                                        f"{m['auc_ci95'][1]:.3f})"),
            ("sensitivity", lambda m: f"{100 * m['sensitivity']:.1f} %"),
            ("specificity", lambda m: "-" if m["specificity"] is None
             else f"{100 * m['specificity']:.1f} %"),
            ("precision", lambda m: f"{100 * m['precision']:.1f} %")]
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, fmt in rows:
        lines.append(f"| {name} | " + " | ".join(fmt(m) for m in columns.values()) + " |")
    return "\n".join(lines)


def engine_probabilities(path: str) -> dict[str, float]:
    """basename -> p_csm from the engine's JSON array (error records skipped)."""
    with open(path) as f:
        records = json.load(f)
    out = {}
    for r in records:
        name = r.get("file") or r.get("image")
        if name and isinstance(r.get("csm"), dict) and r["csm"].get("p_csm") is not None:
            out[os.path.basename(name)] = float(r["csm"]["p_csm"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("heldout_dir")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--engine", help="the JSON array of `sagitta analyze --model csm`")
    ap.add_argument("--out", help="write the metrics and per-image results here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, config = convert.load_model(args.weights)
    threshold = float(config["threshold"])

    images = []
    for meta_path in sorted(glob.glob(os.path.join(args.heldout_dir, "*.json"))):
        with open(meta_path) as f:
            meta = json.load(f)
        if "csm" not in meta:
            continue
        png = os.path.join(args.heldout_dir, meta["image"])
        p = float(model(torch.from_numpy(load_png(png)))["p"])
        images.append({"image": meta["image"], "seed": meta["seed"], "label": meta["csm"]["label"],
                       "min_torg_pavlov": meta["csm"]["min_torg_pavlov"], "p_torch": p})
    if not images:
        sys.exit(f"no CSM phantoms (JSON with 'csm') in {args.heldout_dir}")
    labels = np.array([r["label"] for r in images])
    p_torch = np.array([r["p_torch"] for r in images])
    results = {"weights": args.weights, "config": config,
               "torch": metrics(labels, p_torch, threshold), "paper": PAPER}
    columns = {"PyTorch (phantoms)": results["torch"]}

    if args.engine:
        engine = engine_probabilities(args.engine)
        both = [r for r in images if r["image"] in engine]
        for r in both:
            r["p_engine"] = engine[r["image"]]
        diff = np.array([abs(r["p_engine"] - r["p_torch"]) for r in both])
        worst = both[int(diff.argmax())] if len(both) else None
        results["engine"] = metrics(np.array([r["label"] for r in both]),
                                    np.array([r["p_engine"] for r in both]), threshold)
        results["engine_vs_torch"] = {
            "images": len(both), "missing": len(images) - len(both),
            "max_abs_diff": float(diff.max()) if len(both) else None,
            "median_abs_diff": float(np.median(diff)) if len(both) else None,
            "worst_image": worst["image"] if worst else None,
            "labels_differ": sum((r["p_engine"] >= threshold) != (r["p_torch"] >= threshold)
                                 for r in both)}
        columns["engine (phantoms)"] = results["engine"]
    columns["paper (62 radiographs)"] = PAPER
    results["images"] = images

    print(table(columns))
    if "engine_vs_torch" in results:
        e = results["engine_vs_torch"]
        print(f"engine vs PyTorch on {e['images']} images ({e['missing']} without an engine "
              f"result): largest |dp| {e['max_abs_diff']:.3g} ({e['worst_image']}), median "
              f"{e['median_abs_diff']:.3g}, labels differing {e['labels_differ']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
