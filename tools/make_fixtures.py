#!/usr/bin/env python3
"""Write the parity fixtures in ../tests/fixtures (run from tools/: `python3 make_fixtures.py`;
`python3 make_fixtures.py conv2d_rect concat` writes only the named files, see FIXTURES).

Deterministic: fixed seeds, one CPU thread, and a writer with a fixed byte layout, so running it
again gives byte-identical files. Each kernel fixture is a safetensors file whose metadata "cases"
is a JSON list of case dicts ({"name": ..., params...}); case NAME's tensors are "NAME.TENSOR".
All tensors are float32 and contiguous.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref import ops, st_io, testdata  # noqa: E402
from sagitta_ref.anatomy.cervical import DISC_GROUPS  # noqa: E402
from sagitta_ref.convert import load_model, save_model  # noqa: E402
from sagitta_ref.models.cervical import CervicalModel, small_config  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Fixture:
    """Collects cases and tensors for one kernel fixture file."""

    def __init__(self, filename: str):
        self.path = os.path.join(OUT, filename)
        self.cases: list[dict] = []
        self.tensors: dict[str, torch.Tensor] = {}

    def add(self, name: str, params: dict, tensors: dict[str, torch.Tensor]):
        assert "." not in name and all(c["name"] != name for c in self.cases), name
        self.cases.append({"name": name, **params})
        for key, t in tensors.items():
            assert t.dtype == torch.float32, (name, key, t.dtype)
            self.tensors[f"{name}.{key}"] = t.detach().contiguous()

    def write(self):
        st_io.save_file(self.tensors, self.path, {"cases": json.dumps(self.cases)})
        print(f"{os.path.relpath(self.path)}: {len(self.cases)} cases, "
              f"{os.path.getsize(self.path)} bytes")


# --- 1. resize ---------------------------------------------------------------------------------

def resize_fixture():
    fx = Fixture("resize_bicubic.safetensors")
    g = gen(101)
    for in_h, in_w, out_h, out_w in [(37, 53, 24, 32), (17, 13, 40, 36), (64, 64, 64, 64),
                                     (100, 30, 33, 71), (300, 260, 128, 128)]:
        x = torch.rand(in_h, in_w, generator=g) * 4095.0
        fx.add(f"r{in_h}x{in_w}_to_{out_h}x{out_w}",
               {"in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w},
               {"input": x, "output": ops.resize_bicubic(x, out_h, out_w)})
    fx.write()


# --- 2. standardize ----------------------------------------------------------------------------

def standardize_fixture():
    fx = Fixture("standardize.safetensors")
    g = gen(102)
    x = 1000.0 + 300.0 * torch.randn(31, 47, generator=g)
    fx.add("s31x47", {"h": 31, "w": 47}, {"input": x, "output": ops.standardize(x)})
    x = torch.rand(128, 128, generator=g) * 4095.0
    fx.add("s128x128", {"h": 128, "w": 128}, {"input": x, "output": ops.standardize(x)})
    fx.write()


def standardize_planes_fixture():
    fx = Fixture("standardize_planes.safetensors")
    g = gen(131)
    # Crops as the refiners get them: each plane with its own offset and contrast, down to the
    # nearly flat crop of a disc under the shoulders and a constant one (std below eps).
    scale = torch.tensor([1.0, 0.3, 0.05, 0.004, 2.5, 0.0]).view(6, 1, 1, 1)
    offset = torch.tensor([0.0, -1.2, 0.8, 2.0, -0.3, 1.5]).view(6, 1, 1, 1)
    x = offset + scale * torch.randn(6, 1, 64, 64, generator=g)
    fx.add("crops6x64", {}, {"input": x, "output": ops.standardize_planes(x)})
    # Planes smaller than a workgroup and of an odd size.
    x = 100.0 + 30.0 * torch.randn(4, 5, 7, generator=g)
    fx.add("p4x5x7", {}, {"input": x, "output": ops.standardize_planes(x)})
    x = torch.rand(3, 31, 47, generator=g) * 4095.0
    fx.add("p3x31x47", {}, {"input": x, "output": ops.standardize_planes(x)})
    fx.write()


# --- 3. conv2d ---------------------------------------------------------------------------------

CONV_CASES = [
    # name, n, in_c, out_c, h, w, k, stride, pad, per_sample, prologue, residual, relu
    ("k1_16to32", 1, 16, 32, 9, 7, 1, 1, 0, False, False, False, False),
    ("k3_8to8_prologue_relu", 1, 8, 8, 13, 11, 3, 1, 1, False, True, False, True),
    ("k3_s2_odd", 1, 4, 6, 15, 9, 3, 2, 1, False, False, False, False),
    ("k7_s2_stem", 1, 1, 8, 37, 29, 7, 2, 3, False, False, False, True),
    ("k1_out29_residual", 1, 32, 29, 8, 8, 1, 1, 0, False, False, True, False),
    ("k3_per_sample_prologue_residual", 3, 6, 5, 10, 7, 3, 1, 1, True, True, True, False),
    ("k1_batch2_shared", 2, 12, 4, 6, 5, 1, 1, 0, False, False, False, False),
    ("k3_3to7_odd", 1, 3, 7, 11, 5, 3, 1, 1, False, False, False, False),
    ("k3_pad0_all_fused_batch2", 2, 5, 9, 9, 12, 3, 1, 0, False, True, True, True),
    ("k3_s2_per_sample_relu", 2, 7, 3, 12, 13, 3, 2, 1, True, False, False, True),
    # Several channel chunks, channel groups and tile blocks for the tiled and Winograd kernels.
    ("k3_40to36_fused_many_tiles", 1, 40, 36, 19, 37, 3, 1, 1, False, True, True, True),
    ("k3_per_sample_20to20", 2, 20, 20, 9, 10, 3, 1, 1, True, True, False, True),
    # 1x1 with every fusion: the tiled kernels read the activation as the GEMM matrix directly.
    ("k1_per_sample_24to40_all_fused", 2, 24, 40, 9, 9, 1, 1, 0, True, True, True, True),
]


def conv_fixture():
    fx = Fixture("conv2d.safetensors")
    g = gen(103)
    for name, n, ic, oc, h, w, k, stride, pad, per_sample, prologue, residual, relu in CONV_CASES:
        groups = n if per_sample else 1
        x = torch.randn(n, ic, h, w, generator=g)
        weight = torch.randn(groups, oc, ic, k, k, generator=g) / math.sqrt(ic * k * k)
        bias = torch.randn(groups, oc, generator=g) * 0.5
        tensors = {"input": x, "weight": weight, "bias": bias}
        scale = shift = res = None
        if prologue:
            scale = torch.rand(ic, generator=g) + 0.5
            shift = torch.randn(ic, generator=g) * 0.5
            tensors.update(prologue_scale=scale, prologue_shift=shift)
        oh = (h + 2 * pad - k) // stride + 1
        ow = (w + 2 * pad - k) // stride + 1
        if residual:
            res = torch.randn(n, oc, oh, ow, generator=g)
            tensors["residual"] = res
        out = ops.conv2d_fused(x, weight, bias, stride, pad, scale, shift, res, relu)
        assert out.shape == (n, oc, oh, ow)
        if k == 3 and stride == 1:
            twin = ops.conv3x3_winograd(x, weight, bias, pad, scale, shift, res, relu)
            assert torch.allclose(twin, out, atol=1e-4), f"{name}: Winograd twin differs"
        tensors["output"] = out
        fx.add(name, {"n": n, "in_c": ic, "out_c": oc, "h": h, "w": w, "k": k, "stride": stride,
                      "pad": pad, "per_sample": per_sample, "prologue": prologue,
                      "residual": residual, "relu": relu}, tensors)
    fx.write()


# --- 3b. rectangular convolutions (Inception-v3 / ResNet50 / VGG shapes) -------------------------

CONV_RECT_CASES = [
    # name, n, in_c, out_c, h, w, kh, kw, stride_y, stride_x, pad_y, pad_x,
    #   per_sample, prologue, residual, activation
    ("k1x7_p0x3", 1, 12, 10, 9, 17, 1, 7, 1, 1, 0, 3, False, False, False, "none"),
    ("k7x1_p3x0_relu", 1, 10, 12, 17, 9, 7, 1, 1, 1, 3, 0, False, False, False, "relu"),
    ("k1x3_p0x1_relu", 1, 16, 20, 7, 13, 1, 3, 1, 1, 0, 1, False, False, False, "relu"),
    ("k3x1_p1x0", 1, 20, 16, 13, 7, 3, 1, 1, 1, 1, 0, False, False, False, "none"),
    # Inception reduction: 3x3 stride 2, no padding
    ("k3_s2_p0_reduction_relu", 1, 24, 30, 17, 15, 3, 3, 2, 2, 0, 0, False, False, False, "relu"),
    ("k3_s1_p0_batch2", 2, 9, 13, 11, 10, 3, 3, 1, 1, 0, 0, False, False, False, "none"),
    ("k5_p2_relu", 1, 14, 18, 12, 9, 5, 5, 1, 1, 2, 2, False, False, False, "relu"),
    # ResNet50 stem: 7x7 stride 2 pad 3 on 3 (RGB) input channels
    ("k7_s2_p3_stem_rgb_relu", 1, 3, 16, 23, 19, 7, 7, 2, 2, 3, 3, False, False, False, "relu"),
    ("k1x7_prologue_residual_relu", 1, 17, 19, 10, 14, 1, 7, 1, 1, 0, 3, False, True, True, "relu"),
    ("k3_p1_sigmoid", 1, 8, 11, 9, 8, 3, 3, 1, 1, 1, 1, False, False, False, "sigmoid"),
    ("k1_residual_sigmoid_batch2", 2, 32, 40, 6, 5, 1, 1, 1, 1, 0, 0, False, False, True,
     "sigmoid"),
    ("k1x7_per_sample_relu", 2, 6, 9, 8, 11, 1, 7, 1, 1, 0, 3, True, False, False, "relu"),
    ("k3x1_s2x1_p1x0", 1, 11, 7, 15, 6, 3, 1, 2, 1, 1, 0, False, False, False, "none"),
    # control: square kernel, same stride/pad on both axes, as in conv2d.safetensors
    ("k3_p1_square_prologue_relu", 1, 8, 8, 13, 11, 3, 3, 1, 1, 1, 1, False, True, False, "relu"),
]


def conv_rect_fixture():
    fx = Fixture("conv2d_rect.safetensors")
    g = gen(109)
    for (name, n, ic, oc, h, w, kh, kw, sy, sx, py, px, per_sample, prologue, residual,
         activation) in CONV_RECT_CASES:
        groups = n if per_sample else 1
        x = torch.randn(n, ic, h, w, generator=g)
        weight = torch.randn(groups, oc, ic, kh, kw, generator=g) / math.sqrt(ic * kh * kw)
        bias = torch.randn(groups, oc, generator=g) * 0.5
        tensors = {"input": x, "weight": weight, "bias": bias}
        scale = shift = res = None
        if prologue:
            scale = torch.rand(ic, generator=g) + 0.5
            shift = torch.randn(ic, generator=g) * 0.5
            tensors.update(prologue_scale=scale, prologue_shift=shift)
        oh = (h + 2 * py - kh) // sy + 1
        ow = (w + 2 * px - kw) // sx + 1
        if residual:
            res = torch.randn(n, oc, oh, ow, generator=g)
            tensors["residual"] = res
        act = None if activation == "none" else activation
        out = ops.conv2d_fused(x, weight, bias, (sy, sx), (py, px), scale, shift, res,
                               activation=act)
        assert out.shape == (n, oc, oh, ow), (name, tuple(out.shape))
        if (kh, kw, sy, sx) == (3, 3, 1, 1) and py == px and act != "sigmoid":
            twin = ops.conv3x3_winograd(x, weight, bias, py, scale, shift, res, act == "relu")
            assert torch.allclose(twin, out, atol=1e-4), f"{name}: Winograd twin differs"
        tensors["output"] = out
        fx.add(name, {"n": n, "in_c": ic, "out_c": oc, "h": h, "w": w, "kh": kh, "kw": kw,
                      "stride_y": sy, "stride_x": sx, "pad_y": py, "pad_x": px,
                      "per_sample": per_sample, "prologue": prologue, "residual": residual,
                      "activation": activation}, tensors)
    fx.write()


# --- 3c. channel concatenation written in place by the producing convolutions ------------------

CONCAT_CASES = [
    # name, n, in_c, h, w, branches [(out_c, kh, kw, pad_y, pad_x, activation)], all stride 1
    ("inception_1x1_3x3_1x7_relu", 1, 8, 11, 9,
     [(8, 1, 1, 0, 0, "relu"), (12, 3, 3, 1, 1, "relu"), (4, 1, 7, 0, 3, "relu")]),
    ("two_branches_oc5_oc7_batch2", 2, 6, 7, 10,
     [(5, 3, 3, 1, 1, "relu"), (7, 7, 1, 3, 0, "none")]),
    ("four_1x1_mixed_activations", 1, 13, 6, 5,
     [(3, 1, 1, 0, 0, "none"), (4, 1, 1, 0, 0, "relu"), (5, 1, 1, 0, 0, "sigmoid"),
      (6, 1, 1, 0, 0, "relu")]),
]


def concat_fixture():
    fx = Fixture("concat.safetensors")
    g = gen(110)
    for name, n, ic, h, w, branches in CONCAT_CASES:
        x = torch.randn(n, ic, h, w, generator=g)
        tensors = {"input": x}
        outs = []
        params = []
        for i, (oc, kh, kw, py, px, activation) in enumerate(branches):
            weight = torch.randn(1, oc, ic, kh, kw, generator=g) / math.sqrt(ic * kh * kw)
            bias = torch.randn(1, oc, generator=g) * 0.5
            act = None if activation == "none" else activation
            out = ops.conv2d_fused(x, weight, bias, 1, (py, px), activation=act)
            assert out.shape == (n, oc, h, w), (name, i, tuple(out.shape))
            outs.append(out)
            tensors[f"branch{i}.weight"] = weight
            tensors[f"branch{i}.bias"] = bias
            params.append({"out_c": oc, "kh": kh, "kw": kw, "pad_y": py, "pad_x": px,
                           "activation": activation})
        tensors["output"] = torch.cat(outs, dim=1)
        fx.add(name, {"n": n, "in_c": ic, "h": h, "w": w, "branches": params}, tensors)
    fx.write()


# --- 4, 5. max-pool, upsample-add --------------------------------------------------------------

def maxpool_fixture():
    fx = Fixture("maxpool.safetensors")
    g = gen(104)
    for n, c, h, w in [(2, 3, 8, 6), (1, 2, 7, 9)]:
        x = torch.randn(n, c, h, w, generator=g)
        fx.add(f"p{n}x{c}x{h}x{w}", {"n": n, "c": c, "h": h, "w": w},
               {"input": x, "output": ops.maxpool2(x)})
    fx.write()


def upsample_fixture():
    fx = Fixture("upsample_add.safetensors")
    g = gen(105)
    for n, c, h, w in [(1, 3, 4, 5), (2, 2, 1, 1)]:
        low = torch.randn(n, c, h, w, generator=g)
        skip = torch.randn(n, c, 2 * h, 2 * w, generator=g)
        fx.add(f"u{n}x{c}x{h}x{w}", {"n": n, "c": c, "h": h, "w": w},
               {"low": low, "skip": skip, "output": ops.upsample_add(low, skip)})
    fx.write()


# --- 6. softmax + DSNT -------------------------------------------------------------------------

def softmax_dsnt_fixture():
    fx = Fixture("softmax_dsnt.safetensors")
    g = gen(106)

    def add(name, h):
        coords, var = ops.softmax_dsnt(h)
        n, c, hh, ww = h.shape
        fx.add(name, {"n": n, "c": c, "h": hh, "w": ww},
               {"heatmaps": h, "coords": coords, "variance": var,
                "probabilities": ops.softmax2d(h)})

    add("random_1x3x13x17", torch.randn(1, 3, 13, 17, generator=g))
    sharp = torch.randn(2, 2, 64, 64, generator=g)
    for i in range(2):
        for j in range(2):
            y, x = torch.randint(0, 64, (2,), generator=g).tolist()
            sharp[i, j, y, x] += 80.0
    # heatmap [1, 1]: two exactly equal peaks -> the expectation falls between them
    sharp[1, 1] = torch.randn(64, 64, generator=g)
    sharp[1, 1, 10, 50] = 80.0
    sharp[1, 1, 40, 7] = 80.0
    add("sharp_2x2x64x64", sharp)
    add("flat_1x1x8x8", torch.full((1, 1, 8, 8), 3.25))
    fx.write()


def texture_grey_fixture():
    """A host's texture -> grey values: stored integers as R16Uint / R16Sint / Rgba8Unorm, with
    the DICOM rescale, the MONOCHROME1 mirror and luma."""
    fx = Fixture("texture_grey.safetensors")
    g = gen(124)
    twelve = torch.randint(0, 4096, (37, 53), generator=g).float()
    rgba = torch.randint(0, 256, (29, 31, 4), generator=g).float()
    signed = torch.randint(-2000, 2001, (23, 19), generator=g).float()

    def add(name, format_, stored, unorm_max, slope, intercept, mirror_sum, luma):
        grey = ops.texture_grey(stored, slope=slope, intercept=intercept, mirror_sum=mirror_sum,
                                luma=luma)
        fx.add(name, {"format": format_, "unorm_max": unorm_max, "slope": slope,
                      "intercept": intercept, "mirror_sum": mirror_sum, "luma": luma},
               {"stored": stored, "grey": grey})

    add("r16uint_identity", "R16Uint", twelve, 0, 1.0, 0.0, None, False)
    # MONOCHROME1 about the rescaled ends of the 12-bit range, as the decoder mirrors.
    add("r16uint_rescale_monochrome1", "R16Uint", twelve, 0, 2.0, -100.0,
        (2.0 * 0 - 100.0) + (2.0 * 4095 - 100.0), False)
    add("r16uint_fractional_rescale", "R16Uint", twelve, 0, 0.5, -1024.25, None, False)
    add("rgba8unorm_red", "Rgba8Unorm", rgba, 255, 1.0, 0.0, None, False)
    add("rgba8unorm_luma", "Rgba8Unorm", rgba, 255, 1.0, 0.0, None, True)
    add("r16sint_rescale", "R16Sint", signed, 0, 1.0, 1024.0, None, False)
    fx.write()


# --- 7. ROIAlign -------------------------------------------------------------------------------

def roi_fixture():
    fx = Fixture("roi_align.safetensors")
    g = gen(107)

    def add(name, image, boxes, out_size, sampling_ratio):
        sides = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
        ratio = sides / out_size        # adaptive sampling: ceil(side / out_size) must be stable
        assert ((ratio - torch.round(ratio)).abs() > 1e-2).all(), name
        _, c, h, w = image.shape
        out = ops.roi_align_ours(image, boxes, out_size, sampling_ratio)
        fx.add(name, {"h": h, "w": w, "c": c, "out_size": out_size,
                      "sampling_ratio": sampling_ratio},
               {"image": image, "boxes": boxes, "output": out})

    image = torch.randn(1, 1, 40, 56, generator=g)
    boxes = torch.tensor([
        [10.3, 5.7, 30.8, 26.2],      # inside
        [-7.6, -5.2, 9.1, 11.5],      # partly outside left/top
        [45.4, 31.3, 62.9, 48.8],     # partly outside bottom-right
        [70.2, 50.1, 80.7, 60.6],     # fully outside
        [20.1, 15.2, 20.4, 15.5],     # smaller than a pixel (side 0.3)
        [-10.5, -18.5, 66.5, 58.5],   # covers the whole image
        [12.6, 20.35, 25.1, 37.45],   # not square (w 12.5, h 17.1)
    ])
    add("c1_40x56_out8_sr2", image, boxes, 8, 2)
    add("c1_40x56_out8_adaptive", image, boxes, 8, -1)
    image2 = torch.randn(1, 2, 24, 30, generator=g)
    boxes2 = torch.tensor([
        [3.2, 2.7, 21.7, 21.2],
        [-4.3, 8.9, 14.3, 27.5],
        [12.45, -2.05, 35.75, 21.25],
    ])
    add("c2_24x30_out16_sr2", image2, boxes2, 16, 2)
    fx.write()


# --- 8. boxes ----------------------------------------------------------------------------------

def boxes_fixture():
    fx = Fixture("boxes.safetensors")
    g = gen(108)

    def add(name, coarse, input_size, margin, min_side):
        boxes = ops.boxes_from_points(coarse, DISC_GROUPS, (input_size, input_size), margin,
                                      min_side)
        fx.add(name, {"input_size": input_size, "margin": margin, "min_side": min_side},
               {"coarse_norm": coarse, "boxes": boxes})

    add("spread_1024", testdata.spine_targets(g, jitter=0.03), 1024, 0.7, 32.0)
    centre = torch.tensor([0.13, -0.27])
    tight = centre + torch.randn(29, 2, generator=g) * 1e-3
    add("min_side_128", tight, 128, 0.7, 8.0)

    # SPEC-lumbar step 5: rectangles about each level's corner mean on a W x H frame (names
    # starting with about_mean; the test reads the shape from the name).
    def add_about_mean(name, coarse, height, width, margin, min_side):
        groups = [list(range(4 * v, 4 * v + 4)) for v in range(coarse.shape[0] // 4)]
        boxes = ops.boxes_about_mean(coarse, groups, (height, width), margin, min_side)
        fx.add(name, {"input_size": max(height, width), "height": height, "width": width,
                      "margin": margin, "min_side": min_side},
               {"coarse_norm": coarse, "boxes": boxes})

    levels = torch.rand(28, 2, generator=g) * 1.6 - 0.8
    add_about_mean("about_mean_1200x800", levels, 1200, 800, 0.7, 16.0)
    add_about_mean("about_mean_min_side", centre + torch.randn(28, 2, generator=g) * 1e-3,
                   300, 500, 0.7, 16.0)
    fx.write()


# --- 10. CSM classifier operators: area resize, min-max, channel expansion, global pool, linear --

def resize_area_fixture():
    fx = Fixture("resize_area.safetensors")
    g = gen(111)
    for in_h, in_w, out_h, out_w in [(301, 257, 224, 224), (410, 130, 40, 12), (37, 53, 24, 32),
                                     (13, 17, 32, 32), (100, 30, 33, 71), (64, 48, 64, 48)]:
        x = torch.rand(in_h, in_w, generator=g) * 4095.0
        out = ops.resize_area(x, out_h, out_w)
        if (in_h, in_w) == (out_h, out_w):
            assert torch.equal(out, x), "area resize to the same size is the identity"
        fx.add(f"a{in_h}x{in_w}_to_{out_h}x{out_w}",
               {"in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w},
               {"input": x, "output": out})
    fx.write()


def minmax_fixture():
    fx = Fixture("minmax.safetensors")
    g = gen(112)
    cases = [
        ("m31x47_offset", 1000.0 + 300.0 * torch.randn(31, 47, generator=g)),
        ("m224x224", torch.rand(1, 1, 224, 224, generator=g) * 4095.0),
        ("m2x3x5x7_negative", torch.randn(2, 3, 5, 7, generator=g) - 4.0),
        ("m6x5_constant", torch.full((6, 5), 42.5)),
    ]
    for name, x in cases:
        fx.add(name, {"shape": list(x.shape)}, {"input": x, "output": ops.minmax_normalize(x)})
    fx.write()


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def channel_affine_fixture():
    fx = Fixture("channel_affine.safetensors")
    g = gen(113)
    for name, shape, mean, std in [
        ("imagenet_1x1x13x17", (1, 1, 13, 17), IMAGENET_MEAN, IMAGENET_STD),
        ("four_2x1x5x7", (2, 1, 5, 7), [0.1, -0.2, 0.3, 0.0], [0.5, 2.0, 0.25, 1.5]),
        ("caffe_bgr_1x1x8x9", (1, 1, 8, 9), [103.939 / 255, 116.779 / 255, 123.68 / 255],
         [1 / 255] * 3),
        ("one_1x1x4x4", (1, 1, 4, 4), [0.5], [0.25]),
    ]:
        x = torch.rand(*shape, generator=g)
        fx.add(name, {"mean": mean, "std": std},
               {"input": x, "output": ops.channel_affine_expand(x, mean, std)})
    fx.write()


def global_avg_pool_fixture():
    fx = Fixture("global_avg_pool.safetensors")
    g = gen(114)
    for n, c, h, w, offset in [(1, 2, 224, 224, 3.0), (2, 3, 7, 9, 0.0), (1, 5, 1, 1, 0.0),
                               (1, 16, 14, 14, 0.5)]:
        x = torch.randn(n, c, h, w, generator=g) + offset
        fx.add(f"g{n}x{c}x{h}x{w}", {"n": n, "c": c, "h": h, "w": w},
               {"input": x, "output": ops.global_avg_pool(x)})
    fx.write()


def upsample_bilinear_fixture():
    fx = Fixture("upsample_bilinear.safetensors")
    g = gen(115)
    # (n, c, h, w, out_h, out_w, align_corners, add)
    for n, c, h, w, oh, ow, ac, add in [
            (1, 3, 27, 15, 54, 30, False, True),     # x2, the decoder's merge
            (1, 1, 27, 15, 864, 480, False, False),  # x32 (L5 to the input size)
            (2, 3, 7, 5, 17, 13, False, False),      # non-integer ratios
            (1, 2, 20, 16, 7, 9, False, True),       # downsampling
            (1, 2, 7, 5, 17, 13, True, True),        # align_corners
            (1, 1, 9, 6, 4, 1, True, False),         # align_corners down, one column
            (1, 2, 1, 1, 3, 4, False, False)]:       # a single pixel
        x = torch.randn(n, c, h, w, generator=g)
        tensors = {"input": x}
        if add:
            skip = torch.randn(n, c, oh, ow, generator=g)
            tensors["skip"] = skip
            tensors["output"] = ops.upsample_bilinear_add(x, skip, ac)
        else:
            tensors["output"] = ops.upsample_bilinear(x, oh, ow, ac)
        fx.add(f"b{n}x{c}x{h}x{w}to{oh}x{ow}{'ac' if ac else ''}",
               {"out_h": oh, "out_w": ow, "align_corners": ac, "add": add}, tensors)
    fx.write()


def ensemble_mean_fixture():
    fx = Fixture("ensemble_mean.safetensors")
    g = gen(116)
    for name, shape, k in [("batch2", (2, 45, 2), 2), ("views2", (1, 2 * 45, 8, 6), 2),
                           ("views3", (1, 3 * 4, 5, 7), 3), ("single", (1, 5, 3, 3), 1),
                           ("flat4", (4 * 37,), 4)]:
        x = torch.randn(*shape, generator=g) + 1.0
        fx.add(name, {"members": k}, {"input": x, "output": ops.ensemble_mean(x, k)})
    fx.write()


def linear_fixture():
    fx = Fixture("linear.safetensors")
    g = gen(115)
    for name, n, inf, outf, activation in [
        ("l512to128_relu", 1, 512, 128, "relu"),
        ("l128to64_relu_batch2", 2, 128, 64, "relu"),
        ("l64to1_sigmoid", 1, 64, 1, "sigmoid"),
        ("l13to7_none_batch3", 3, 13, 7, "none"),
        ("l6to5_sigmoid_batch2", 2, 6, 5, "sigmoid"),
    ]:
        x = torch.randn(n, inf, generator=g)
        weight = torch.randn(outf, inf, generator=g) / math.sqrt(inf)
        bias = torch.randn(outf, generator=g) * 0.5
        act = None if activation == "none" else activation
        fx.add(name, {"n": n, "in_features": inf, "out_features": outf, "activation": activation},
               {"input": x, "weight": weight, "bias": bias,
                "output": ops.linear(x, weight, bias, act)})
    fx.write()


# --- 11. a tiny VGG (torchvision layout) behind the CSM preprocessing --------------------------

VGG_TINY_KEYS = ["resized", "normalized", "expanded", "features.1", "features.3", "features.4",
                 "features.6", "pooled", "classifier.1", "logit", "probability"]


def vgg_tiny_fixture():
    """torchvision's VGG layout at toy width: features = conv 3->8, ReLU, conv 8->8, ReLU,
    max-pool, conv 8->16, ReLU; global average pool; classifier = Linear(16, 4), ReLU,
    Linear(4, 1); sigmoid. Input: an image through area resize, min-max and ImageNet affine."""
    import torch.nn as nn
    g = gen(116)
    torch.manual_seed(116)
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=False),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=False))
    classifier = nn.Sequential(nn.Linear(16, 4), nn.ReLU(inplace=False), nn.Linear(4, 1))
    size = 20
    image = torch.rand(45, 37, generator=g) * 4095.0
    t = {"image": image}
    with torch.no_grad():
        t["resized"] = ops.resize_area(image, size, size)[None, None]
        t["normalized"] = ops.minmax_normalize(t["resized"])
        t["expanded"] = ops.channel_affine_expand(t["normalized"], IMAGENET_MEAN, IMAGENET_STD)
        x = t["expanded"]
        for i, layer in enumerate(features):
            x = layer(x)
            if f"features.{i}" in VGG_TINY_KEYS:
                t[f"features.{i}"] = x
        t["pooled"] = ops.global_avg_pool(x)
        h = classifier[1](classifier[0](t["pooled"]))
        t["classifier.1"] = h
        t["logit"] = classifier[2](h)
        t["probability"] = torch.sigmoid(t["logit"])
        # the ops' twins compute the same head
        twin = ops.linear(ops.linear(t["pooled"], classifier[0].weight, classifier[0].bias,
                                     "relu"), classifier[2].weight, classifier[2].bias, "sigmoid")
        assert torch.allclose(twin, t["probability"], atol=1e-6)
    p = t["probability"].item()
    assert 0.05 < p < 0.95, f"tiny VGG probability {p} saturated"
    for prefix, module in (("features", features), ("classifier", classifier)):
        for key, value in module.state_dict().items():
            t[f"{prefix}.{key}"] = value
    fx = Fixture("vgg_tiny.safetensors")
    fx.add("tiny", {"image_h": 45, "image_w": 37, "size": size, "mean": IMAGENET_MEAN,
                    "std": IMAGENET_STD, "convs": [0, 2, 5], "linears": [0, 2]}, t)
    fx.write()


# --- 9. the whole pipeline ---------------------------------------------------------------------

PIPELINE_KEYS = ["standardized", "coarse_norm", "boxes", "crops", "refined_norm",
                 "landmarks_input", "landmarks"]


def pipeline_fixture(stem: str = "cervical_small", dtypes=("f32", "f16"), **changes):
    """The small cervical model with peaked weights, its image and every intermediate; `changes`
    are config fields set on top of small_config() (the refiners are fitted to the crops the
    changed pipeline makes)."""
    config = {**small_config(), **changes}
    g = gen(3)
    spine = testdata.spine_targets(g)
    image = testdata.synthetic_radiograph(150, 97, g, spine)      # [H0, W0], not square
    torch.manual_seed(0)
    model = CervicalModel(config)
    testdata.peaked_init_(model, image, g, spine)

    io = {"image": image}
    for dtype in dtypes:
        path = os.path.join(OUT, f"{stem}_{dtype}.safetensors")
        save_model(model, config, path, dtype)
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")
        # expectations from the file's own values (f16 upcast to f32), computed in float32
        reloaded, _ = load_model(path, torch.float32)
        out = reloaded(image)
        testdata.check_meaningful(out, config, dtype)
        for key in PIPELINE_KEYS:
            io[f"{dtype}.{key}"] = out[key].float().contiguous()
        if dtype == "f16":
            ref = io["f32.landmarks_input"]
            print(f"  f16 vs f32 weights: max |landmarks_input diff| = "
                  f"{(out['landmarks_input'] - ref).abs().max().item():.4f} input px")
    print("  f16-activation sensitivity (f32 weights, conv outputs rounded to f16): "
          f"max |landmarks_input diff| = {testdata.f16_activation_sensitivity(model, image):.4f}"
          " input px")
    path = os.path.join(OUT, f"{stem}_io.safetensors")
    st_io.save_file(io, path, {"config": json.dumps(config)})
    print(f"{os.path.relpath(path)}: {len(io)} tensors, {os.path.getsize(path)} bytes")


def heatmaps_fixture(family: str, key: str):
    """What a viewer draws: the probability maps (softmax_maps.wgsl) of the committed small
    `family` model on its committed image (`key`: the reference's heatmap output). Read from
    those files rather than rebuilt, so that this fixture regenerates byte-identically where the
    model and image (made by an older torch) do not."""
    from safetensors.torch import load_file
    model, _ = load_model(os.path.join(OUT, f"{family}_small_f32.safetensors"), torch.float32)
    image = load_file(os.path.join(OUT, f"{family}_small_io.safetensors"))["image"]
    with torch.no_grad():
        out = model(image)
    maps = out[key]
    probabilities = ops.softmax2d(maps.reshape(-1, *maps.shape[-2:])).contiguous()
    path = os.path.join(OUT, f"{family}_small_heatmaps.safetensors")
    st_io.save_file({"f32.probabilities": probabilities,
                     "f32.landmarks": out["landmarks"].float().contiguous()}, path, {})
    print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")


# --- 10. the CSM classifier --------------------------------------------------------------------

CSM_KEYS = ["resized", "normalized", "expanded", "logit", "p"]


def keras_layout_h5(model, path: str):
    """Write `model`'s weights as Keras VGG16 would (layer groups block1_conv1 .. block5_conv3
    with HWIO kernels, dense layers with [in, out] kernels, pooling layers without weights)."""
    import h5py

    from sagitta_ref.models import csm
    sd = model.state_dict()
    names, convs = [], iter(csm.feature_layers(model.config["width"]))
    with h5py.File(path, "w") as f:
        def layer(name, kernel, bias):
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g.create_dataset(f"{name}/kernel:0", data=kernel.numpy())
            g.create_dataset(f"{name}/bias:0", data=bias.numpy())
            names.append(name)
        f.create_group("input_1")
        names.append("input_1")
        for b, (n, _) in enumerate(csm.STAGES, start=1):
            for c in range(1, n + 1):
                i = next(convs)[0]
                layer(f"block{b}_conv{c}", sd[f"features.{i}.weight"].permute(2, 3, 1, 0),
                      sd[f"features.{i}.bias"])
            f.create_group(f"block{b}_pool")
            names.append(f"block{b}_pool")
        f.create_group("global_average_pooling2d")
        names.append("global_average_pooling2d")
        for k, key in enumerate(k for k in sd if k.startswith("classifier.") and
                                k.endswith(".weight")):
            layer(f"dense_{k}" if k else "dense", sd[key].t(), sd[key[:-len("weight")] + "bias"])
        f.attrs["layer_names"] = [n.encode() for n in names]


def csm_fixture():
    """The CSM classifier at 1/8 width (64 px input, FC 16 and 8) with He-initialised convs, on a
    non-square synthetic radiograph; weights in f32 and f16 through the converter, expectations
    from each file's own values. Also round-trips the weights through a Keras-layout .h5."""
    import tempfile

    from sagitta_ref.convert import keras_h5_state_dict
    from sagitta_ref.models.csm import CsmModel
    from sagitta_ref.models.csm import small_config as csm_small_config
    config = csm_small_config()
    g = gen(11)
    image = testdata.synthetic_radiograph(150, 97, g, testdata.spine_targets(g))
    torch.manual_seed(11)
    model = CsmModel(config)
    testdata.he_init_centred_(model, image, g)
    out = model(image)
    p = out["p"].item()
    assert 0.1 < p < 0.9, f"csm small p {p}"
    other = model(torch.flip(image, [0]))["logit"].item()
    assert abs(other - out["logit"].item()) > 1e-3, "logit does not depend on the image"

    with tempfile.TemporaryDirectory() as tmp:
        h5 = os.path.join(tmp, "vgg16_keras_layout.h5")
        keras_layout_h5(model, h5)
        sd = keras_h5_state_dict(h5, config)
        ref = model.state_dict()
        assert sorted(sd) == sorted(ref), (sorted(sd), sorted(ref))
        assert all(torch.equal(sd[k], ref[k]) for k in ref)
        print(f"  Keras-layout .h5 -> {len(sd)} tensors, identical to the torch state dict")

    io = {"image": image}
    for dtype in ("f32", "f16"):
        path = os.path.join(OUT, f"csm_small_{dtype}.safetensors")
        save_model(model, config, path, dtype)
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")
        reloaded, _ = load_model(path, torch.float32)
        res = reloaded(image)
        for key in CSM_KEYS:
            io[f"{dtype}.{key}"] = res[key].float().contiguous()
        print(f"  {dtype}: logit {res['logit'].item():.6f}, p {res['p'].item():.6f}")
    path = os.path.join(OUT, "csm_small_io.safetensors")
    st_io.save_file(io, path, {"config": json.dumps(config)})
    print(f"{os.path.relpath(path)}: {len(io)} tensors, {os.path.getsize(path)} bytes")


# --- 11. the whole-spine model ----------------------------------------------------------------

WHOLESPINE_KEYS = ["resized", "standardized", "member_rows", "norm", "landmarks_input",
                   "landmarks"]


def wholespine_fixture():
    """The whole-spine CPN at a 96x64 input with narrow levels and two members, randomized (BN
    statistics included) with a conv gain that makes the heatmaps peaked enough for the DSNT
    coordinates to depend on every layer; on a portrait synthetic radiograph. Weights in f32 and
    f16 through the converter, expectations from each file's own values."""
    from sagitta_ref.models.wholespine import WholeSpineModel
    from sagitta_ref.models.wholespine import small_config as wholespine_small_config
    config = wholespine_small_config()
    g = gen(13)
    image = testdata.synthetic_radiograph(180, 110, g, testdata.spine_targets(g))
    model = WholeSpineModel(config)
    testdata.randomize_(model, g, conv_gain=1.2)
    out = model(image)
    spread = out["norm"][:, :2].std(0).min().item()
    assert spread > 0.01, f"wholespine landmarks do not spread ({spread})"
    io = {"image": image}
    for dtype in ("f32", "f16"):
        path = os.path.join(OUT, f"wholespine_small_{dtype}.safetensors")
        save_model(model, config, path, dtype)
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")
        reloaded, _ = load_model(path, torch.float32)
        res = reloaded(image)
        for key in WHOLESPINE_KEYS:
            io[f"{dtype}.{key}"] = res[key].float().contiguous()
        sd = res["landmarks"][:, 2:]
        print(f"  {dtype}: landmark sd {sd.min().item():.2f}..{sd.max().item():.2f} px")
    path = os.path.join(OUT, "wholespine_small_io.safetensors")
    st_io.save_file(io, path, {"config": json.dumps(config)})
    print(f"{os.path.relpath(path)}: {len(io)} tensors, {os.path.getsize(path)} bytes")


# --- 12. pooling and crops for torchvision resnet50 / Inception3 --------------------------------

def pool2d_fixture():
    fx = Fixture("pool2d.safetensors")
    g = gen(113)
    # (kind, kernel, stride, padding, count_include_pad, input shape)
    for kind, k, s, p, cip, shape in [
        ("max", (3, 3), (2, 2), (1, 1), True, (1, 3, 17, 16)),    # resnet stem pool
        ("max", (3, 3), (2, 2), (0, 0), True, (2, 2, 15, 20)),    # Inception, unpadded
        ("avg", (3, 3), (1, 1), (1, 1), True, (1, 4, 9, 11)),     # Inception branch pool
        ("avg", (3, 3), (1, 1), (1, 1), False, (1, 2, 7, 6)),
        ("avg", (3, 2), (2, 1), (1, 1), False, (1, 2, 8, 7)),     # rectangular
        ("max", (2, 3), (1, 2), (1, 0), True, (1, 1, 6, 9)),
        ("avg", (5, 5), (3, 3), (2, 2), True, (1, 3, 13, 14)),
    ]:
        x = torch.randn(*shape, generator=g) * 3.0
        if kind == "max":
            x[0, 0, 0, :] = -100.0     # negative borders: padding must not win the max
        out = ops.pool2d(x, kind, k, s, p, cip)
        name = (f"{kind}{k[0]}x{k[1]}_s{s[0]}x{s[1]}_p{p[0]}x{p[1]}"
                f"{'' if kind == 'max' or cip else '_excl'}_{'x'.join(map(str, shape))}")
        fx.add(name, {"kind": kind, "kernel": list(k), "stride": list(s), "padding": list(p),
                      "count_include_pad": cip},
               {"input": x, "output": out})
    fx.write()


def grid_sample_crops_fixture():
    fx = Fixture("grid_sample_crops.safetensors")
    g = gen(114)

    def add(name, image, boxes, out_h, out_w):
        _, c, h, w = image.shape
        out = ops.grid_sample_crops(image, boxes, out_h, out_w)
        fx.add(name, {"c": c, "h": h, "w": w, "out_h": out_h, "out_w": out_w},
               {"image": image, "boxes": boxes, "output": out})

    image = torch.rand(1, 1, 40, 56, generator=g)
    boxes = torch.tensor([
        [10.3, 5.7, 30.8, 26.2],      # inside
        [-7.6, -5.2, 9.1, 11.5],      # partly outside left/top
        [45.4, 31.3, 62.9, 48.8],     # partly outside bottom-right
        [70.2, 50.1, 80.7, 60.6],     # fully outside
        [20.1, 15.2, 20.4, 15.5],     # smaller than a pixel (side 0.3)
        [33.0, 12.0, 33.0, 12.0],     # empty: one point
        [-0.5, -0.5, 55.5, 39.5],     # the whole image: the bicubic resize
        [12.6, 20.35, 25.1, 37.45],   # not square
    ])
    add("c1_40x56_out12x16", image, boxes, 12, 16)
    image2 = torch.randn(1, 3, 24, 30, generator=g)
    boxes2 = torch.tensor([
        [3.2, 2.7, 21.7, 21.2],
        [-4.3, 8.9, 14.3, 27.5],
        [12.45, -2.05, 35.75, 21.25],
        [28.9, 22.6, 29.3, 23.1],     # tiny, at the bottom-right corner
    ])
    add("c3_24x30_out20x20", image2, boxes2, 20, 20)
    add("c3_24x30_out5x9", image2, boxes2, 5, 9)
    fx.write()


# --- 13. the lumbar model ---------------------------------------------------------------------

LUMBAR_KEYS = ["presence", "coarse", "boxes", "refined_rows", "landmarks"]


def lumbar_fixture():
    """The lumbar 2-step model at 1/16 width (resnet with [1, 2, 1, 1] bottlenecks, two
    Inception3 trunks), a 192 input and 128 crops, randomized (BN statistics and the labeller's
    linear layer included) with a conv gain that keeps the heatmaps peaked; on a portrait
    synthetic radiograph. Weights in f32 and f16 through the converter, expectations from each
    file's own values."""
    from sagitta_ref.models.lumbar import LumbarModel
    from sagitta_ref.models.lumbar import small_config as lumbar_small_config
    config = lumbar_small_config()
    g = gen(15)
    image = testdata.synthetic_radiograph(230, 170, g, testdata.spine_targets(g))
    model = LumbarModel(config)
    testdata.randomize_(model, g, conv_gain=1.6)
    with torch.no_grad():
        fc = model.identify.fc
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 0.3 / fc.weight.shape[1] ** 0.5)
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=g) * 0.5)
    out = model(image)
    for key in ("coarse", "landmarks"):
        spread = out[key][:, :2].std(0).min().item()
        assert spread > 1.0, f"lumbar {key} do not spread ({spread} px)"
    p = out["presence"]
    assert 0 < (p >= 0.5).sum() < 24 and p.min() > 0.01 and p.max() < 0.99, p
    io = {"image": image}
    for dtype in ("f32", "f16"):
        path = os.path.join(OUT, f"lumbar_small_{dtype}.safetensors")
        save_model(model, config, path, dtype)
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")
        reloaded, _ = load_model(path, torch.float32)
        res = reloaded(image)
        for key in LUMBAR_KEYS:
            io[f"{dtype}.{key}"] = res[key].float().contiguous()
        sd = res["landmarks"][:, 2:]
        print(f"  {dtype}: corner sd {sd.min().item():.2f}..{sd.max().item():.2f} px, "
              f"{int((res['presence'] >= 0.5).sum())} levels present")
    path = os.path.join(OUT, "lumbar_small_io.safetensors")
    st_io.save_file(io, path, {"config": json.dumps(config)})
    print(f"{os.path.relpath(path)}: {len(io)} tensors, {os.path.getsize(path)} bytes")


# file stem (or group of files) -> the function that writes it, in the order of a full run
FIXTURES = {
    "resize_bicubic": resize_fixture,
    "standardize": standardize_fixture,
    "standardize_planes": standardize_planes_fixture,
    "conv2d": conv_fixture,
    "conv2d_rect": conv_rect_fixture,
    "concat": concat_fixture,
    "maxpool": maxpool_fixture,
    "upsample_add": upsample_fixture,
    "softmax_dsnt": softmax_dsnt_fixture,
    "texture_grey": texture_grey_fixture,
    "roi_align": roi_fixture,
    "boxes": boxes_fixture,
    "cervical_small": pipeline_fixture,   # cervical_small_f32 / _f16 / _io
    # each crop standardized on its own before its refiner: cervical_small_cropstd_f32 / _io
    "cervical_small_cropstd": lambda: pipeline_fixture("cervical_small_cropstd", ("f32",),
                                                       crop_standardize=True),
    "cervical_small_heatmaps": lambda: heatmaps_fixture("cervical", "global_heatmaps"),
    "wholespine_small_heatmaps": lambda: heatmaps_fixture("wholespine", "logits"),
    "lumbar_small_heatmaps": lambda: heatmaps_fixture("lumbar", "locate_heatmaps"),
    "resize_area": resize_area_fixture,
    "minmax": minmax_fixture,
    "channel_affine": channel_affine_fixture,
    "global_avg_pool": global_avg_pool_fixture,
    "linear": linear_fixture,
    "upsample_bilinear": upsample_bilinear_fixture,
    "ensemble_mean": ensemble_mean_fixture,
    "vgg_tiny": vgg_tiny_fixture,
    "csm_small": csm_fixture,             # csm_small_f32 / _f16 / _io
    "pool2d": pool2d_fixture,
    "grid_sample_crops": grid_sample_crops_fixture,
    "wholespine_small": wholespine_fixture,  # wholespine_small_f32 / _f16 / _io
    "lumbar_small": lumbar_fixture,          # lumbar_small_f32 / _f16 / _io
}


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(
        description="Write the parity fixtures in tests/fixtures (all of them without arguments).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="write only these fixtures: " + ", ".join(FIXTURES))
    args = parser.parse_args(argv)
    names = [n.removesuffix(".safetensors") for n in args.names]
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        parser.error(f"unknown fixture(s) {', '.join(unknown)}; known: {', '.join(FIXTURES)}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for name, write in FIXTURES.items():
        if not names or name in names:
            write()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"total {total} bytes in {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
