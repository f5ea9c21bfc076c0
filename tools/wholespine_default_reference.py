"""The PyTorch reference's landmarks for the shipped whole-spine default on the whole-spine samples:
the numbers tests/wholespine_default.rs holds the engine to.

    python3 tools/wholespine_default_reference.py \
        [--weights weights/wholespine_default.safetensors] \
        [--out tests/fixtures/wholespine_default_torch.json]

Runs sagitta_ref.models.wholespine (float32, through convert.load_model) on samples/wholespine_*
(PNG and DICOM decoded as tools/evaluate.py does) and writes, per image, the 45 landmarks (x, y)
in original pixels, with the weights file's SHA-256 so that the test notices a reference made
for other weights. Regenerate whenever the weights or the samples change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import load_image  # noqa: E402
from make_samples import WHOLESPINE_SAMPLES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import torch
    from sagitta_ref.convert import load_model
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(ROOT, "weights",
                                                      "wholespine_default.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures",
                                                  "wholespine_default_torch.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, _ = load_model(args.weights)
    model.eval()
    with open(args.weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    images = {}
    for stem, _seed, _h, _w, _facing, dicom in WHOLESPINE_SAMPLES:
        name = f"{stem}.{'dcm' if dicom else 'png'}"
        img = load_image(os.path.join(ROOT, "samples", name))
        lm = model(torch.from_numpy(img))["landmarks"][:, :2].double().numpy()
        images[name] = [[round(float(x), 6), round(float(y), 6)] for x, y in lm]
    out = {"weights_sha256": sha, "torch": torch.__version__,
           "command": "python3 tools/wholespine_default_reference.py",
           "landmarks": images}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({len(images)} images, weights {sha[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
