"""Train the cervical model (global hourglass + 6 disc refiners) on synthetic phantoms.

Follows the paper (papers/000_0c6506fc427139cc.txt, "training details"):
- global model: Euclidean loss (mean distance between the DSNT coordinates and the ground truth,
  normalized [-1, 1] coordinates) + Jensen-Shannon divergence between the softmax heatmap and a
  normalized Gaussian at the ground truth (dsntnn's js_reg_losses idea; `--sigma` in heatmap px),
  on every stack (intermediate supervision);
- refiners: Euclidean loss in box space (the ground truth mapped into each box's [-1, 1] frame);
  boxes are built from the global model's coarse predictions exactly as at inference
  (CervicalModel.boxes: ops.boxes_from_points over the disc groups, detached), crops by
  torchvision roi_align (aligned=True, ops.roi_align_ours's frame) over the standardized input;
- `--warmup` epochs train only the global model, then total = (global + refinement) / 2;
- Adam, ReduceLROnPlateau(factor 0.1) on the validation landmark error;
- augmentation: rotation +-5 deg, scale 0.8-1.2, small translation, Gaussian noise, applied to the
  image and its landmarks together.

    python3 train.py --data /tmp/sagitta_train --out runs/cpu1 [--epochs 30] [--minutes 38]
    python3 train.py --make-data /tmp/sagitta_train --count 2000     # pre-generate the data set

Data: phantoms (tools/phantom.py) with seeds TRAIN_SEED_BASE + i (validation: VAL_SEED_BASE + i),
rendered at a random original height, resized to input_size with ops.resize_bicubic (the
engine's preprocessing), kept un-standardized as float16 with landmarks in input pixels.
Held-out evaluation sets (make_heldout.py) and samples use seeds below 1_000_000, never these.

Outputs in --out: checkpoint_last.pt, checkpoint_best.pt (state_dict + optimizer + history),
best.safetensors (f32), cervical_default.safetensors (f16), config.json, history.json, train.log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref import convert, ops, st_io  # noqa: E402
from sagitta_ref.anatomy.cervical import DISC_GROUPS  # noqa: E402
from sagitta_ref.models.cervical import CervicalModel, paper_config  # noqa: E402
from sagitta_ref.ops import dsnt, softmax2d  # noqa: E402

TRAIN_SEED_BASE = 10_000_000
VAL_SEED_BASE = 20_000_000


DEFAULT_NAME = "sagitta-default-synthetic-v2"


def cpu_config(name: str = DEFAULT_NAME) -> dict:
    cfg = paper_config()
    cfg["name"] = name
    # trained on synthetic phantoms only: the engine's records and overlay say so
    cfg["not_for_clinical_use"] = True
    cfg["input_size"] = 256
    cfg["crop_size"] = 64
    cfg["box_min_side"] = 8.0
    cfg["global"].update({"stacks": 2, "blocks": 1, "features": 32, "depth": 4})
    cfg["refiner"].update({"stacks": 1, "blocks": 1, "features": 32, "depth": 3})
    return cfg


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def _render_one(args):
    seed, size, h_lo, h_hi = args
    import phantom
    rng = np.random.default_rng([seed, 7])
    height = int(rng.integers(h_lo, h_hi + 1))
    img, meta = phantom.generate(seed, height)
    t = torch.from_numpy(img.astype(np.float32))
    resized = ops.resize_bicubic(t, size, size).numpy().astype(np.float32)
    # scale to ~[0, 1] so float16 storage is safe (standardization removes the scale anyway)
    resized /= 65535.0
    lm = np.array([meta["landmarks"][n] for n in phantom.LANDMARKS], np.float64)
    w0, h0 = meta["width"], meta["height"]
    lm_in = np.stack([(lm[:, 0] + 0.5) * size / w0 - 0.5, (lm[:, 1] + 0.5) * size / h0 - 0.5], 1)
    return resized.astype(np.float16), lm_in.astype(np.float32), height


def make_data(out: str, count: int, seed_base: int, size: int, h_lo: int, h_hi: int,
              workers: int) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    jobs = [(seed_base + i, size, h_lo, h_hi) for i in range(count)]
    t0 = time.time()
    torch.set_num_threads(1)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            res = pool.map(_render_one, jobs, chunksize=16)
    else:
        res = [_render_one(j) for j in jobs]
    imgs = np.stack([r[0] for r in res])
    lms = np.stack([r[1] for r in res])
    heights = np.array([r[2] for r in res])
    np.savez(out, images=imgs, landmarks=lms, seeds=np.array([j[0] for j in jobs]),
             heights=heights, size=size)
    print(f"wrote {out}: {count} phantoms (seeds {seed_base}..{seed_base + count - 1}, "
          f"original height {h_lo}-{h_hi}) in {time.time() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------------------------
# Augmentation (image and landmarks together), in normalized [-1, 1] coordinates
# ----------------------------------------------------------------------------------------------

def to_norm(p_in: torch.Tensor, size: int) -> torch.Tensor:
    return (2.0 * p_in + 1.0) / size - 1.0


def augment(images: torch.Tensor, lm_norm: torch.Tensor, gen: torch.Generator, rot_deg=5.0,
            scale=(0.8, 1.2), trans=0.06, noise=0.04):
    """images [B, S, S] (un-standardized), lm_norm [B, 29, 2] -> augmented, standardized."""
    b = images.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(rot_deg)
    sc = torch.rand(b, generator=gen) * (scale[1] - scale[0]) + scale[0]
    tr = (torch.rand(b, 2, generator=gen) * 2 - 1) * trans
    cos, sin = torch.cos(ang), torch.sin(ang)
    # forward map (input norm -> output norm): u_out = s R u_in + t
    Rf = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) * sc[:, None,
                                                                                           None]
    lm_out = torch.einsum("bij,bkj->bki", Rf, lm_norm) + tr[:, None, :]
    # grid_sample needs the inverse: u_in = Rf^-1 (u_out - t)
    Rinv = torch.linalg.inv(Rf)
    theta = torch.cat([Rinv, -(Rinv @ tr[:, :, None])], dim=2)
    grid = F.affine_grid(theta, (b, 1) + images.shape[1:], align_corners=False)
    # pad with the image's border-ish dark value: use the per-image minimum
    mins = images.flatten(1).amin(1)[:, None, None, None]
    x = F.grid_sample(images[:, None] - mins, grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False) + mins
    x = x[:, 0]
    std = x.flatten(1).std(1)[:, None, None]
    x = x + torch.randn(x.shape, generator=gen) * std * (torch.rand(b, 1, 1, generator=gen) * noise)
    x = (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True,
                                                      unbiased=False).clamp(min=1e-6)
    return x, lm_out


def standardize_batch(images: torch.Tensor) -> torch.Tensor:
    return (images - images.mean(dim=(1, 2), keepdim=True)) / images.std(
        dim=(1, 2), keepdim=True, unbiased=False).clamp(min=1e-6)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

def euclidean(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.linalg.norm(pred - target, dim=-1).mean()


def gauss_heatmaps(mu: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """Normalized Gaussians [B, K, h, w] at normalized mu [B, K, 2], sigma in heatmap pixels."""
    xs = torch.arange(w, dtype=mu.dtype)
    ys = torch.arange(h, dtype=mu.dtype)
    mx = ((mu[..., 0] + 1) * w - 1) / 2
    my = ((mu[..., 1] + 1) * h - 1) / 2
    gx = torch.exp(-0.5 * ((xs - mx[..., None]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ys - my[..., None]) / sigma) ** 2)
    g = gy[..., :, None] * gx[..., None, :]
    return g / g.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-24) -> torch.Tensor:
    """Jensen-Shannon divergence between distributions over the last two dims, mean."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log(a + eps) - torch.log(b + eps))).sum(dim=(-2, -1))
    return (0.5 * kl(p, m) + 0.5 * kl(q, m)).mean()


# ----------------------------------------------------------------------------------------------
# Model pieces for batched training (same modules and ops as CervicalModel.forward)
# ----------------------------------------------------------------------------------------------

def global_forward(model: CervicalModel, x: torch.Tensor):
    outs = model.global_net(x[:, None])
    res = []
    for h in outs:
        probs = softmax2d(h)
        res.append((probs, dsnt(probs)))
    return res


def boxes_batch(model: CervicalModel, coarse_norm: torch.Tensor) -> torch.Tensor:
    return torch.stack([model.boxes(c) for c in coarse_norm])          # [B, 6, 4]


def jitter_boxes(boxes: torch.Tensor, frac: float, gen: torch.Generator) -> torch.Tensor:
    """Random shift (up to +-frac of the side) and scale (1 +- frac) of square boxes [B, K, 4]:
    the refiners learn to find their corners in boxes placed as badly as a coarse miss."""
    if frac <= 0:
        return boxes
    shape = boxes.shape[:-1]
    c = (boxes[..., :2] + boxes[..., 2:]) / 2
    side = boxes[..., 2] - boxes[..., 0]
    c = c + (torch.rand(shape + (2,), generator=gen) * 2 - 1) * frac * side[..., None]
    side = side * (1 + (torch.rand(shape, generator=gen) * 2 - 1) * frac)
    half = side[..., None] / 2
    return torch.cat([c - half, c + half], -1)


def disc_contrast(images: torch.Tensor, lms_in: torch.Tensor, disc: int, margin: float = 0.7):
    """Per image: std of the standardized image inside the ground-truth box of `disc` (the
    refiner's view). Low values = the disc hidden under the shoulders."""
    out = torch.empty(len(images))
    idx = torch.tensor(DISC_GROUPS[disc])
    S = images.shape[-1]
    for i in range(len(images)):
        x = standardize_batch(images[i:i + 1])[0]
        q = lms_in[i, idx]
        lo, hi = q.amin(0), q.amax(0)
        c = (lo + hi) / 2
        half = float((hi - lo).amax()) * (1 + margin) / 2
        x0, x1 = int(max(c[0] - half, 0)), int(min(c[0] + half + 1, S))
        y0, y1 = int(max(c[1] - half, 0)), int(min(c[1] + half + 1, S))
        out[i] = x[y0:y1, x0:x1].std() if x1 > x0 + 1 and y1 > y0 + 1 else 0.0
    return out


def refine_forward(model: CervicalModel, x: torch.Tensor, boxes: torch.Tensor):
    crops = model_crops(model.config, x, boxes)                               # [B, 6, 1, C, C]
    coords = []
    for k, ref in enumerate(model.refiners):
        h = ref(crops[:, k])[-1]
        coords.append(dsnt(softmax2d(h)))                                     # [B, 4, 2]
    return torch.stack(coords, 1)                                             # [B, 6, 4, 2]


def model_crops(c: dict, x, boxes):
    """The refiners' input as CervicalModel.crops makes it, batched: ROIAlign crops of the
    standardized images, each standardized again on its own when the config says so."""
    crops = torchvision_roi(x, boxes, c["crop_size"], c["roi_sampling_ratio"])
    if c.get("crop_standardize", False):
        crops = ops.standardize_planes(crops, c["standardize_eps"])
    return crops


def torchvision_roi(x, boxes, out_size, ratio):
    import torchvision
    b = x.shape[0]
    crops = torchvision.ops.roi_align(x[:, None], [bx + 0.5 for bx in boxes], output_size=out_size,
                                      spatial_scale=1.0, sampling_ratio=ratio, aligned=True)
    return crops.view(b, boxes.shape[1], 1, out_size, out_size)


def gt_in_boxes(lm_in: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Ground truth input pixels [B, 29, 2] -> box-normalized [B, 6, 4, 2]."""
    idx = torch.tensor(DISC_GROUPS)
    g = lm_in[:, idx]                                                         # [B, 6, 4, 2]
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    half = (boxes[..., 2] - boxes[..., 0]) / 2
    return torch.stack([(g[..., 0] - cx[..., None]) / half[..., None],
                        (g[..., 1] - cy[..., None]) / half[..., None]], -1)


def predict_batch(model: CervicalModel, x: torch.Tensor) -> torch.Tensor:
    """Standardized [B, S, S] -> 29 landmarks in input pixels [B, 29, 2] (eval mode)."""
    s = model.config["input_size"]
    with torch.no_grad():
        coarse = global_forward(model, x)[-1][1]
        boxes = boxes_batch(model, coarse)
        refined = refine_forward(model, x, boxes)
        out = []
        for i in range(x.shape[0]):
            out.append(model.assemble(coarse[i], refined[i], boxes[i]))
    del s
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------

def save_weights(model: CervicalModel, config: dict, path: str, dtype: str, info: dict) -> None:
    """convert.save_state_dict plus a "training" metadata entry (seeds, settings, losses)."""
    sd = convert.clean_state_dict(model.state_dict())
    convert.check_keys(sd, config)
    metadata = {**convert.file_metadata(config), "training": json.dumps(info, sort_keys=True)}
    st_io.save_file(convert.to_file_tensors(sd, dtype), path, metadata)


# ----------------------------------------------------------------------------------------------
# Main loop
# ----------------------------------------------------------------------------------------------

def evaluate(model, images, lms_in, batch=16):
    model.eval()
    preds = []
    for i in range(0, len(images), batch):
        x = standardize_batch(images[i:i + batch])
        preds.append(predict_batch(model, x))
    p = torch.cat(preds)
    err = torch.linalg.norm(p - lms_in, dim=-1)                               # input px
    evaluate.last_p90 = torch.quantile(err, 0.9, dim=0)                       # per landmark
    return float(err.mean()), float(err.median()), p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", metavar="NPZ", help="pre-generate a data set and exit")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed-base", type=int, default=TRAIN_SEED_BASE)
    ap.add_argument("--min-height", type=int, default=320)
    ap.add_argument("--max-height", type=int, default=900)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", help="training NPZ")
    ap.add_argument("--val", help="validation NPZ")
    ap.add_argument("--out", default="runs/train")
    ap.add_argument("--config", help="model config JSON (default: the CPU config in this file)")
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=6, help="epochs training only the global model")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this wall time (0: no)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=1.0, help="JS target Gaussian, heatmap px")
    ap.add_argument("--js-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a loaded 2-core machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epoch-size", type=int, default=0,
                    help="samples per epoch (a fresh random subset each epoch; 0: all)")
    ap.add_argument("--resume", help="checkpoint_last.pt to continue from (model, optimizer, "
                    "history); --lr then overrides the learning rate")
    ap.add_argument("--limit-steps", type=int, default=0, help="steps per epoch cap (timing)")
    ap.add_argument("--init", help="start from these weights (safetensors or checkpoint .pt; "
                    "same config), with a fresh optimizer and schedule")
    ap.add_argument("--schedule", choices=["plateau", "cosine"], default="plateau",
                    help="plateau: ReduceLROnPlateau(0.1) on the validation error; cosine: from "
                    "--lr to --min-lr over the run's steps (--epochs, or --minutes if shorter)")
    ap.add_argument("--min-lr", type=float, default=1e-6)
    ap.add_argument("--box-jitter", type=float, default=0.0,
                    help="training refiner boxes: random shift/scale, fraction of the side")
    ap.add_argument("--hard-weight", type=float, default=1.0,
                    help="sampling weight of the images whose C7-T1 disc has the lowest "
                    "contrast (--hard-frac of them; shoulders over the disc), others 1")
    ap.add_argument("--hard-frac", type=float, default=0.25)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.make_data:
        make_data(args.make_data, args.count, args.seed_base, 256 if not args.config else
                  json.load(open(args.config))["input_size"], args.min_height, args.max_height,
                  args.workers)
        return 0

    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    cfg = json.load(open(args.config)) if args.config else cpu_config(args.name)
    cfg["name"] = args.name
    S = cfg["input_size"]
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "train.log")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    d = np.load(args.data)
    images = torch.from_numpy(d["images"].astype(np.float32))
    lms_in = torch.from_numpy(d["landmarks"].astype(np.float32))
    assert int(d["size"]) == S, f"data at {int(d['size'])}, config wants {S}"
    train_seeds = (int(d["seeds"].min()), int(d["seeds"].max()))
    if args.val:
        v = np.load(args.val)
        vimages = torch.from_numpy(v["images"].astype(np.float32))
        vlms = torch.from_numpy(v["landmarks"].astype(np.float32))
        val_seeds = (int(v["seeds"].min()), int(v["seeds"].max()))
    else:
        vimages, vlms, val_seeds = images[-100:], lms_in[-100:], None
    n = len(images)
    log(f"train {n} phantoms, val {len(vimages)}, config {json.dumps(cfg)}")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)

    model = CervicalModel(cfg).to(dev)
    if args.init:
        if args.init.endswith(".pt"):
            sd = torch.load(args.init, map_location="cpu", weights_only=False)["state_dict"]
        else:
            sd = convert.load_model(args.init)[0].state_dict()
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        log(f"initialized from {args.init}")
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1,
                                                       patience=args.patience)
    gen = torch.Generator().manual_seed(args.seed)
    weights = None
    if args.hard_weight != 1.0:
        contrast = disc_contrast(images, lms_in, len(DISC_GROUPS) - 1)
        cut = torch.quantile(contrast, args.hard_frac)
        weights = torch.where(contrast <= cut, args.hard_weight, 1.0)
        log(f"C7-T1 disc contrast: median {float(contrast.median()):.3f}, hard (<= "
            f"{float(cut):.3f}): {int((contrast <= cut).sum())} images, sampling weight "
            f"{args.hard_weight}")
    steps_per_epoch = (args.epoch_size or n) // args.batch
    if args.limit_steps:
        steps_per_epoch = min(steps_per_epoch, args.limit_steps)
    total_steps = steps_per_epoch * args.epochs
    global_step = 0

    def cosine_lr(step):
        t = min(step / max(total_steps, 1), 1.0)
        if args.minutes and step > 0:
            # the time budget may end the run first: follow whichever comes first
            t = max(t, (time.time() - t_start) / 60 / args.minutes)
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))
    history = []
    best = float("inf")
    t_start = time.time()
    settings = {k: v for k, v in vars(args).items()}
    info_base = {"generator": "tools/phantom.py sagitta-phantom-v1",
                 "train_seeds": list(train_seeds), "train_count": n,
                 "val_seeds": list(val_seeds) if val_seeds else None,
                 "settings": settings, "parameters": nparams,
                 "torch": torch.__version__, "threads": args.threads}
    log(f"parameters: {nparams}")

    first_epoch = 0
    if args.resume:
        ck = torch.load(args.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        for group in opt.param_groups:
            group["lr"] = args.lr
        history = list(ck.get("history", []))
        first_epoch = ck["epoch"] + 1
        best = min((r["val_mean_px"] for r in history if r["refine"]), default=float("inf"))
        info_base["resumed_from"] = {"checkpoint": args.resume, "epoch": ck["epoch"],
                                     "lr": args.lr}
        log(f"resumed from {args.resume} at epoch {first_epoch}, lr {args.lr}, best {best:.3f}")

    for epoch in range(first_epoch, args.epochs):
        model.train()
        refine_on = epoch >= args.warmup
        if weights is None:
            perm = torch.randperm(n, generator=gen)
        else:
            perm = torch.multinomial(weights, steps_per_epoch * args.batch, replacement=True,
                                     generator=gen)
        steps = steps_per_epoch
        sums = {"global": 0.0, "euclid": 0.0, "js": 0.0, "refine": 0.0, "total": 0.0}
        t_ep = time.time()
        for st in range(steps):
            idx = perm[st * args.batch:(st + 1) * args.batch]
            if args.schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(global_step)
            global_step += 1
            x, lm_n = augment(images[idx], to_norm(lms_in[idx], S), gen)
            x, lm_n = x.to(dev), lm_n.to(dev)
            stacks = global_forward(model, x)
            eu, js = 0.0, 0.0
            for probs, coords in stacks:
                eu = eu + euclidean(coords, lm_n)
                tgt = gauss_heatmaps(lm_n, probs.shape[-2], probs.shape[-1], args.sigma)
                js = js + js_divergence(probs, tgt)
            eu = eu / len(stacks)
            js = js / len(stacks)
            g_loss = eu + args.js_weight * js
            if refine_on:
                coarse = stacks[-1][1].detach()
                boxes = jitter_boxes(boxes_batch(model, coarse), args.box_jitter, gen)
                lm_px = ops.norm_to_input(lm_n, S)
                refined = refine_forward(model, x, boxes)
                r_loss = euclidean(refined, gt_in_boxes(lm_px, boxes))
                loss = 0.5 * (g_loss + r_loss)
                sums["refine"] += float(r_loss.detach())
            else:
                loss = g_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["global"] += float(g_loss.detach())
            sums["euclid"] += float(eu.detach())
            sums["js"] += float(js.detach())
            sums["total"] += float(loss.detach())
            if st % 50 == 0:
                log(f"epoch {epoch} step {st}/{steps} loss {float(loss):.4f} "
                    f"({(time.time() - t_ep) / (st + 1):.2f} s/step)")
        means = {k: v / max(steps, 1) for k, v in sums.items()}
        val_mean, val_median, _ = evaluate(model, vimages, vlms)
        metric = val_mean if refine_on else float("inf")
        if refine_on and args.schedule == "plateau":
            sched.step(val_mean)
        rec = {"epoch": epoch, "refine": refine_on, "lr": opt.param_groups[0]["lr"],
               "minutes": (time.time() - t_start) / 60, **means,
               "val_mean_px": val_mean, "val_median_px": val_median,
               "val_p90_px": {nm: round(float(v), 2) for nm, v in
                              zip(cfg["landmarks"], evaluate.last_p90)
                              if nm in ("C7_pi", "C7_ai", "T1_as", "T1_ps", "PNS", "OCC", "DENS")}}
        history.append(rec)
        log(json.dumps(rec))
        info = dict(info_base, history=history, epochs_done=epoch + 1,
                    wall_minutes=(time.time() - t_start) / 60)
        torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch,
                    "optimizer": opt.state_dict(), "history": history},
                   os.path.join(args.out, "checkpoint_last.pt"))
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump(info, f, indent=1)
        model.eval()
        if refine_on and metric < best or (not refine_on and epoch == args.warmup - 1):
            if refine_on:
                best = metric
            torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch},
                       os.path.join(args.out, "checkpoint_best.pt"))
            info_best = dict(info, best_epoch=epoch, best_val_mean_px=val_mean,
                             best_val_median_px=val_median)
            save_weights(model, cfg, os.path.join(args.out, "best.safetensors"), "f32", info_best)
            save_weights(model, cfg, os.path.join(args.out, "cervical_default.safetensors"),
                         "f16", info_best)
            log(f"saved best (epoch {epoch}, val mean {val_mean:.2f} px)")
        if args.minutes and (time.time() - t_start) / 60 > args.minutes:
            log("time budget reached")
            break
    log(f"done in {(time.time() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
