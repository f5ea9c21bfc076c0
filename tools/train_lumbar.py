"""Train the lumbar default (SPEC-lumbar.md, papers 002/004) on synthetic phantoms, on a CPU.

    python3 tools/train_lumbar.py --make-data /tmp/lu_train.npz --count 2000
    python3 tools/train_lumbar.py --make-data /tmp/lu_val.npz --count 60 --seed-base 61000000
    python3 tools/train_lumbar.py --data /tmp/lu_train.npz --val /tmp/lu_val.npz \
        --out runs/lumbar1 --minutes 55 [--resume runs/lumbar1/checkpoint_last.pt]

The networks are the SPEC's three (`arch` "lumbar-resnet50-inception3-dsnt"): the ResNet
bottleneck labeller `identify.` (24 sigmoid presences), the Inception3 localiser `locate.` (96
heatmaps, softmax, DSNT) and the Inception3 refiner `refine.` (4 heatmaps per level crop), at
reduced sizes (cpu_config: input, crop, widths, bottleneck counts), declared in the weights file's
"sagitta" entry. All three train together, each on its own loss (their parameters are disjoint,
and Adam scales each parameter's step by itself):
- identify: binary cross-entropy on the 24 logits against the phantom's present levels;
- locate: per present corner the Euclidean distance between the DSNT coordinates and the truth,
  both normalised to [-1, 1] over the image (absent levels masked), + `--js-weight` x the
  Jensen-Shannon divergence of its heatmap from a Gaussian (`--sigma` map pixels) at the truth
  (dsntnn's regularisation);
- refine: the same on each crop's 4 corners, normalised over the crop. The crops are made as the
  SPEC's steps 5-6 make them (box about the mean of the level's 4 corners, sides x `box_scale`,
  at least `min_box` px, bicubic with clamped taps from the original image through step 1's
  [0, 1] map, ops.grid_sample_crops), but from the true corners with the box jittered (centre
  shifted by N(0, `--jitter-shift`) x the level's extent, each side scaled by
  exp(N(0, `--jitter-scale`))), standing in for step I's errors.
Augmentation: a small affine on the network input (rotation `--rot`, scale, translation; the
corners move with it), gamma and noise on the input and on the crops; the phantoms themselves vary
in facing, rotation, field, exposure and anatomy (tools/phantom_lumbar.py). Adam with a cosine
learning rate over the --minutes budget.

Data: tools/phantom_lumbar.py phantoms, seeds TRAIN_SEED_BASE + i (60_000_000+), validation
VAL_SEED_BASE + i (61_000_000+); the held-out set (850_000+) and the samples (970_000+) never
overlap these. Each phantom is rendered at a random original height (--min-height..--max-height),
resized to the input size with ops.resize_bicubic and min-max normalised as the engine's step 1
does (stored as float16), and kept at its original size through the same [0, 1] map for the crops
(float16, concatenated), with its 96 corners in original pixels (NaN where a level is absent) and
its 24 presence flags.

Validation: the full reference pipeline (sagitta_ref.models.lumbar.LumbarModel, eval mode) on the
validation phantoms: presence accuracy (per level and whole image), step-I and step-II corner
errors in px over the truly present levels.

Outputs in --out: checkpoint_last.pt (model, optimizer, history, for --resume),
checkpoint_best.pt, best.safetensors and lumbar_default.safetensors (f32: the shipped file),
history.json, train.log. The "training" metadata entry holds the seeds, every setting, the
per-epoch history and the wall time.
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
from sagitta_ref.anatomy.lumbar import LANDMARKS, LEVELS, NUM_LEVELS  # noqa: E402
from sagitta_ref.models.lumbar import LumbarModel, paper_config  # noqa: E402
from sagitta_ref.ops import dsnt, softmax2d  # noqa: E402

TRAIN_SEED_BASE = 60_000_000
VAL_SEED_BASE = 61_000_000
DEFAULT_NAME = "sagitta-lumbar-synthetic-v1"


def cpu_config(name: str = DEFAULT_NAME) -> dict:
    cfg = paper_config()
    cfg.update({"name": name, "input_size": 320, "crop_size": 224,
                "identify_width": 1 / 8, "identify_blocks": [1, 1, 1, 1],
                "locate_width": 1 / 8, "refine_width": 1 / 16,
                "not_for_clinical_use": True})
    return cfg


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def _render_one(args):
    seed, size, h_lo, h_hi = args
    import phantom_lumbar as pl
    rng = np.random.default_rng([seed, 7])
    height = int(rng.integers(h_lo, h_hi + 1))
    img, meta = pl.generate(seed, height)
    t = torch.from_numpy(img.astype(np.float32))
    resized = ops.resize_bicubic(t, size, size)
    low, high = float(resized.min()), float(resized.max())
    scale = 1.0 / (high - low) if high > low else 0.0
    inp = ((resized - low) * scale).numpy()
    orig = ((t - low) * scale).numpy()
    corners = np.full((len(LANDMARKS), 2), np.nan, np.float32)
    for i, name in enumerate(LANDMARKS):
        if name in meta["landmarks"]:
            corners[i] = meta["landmarks"][name]
    present = np.array([lv in meta["present_levels"] for lv in LEVELS], np.bool_)
    return (inp.astype(np.float16), orig.astype(np.float16), corners, present,
            (meta["height"], meta["width"]))


def make_data(out, count, seed_base, size, h_lo, h_hi, workers):
    jobs = [(seed_base + i, size, h_lo, h_hi) for i in range(count)]
    t0 = time.time()
    torch.set_num_threads(1)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            res = pool.map(_render_one, jobs, chunksize=8)
    else:
        res = [_render_one(j) for j in jobs]
    shapes = np.array([r[4] for r in res], np.int64)
    offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    np.savez(out, inputs=np.stack([r[0] for r in res]),
             originals=np.concatenate([r[1].ravel() for r in res]),
             offsets=offsets, shapes=shapes, corners=np.stack([r[2] for r in res]),
             present=np.stack([r[3] for r in res]), seeds=np.array([j[0] for j in jobs]),
             size=np.array(size))
    print(f"wrote {out}: {count} phantoms (seeds {seed_base}..{seed_base + count - 1}, original "
          f"height {h_lo}-{h_hi}) in {time.time() - t0:.0f} s", flush=True)


class Data:
    def __init__(self, path):
        d = np.load(path)
        self.inputs = torch.from_numpy(d["inputs"])                  # [N, S, S] f16
        self.originals = torch.from_numpy(d["originals"])            # flat f16
        self.offsets = d["offsets"]
        self.shapes = d["shapes"]
        self.corners = torch.from_numpy(d["corners"])                # [N, 96, 2] original px
        self.present = torch.from_numpy(d["present"])                # [N, 24] bool
        self.seeds = d["seeds"]
        self.size = int(d["size"])

    def __len__(self):
        return len(self.inputs)

    def original(self, i):
        h, w = (int(v) for v in self.shapes[i])
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.originals[a:b].view(h, w).float()


# ----------------------------------------------------------------------------------------------
# Augmentation, losses
# ----------------------------------------------------------------------------------------------

def to_norm(p, hw):
    """Original pixels (centre of the top-left pixel at 0) -> [-1, 1] edge to edge."""
    h, w = hw
    return torch.stack([(2 * p[..., 0] + 1) / w - 1, (2 * p[..., 1] + 1) / h - 1], -1)


def photometric(x, gen, gamma, noise, renormalise=True):
    """x [B, 1, H, W] in [0, 1] -> gamma, noise, and min-max again where `renormalise` (the
    network input: the engine's step 1 ends in [0, 1]; not the crops, which keep the whole
    image's [0, 1] map)."""
    b = x.shape[0]
    g = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * math.log(gamma))
    x = x.clamp(min=0) ** g
    x = x + torch.randn(x.shape, generator=gen) * (torch.rand(b, 1, 1, 1, generator=gen) * noise)
    if not renormalise:
        return x
    lo = x.flatten(1).amin(1)[:, None, None, None]
    hi = x.flatten(1).amax(1)[:, None, None, None]
    return (x - lo) / (hi - lo).clamp(min=1e-6)


def affine(x, lm_norm, gen, rot_deg, scale, trans):
    """x [B, 1, S, S], lm_norm [B, K, 2] -> both moved by one random similarity per image."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(rot_deg)
    sc = torch.rand(b, generator=gen) * (scale[1] - scale[0]) + scale[0]
    tr = (torch.rand(b, 2, generator=gen) * 2 - 1) * trans
    cos, sin = torch.cos(ang), torch.sin(ang)
    rf = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) \
        * sc[:, None, None]
    lm_out = torch.einsum("bij,bkj->bki", rf, lm_norm) + tr[:, None, :]
    rinv = torch.linalg.inv(rf)
    theta = torch.cat([rinv, -(rinv @ tr[:, :, None])], dim=2)
    grid = F.affine_grid(theta, tuple(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                         align_corners=False), lm_out


def gauss_heatmaps(mu, h, w, sigma):
    xs = torch.arange(w, dtype=mu.dtype)
    ys = torch.arange(h, dtype=mu.dtype)
    mx = ((mu[..., 0] + 1) * w - 1) / 2
    my = ((mu[..., 1] + 1) * h - 1) / 2
    gx = torch.exp(-0.5 * ((xs - mx[..., None]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ys - my[..., None]) / sigma) ** 2)
    g = gy[..., :, None] * gx[..., None, :]
    return g / g.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)


def js_divergence(p, q, eps=1e-24):
    """Per map [...]: JS(p || q) over the last two dims."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log(a + eps) - torch.log(b + eps))).sum(dim=(-2, -1))
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def dsnt_loss(heatmaps, target, mask, sigma, js_weight):
    """heatmaps [B, K, h, w], target [B, K, 2] normalised, mask [B, K] -> (euclid, js) averaged
    over the unmasked points."""
    probs = softmax2d(heatmaps)
    coords = dsnt(probs)
    safe = torch.where(mask[..., None], target, torch.zeros_like(target))
    euclid = torch.linalg.norm(coords - safe, dim=-1)
    n = mask.sum().clamp(min=1)
    e = (euclid * mask).sum() / n
    if js_weight > 0:
        js = js_divergence(probs, gauss_heatmaps(safe, probs.shape[-2], probs.shape[-1], sigma))
        j = (js * mask).sum() / n
    else:
        j = torch.zeros(())
    return e, j


def training_crops(data, idx, gen, cfg, per_image, shift, scale):
    """Crops [N, 1, K, K] from the originals of images idx, per_image random present levels of
    each, with jittered boxes, and their 4 corners [N, 4, 2] normalised over the crop."""
    k = cfg["crop_size"]
    crops, targets = [], []
    for i in idx.tolist():
        levels = torch.nonzero(data.present[i]).flatten()
        pick = levels[torch.randperm(len(levels), generator=gen)[:per_image]]
        c = data.corners[i].view(NUM_LEVELS, 4, 2)[pick].float()             # [P, 4, 2]
        centre = c.mean(1)
        ext = c.amax(1) - c.amin(1)
        centre = centre + torch.randn(centre.shape, generator=gen) * shift * ext
        ext = ext * torch.exp(torch.randn(ext.shape, generator=gen) * scale)
        side = (ext * cfg["box_scale"]).clamp(min=cfg["min_box"])
        boxes = torch.cat([centre - side / 2, centre + side / 2], 1)
        orig = data.original(i)
        crops.append(ops.grid_sample_crops(orig[None, None], boxes, k, k))
        targets.append((c - centre[:, None]) / (side[:, None] / 2))
    return torch.cat(crops), torch.cat(targets)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------

def validate(model, val):
    """The reference pipeline on every validation phantom -> metrics."""
    model.eval()
    n_img_ok, lvl_ok, lvl_n = 0, 0, 0
    e1, e2 = [], []
    with torch.no_grad():
        for i in range(len(val)):
            # The stored [0, 1] original is the reference's input up to an affine map, which
            # step 1's min-max undoes (float16 rounding aside).
            out = model(val.original(i))
            pres = out["presence"] >= model.config["threshold"]
            truth = val.present[i]
            lvl_ok += int((pres == truth).sum())
            lvl_n += NUM_LEVELS
            n_img_ok += int(bool((pres == truth).all()))
            m = truth.repeat_interleave(4)
            gt = val.corners[i][m].double()
            e1.append(torch.linalg.norm(out["coarse"][m, :2].double() - gt, dim=-1))
            e2.append(torch.linalg.norm(out["landmarks"][m, :2].double() - gt, dim=-1))
    e1, e2 = torch.cat(e1), torch.cat(e2)
    model.train()
    return {"val_levels_right": round(lvl_ok / lvl_n, 4),
            "val_images_all_right": round(n_img_ok / len(val), 4),
            "val_step1_median_px": round(float(e1.median()), 3),
            "val_step1_mean_px": round(float(e1.mean()), 3),
            "val_step2_median_px": round(float(e2.median()), 3),
            "val_step2_mean_px": round(float(e2.mean()), 3),
            "val_step2_p90_px": round(float(torch.quantile(e2, 0.9)), 3)}


def save_weights(model, config, path, info):
    sd, _ = convert.drop_training_only(convert.clean_state_dict(model.state_dict()), config)
    convert.check_keys(sd, config)
    metadata = {**convert.file_metadata(config), "training": json.dumps(info, sort_keys=True)}
    st_io.save_file(convert.to_file_tensors(sd, "f32"), path, metadata)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", metavar="NPZ", help="pre-generate a data set and exit")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed-base", type=int, default=TRAIN_SEED_BASE)
    ap.add_argument("--min-height", type=int, default=800)
    ap.add_argument("--max-height", type=int, default=1200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data")
    ap.add_argument("--val")
    ap.add_argument("--out", default="runs/lumbar")
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=55.0, help="wall-time budget (0: none)")
    ap.add_argument("--epoch-steps", type=int, default=100, help="steps between validations")
    ap.add_argument("--batch", type=int, default=8, help="images per step (identify, locate)")
    ap.add_argument("--crops-per-image", type=int, default=2, help="refiner crops per image")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-5)
    ap.add_argument("--sigma", type=float, default=1.0, help="JS target sigma, map pixels")
    ap.add_argument("--js-weight", type=float, default=1.0)
    ap.add_argument("--rot", type=float, default=4.0)
    ap.add_argument("--scale-min", type=float, default=0.95)
    ap.add_argument("--scale-max", type=float, default=1.05)
    ap.add_argument("--trans", type=float, default=0.03)
    ap.add_argument("--gamma", type=float, default=1.4)
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--jitter-shift", type=float, default=0.06)
    ap.add_argument("--jitter-scale", type=float, default=0.08)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", help="checkpoint_last.pt to continue from (model, optimizer, "
                    "history, schedule position)")
    ap.add_argument("--limit-steps", type=int, default=0, help="steps per epoch cap (timing)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    cfg = cpu_config(args.name)
    if args.make_data:
        make_data(args.make_data, args.count, args.seed_base, cfg["input_size"],
                  args.min_height, args.max_height, args.workers)
        return 0

    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "train.log")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    data = Data(args.data)
    val = Data(args.val)
    s = cfg["input_size"]
    assert data.size == s and val.size == s, f"data at {data.size}, config wants {s}"
    train_seeds = [int(data.seeds.min()), int(data.seeds.max())]
    val_seeds = [int(val.seeds.min()), int(val.seeds.max())]
    assert train_seeds[0] >= TRAIN_SEED_BASE and val_seeds[0] >= VAL_SEED_BASE
    n = len(data)
    log(f"train {n}, val {len(val)}, config {json.dumps(cfg)}")

    model = LumbarModel(cfg)
    model.train()
    nparams = {net: sum(p.numel() for p in getattr(model, net).parameters())
               for net in ("identify", "locate", "refine")}
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    history, best, first_epoch, spent = [], float("inf"), 0, 0.0
    info_base = {"generator": "tools/phantom_lumbar.py sagitta-phantom-lumbar-v1",
                 "train_seeds": train_seeds, "train_count": n, "val_seeds": val_seeds,
                 "val_count": len(val), "train_heights": [args.min_height, args.max_height],
                 "settings": dict(vars(args)), "parameters": nparams,
                 "torch": torch.__version__, "threads": args.threads,
                 "loss": "identify: BCE on the 24 presence logits; locate and refine: Euclidean "
                         "distance of the DSNT coordinates (normalised [-1, 1]) + js_weight * "
                         "JS(heatmap, Gaussian sigma map px), absent levels masked; refine on "
                         "crops from jittered true-corner boxes (SPEC steps 5-6)",
                 "schedule": "Adam, cosine from lr to min_lr over the --minutes budget",
                 "command": "python3 tools/train_lumbar.py " + " ".join(
                     sys.argv[1:] if argv is None else argv)}
    if args.resume:
        ck = torch.load(args.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        history = list(ck["history"])
        first_epoch = ck["epoch"] + 1
        spent = history[-1]["minutes"] if history else 0.0
        best = min((r["val_score"] for r in history), default=float("inf"))
        gen.manual_seed(args.seed + first_epoch)
        info_base["resumed_from"] = {"checkpoint": args.resume, "epoch": ck["epoch"]}
        # The earlier run's record (its settings, and what it resumed from) beside this one's.
        earlier = os.path.join(os.path.dirname(args.resume), "history.json")
        if os.path.exists(earlier):
            with open(earlier) as f:
                prev = json.load(f)
            for key in ("settings", "command", "resumed_from"):
                if key in prev:
                    info_base["resumed_from"][key] = prev[key]
        log(f"resumed at epoch {first_epoch} after {spent:.1f} min, best {best:.3f}")
    log(f"parameters: {nparams}")
    t_start = time.time() - spent * 60

    def lr_at():
        frac = min((time.time() - t_start) / 60 / args.minutes, 1.0) if args.minutes else 0.0
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * frac))

    steps = args.epoch_steps
    if args.limit_steps:
        steps = min(steps, args.limit_steps)
    expand = model._expand
    for epoch in range(first_epoch, args.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = {k: 0.0 for k in ("loss", "bce", "loc", "loc_js", "ref", "ref_js")}
        t_ep = time.time()
        for st in range(steps):
            a = (st * args.batch) % n
            idx = perm[a:a + args.batch]
            if len(idx) < args.batch:
                idx = perm[:args.batch]
            for group in opt.param_groups:
                group["lr"] = lr_at()
            # identify + locate on the augmented input
            x = data.inputs[idx].float()[:, None]
            hw = [tuple(int(v) for v in data.shapes[i]) for i in idx.tolist()]
            lm = torch.stack([to_norm(data.corners[i].float(), h) for i, h in zip(idx.tolist(),
                                                                                    hw)])
            present = data.present[idx]
            mask = present.repeat_interleave(4, dim=1)
            x, lm = affine(x, torch.nan_to_num(lm), gen, args.rot,
                           (args.scale_min, args.scale_max), args.trans)
            x = photometric(x, gen, args.gamma, args.noise)
            xin = expand(x)
            bce = F.binary_cross_entropy_with_logits(model.identify(xin), present.float())
            loc, loc_js = dsnt_loss(model.locate(xin), lm, mask, args.sigma, args.js_weight)
            # refine on jittered level crops from the originals
            crops, tgt = training_crops(data, idx, gen, cfg, args.crops_per_image,
                                        args.jitter_shift, args.jitter_scale)
            crops = photometric(crops, gen, args.gamma, args.noise, renormalise=False)
            ref, ref_js = dsnt_loss(model.refine(expand(crops)), tgt,
                                    torch.ones(tgt.shape[:2], dtype=torch.bool), args.sigma,
                                    args.js_weight)
            loss = bce + loc + args.js_weight * loc_js + ref + args.js_weight * ref_js
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, val_ in (("loss", loss), ("bce", bce), ("loc", loc), ("loc_js", loc_js),
                              ("ref", ref), ("ref_js", ref_js)):
                sums[key] += float(val_.detach())
            if st % 25 == 0:
                log(f"epoch {epoch} step {st}/{steps} loss {float(loss.detach()):.4f} "
                    f"bce {float(bce.detach()):.4f} loc {float(loc.detach()):.4f} "
                    f"ref {float(ref.detach()):.4f} "
                    f"({(time.time() - t_ep) / (st + 1):.2f} s/step)")
        t_val = time.time()
        metrics = validate(model, val)
        # One number to pick the best epoch: the refined mean error (px), doubled for every
        # tenth of a level labelled wrong.
        score = metrics["val_step2_mean_px"] * (1 + 20 * (1 - metrics["val_levels_right"]))
        rec = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
               "minutes": round((time.time() - t_start) / 60, 2),
               **{k: round(v / steps, 5) for k, v in sums.items()}, **metrics,
               "val_score": round(score, 4), "val_seconds": round(time.time() - t_val, 1)}
        history.append(rec)
        log(json.dumps(rec))
        info = dict(info_base, history=history, epochs_done=epoch + 1,
                    wall_minutes=rec["minutes"])
        torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch,
                    "optimizer": opt.state_dict(), "history": history},
                   os.path.join(args.out, "checkpoint_last.pt"))
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump(info, f, indent=1)
        if score < best:
            best = score
            info_best = dict(info, best_epoch=epoch, best=metrics)
            torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch},
                       os.path.join(args.out, "checkpoint_best.pt"))
            model.eval()
            for fname in ("best.safetensors", "lumbar_default.safetensors"):
                save_weights(model, cfg, os.path.join(args.out, fname), info_best)
            model.train()
            log(f"saved best (epoch {epoch}, score {best:.3f})")
        if args.minutes and (time.time() - t_start) / 60 > args.minutes:
            log("time budget reached")
            break
    log(f"done, {(time.time() - t_start) / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
