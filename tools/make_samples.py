"""The sample radiographs shipped in samples/ (synthetic phantoms, ground truth beside each).

    python3 tools/make_samples.py samples

Seeds 900_000 + i, disjoint from training (10_000_000 + i), validation (20_000_000 + i) and the
held-out set (500_000 + i). Writes three 16-bit PNGs (one facing left, two facing right; ~1000 px
wide, 1200 px high, 10-bit values, noise at 0.3x) and one smaller DICOM (640x768, 12-bit (MONOCHROME2, 16 bits allocated, explicit VR little endian,
PixelSpacing and ImagerPixelSpacing set), each with `<stem>.json` (tools/phantom.py format).

Whole spine (tools/phantom_wholespine.py, seeds 950_000 + i, disjoint from its training
(40_000_000 + i), validation (41_000_000 + i) and held-out (800_000 + i) seeds): two 16-bit PNGs
(1200 px high, 10-bit values, noise at 0.3x; one facing right, one left) and one DICOM (960 px
high, 12-bit, PixelSpacing set), `wholespine_*` with `<stem>.json` (landmarks, spacing and the 18
true parameters).

Thoracolumbar (tools/phantom_lumbar.py, seeds 970_000 + i, disjoint from its training
(60_000_000 + i), validation (61_000_000 + i) and held-out (850_000 + i) seeds): one 16-bit PNG
(1000 px high, 10-bit values, noise at 0.3x, facing right; degenerative L3-S1 discs) and one DICOM
(720 px high, 12-bit, PixelSpacing set, facing left; pedicle screws L1-L5 and a cage), `lumbar_*`
with `<stem>.json` (present levels, their corners, the three parameters signed and unsigned, what
was drawn).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom  # noqa: E402
import phantom_lumbar  # noqa: E402
import phantom_wholespine  # noqa: E402

SAMPLES = [
    # stem, seed, height, width, facing, dicom
    ("phantom_right", 900_001, 1200, 1000, "right", False),
    ("phantom_left", 900_002, 1200, 1000, "left", False),
    ("phantom_right_2", 900_003, 1200, 960, "right", False),
    ("phantom_dicom", 900_004, 768, 640, "left", True),
]


WHOLESPINE_SAMPLES = [
    # stem, seed, height, width, facing, dicom
    ("wholespine_right", 950_001, 1200, 520, "right", False),
    ("wholespine_left", 950_002, 1200, 500, "left", False),
    ("wholespine_dicom", 950_003, 960, 400, "right", True),
]

LUMBAR_SAMPLES = [
    # stem, seed, height, width (None: the film's own aspect), facing, dicom
    ("lumbar_right", 970_001, 1000, None, "right", False),
    ("lumbar_dicom", 970_002, 720, None, "left", True),
]


def main(argv=None) -> int:
    out = (argv or sys.argv[1:] or ["samples"])[0]
    os.makedirs(out, exist_ok=True)
    for stem, seed, h, w, facing, dicom in SAMPLES:
        # lower noise and 10/12-bit depth keep the repository small (PNG compresses noise badly)
        img, meta = phantom.generate(seed, h, w, facing, noise_scale=0.3,
                                     bits=12 if dicom else 10)
        phantom.write_phantom(out, stem, img, meta, dicom=dicom, png=not dicom)
        print(f"{out}/{stem}: seed {seed}, {w}x{h}, facing {facing}, "
              f"spacing {meta['pixel_spacing_mm'][0]:.4f} mm")
    for stem, seed, h, w, facing, dicom in WHOLESPINE_SAMPLES:
        img, meta = phantom_wholespine.generate(seed, h, w, facing, noise_scale=0.3,
                                                bits=12 if dicom else 10)
        phantom_wholespine.write_phantom(out, stem, img, meta, dicom=dicom, png=not dicom)
        print(f"{out}/{stem}: seed {seed}, {w}x{h}, facing {facing}, "
              f"spacing {meta['pixel_spacing_mm'][0]:.4f} mm")
    for stem, seed, h, w, facing, dicom in LUMBAR_SAMPLES:
        img, meta = phantom_lumbar.generate(seed, h, w, facing, noise_scale=0.3,
                                            bits=12 if dicom else 10)
        phantom_lumbar.write_phantom(out, stem, img, meta, dicom=dicom, png=not dicom)
        print(f"{out}/{stem}: seed {seed}, {meta['width']}x{h}, facing {facing}, "
              f"spacing {meta['pixel_spacing_mm'][0]:.4f} mm, "
              f"levels {meta['present_levels'][0]}-S1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
