#!/usr/bin/env python3
"""A paper-size random model and its reference outputs, for a parity check of the engine at full
size. Not used in CI.

    python3 make_paper_size.py OUTDIR [--model cervical|csm|wholespine|lumbar] [--seed N]
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

lumbar (1024 input, 512 crops, torchvision's full resnet50 and two Inception3, 78M parameters):
OUTDIR/lumbar_model.safetensors and OUTDIR/lumbar_io.safetensors with "image" and the expected
"presence", "coarse", "boxes", "refined_rows", "landmarks"; randomized as the small fixture. The
script first loads the three networks' weights into torchvision's own `resnet50` and
`Inception3(transform_input=False)` and requires the same outputs (so the reference is
torchvision's networks, not only their key layout).
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
    ap.add_argument("--model", choices=["cervical", "csm", "wholespine", "lumbar"],
                    default="cervical")
    ap.add_argument("--gain", type=float, default=1.1,
                    help="wholespine and lumbar: the conv gain of the randomization")
    args = ap.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    if args.model == "csm":
        return csm_reference(args)
    if args.model == "wholespine":
        return wholespine_reference(args)
    if args.model == "lumbar":
        return lumbar_reference(args)

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


@torch.no_grad()
def same_as_torchvision(model, x: torch.Tensor, crops: torch.Tensor) -> None:
    """The three networks against torchvision's own modules with the same weights."""
    import torchvision

    tv = torchvision.models.resnet50(num_classes=24).eval()
    tv.load_state_dict(model.identify.state_dict())
    d = (tv(x) - model.identify(x)).abs().max().item()
    print(f"identify vs torchvision resnet50: max |logit diff| {d:.2e}")
    assert d == 0.0
    for name, net, inp in (("locate", model.locate, x), ("refine", model.refine, crops[:2])):
        inception = torchvision.models.Inception3(aux_logits=False, transform_input=False,
                                                  init_weights=False).eval()
        state = {k: v for k, v in net.state_dict().items() if not k.startswith("hm_conv")}
        missing = inception.load_state_dict(state, strict=False)
        assert set(missing.missing_keys) == {"fc.weight", "fc.bias"}, missing
        assert not missing.unexpected_keys, missing
        grabbed = {}
        inception.Mixed_7c.register_forward_hook(lambda m, i, o: grabbed.__setitem__("y", o))
        inception(inp)
        d = (grabbed["y"] - net.trunk(inp)).abs().max().item()
        print(f"{name} vs torchvision Inception3 through Mixed_7c: max |diff| {d:.2e}")
        assert d == 0.0


def converted_from_torchvision_parts(model, config: dict, model_path: str) -> None:
    """The three networks saved as torchvision checkpoints (Inception3 with its training heads)
    and converted with `--part`: the same tensors as the file written directly."""
    import tempfile

    import torchvision
    from safetensors import safe_open

    from sagitta_ref import convert

    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        resnet = torchvision.models.resnet50(num_classes=24)
        resnet.load_state_dict(model.identify.state_dict())
        torch.save(resnet.state_dict(), os.path.join(tmp, "identify.pt"))
        parts += ["--part", f"identify={os.path.join(tmp, 'identify.pt')}"]
        for name in ("locate", "refine"):
            net = getattr(model, name)
            inception = torchvision.models.Inception3(aux_logits=True, transform_input=False,
                                                      init_weights=False)
            state = {k: v for k, v in net.state_dict().items() if not k.startswith("hm_conv")}
            inception.load_state_dict(state, strict=False)
            sd = dict(inception.state_dict())
            sd["hm_conv.weight"] = net.hm_conv.weight
            torch.save(sd, os.path.join(tmp, f"{name}.pt"))
            parts += ["--part", f"{name}={os.path.join(tmp, name + '.pt')}"]
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f)
        out = os.path.join(tmp, "converted.safetensors")
        assert convert.main([*parts, out, "--config", os.path.join(tmp, "config.json")]) == 0
        with safe_open(out, "pt") as a, safe_open(model_path, "pt") as b:
            assert sorted(a.keys()) == sorted(b.keys())
            assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    print("torchvision checkpoints converted with --part: the same tensors")


def lumbar_reference(args) -> int:
    from sagitta_ref.models import lumbar

    config = lumbar.paper_config()
    config["name"] = f"lumbar-paper-random-seed{args.seed}"
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    image = testdata.synthetic_radiograph(args.height, args.width, g, testdata.spine_targets(g))
    model = lumbar.LumbarModel(config)
    testdata.randomize_(model, g, conv_gain=args.gain)
    with torch.no_grad():
        # The labeller's logits scaled to a spread of about 1.5 on this image, so that the
        # probabilities compared are not saturated at 0 or 1.
        fc = model.identify.fc
        pooled = {}
        hook = fc.register_forward_hook(lambda m, i, o: pooled.__setitem__("f", i[0]))
        model(image)
        hook.remove()
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=g))
        fc.weight.mul_(1.5 / (pooled["f"] @ fc.weight.T).std())
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=g) * 0.5)
    model_path = os.path.join(args.outdir, "lumbar_model.safetensors")
    save_model(model, config, model_path, "f32")
    t0 = time.perf_counter()
    out = model(image)
    elapsed = time.perf_counter() - t0
    sd = out["landmarks"][:, 2:]
    spread = out["landmarks"][:, :2].std(0).min().item()
    coarse_spread = out["coarse"][:, :2].std(0).min().item()
    p = out["presence"]
    print(f"reference forward (PyTorch CPU, {torch.get_num_threads()} threads): {elapsed:.2f} s;"
          f" corner sd {sd.min().item():.2f}..{sd.max().item():.2f} px (median"
          f" {sd.median().item():.2f}), spread {spread:.2f} px (localisation {coarse_spread:.2f}),"
          f" presence"
          f" {p.min().item():.3f}..{p.max().item():.3f}")
    assert spread > 1.0, "the corners do not spread: try another --gain"
    assert torch.isfinite(out["landmarks"]).all()
    s = config["input_size"]
    x = lumbar.ops.channel_affine_expand(out["normalized"][None, None], config["input_mean"],
                                         config["input_std"])
    crops = lumbar.ops.channel_affine_expand(out["crops"], config["input_mean"],
                                             config["input_std"])
    assert x.shape[-1] == s
    same_as_torchvision(model, x, crops)
    converted_from_torchvision_parts(model, config, model_path)
    io = {"image": image}
    io.update({k: out[k].float().contiguous() for k in
               ("presence", "coarse", "boxes", "refined_rows", "landmarks")})
    io_path = os.path.join(args.outdir, "lumbar_io.safetensors")
    st_io.save_file(io, io_path, {"config": json.dumps(config),
                                  "reference_seconds": f"{elapsed:.3f}"})
    for path in (model_path, io_path):
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
