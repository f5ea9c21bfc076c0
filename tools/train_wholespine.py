"""Train the whole-spine default (SPEC-wholespine.md, paper 001) on synthetic phantoms, on a CPU.

    python3 tools/train_wholespine.py --make-data /tmp/ws_train.npz --count 2400
    python3 tools/train_wholespine.py --make-data /tmp/ws_val.npz --count 100 --seed-base 41000000
    python3 tools/train_wholespine.py --data /tmp/ws_train.npz --val /tmp/ws_val.npz \
        --out runs/ws1 --minutes 55 [--resume runs/ws1/checkpoint_last.pt]

The network is the SPEC's (25 pre-activation blocks, CPN with DSNT, `arch` "wholespine-cpn-dsnt")
at reduced sizes (cpu_config: input, widths, lateral and fuse widths, one member), declared in the
weights file's "sagitta" entry. The recipe follows the paper where it says (Methods, "Learning
objective" and "Training details"):
- loss: Wing loss on the DSNT coordinates of both stages (w = 10, eps = 2, in input pixels; the
  paper names the Wing loss without its constants, these are Wing's paper's) + a Jensen-Shannon
  regularisation of the stage-2 heatmaps towards a Gaussian at the ground truth (`--sigma`,
  heatmap pixels), summed over the 45 landmarks and averaged over the batch;
- Adam; augmentation: random scale 0.8-1.0 (the paper's; we also allow up to `--scale-max`),
  rotation (the paper's +-30 deg narrowed to `--rot`, phantoms are upright), Gaussian blur 0-0.1
  (the paper's strength; here sigma in input pixels up to `--blur`), plus a small translation and
  noise; the image and its landmarks move together, rotation done in pixel units (the input is not
  square);
- ours: a cosine learning-rate schedule over the time budget instead of the paper's step at epoch
  100 of 120 (a CPU run sees far fewer epochs), batch 4 instead of 18, one member instead of two.

Data: tools/phantom_wholespine.py phantoms, seeds TRAIN_SEED_BASE + i (40_000_000+), validation
VAL_SEED_BASE + i (41_000_000+); the held-out set (800_000+) and the samples (950_000+) never
overlap these. Each phantom is rendered at a random original height, resized to the input size with
ops.resize_bicubic (the engine's preprocessing) and stored un-standardized as float16 with its
landmarks in input pixels.

Outputs in --out: checkpoint_last.pt (model, optimizer, history, for --resume),
checkpoint_best.pt, best.safetensors (f32) and wholespine_default.safetensors (f32: the shipped
file), history.json, train.log. The "training" metadata entry holds the seeds, every setting, the
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
from sagitta_ref.anatomy.wholespine import LANDMARKS  # noqa: E402
from sagitta_ref.models.wholespine import WholeSpineModel, paper_config  # noqa: E402
from sagitta_ref.ops import dsnt, softmax2d  # noqa: E402

TRAIN_SEED_BASE = 40_000_000
VAL_SEED_BASE = 41_000_000
DEFAULT_NAME = "sagitta-wholespine-synthetic-v1"


def cpu_config(name: str = DEFAULT_NAME) -> dict:
    cfg = paper_config()
    cfg.update({"name": name, "input_height": 288, "input_width": 160,
                "widths": [8, 16, 24, 32, 48, 48], "lateral": 12, "fuse": [16, 8],
                "members": 1, "not_for_clinical_use": True})
    return cfg


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def _render_one(args):
    seed, h_in, w_in, h_lo, h_hi = args
    import phantom_wholespine as pw
    rng = np.random.default_rng([seed, 7])
    height = int(rng.integers(h_lo, h_hi + 1))
    img, meta = pw.generate(seed, height)
    t = torch.from_numpy(img.astype(np.float32))
    resized = ops.resize_bicubic(t, h_in, w_in).numpy().astype(np.float32) / 65535.0
    lm = np.array([meta["landmarks"][n] for n in LANDMARKS], np.float64)
    w0, h0 = meta["width"], meta["height"]
    lm_in = np.stack([(lm[:, 0] + 0.5) * w_in / w0 - 0.5, (lm[:, 1] + 0.5) * h_in / h0 - 0.5], 1)
    return resized.astype(np.float16), lm_in.astype(np.float32), height


def make_data(out, count, seed_base, h_in, w_in, h_lo, h_hi, workers):
    jobs = [(seed_base + i, h_in, w_in, h_lo, h_hi) for i in range(count)]
    t0 = time.time()
    torch.set_num_threads(1)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            res = pool.map(_render_one, jobs, chunksize=16)
    else:
        res = [_render_one(j) for j in jobs]
    np.savez(out, images=np.stack([r[0] for r in res]), landmarks=np.stack([r[1] for r in res]),
             seeds=np.array([j[0] for j in jobs]), heights=np.array([r[2] for r in res]),
             size=np.array([h_in, w_in]))
    print(f"wrote {out}: {count} phantoms (seeds {seed_base}..{seed_base + count - 1}, original "
          f"height {h_lo}-{h_hi}) in {time.time() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------------------------
# Augmentation, losses
# ----------------------------------------------------------------------------------------------

def to_norm(p_in, hw):
    h, w = hw
    return torch.stack([(2 * p_in[..., 0] + 1) / w - 1, (2 * p_in[..., 1] + 1) / h - 1], -1)


def to_input(p_norm, hw):
    h, w = hw
    return torch.stack([((p_norm[..., 0] + 1) * w - 1) / 2, ((p_norm[..., 1] + 1) * h - 1) / 2],
                       -1)


def standardize_batch(x):
    return (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(
        dim=(1, 2), keepdim=True, unbiased=False).clamp(min=1e-6)


def augment(images, lm_norm, gen, rot_deg, scale, trans, noise, blur):
    """images [B, H, W] un-standardized, lm_norm [B, K, 2] -> augmented, standardized."""
    b, h, w = images.shape
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(rot_deg)
    sc = torch.rand(b, generator=gen) * (scale[1] - scale[0]) + scale[0]
    tr = (torch.rand(b, 2, generator=gen) * 2 - 1) * trans
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    d = torch.diag(torch.tensor([w / 2.0, h / 2.0]))
    rf = torch.linalg.inv(d) @ rot @ d * sc[:, None, None]         # rotation in pixel units
    lm_out = torch.einsum("bij,bkj->bki", rf, lm_norm) + tr[:, None, :]
    rinv = torch.linalg.inv(rf)
    theta = torch.cat([rinv, -(rinv @ tr[:, :, None])], dim=2)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    mins = images.flatten(1).amin(1)[:, None, None, None]
    x = F.grid_sample(images[:, None] - mins, grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False) + mins
    if blur > 0:
        s = float(torch.rand(1, generator=gen)) * blur
        if s > 0.3:
            r = int(math.ceil(3 * s))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / s) ** 2)
            k = k / k.sum()
            x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    x = x[:, 0]
    std = x.flatten(1).std(1)[:, None, None]
    x = x + torch.randn(x.shape, generator=gen) * std * (torch.rand(b, 1, 1, generator=gen) * noise)
    return standardize_batch(x), lm_out


def wing(err, w=10.0, eps=2.0):
    c = w - w * math.log(1 + w / eps)
    return torch.where(err < w, w * torch.log1p(err / eps), err - c)


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
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log(a + eps) - torch.log(b + eps))).sum(dim=(-2, -1))
    return (0.5 * kl(p, m) + 0.5 * kl(q, m)).sum(-1).mean()


def stage_outputs(member, x):
    """Standardized [B, H, W] -> (stage-1 probs, coords), (stage-2 probs, coords)."""
    t = member.stage1(x[:, None])
    s1 = softmax2d(member.stage1_logits(t))
    # stage 2 from the same top-down maps (Member.forward recomputes stage 1; not here)
    r = {}
    for level in range(1, 5):
        hh = t[level]
        for block in member.s2.lat[str(level)]:
            hh = block(hh)
        r[level] = hh
    from sagitta_ref.models.wholespine import up
    size1 = t[1].shape[-2:]
    c1 = torch.cat([r[1]] + [up(r[level], size1) for level in range(2, 5)], 1)
    f = member.s2.fuse[1](member.s2.fuse[0](c1))
    s2 = softmax2d(member.s2.head(torch.cat([up(f, t[0].shape[-2:]), t[0]], 1)))
    return (s1, dsnt(s1)), (s2, dsnt(s2))


def predict(model, images, batch=16):
    member = model.members[0]
    member.eval()
    hw = model.input_hw
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = standardize_batch(images[i:i + batch])
            out.append(to_input(dsnt(softmax2d(member(x[:, None]))), hw))
    return torch.cat(out)


def save_weights(model, config, path, dtype, info):
    sd = convert.clean_state_dict(model.state_dict())
    convert.check_keys(sd, config)
    metadata = {**convert.file_metadata(config), "training": json.dumps(info, sort_keys=True)}
    st_io.save_file(convert.to_file_tensors(sd, dtype), path, metadata)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", metavar="NPZ", help="pre-generate a data set and exit")
    ap.add_argument("--count", type=int, default=2400)
    ap.add_argument("--seed-base", type=int, default=TRAIN_SEED_BASE)
    ap.add_argument("--min-height", type=int, default=600)
    ap.add_argument("--max-height", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data")
    ap.add_argument("--val")
    ap.add_argument("--out", default="runs/wholespine")
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=55.0, help="wall-time budget (0: none)")
    ap.add_argument("--epoch-size", type=int, default=400, help="samples per epoch")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-5)
    ap.add_argument("--sigma", type=float, default=1.5)
    ap.add_argument("--js-weight", type=float, default=1.0)
    ap.add_argument("--stage1-weight", type=float, default=1.0)
    ap.add_argument("--rot", type=float, default=8.0)
    ap.add_argument("--scale-min", type=float, default=0.8)
    ap.add_argument("--scale-max", type=float, default=1.05)
    ap.add_argument("--trans", type=float, default=0.05)
    ap.add_argument("--noise", type=float, default=0.04)
    ap.add_argument("--blur", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", help="checkpoint_last.pt to continue from (model, optimizer, "
                    "history, schedule position)")
    ap.add_argument("--limit-steps", type=int, default=0, help="steps per epoch cap (timing)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    cfg = cpu_config(args.name)
    hw = (cfg["input_height"], cfg["input_width"])
    if args.make_data:
        make_data(args.make_data, args.count, args.seed_base, hw[0], hw[1], args.min_height,
                  args.max_height, args.workers)
        return 0

    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "train.log")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    d = np.load(args.data)
    images = torch.from_numpy(d["images"].astype(np.float32))
    lms = torch.from_numpy(d["landmarks"].astype(np.float32))
    assert tuple(int(v) for v in d["size"]) == hw, f"data at {d['size']}, config wants {hw}"
    v = np.load(args.val)
    vimages = torch.from_numpy(v["images"].astype(np.float32))
    vlms = torch.from_numpy(v["landmarks"].astype(np.float32))
    train_seeds = [int(d["seeds"].min()), int(d["seeds"].max())]
    val_seeds = [int(v["seeds"].min()), int(v["seeds"].max())]
    assert train_seeds[0] >= TRAIN_SEED_BASE and val_seeds[0] >= VAL_SEED_BASE
    n = len(images)
    log(f"train {n}, val {len(vimages)}, config {json.dumps(cfg)}")

    model = WholeSpineModel(cfg)
    member = model.members[0]
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    history, best, first_epoch, spent = [], float("inf"), 0, 0.0
    info_base = {"generator": "tools/phantom_wholespine.py sagitta-phantom-wholespine-v1",
                 "train_seeds": train_seeds, "train_count": n, "val_seeds": val_seeds,
                 "val_count": len(vimages),
                 "train_heights": [args.min_height, args.max_height],
                 "settings": dict(vars(args)), "parameters": nparams,
                 "torch": torch.__version__,
                 "loss": "Wing(w=10, eps=2, input px) on both stages' DSNT coordinates + "
                         "js_weight * JS(stage-2 heatmaps, Gaussian sigma px)",
                 "schedule": "Adam, cosine from lr to min_lr over the --minutes budget"}
    if args.resume:
        ck = torch.load(args.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        history = list(ck["history"])
        first_epoch = ck["epoch"] + 1
        spent = history[-1]["minutes"] if history else 0.0
        best = min((r["val_mean_px"] for r in history), default=float("inf"))
        gen.manual_seed(args.seed + first_epoch)
        info_base["resumed_from"] = {"checkpoint": args.resume, "epoch": ck["epoch"]}
        log(f"resumed at epoch {first_epoch} after {spent:.1f} min, best {best:.3f} px")
    log(f"parameters: {nparams}")
    t_start = time.time() - spent * 60

    def lr_at():
        frac = min((time.time() - t_start) / 60 / args.minutes, 1.0) if args.minutes else 0.0
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * frac))

    steps = args.epoch_size // args.batch
    if args.limit_steps:
        steps = min(steps, args.limit_steps)
    for epoch in range(first_epoch, args.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = {"loss": 0.0, "wing1": 0.0, "wing2": 0.0, "js": 0.0}
        t_ep = time.time()
        for st in range(steps):
            idx = perm[(st * args.batch) % n:(st * args.batch) % n + args.batch]
            for group in opt.param_groups:
                group["lr"] = lr_at()
            x, lm_n = augment(images[idx], to_norm(lms[idx], hw), gen, args.rot,
                              (args.scale_min, args.scale_max), args.trans, args.noise, args.blur)
            (p1, c1), (p2, c2) = stage_outputs(member, x)
            tgt = to_input(lm_n, hw)
            w1 = wing(torch.linalg.norm(to_input(c1, hw) - tgt, dim=-1)).sum(-1).mean()
            w2 = wing(torch.linalg.norm(to_input(c2, hw) - tgt, dim=-1)).sum(-1).mean()
            js = js_divergence(p2, gauss_heatmaps(lm_n, hw[0], hw[1], args.sigma))
            loss = args.stage1_weight * w1 + w2 + args.js_weight * js
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, val in (("loss", loss), ("wing1", w1), ("wing2", w2), ("js", js)):
                sums[key] += float(val.detach())
            if st % 25 == 0:
                log(f"epoch {epoch} step {st}/{steps} loss {float(loss):.2f} "
                    f"({(time.time() - t_ep) / (st + 1):.2f} s/step)")
        pred = predict(model, vimages)
        err = torch.linalg.norm(pred - vlms, dim=-1)
        rec = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
               "minutes": round((time.time() - t_start) / 60, 2),
               **{k: round(val / steps, 4) for k, val in sums.items()},
               "val_mean_px": round(float(err.mean()), 4),
               "val_median_px": round(float(err.median()), 4),
               "val_p90_px": round(float(torch.quantile(err, 0.9)), 4)}
        history.append(rec)
        log(json.dumps(rec))
        info = dict(info_base, history=history, epochs_done=epoch + 1,
                    wall_minutes=rec["minutes"])
        torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch,
                    "optimizer": opt.state_dict(), "history": history},
                   os.path.join(args.out, "checkpoint_last.pt"))
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump(info, f, indent=1)
        if rec["val_mean_px"] < best:
            best = rec["val_mean_px"]
            info_best = dict(info, best_epoch=epoch, best_val_mean_px=rec["val_mean_px"],
                             best_val_median_px=rec["val_median_px"])
            torch.save({"state_dict": model.state_dict(), "config": cfg, "epoch": epoch},
                       os.path.join(args.out, "checkpoint_best.pt"))
            model.eval()
            for fname in ("best.safetensors", "wholespine_default.safetensors"):
                save_weights(model, cfg, os.path.join(args.out, fname), "f32", info_best)
            log(f"saved best (epoch {epoch}, val mean {best:.3f} px)")
        if args.minutes and (time.time() - t_start) / 60 > args.minutes:
            log("time budget reached")
            break
    log(f"done, {(time.time() - t_start) / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
