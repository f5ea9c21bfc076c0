"""The lumbar held-out evaluation set: phantoms whose seeds no training run uses.

    python3 tools/make_heldout_lumbar.py OUT_DIR [--count 200] [--height 1000] [--dicom]

Seeds phantom_lumbar.HELDOUT_SEED_BASE + i (850_000 ...); training uses 60_000_000 + i and
validation 61_000_000 + i (tools/train_lumbar.py), the samples 970_000 + i
(tools/make_samples.py). Each phantom is `heldout_lu_<seed>.png` (or `.dcm` with --dicom: Pixel
Spacing set, so that the engine reports distances in mm) with its ground truth
`heldout_lu_<seed>.json` (tools/phantom_lumbar.py format: present and cut levels, the present
levels' corners, spacing, the 3 true angles). Deterministic: the same command gives the same
pixels.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom_lumbar as pl  # noqa: E402


def _one(job):
    out_dir, seed, height, dicom = job
    img, meta = pl.generate(seed, height)
    pl.write_phantom(out_dir, f"heldout_lu_{seed}", img, meta, dicom=dicom, png=not dicom)
    return seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--height", type=int, default=1000, help="original image height in px")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--dicom", action="store_true",
                    help="write DICOM (with Pixel Spacing) instead of PNG; the pixels are the same")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    jobs = [(args.out_dir, pl.HELDOUT_SEED_BASE + i, args.height, args.dicom)
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
