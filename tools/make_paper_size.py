#!/usr/bin/env python3
"""A paper-size random model and its reference outputs, for a parity check of the engine at full
size. Not used in CI.

    python3 make_paper_size.py OUTDIR [--model cervical|csm|wholespine] [--seed N]
                               [--height H --width W]

cervical (1024 input, 128 crops, 27M parameters): OUTDIR/model.safetensors (f32, paper_config()
in the metadata) and OUTDIR/io.safetensors: "image" [H, W] (original pixels) and the expected
"standardized", "coarse_norm", "boxes", "crops", "refined_norm", "landmarks_input", "landmarks"
(same names as the small fixture, no dtype prefix). The weights follow the same peaked-init recipe
as make_fixtures.py (sagitta_ref.testdata).

csm (full-width VGG16 at 224, FC 128/64/1, 15M parameters): OUTDIR/csm_model.safetensors and
OUTDIR/csm_io.safetensors with "image" and the expected "resized", "normalized", "expanded",
"logit", "p"; He-initialised, the last bias centred so that the image's logit is 0.4 (as the small
fixture).

wholespine (864x480 input, widths 16..256, two members, 17.6M parameters):
OUTDIR/wholespine_model.safetensors and OUTDIR/wholespine_io.safetensors with "image" and the
expected "standardized", "member_rows", "norm", "landmarks_input", "landmarks"; randomized as the
small fixture (BatchNorm statistics included) with a conv gain that keeps the heatmaps peaked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref import st_io, testdata  # noqa: E402
from sagitta_ref.convert import save_model  # noqa: E402
from sagitta_ref.models import csm, wholespine  # noqa: E402
from sagitta_ref.models.cervical import CervicalModel, paper_config  # noqa: E402

KEYS = ["standardized", "coarse_norm", "boxes", "crops", "refined_norm", "landmarks_input",
        "landmarks"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--height", type=int, default=1200)
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--model", choices=["cervical", "csm", "wholespine"], default="cervical")
    ap.add_argument("--gain", type=float, default=1.1,
                    help="wholespine: the conv gain of the randomization")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    if args.model == "csm":
        return csm_reference(args)
    if args.model == "wholespine":
        return wholespine_reference(args)

    config = paper_config()
    config["name"] = f"cervical-paper-random-seed{args.seed}"
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    spine = testdata.spine_targets(g)
    image = testdata.synthetic_radiograph(args.height, args.width, g, spine)
    model = CervicalModel(config)
    t0 = time.perf_counter()
    testdata.peaked_init_(model, image, g, spine)
    print(f"peaked init: {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    out = model(image)
    elapsed = time.perf_counter() - t0
    print(f"reference forward (PyTorch CPU, {torch.get_num_threads()} threads): {elapsed:.2f} s")
    testdata.check_meaningful(out, config, "paper")

    model_path = os.path.join(args.outdir, "model.safetensors")
    save_model(model, config, model_path, "f32")
    io = {"image": image}
    io.update({k: out[k].float().contiguous() for k in KEYS})
    io_path = os.path.join(args.outdir, "io.safetensors")
    st_io.save_file(io, io_path, {"config": json.dumps(config),
                                  "reference_seconds": f"{elapsed:.3f}"})
    for p in (model_path, io_path):
        print(f"{p}: {os.path.getsize(p)} bytes")
    return 0


def csm_reference(args) -> int:
    config = csm.paper_config()
    config["name"] = f"csm-paper-random-seed{args.seed}"
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    image = testdata.synthetic_radiograph(args.height, args.width, g, testdata.spine_targets(g))
    model = csm.CsmModel(config)
    testdata.he_init_centred_(model, image, g)
    model_path = os.path.join(args.outdir, "csm_model.safetensors")
    save_model(model, config, model_path, "f32")
    t0 = time.perf_counter()
    out = model(image)
    elapsed = time.perf_counter() - t0
    print(f"reference forward (PyTorch CPU, {torch.get_num_threads()} threads): {elapsed:.2f} s;"
          f" logit {out['logit'].item():.6f}, p {out['p'].item():.6f}")
    flipped = model(torch.flip(image, [0]))["logit"].item()
    assert abs(flipped - out["logit"].item()) > 1e-3, "the logit does not depend on the image"
    io = {"image": image}
    io.update({k: out[k].float().contiguous() for k in
               ("resized", "normalized", "expanded", "logit", "p")})
    io_path = os.path.join(args.outdir, "csm_io.safetensors")
    st_io.save_file(io, io_path, {"config": json.dumps(config),
                                  "reference_seconds": f"{elapsed:.3f}"})
    for p in (model_path, io_path):
        print(f"{p}: {os.path.getsize(p)} bytes")
    return 0


def wholespine_reference(args) -> int:
    config = wholespine.paper_config()
    config["name"] = f"wholespine-paper-random-seed{args.seed}"
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    image = testdata.synthetic_radiograph(args.height, args.width, g, testdata.spine_targets(g))
    model = wholespine.WholeSpineModel(config)
    testdata.randomize_(model, g, conv_gain=args.gain)
    model_path = os.path.join(args.outdir, "wholespine_model.safetensors")
    save_model(model, config, model_path, "f32")
    t0 = time.perf_counter()
    out = model(image)
    elapsed = time.perf_counter() - t0
    sd = out["landmarks"][:, 2:]
    spread = out["norm"][:, :2].std(0).min().item()
    print(f"reference forward (PyTorch CPU, {torch.get_num_threads()} threads): {elapsed:.2f} s;"
          f" landmark sd {sd.min().item():.2f}..{sd.max().item():.2f} px (median"
          f" {sd.median().item():.2f}), spread {spread:.3f}")
    assert spread > 0.01, "the landmarks do not spread: try another --gain"
    io = {"image": image}
    io.update({k: out[k].float().contiguous() for k in
               ("standardized", "member_rows", "norm", "landmarks_input", "landmarks")})
    io_path = os.path.join(args.outdir, "wholespine_io.safetensors")
    st_io.save_file(io, io_path, {"config": json.dumps(config),
                                  "reference_seconds": f"{elapsed:.3f}"})
    for p in (model_path, io_path):
        print(f"{p}: {os.path.getsize(p)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
