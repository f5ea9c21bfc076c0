"""The held-out evaluation set: phantoms whose seeds are disjoint from training.

    python3 tools/make_heldout.py OUT_DIR [--count 200] [--height 1000] [--workers 2]

Seeds HELDOUT_SEED_BASE + i (500_000 ...); training uses 10_000_000 + i and validation
20_000_000 + i (tools/train.py), samples 900_000 + i (tools/make_samples.py). Each phantom is a
16-bit PNG `heldout_<seed>.png` with its ground-truth `heldout_<seed>.json` (tools/phantom.py format,
pixel spacing included). Deterministic: the same command gives the same pixels.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom  # noqa: E402

HELDOUT_SEED_BASE = 500_000
# The quality-flag calibration set (`--calibration`): thresholds are tuned on these, never on the
# held-out set they are then reported on, and neither range overlaps training (10 000 000+),
# validation (20 000 000+) or the samples (900 001+).
CALIBRATION_SEED_BASE = 600_000


def _one(job):
    out_dir, seed, height, dicom = job
    img, meta = phantom.generate(seed, height)
    phantom.write_phantom(out_dir, f"heldout_{seed}", img, meta, dicom=dicom, png=not dicom)
    return seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--height", type=int, default=1000, help="original image height in px")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--calibration", action="store_true",
                    help=f"the quality-flag calibration seeds ({CALIBRATION_SEED_BASE}+) instead")
    ap.add_argument("--dicom", action="store_true",
                    help="write DICOM (with Pixel Spacing, so that distances are checked in mm) "
                         "instead of PNG; the pixels are the same")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    base = CALIBRATION_SEED_BASE if args.calibration else HELDOUT_SEED_BASE
    jobs = [(args.out_dir, base + i, args.height, args.dicom) for i in range(args.count)]
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
