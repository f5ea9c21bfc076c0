"""The whole-spine held-out evaluation set: phantoms whose seeds no training run uses.

    python3 tools/make_heldout_wholespine.py OUT_DIR [--count 200] [--height 1200] [--dicom]

Seeds phantom_wholespine.HELDOUT_SEED_BASE + i (800_000 ...); training uses 40_000_000 + i and
validation 41_000_000 + i (tools/train_wholespine.py), the samples 950_000 + i
(tools/make_samples.py). Each phantom is `heldout_ws_<seed>.png` (or `.dcm` with --dicom: Pixel
Spacing set, so that the engine reports distances in mm) with its ground truth
`heldout_ws_<seed>.json` (tools/phantom_wholespine.py format: landmarks, spacing, the 18 true
parameters). Deterministic: the same command gives the same pixels.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom_wholespine as pw  # noqa: E402


def _one(job):
    out_dir, seed, height, dicom = job
    img, meta = pw.generate(seed, height)
    pw.write_phantom(out_dir, f"heldout_ws_{seed}", img, meta, dicom=dicom, png=not dicom)
    return seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--height", type=int, default=1200, help="original image height in px")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--dicom", action="store_true",
                    help="write DICOM (with Pixel Spacing) instead of PNG; the pixels are the same")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    jobs = [(args.out_dir, pw.HELDOUT_SEED_BASE + i, args.height, args.dicom)
            for i in range(args.count)]
    if args.workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(args.workers) as pool:
            pool.map(_one, jobs, chunksize=8)
    else:
        for j in jobs:
            _one(j)
    print(f"wrote {args.count} phantoms (seeds {jobs[0][1]}..{jobs[-1][1]}) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
