"""Train the default CSM classifier (SPEC-csm.md) on the CSM phantoms of phantom_csm.py.

    python3 train_csm.py --make-data /tmp/csm/train.npz --count 4000 --workers 2
    python3 train_csm.py --make-data /tmp/csm/val.npz --count 400 --seed-base 31000000 --workers 2
    python3 train_csm.py --data /tmp/csm/train.npz --val /tmp/csm/val.npz --out /tmp/csm/run2 \
        --minutes 38 --crop 128 --crop-minutes 20

Data: phantoms with seeds TRAIN_SEED_BASE + i (validation VAL_SEED_BASE + i, phantom_csm.py),
rendered at a random original height (480-720 px, from the seed), area-resized to the model's input
exactly as the engine does (ops.resize_area) and kept as float16 before min-max, with the labels
and where the C3-C7 canal lies in the resized image.

Curriculum: from scratch, on whole images the network stayed at chance for two epochs (the canal
is ~2 % of the image); so the first --crop-minutes train on --crop-px crops around the canal (the
same scale, shifted at random), where it finds the sign, and the rest on whole images, which is
what it sees at inference (the network is convolutional up to a global average pool, so the same
weights apply to both).
Batches of 16 (the paper: 8; BatchNorm wants more), channels-last tensors (faster on CPU).

Model: the reference `CsmModel` structure (torchvision VGG16 keys, `width` multiplier, FC hidden
sizes), trained with a BatchNorm after every convolution, which is folded into the convolution's
weight and bias on export (exact in eval mode), so the file has exactly the keys the engine loads.
Training follows the paper where it says something: Adam, binary cross-entropy on the
sigmoid, augmentation by shear, zoom and width shift (here also height shift and exposure: gamma,
noise), applied to the resized image before min-max and the channel affine of SPEC-csm.md. The
paper's ImageNet initialisation is not available here (no pretrained weights at this width), so
the weights start from He initialisation. The learning rate follows a cosine from --lr to 0 over
--epochs or --minutes, whichever ends first (so a busy machine still anneals); the kept weights
are those of the epoch with the best validation AUC (ties: lower loss).

Outputs in --out: csm_default.safetensors (f32, config and a "training" entry in metadata),
checkpoint.pt (the BatchNorm model), history.json, train.log.
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
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom_csm  # noqa: E402
from sagitta_ref import convert, ops, st_io  # noqa: E402
from sagitta_ref.models.csm import STAGES, CsmModel, feature_layers, paper_config  # noqa: E402

DEFAULT_NAME = "sagitta-csm-synthetic-v1"


def default_config() -> dict:
    """The paper's network at 1/8 width (channels 8, 16, 32, 64, 64), 224 input, FC 128/64."""
    cfg = paper_config()
    cfg.update({"name": DEFAULT_NAME, "width": 0.125, "not_for_clinical_use": True})
    return cfg


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def canal_centre(meta: dict, size: int) -> tuple[float, float]:
    """Where the C3-C7 canal is in the size x size input: the mean of those bodies' posterior
    corners, scaled as the area resize scales the image."""
    pts = np.array([meta["landmarks"][f"C{k}_{c}"] for k in range(3, 8) for c in ("ps", "pi")])
    x, y = pts.mean(0)
    return x * size / meta["width"], y * size / meta["height"]


def _render_one(job):
    seed, size = job
    torch.set_num_threads(1)
    height = int(np.random.default_rng([seed, 7]).integers(480, 721))
    img, meta = phantom_csm.generate(seed, height)
    resized = ops.resize_area(torch.from_numpy(img.astype(np.float32)), size, size)
    scale = float((1 << meta["bits_stored"]) - 1)
    return (resized / scale).numpy().astype(np.float16), meta["csm"]["label"], \
        meta["csm"]["min_torg_pavlov"], canal_centre(meta, size)


def make_data(out: str, count: int, seed_base: int, size: int, workers: int) -> None:
    jobs = [(seed_base + i, size) for i in range(count)]
    t0 = time.time()
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            rows = pool.map(_render_one, jobs, chunksize=16)
    else:
        rows = [_render_one(j) for j in jobs]
    images, labels, ratios, centres = zip(*rows)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, images=np.stack(images), labels=np.array(labels, np.int64),
             min_ratio=np.array(ratios, np.float32), centres=np.array(centres, np.float32),
             seeds=np.array([j[0] for j in jobs], np.int64))
    print(f"{out}: {count} phantoms (seeds {seed_base}..{seed_base + count - 1}), "
          f"{sum(labels)} CSM-like, {time.time() - t0:.0f} s")


# ----------------------------------------------------------------------------------------------
# Model: CsmModel's layout with BatchNorm, folded on export
# ----------------------------------------------------------------------------------------------

class TrainNet(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        layers = feature_layers(config["width"])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for _, i, o in layers)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, _, o in layers)
        self.head = CsmModel(config).classifier
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 0
        for convs, _ in STAGES:
            for _ in range(convs):
                x = F.relu(self.bns[k](self.convs[k](x)))
                k += 1
            x = F.max_pool2d(x, 2)
        return self.head(x.mean((2, 3)))

    @torch.no_grad()
    def folded_state_dict(self) -> dict[str, torch.Tensor]:
        """CsmModel's state dict: each BatchNorm (running statistics) folded into its conv."""
        sd = {}
        for (index, _, _), conv, bn in zip(feature_layers(self.config["width"]), self.convs,
                                          self.bns):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            sd[f"features.{index}.weight"] = conv.weight * scale[:, None, None, None]
            sd[f"features.{index}.bias"] = (conv.bias - bn.running_mean) * scale + bn.bias
        for k, v in self.head.state_dict().items():
            sd[f"classifier.{k}"] = v.clone()
        return sd


def prepare(images: torch.Tensor, config: dict) -> torch.Tensor:
    """[N, S, S] resized images -> [N, 3, S, S] network input (SPEC-csm.md: min-max per image,
    then (x - mean) / std per channel)."""
    lo = images.amin((1, 2), keepdim=True)
    hi = images.amax((1, 2), keepdim=True)
    span = hi - lo
    x = torch.where(span > 0, (images - lo) / torch.where(span > 0, span, 1.0), 0.0)
    mean = torch.tensor(config["input_mean"])[None, :, None, None]
    std = torch.tensor(config["input_std"])[None, :, None, None]
    return (x[:, None] - mean) / std


def crops(images: torch.Tensor, centres: torch.Tensor, side: int, gen: torch.Generator):
    """side x side crops around the canal centres, shifted by up to side / 4, inside the image."""
    n, size = images.shape[0], images.shape[1]
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * (side / 2)
    corner = (centres + shift - side / 2).round().long().clamp(0, size - side)
    return torch.stack([images[i, y:y + side, x:x + side]
                        for i, (x, y) in enumerate(corner.tolist())])


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shear +-0.15, zoom 0.9-1.1, width shift +-10 %, height shift +-5 % (one affine map,
    bilinear, border padding), then exposure: gamma 0.7-1.4 on [0, 1] and Gaussian noise."""
    n = images.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)
    shear, zoom = u(-0.15, 0.15), u(0.9, 1.1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0 / zoom
    theta[:, 0, 1] = shear / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = u(-0.2, 0.2)                  # normalised units: 0.2 = 10 % of the width
    theta[:, 1, 2] = u(-0.1, 0.1)
    grid = F.affine_grid(theta, (n, 1, *images.shape[1:]), align_corners=False)
    x = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="border",
                      align_corners=False)[:, 0]
    lo = x.amin((1, 2), keepdim=True)
    hi = x.amax((1, 2), keepdim=True)
    x = ((x - lo) / (hi - lo).clamp_min(1e-6)) ** u(0.7, 1.4)[:, None, None]
    return x + 0.01 * u(0.0, 2.0)[:, None, None] * torch.randn(x.shape, generator=gen)


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor, config: dict, batch: int = 64) -> np.ndarray:
    net.eval()
    out = [torch.sigmoid(net(prepare(images[i:i + batch].float(), config)))[:, 0]
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def save_weights(net: TrainNet, config: dict, path: str, info: dict) -> None:
    sd = net.folded_state_dict()
    convert.check_keys(sd, config)
    metadata = {**convert.file_metadata(config), "training": json.dumps(info, sort_keys=True)}
    st_io.save_file(convert.to_file_tensors(sd, "f32"), path, metadata)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-data", metavar="NPZ")
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--seed-base", type=int, default=phantom_csm.TRAIN_SEED_BASE)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data")
    ap.add_argument("--val")
    ap.add_argument("--out")
    ap.add_argument("--epochs", type=int, default=40, help="at most this many passes")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=38.0,
                    help="train this long (the cosine learning rate ends here)")
    ap.add_argument("--crop", type=int, default=128,
                    help="first phase: crops of this side around the canal (0: none)")
    ap.add_argument("--crop-minutes", type=float, default=20.0,
                    help="how long the crop phase lasts; whole images after it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", metavar="DIR",
                    help="start from DIR/checkpoint.pt (an earlier run's best epoch; its "
                         "history.json goes into the training metadata); fresh optimizer and lr")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    config = default_config()
    if args.make_data:
        make_data(args.make_data, args.count, args.seed_base, config["input_size"], args.workers)
        return 0
    if not (args.data and args.val and args.out):
        ap.error("--data, --val and --out are needed to train (or --make-data)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    train, val = np.load(args.data), np.load(args.val)
    images = torch.from_numpy(train["images"])
    centres = torch.from_numpy(train["centres"])
    labels = torch.from_numpy(train["labels"]).float()
    val_images, val_labels = torch.from_numpy(val["images"]), val["labels"]
    net = TrainNet(config)
    resumed = None
    if args.resume:
        net.load_state_dict(torch.load(os.path.join(args.resume, "checkpoint.pt")))
        with open(os.path.join(args.resume, "history.json")) as f:
            resumed = {"from": args.resume, "history": json.load(f)}
    net = net.to(memory_format=torch.channels_last)   # faster convs on CPU
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = len(images) // args.batch
    t0 = time.time()

    def minutes() -> float:
        return (time.time() - t0) / 60
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda _: 0.5 * (1 + math.cos(math.pi * min(1.0, minutes() / args.minutes))))
    log_file = open(os.path.join(args.out, "train.log"), "a")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    history, best = [], None
    log(f"train {len(images)} ({int(labels.sum())} CSM-like), val {len(val_labels)} "
        f"({int(val_labels.sum())}), {steps_per_epoch} steps/epoch, config {json.dumps(config)}")
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(images), generator=gen)
        loss_sum, correct = 0.0, 0
        cropped = args.crop > 0 and minutes() < args.crop_minutes
        for step in range(steps_per_epoch):
            idx = order[step * args.batch:(step + 1) * args.batch]
            batch = images[idx].float()
            if cropped:
                batch = crops(batch, centres[idx], args.crop, gen)
            x = prepare(augment(batch, gen), config).contiguous(
                memory_format=torch.channels_last)
            logit = net(x)[:, 0]
            loss = F.binary_cross_entropy_with_logits(logit, labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int(((logit > 0).float() == labels[idx]).sum())
            if minutes() > args.minutes or (cropped and minutes() > args.crop_minutes):
                break
        seen = (step + 1) * args.batch
        p = predict(net, val_images, config)
        val_loss = float(F.binary_cross_entropy(torch.from_numpy(p).clamp(1e-7, 1 - 1e-7),
                                                torch.from_numpy(val_labels).float()))
        row = {"epoch": epoch, "input": f"crops {args.crop}" if cropped else "whole",
               "steps": step + 1, "train_loss": loss_sum / seen,
               "train_accuracy": correct / seen, "val_loss": val_loss,
               "val_accuracy": float(((p >= 0.5) == val_labels).mean()),
               "val_auc": auc(val_labels, p), "lr": sched.get_last_lr()[0],
               "minutes": minutes()}
        history.append(row)
        log(json.dumps(row))
        if best is None or (row["val_auc"], -row["val_loss"]) > (best["val_auc"],
                                                                  -best["val_loss"]):
            best = row
            info = {"data": "tools/phantom_csm.py phantoms (label rule in the model card)",
                    "rule": phantom_csm.RULE,
                    "train_seeds": [int(train["seeds"][0]), int(train["seeds"][-1])],
                    "val_seeds": [int(val["seeds"][0]), int(val["seeds"][-1])],
                    "settings": {k: v for k, v in vars(args).items()
                                 if k in ("batch", "lr", "minutes", "crop", "crop_minutes",
                                          "seed", "threads")},
                    "optimizer": "Adam, cosine lr over the minutes; BatchNorm folded into the "
                                 "convs on export",
                    "augmentation": "shear 0.15, zoom 0.9-1.1, width shift 10 %, height shift "
                                    "5 %, gamma 0.7-1.4, noise",
                    "best_epoch": epoch, "history": history}
            if resumed:
                info["resumed"] = resumed
            save_weights(net, config, os.path.join(args.out, "csm_default.safetensors"), info)
            torch.save(net.state_dict(), os.path.join(args.out, "checkpoint.pt"))
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump(history, f, indent=1)
        if minutes() > args.minutes:
            log(f"time limit reached in epoch {epoch}")
            break
    log(f"best epoch {best['epoch']}: val AUC {best['val_auc']:.4f}, "
        f"accuracy {best['val_accuracy']:.4f}; {minutes():.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
