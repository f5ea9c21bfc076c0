"""Train disc refiners alone on crops around the ground truth (cheap: no global network).

    python3 train_refiner.py --data train.npz --val val.npz --init W.safetensors --discs 5 \
        --out run_ref --minutes 30 [--batch 32 --jitter 0.15 --hard-weight 3]

The refiners see boxes built by the engine's rule (ops.boxes_from_points, the config's margin and
minimum side) around the *ground-truth* corners, randomly shifted and scaled by up to --jitter of
the side (the coarse stage's misses at inference), on augmented images (train.augment). Images
whose disc has a low contrast (train.disc_contrast, the lowest --hard-frac) are drawn
--hard-weight times as often: the C7-T1 refiner's failures are crops under the shoulders.
Writes `refiners.pt` (each refiner's state dict at its best check: the validation error of its
own four corners through the whole pipeline, the global model's boxes) and `info.json`.
--crop-standardize trains them for crops standardized on their own (config `crop_standardize`).

    python3 train_refiner.py splice BASE.safetensors OUT/refiners.pt OUT/info.json MODEL.safetensors \
        [--dtype f16]

writes BASE with those refiners replaced (and the run's config changes applied); its `training`
metadata is BASE's plus this run's settings, steps and minutes appended to its
`refiner_training` list.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train  # noqa: E402
from sagitta_ref import ops  # noqa: E402
from sagitta_ref.anatomy.cervical import DISC_GROUPS  # noqa: E402
from sagitta_ref.convert import load_model  # noqa: E402
from sagitta_ref.ops import dsnt, softmax2d  # noqa: E402


def gt_boxes(model, lm_in, discs, jitter, gen):
    c = model.config
    S = c["input_size"]
    out = []
    for i in range(len(lm_in)):
        norm = train.to_norm(lm_in[i], S)
        b = ops.boxes_from_points(norm, [DISC_GROUPS[k] for k in discs], (S, S),
                                  c["box_margin"], c["box_min_side"])
        out.append(b)
    return train.jitter_boxes(torch.stack(out), jitter, gen)              # [B, D, 4]


def refine_loss(model, x, lm_in, boxes, discs):
    c = model.config
    crops = train.model_crops(c, x, boxes)
    idx = torch.tensor([DISC_GROUPS[k] for k in discs])
    losses = []
    for j, k in enumerate(discs):
        h = model.refiners[k](crops[:, j])[-1]
        pred = dsnt(softmax2d(h))                                             # [B, 4, 2]
        b = boxes[:, j]
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        half = (b[:, 2] - b[:, 0]) / 2
        g = lm_in[:, idx[j]]
        tgt = torch.stack([(g[..., 0] - cx[:, None]) / half[:, None],
                           (g[..., 1] - cy[:, None]) / half[:, None]], -1)
        losses.append(train.euclidean(pred, tgt))
    return torch.stack(losses).mean()


def splice(argv) -> int:
    ap = argparse.ArgumentParser(prog="train_refiner.py splice")
    ap.add_argument("base")
    ap.add_argument("refiners")
    ap.add_argument("info")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="f16")
    ap.add_argument("--name", help="new model name (default: the base's)")
    args = ap.parse_args(argv)
    from safetensors import safe_open
    model, cfg = load_model(args.base)
    model.float()
    cfg = dict(model.config)
    if args.name:
        cfg["name"] = args.name
    with safe_open(args.base, "pt") as f:
        info = json.loads(f.metadata().get("training", "{}"))
    states = torch.load(args.refiners, map_location="cpu")
    for k, sd in states.items():
        model.refiners[int(k)].load_state_dict(sd)
    new = json.load(open(args.info))
    new["refiners_file"] = args.refiners
    # refiners trained for another input (crop_standardize) need the file to say so
    cfg.update(new.get("config", {}))
    old = info.get("refiner_training")
    # a base that already had refiners replaced keeps that record: a list, oldest first
    info["refiner_training"] = (old if isinstance(old, list) else [old] if old else []) + [new]
    train.save_weights(model, cfg, args.out, args.dtype, info)
    print(f"wrote {args.out}: {args.base} with refiners {sorted(states)} from {args.refiners}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "splice":
        return splice(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--init", required=True, help="model whose refiners start the training")
    ap.add_argument("--base", help="model to splice the trained refiners into (default --init)")
    ap.add_argument("--discs", default="5", help="comma list of disc indices 0..5")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--min-lr", type=float, default=3e-6)
    ap.add_argument("--jitter", type=float, default=0.15)
    ap.add_argument("--hard-weight", type=float, default=3.0)
    ap.add_argument("--hard-frac", type=float, default=0.25)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crop-standardize", action="store_true",
                    help="train (and write) the refiners for crops standardized on their own "
                         "(config crop_standardize); splice carries the setting into the file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    discs = [int(k) for k in args.discs.split(",")]

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(os.path.join(args.out, "train.log"), "a") as f:
            f.write(line + "\n")

    model, cfg = load_model(args.init)
    model.float()
    config_changes = {"crop_standardize": True} if args.crop_standardize else {}
    model.config.update(config_changes)
    S = model.config["input_size"]
    d = np.load(args.data)
    images = torch.from_numpy(d["images"].astype(np.float32))
    lms = torch.from_numpy(d["landmarks"].astype(np.float32))
    v = np.load(args.val)
    vimages = torch.from_numpy(v["images"].astype(np.float32))
    vlms = torch.from_numpy(v["landmarks"].astype(np.float32))
    contrast = train.disc_contrast(images, lms, max(discs))
    cut = torch.quantile(contrast, args.hard_frac)
    weights = torch.where(contrast <= cut, args.hard_weight, 1.0)
    params = [p for k in discs for p in model.refiners[k].parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    idx_pts = [p for k in discs for p in DISC_GROUPS[k]]
    log(f"discs {discs}, {len(images)} images, hard cut {float(cut):.3f}, "
        f"{sum(p.numel() for p in params)} parameters")

    # The global model is frozen: its coarse points and boxes on the validation set are computed
    # once, and each check runs only the refiners (the same result as train.evaluate).
    model.eval()
    vx = [train.standardize_batch(vimages[i:i + 16]) for i in range(0, len(vimages), 16)]
    with torch.no_grad():
        vcoarse = [train.global_forward(model, x)[-1][1] for x in vx]
        vboxes = [train.boxes_batch(model, c) for c in vcoarse]

    def val_err():
        """Full pipeline on the validation set (coarse boxes of the global model): the corners'
        mean, p90 and max error over the trained discs, and each disc's mean."""
        model.eval()
        with torch.no_grad():
            p = torch.cat([torch.stack([model.assemble(c[i], r[i], b[i]) for i in range(len(x))])
                           for x, c, b in zip(vx, vcoarse, vboxes)
                           for r in [train.refine_forward(model, x, b)]])
        err = torch.linalg.norm(p - vlms, dim=-1)
        e = err[:, idx_pts]
        per = {k: float(err[:, DISC_GROUPS[k]].mean()) for k in discs}
        return float(e.mean()), float(torch.quantile(e.flatten(), 0.9)), float(e.max()), per

    def snapshot(k):
        return {n: t.clone() for n, t in model.refiners[k].state_dict().items()}

    # Each refiner sees only its own crop, so each keeps its own best step.
    start = val_err()
    best = dict(start[3])
    best_step = {k: 0 for k in discs}
    log(f"start: val mean {start[0]:.3f} px, p90 {start[1]:.2f}, max {start[2]:.1f} (disc "
        f"corners); per disc " + ", ".join(f"{k}: {v:.3f}" for k, v in best.items()))
    best_state = {k: snapshot(k) for k in discs}

    def keep_better(e, at):
        better = [k for k in discs if e[3][k] < best[k]]
        for k in better:
            best[k] = e[3][k]
            best_step[k] = at
            best_state[k] = snapshot(k)
        return better
    t0 = time.time()
    step = 0
    run = 0.0
    history = []

    def write_info(steps, finished):
        json.dump({"discs": discs, "steps": steps, "finished": finished,
                   "minutes": (time.time() - t0) / 60, "settings": vars(args),
                   "config": config_changes,
                   "start_val_px": {str(k): v for k, v in start[3].items()},
                   "best_val_px": {str(k): v for k, v in best.items()},
                   "best_step": {str(k): v for k, v in best_step.items()},
                   "history": history},
                  open(os.path.join(args.out, "info.json"), "w"), indent=1)
    while True:
        frac = (time.time() - t0) / 60 / args.minutes
        if frac >= 1:
            break
        lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        for m in model.global_net.modules():
            m.eval()
        ii = torch.multinomial(weights, args.batch, replacement=True, generator=gen)
        x, lm_n = train.augment(images[ii], train.to_norm(lms[ii], S), gen)
        lm_px = ops.norm_to_input(lm_n, S)
        boxes = gt_boxes(model, lm_px, discs, args.jitter, gen)
        loss = refine_loss(model, x, lm_px, boxes, discs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * float(loss.detach()) if step else float(loss.detach())
        step += 1
        if step % args.eval_every == 0:
            e = val_err()
            better = keep_better(e, step)
            history.append({"step": step, "minutes": round((time.time() - t0) / 60, 2),
                            "lr": lr, "loss": round(run, 5), "val_mean_px": round(e[0], 4),
                            "val_p90_px": round(e[1], 3),
                            "per_disc_px": {str(k): round(v, 4) for k, v in e[3].items()}})
            log(f"step {step} lr {lr:.2e} loss {run:.4f} val disc corners mean {e[0]:.3f} px, "
                f"p90 {e[1]:.2f}, max {e[2]:.1f}; per disc "
                + ", ".join(f"{k}: {v:.3f}" for k, v in e[3].items())
                + f"; better: {better} ({(time.time() - t0) / step:.2f} s/step)")
            if better:
                torch.save(best_state, os.path.join(args.out, "refiners.pt"))
                write_info(step, False)
    e = val_err()
    keep_better(e, step)
    log(f"end step {step}: val disc corners mean {e[0]:.3f} px, p90 {e[1]:.2f}, max {e[2]:.1f}")
    torch.save(best_state, os.path.join(args.out, "refiners.pt"))
    write_info(step, True)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
