"""Where do the default model's landmark errors come from? Global stage vs refinement, per landmark.

    python3 tools/diagnose.py GT_DIR WEIGHTS [--limit N] [--worst 10]

For each labelled phantom (make_heldout.py format) runs the PyTorch reference and prints, per
landmark, the median / p90 / max radial error in mm of the global (coarse) prediction and of the
final (refined) one, the fraction of ground-truth corners that fall outside their disc's box (so
the refiner cannot see them), and the disc boxes' side against the ground-truth corners' extent.
Then the worst images by C7/T1 error with their coarse error, box containment, facing, and the
shoulder-related numbers the JSON carries.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import LANDMARKS, load_image, read_gt  # noqa: E402
from sagitta_ref import ops  # noqa: E402
from sagitta_ref.anatomy.cervical import DISC_GROUPS  # noqa: E402
from sagitta_ref.convert import load_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("gt_dir")
    ap.add_argument("weights")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worst", type=int, default=12)
    ap.add_argument("--save", help="npz with every per-image array")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, cfg = load_model(args.weights)
    model.eval()
    S = model.config["input_size"]
    gts = read_gt(args.gt_dir)
    if args.limit:
        gts = gts[:args.limit]
    coarse_mm, final_mm, outside, side_ratio, names = [], [], [], [], []
    crop_std, spread = [], []
    for g in gts:
        img = load_image(os.path.join(g["_dir"], g["image"]))
        h0, w0 = img.shape
        r = model(torch.from_numpy(img))
        coarse_in = ops.norm_to_input(r["coarse_norm"], (S, S))
        coarse = ops.input_to_original(coarse_in, (S, S), w0, h0).double().numpy()
        final = r["landmarks"].double().numpy()
        row, col = g["pixel_spacing_mm"]
        gt = g["_pts"]
        dc = coarse - gt
        df = final - gt
        coarse_mm.append(np.hypot(dc[:, 0] * col, dc[:, 1] * row))
        final_mm.append(np.hypot(df[:, 0] * col, df[:, 1] * row))
        # ground truth in input px, inside its disc box?
        gt_in = np.stack([(gt[:, 0] + 0.5) * S / w0 - 0.5, (gt[:, 1] + 0.5) * S / h0 - 0.5], 1)
        b = r["boxes"].double().numpy()
        out = np.zeros((len(DISC_GROUPS), 4), bool)
        ratio = np.zeros(len(DISC_GROUPS))
        for k, grp in enumerate(DISC_GROUPS):
            q = gt_in[list(grp)]
            out[k] = (q[:, 0] < b[k, 0]) | (q[:, 0] > b[k, 2]) | (q[:, 1] < b[k, 1]) | \
                (q[:, 1] > b[k, 3])
            ext = (q.max(0) - q.min(0)).max()
            ratio[k] = (b[k, 2] - b[k, 0]) / max(ext, 1e-6)
        outside.append(out)
        crop_std.append(r["crops"][:, 0].flatten(1).std(1).numpy())
        rn = r["refined_norm"].double().numpy()                    # [6, 4, 2] box frame
        spread.append(np.linalg.norm(rn - rn.mean(1, keepdims=True), axis=-1).mean(1))
        side_ratio.append(ratio)
        names.append(g["_stem"])
    coarse_mm = np.stack(coarse_mm)
    final_mm = np.stack(final_mm)
    outside = np.stack(outside)
    side_ratio = np.stack(side_ratio)
    crop_std = np.stack(crop_std)
    spread = np.stack(spread)
    n = len(gts)
    print(f"{n} images, weights {args.weights} (input {S})")
    print(f"{'landmark':>8} {'coarse med/p90/max mm':>24} {'final med/p90/max mm':>24}")
    for j, nm in enumerate(LANDMARKS):
        c, f = coarse_mm[:, j], final_mm[:, j]
        print(f"{nm:>8} {np.median(c):8.2f} {np.percentile(c, 90):7.2f} {c.max():7.2f} "
              f"{np.median(f):8.2f} {np.percentile(f, 90):7.2f} {f.max():7.2f}")
    print("\ndisc box: fraction of GT corners outside the box; box side / GT corner extent "
          "(median, min)")
    for k, grp in enumerate(DISC_GROUPS):
        print(f"  disc {k} ({LANDMARKS[grp[0]]}..{LANDMARKS[grp[-1]]}): outside "
              f"{100 * outside[:, k].mean():5.1f}%  images with any outside "
              f"{100 * outside[:, k].any(1).mean():5.1f}%  side/extent "
              f"{np.median(side_ratio[:, k]):.2f} {side_ratio[:, k].min():.2f}")
    c7t1 = [LANDMARKS.index(x) for x in ("C7_pi", "C7_ai", "T1_as", "T1_ps")]
    worst = np.argsort(-final_mm[:, c7t1].max(1))[:args.worst]
    print("\nworst images by C7/T1 final error (max over C7_pi C7_ai T1_as T1_ps):")
    for i in worst:
        print(f"  {names[i]}: final {final_mm[i, c7t1].round(1)} coarse {coarse_mm[i, c7t1].round(1)}"
              f" last box outside {outside[i, 5].astype(int)} facing {gts[i].get('facing')}")
    bad = final_mm[:, c7t1].max(1) > 5
    print(f"\nimages with a C7/T1 corner > 5 mm off: {bad.sum()} / {n}; of these, coarse > 5 mm: "
          f"{(coarse_mm[bad][:, c7t1].max(1) > 5).sum()}, a GT corner outside the last box: "
          f"{outside[bad, 5].any(1).sum()}")
    print("\nC7-T1 refiner vs the contrast of its crop (std of the standardized image in box 5):")
    worst5 = final_mm[:, c7t1].max(1)
    for lo, hi in ((0, 0.08), (0.08, 0.12), (0.12, 0.2), (0.2, 0.4), (0.4, 99)):
        sel = (crop_std[:, 5] >= lo) & (crop_std[:, 5] < hi)
        if sel.any():
            print(f"  crop std [{lo:.2f}, {hi:.2f}): {sel.sum():3d} images, C7/T1 corner > 5 mm "
                  f"in {100 * (worst5[sel] > 5).mean():5.1f}%, coarse > 5 mm in "
                  f"{100 * (coarse_mm[sel][:, c7t1].max(1) > 5).mean():5.1f}%, refined corner "
                  f"spread (box frame, ~0.55 when right) median {np.median(spread[sel, 5]):.2f}")
    if args.save:
        np.savez(args.save, coarse_mm=coarse_mm, final_mm=final_mm, outside=outside,
                 crop_std=crop_std, spread=spread,
                 side_ratio=side_ratio, names=np.array(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
