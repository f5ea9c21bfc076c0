"""Synthetic inputs and random-but-meaningful weights for parity fixtures.

Purely random weights give flat heatmaps whose DSNT expectations all sit at the image centre, which
would let a broken kernel pass. The recipe here keeps the weights random but makes the outputs
informative:

1. every conv gets N(0, gain / sqrt(fan_in)) weights and N(0, 0.1) biases; every BatchNorm gets
   gamma U(0.5, 1.5), beta N(0, 0.2), running_mean N(0, 0.2), running_var U(0.5, 2);
2. each ``score`` conv (stack by stack, global net first, then each refiner on its own crop) is
   replaced by the ridge-regression fit, on this image's features, of Gaussian bumps placed on a
   spine-like layout of target landmarks, then scaled until the heatmaps are peaked.

The result is peaked heatmaps, 29 distinct coarse points and 6 boxes spread down the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ops
from .models.cervical import CervicalModel
from .ops.dsnt import normalized_linspace, softmax2d


def _uniform(shape, lo, hi, gen):
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def spine_targets(gen: torch.Generator, jitter: float = 0.02) -> torch.Tensor:
    """[29, 2] normalized target positions: 7 vertebrae (C2..T1) down a lordotic curve, facing +x,
    then PNS, OCC, DENS above. Corner order per vertebra: as, ps, pi, ai."""
    pts = []
    for v in range(7):                                  # C2, C3, ..., C7, T1
        cy = -0.54 + 0.18 * v
        cx = 0.10 * math.sin(0.55 * v) - 0.05
        w, h = 0.24 + 0.01 * v, 0.085 + 0.005 * v
        corners = [(cx + w / 2, cy - h / 2), (cx - w / 2, cy - h / 2),
                   (cx - w / 2, cy + h / 2), (cx + w / 2, cy + h / 2)]
        pts += corners if v < 6 else corners[:2]
    pts += [(0.35, -0.80), (-0.40, -0.74), (0.02, -0.70)]  # PNS, OCC, DENS
    t = torch.tensor(pts, dtype=torch.float32)
    return t + torch.randn(t.shape, generator=gen) * jitter


def refiner_targets(gen: torch.Generator, jitter: float = 0.06) -> torch.Tensor:
    """[4, 2] box-normalized targets for one disc: upper pi, ai, lower as, ps."""
    t = torch.tensor([(-0.55, -0.25), (0.55, -0.25), (0.55, 0.25), (-0.55, 0.25)])
    return t + torch.randn(t.shape, generator=gen) * jitter


def synthetic_radiograph(height: int, width: int, gen: torch.Generator,
                         targets: torch.Tensor | None = None) -> torch.Tensor:
    """[height, width] float32 in [0, 4095]: a smooth random field, bright vertebra-like quads
    around `targets` (normalized [29, 2], if given) and a few random bright/dark blobs."""
    low = torch.randn(1, 1, 6, 5, generator=gen)
    img = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    scale = float(min(height, width))
    if targets is not None:
        px = ((targets[:, 0] + 1) * width - 1) / 2
        py = ((targets[:, 1] + 1) * height - 1) / 2
        for v in range(7):
            idx = list(range(4 * v, 4 * v + 4)) if v < 6 else [24, 25, 24, 25]
            x0, x1 = px[idx].min().item(), px[idx].max().item()
            y0, y1 = py[idx].min().item(), py[idx].max().item()
            if v == 6:
                y1 = y0 + (y1 - y0) + 0.06 * height
            soft = 0.01 * scale
            body = (torch.sigmoid((xx - x0) / soft) * torch.sigmoid((x1 - xx) / soft)
                    * torch.sigmoid((yy - y0) / soft) * torch.sigmoid((y1 - yy) / soft))
            img = img + 2.5 * body
    for _ in range(7):
        cy = torch.rand(1, generator=gen).item() * height
        cx = torch.rand(1, generator=gen).item() * width
        r = (0.02 + 0.06 * torch.rand(1, generator=gen).item()) * scale
        a = (torch.rand(1, generator=gen).item() * 2 - 1) * 3
        img = img + a * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img = (img - img.min()) / (img.max() - img.min()) * 4095.0
    return img.contiguous()


@torch.no_grad()
def randomize_(model: nn.Module, gen: torch.Generator, conv_gain: float = 1.0) -> None:
    """Step 1 of the recipe, in named_modules order (deterministic for a given generator)."""
    for _, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen)
                             * (conv_gain / math.sqrt(fan_in)))
            if mod.bias is not None:     # torchvision's resnet and Inception convs have none
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)
        elif isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(_uniform(c, 0.5, 1.5, gen))
            mod.bias.copy_(torch.randn(c, generator=gen) * 0.2)
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            mod.running_var.copy_(_uniform(c, 0.5, 2.0, gen))


def _score_inputs(net: nn.Module, x: torch.Tensor, stack: int) -> torch.Tensor:
    """The features [ch, h, w] entering net.score[stack] for input x [1, C, H, W]."""
    captured = {}
    hook = net.score[stack].register_forward_hook(
        lambda mod, inp, out: captured.__setitem__("y", inp[0].detach()))
    try:
        net(x)
    finally:
        hook.remove()
    return captured["y"][0]


@torch.no_grad()
def fit_score_(conv: nn.Conv2d, feats: torch.Tensor, targets: torch.Tensor,
               amplitude: float, sigma: float, ridge: float, min_peak: float) -> None:
    """Set the 1x1 conv so that its logits on `feats` approximate amplitude * Gaussian(sigma)
    bumps at `targets` ([C, 2] normalized); then scale each output channel up (at most 4x) until
    its softmax peak reaches `min_peak`."""
    ch, h, w = feats.shape
    xs = normalized_linspace(w).double()
    ys = normalized_linspace(h).double()
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    design = torch.cat([feats.reshape(ch, -1).T.double(),
                        torch.ones(h * w, 1, dtype=torch.float64)], dim=1)
    t = targets.double()
    d2 = (gx.reshape(-1, 1) - t[:, 0]) ** 2 + (gy.reshape(-1, 1) - t[:, 1]) ** 2
    goal = amplitude * torch.exp(-d2 / (2 * sigma * sigma))
    goal = goal - goal.mean(dim=0, keepdim=True)
    gram = design.T @ design
    reg = ridge * gram.diagonal().mean() * torch.eye(ch + 1, dtype=torch.float64)
    sol = torch.linalg.solve(gram + reg, design.T @ goal)        # [ch + 1, C]
    weight, bias = sol[:ch].T, sol[ch]
    logits = (design[:, :ch] @ weight.T + bias).T                  # [C, h*w]
    gains = torch.ones(len(targets), dtype=torch.float64)
    for c in range(len(targets)):
        for _ in range(8):
            peak = softmax2d((logits[c] * gains[c]).reshape(1, h, w)).max()
            if peak >= min_peak or gains[c] >= 4.0:
                break
            gains[c] *= 1.25
    conv.weight.copy_((weight * gains[:, None]).float().reshape(conv.weight.shape))
    conv.bias.copy_((bias * gains).float())


@torch.no_grad()
def peaked_init_(model: CervicalModel, image: torch.Tensor, gen: torch.Generator,
                 spine: torch.Tensor, conv_gain: float = 0.9) -> None:
    """The whole recipe on `model` for `image` (original pixels) and coarse targets `spine`."""
    randomize_(model, gen, conv_gain)
    _, standardized = model.preprocess(image)
    x = standardized[None, None]
    net = model.global_net
    for stack in range(net.num_stacks):
        feats = _score_inputs(net, x, stack)
        fit_score_(net.score[stack], feats, spine, amplitude=30.0, sigma=0.1, ridge=1e-2,
                   min_peak=0.1)
    _, coarse, _ = model.global_landmarks(standardized)
    boxes = model.boxes(coarse)
    crops = model.crops(standardized, boxes)
    for k, refiner in enumerate(model.refiners):
        feats = _score_inputs(refiner, crops[k:k + 1], 0)
        fit_score_(refiner.score[0], feats, refiner_targets(gen), amplitude=30.0, sigma=0.25,
                   ridge=1e-2, min_peak=0.1)


def he_init_centred_(model: nn.Module, image: torch.Tensor, gen: torch.Generator,
                     logit: float = 0.4) -> None:
    """He-normal weights and small uniform biases for every conv and linear layer of a
    classifier, then the last layer's bias shifted so that `image` gets `logit`: a probability
    away from 0 and 1, where the engine-vs-torch comparison of p is sensitive."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
        out = model(image)
        last = model.classifier[-1]
        last.bias -= out["logit"][0, 0] - logit


def statistics(out: dict, config: dict) -> dict:
    """Numbers that say whether a fixture is meaningful (printed and asserted by the scripts)."""
    s = config["input_size"]
    gpeak = softmax2d(out["global_heatmaps"]).flatten(1).amax(dim=1)           # [29]
    rpeak = softmax2d(out["refined_heatmaps"]).flatten(2).amax(dim=2)          # [6, 4]
    pts = ops.norm_to_input(out["coarse_norm"], s)
    dist = torch.cdist(pts, pts) + torch.eye(29) * 1e9
    boxes = out["boxes"]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = boxes[:, 2] - boxes[:, 0]
    cdist = torch.cdist(centres, centres) + torch.eye(6) * 1e9
    c = config["crop_size"]
    return {
        "global_peak_min": gpeak.min().item(),
        "global_peak_median": gpeak.median().item(),
        "global_peak_frac_over_0.05": (gpeak > 0.05).float().mean().item(),
        "refined_peak_min": rpeak.min().item(),
        "refined_peak_median": rpeak.median().item(),
        "refined_peak_frac_over_0.05": (rpeak > 0.05).float().mean().item(),
        "coarse_min_pairwise_px": dist.min().item(),
        "coarse_spread_px": pts.std(dim=0).tolist(),
        "box_centres_px": centres.tolist(),
        "box_centre_spread_px": centres.std(dim=0).tolist(),
        "box_centre_min_pairwise_px": cdist.min().item(),
        "box_sides_px": sides.tolist(),
        "box_side_min_dist_to_crop_multiple": (sides - torch.round(sides / c) * c).abs().min().item(),
    }


def rounded(v, digits: int = 3):
    """Floats (also nested in lists) rounded for printing."""
    if isinstance(v, float):
        return round(v, digits)
    if isinstance(v, (list, tuple)):
        return [rounded(x, digits) for x in v]
    return v


@torch.no_grad()
def f16_activation_sensitivity(model: CervicalModel, image: torch.Tensor) -> float:
    """Max |landmarks_input| change (input px) when every conv output is rounded to f16: a hint at
    the tolerance an engine storing activations in f16 needs."""
    ref = model(image)["landmarks_input"]
    hooks = [m.register_forward_hook(lambda mod, inp, out: out.half().float())
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        got = model(image)["landmarks_input"]
    finally:
        for h in hooks:
            h.remove()
    return (got - ref).abs().max().item()


def check_meaningful(out: dict, config: dict, label: str) -> dict:
    """Print the statistics and assert that the outputs make a meaningful parity test."""
    stats = statistics(out, config)
    print(f"  [{label}] statistics:")
    for k, v in stats.items():
        print(f"    {k}: {rounded(v)}")
    s = config["input_size"]
    assert stats["global_peak_frac_over_0.05"] >= 0.9, "global heatmaps are flat"
    assert stats["refined_peak_frac_over_0.05"] >= 0.9, "refiner heatmaps are flat"
    assert stats["global_peak_min"] > 0.02 and stats["refined_peak_min"] > 0.02, "flat heatmap"
    assert stats["coarse_min_pairwise_px"] > 0.2 * s / 128, "two coarse points coincide"
    assert min(stats["coarse_spread_px"]) > 0.05 * s, "coarse points are not spread"
    assert stats["box_centre_min_pairwise_px"] > 2.0 * s / 128, "two boxes coincide"
    assert max(stats["box_centre_spread_px"]) > 0.1 * s, "boxes are not spread"
    assert stats["box_side_min_dist_to_crop_multiple"] > 1e-3, "box side near a crop multiple"
    return stats
