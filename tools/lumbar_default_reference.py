"""The PyTorch reference's outputs for the shipped lumbar default on the lumbar samples: the numbers
tests/lumbar_default.rs holds the engine to.

    python3 tools/lumbar_default_reference.py [--weights weights/lumbar_default.safetensors] \
        [--out tests/fixtures/lumbar_default_torch.json]

Runs sagitta_ref.models.lumbar (float32, through convert.load_model) on samples/lumbar_* (PNG and
DICOM decoded as tools/evaluate.py does) and writes, per image, the 24 presence probabilities, the
96 refined corners (x, y) and the 96 step-I corners in original pixels, with the weights file's
SHA-256 so that the test notices a reference made for other weights. Regenerate whenever the
weights or the samples change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import load_image  # noqa: E402
from make_samples import LUMBAR_SAMPLES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    import torch
    from sagitta_ref.convert import load_model
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(ROOT, "weights",
                                                      "lumbar_default.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures",
                                                  "lumbar_default_torch.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, _ = load_model(args.weights)
    model.eval()
    with open(args.weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    images = {}
    for stem, _seed, _h, _w, _facing, dicom in LUMBAR_SAMPLES:
        name = f"{stem}.{'dcm' if dicom else 'png'}"
        img = load_image(os.path.join(ROOT, "samples", name))
        out = model(torch.from_numpy(img))

        def points(t):
            return [[round(float(x), 6), round(float(y), 6)] for x, y in t[:, :2].double()]
        images[name] = {"presence": [round(float(p), 7) for p in out["presence"]],
                        "corners": points(out["landmarks"]),
                        "step1_corners": points(out["coarse"])}
    out = {"weights_sha256": sha, "torch": torch.__version__,
           "command": "python3 tools/lumbar_default_reference.py",
           "images": images}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({len(images)} images, weights {sha[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
