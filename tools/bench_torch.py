"""The PyTorch side of `sagitta bench --torch`: the same workloads, the same weights and input.

Reads the weights file sagitta benchmarks (safetensors with the `sagitta` config) and, optionally,
the list of distinct kernel shapes sagitta timed (`--shapes`, written by `sagitta bench`), and times:
- the whole cervical pipeline (CervicalModel.forward: eager PyTorch, default settings, no_grad);
- each kernel shape through its PyTorch twin in sagitta_ref.ops (conv2d_fused with BN+ReLU and
  residual as separate eager ops, max-pool, upsample + add, softmax + DSNT, roi_align, bicubic).
Prints one JSON object on stdout. On CUDA, times are taken with CUDA events after synchronising and
peak memory is torch.cuda.max_memory_allocated; on CPU, wall-clock and no peak memory.

    python3 tools/bench_torch.py --weights W.safetensors --image 1200x1000 [--shapes S.json] \
        [--device cpu|cuda] [--precision f32|f16] [--runs 5] [--warmup 1]

--device defaults to cuda when torch sees a GPU (env SAGITTA_TORCH_DEVICE overrides the default).
--precision f16 runs everything under torch.autocast(dtype=float16) (convolutions, matmuls and
pooling in half precision, reductions in f32 as autocast decides): the like-for-like partner of
`sagitta bench --precision f16`. The weights stay f32 parameters, as autocast expects.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sagitta_ref import ops  # noqa: E402
from sagitta_ref.convert import load_model  # noqa: E402


def synthetic_image(width: int, height: int) -> torch.Tensor:
    """The same image as sagitta::bench::synthetic_image (f32 arithmetic)."""
    y, x = np.mgrid[0:height, 0:width]
    fx = (x.astype(np.float32) / np.float32(width)).astype(np.float32)
    fy = (y.astype(np.float32) / np.float32(height)).astype(np.float32)
    ripple = ((x * 31 + y * 17) % 13).astype(np.float32) / np.float32(13.0)
    img = (np.float32(2000.0) + np.float32(800.0) * np.sin(np.float32(7.0) * fx) * np.cos(np.float32(5.0) * fy)
           + np.float32(300.0) * ripple)
    return torch.from_numpy(img.astype(np.float32))


class Timer:
    def __init__(self, device: torch.device):
        self.device = device

    def measure(self, fn, runs: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(runs):
            if self.device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
        return times

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def spread(times: list[float]) -> dict:
    s = sorted(times)
    return {"median": statistics.median(s), "min": s[0], "p90": s[round((len(s) - 1) * 0.9)]}


def kernel_workload(row: dict, device: torch.device, gen: torch.Generator):
    """A closure running the PyTorch twin of one sagitta kernel shape."""
    k, s = row["kernel"], row["shape"]

    def rand(*shape):
        return torch.rand(*shape, generator=gen).mul_(2).sub_(1).to(device)

    if k.startswith("conv2d"):
        n, ic, oc, kh, kw = s["n"], s["in_c"], s["out_c"], int(s["kh"]), int(s["kw"])
        groups = n if s["per_sample"] else 1
        x = rand(n, ic, s["h"], s["w"])
        w = rand(groups, oc, ic, kh, kw) / (ic * kh * kw) ** 0.5
        b = rand(groups, oc)
        scale, shift = (rand(ic), rand(ic)) if s["prologue"] else (None, None)
        res = rand(n, oc, s["oh"], s["ow"]) if s["residual"] else None
        stride, pad = tuple(s["stride"]), tuple(s["pad"])
        return lambda: ops.conv2d_fused(x, w, b, stride, pad, scale, shift, res,
                                        activation=s["activation"])
    # Other kernels: the fields of their uniform block (the Rust params struct).
    if k == "maxpool2":
        x = rand(1, s["planes"], s["in_h"], s["in_w"])
        return lambda: ops.maxpool2(x)
    if k == "upsample_add":
        low = rand(1, s["planes"], s["low_h"], s["low_w"])
        skip = rand(1, s["planes"], 2 * s["low_h"], 2 * s["low_w"])
        return lambda: ops.upsample_add(low, skip)
    if k == "softmax_dsnt":
        h = rand(1, s["heatmaps"], s["height"], s["width"]) * 10
        return lambda: ops.softmax_dsnt(h)
    if k == "roi_align":
        img = rand(1, s["channels"], s["height"], s["width"])
        side = s["height"] / 4
        boxes = torch.tensor([[100.0 + 50 * i, 100.0 + 80 * i, 100.0 + 50 * i + side, 100.0 + 80 * i + side]
                              for i in range(s["boxes"])], device=device)
        return lambda: ops.roi_align_ours(img, boxes, s["out_size"], s["sampling_ratio"])
    if k == "resize_bicubic":
        img = rand(s["in_h"], s["in_w"])
        return lambda: ops.resize_bicubic(img, s["out_h"], s["out_w"])
    if k in ("standardize", "standardize_apply"):
        x = rand(s["count"])
        return lambda: ops.standardize(x)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--image", default="1200x1000")
    ap.add_argument("--shapes")
    ap.add_argument("--device", default=os.environ.get("SAGITTA_TORCH_DEVICE")
                    or ("cuda" if torch.cuda.is_available() else "cpu"))
    ap.add_argument("--precision", choices=["f32", "f16"], default="f32")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--kernel-runs", type=int, default=5)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    timer = Timer(device)
    width, height = (int(v) for v in args.image.lower().split("x"))
    image = synthetic_image(width, height).to(device)

    model, config = load_model(args.weights)
    model = model.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = (torch.autocast(device_type=device.type, dtype=torch.float16)
                if args.precision == "f16" else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        pipeline = spread(timer.measure(lambda: model(image), args.runs, args.warmup))
        peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None

        kernels = []
        if args.shapes:
            with open(args.shapes) as f:
                rows = json.load(f)
            for i, row in enumerate(rows):
                fn = kernel_workload(row, device, gen)
                if fn is None:
                    kernels.append({"index": i, "median_ms": None, "min_ms": None})
                    continue
                t = spread(timer.measure(fn, args.kernel_runs, 1))
                kernels.append({"index": i, "median_ms": t["median"], "min_ms": t["min"]})

    out = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "precision": args.precision,
        "model": config.get("name"),
        "pipeline_ms": pipeline,
        "peak_memory_bytes": peak,
        "kernels": kernels,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
