"""Phantoms for the CSM classifier: a myelopathy-like label that a lateral radiograph shows.

    python3 phantom_csm.py OUT_DIR --seeds 700000:700400 [--height 600] [--workers 2]

A stand-in, not a diagnosis: CSM is a clinical diagnosis confirmed on MRI (SPEC-csm.md). These
phantoms only carry the radiographic signs of a narrow cervical canal, drawn to scale by
`phantom.generate(..., canal=spec)`, and a label computed exactly from the drawn geometry:

    per body C3..C7:   effective ratio = (canal - deepest posterior osteophyte or OPLL) / body
    per disc C2-C3..C6-C7: disc ratio = (min(canal above, canal below) - |slip|) / body below
    narrowest = the smallest of these ratios ("min_torg_pavlov")
    label 1 ("CSM-like") iff narrowest < 0.80, or C2-C7 < -5 deg (kyphosis) and narrowest < 0.85

where canal = posterior wall midpoint to spinolaminar line and body = the body's AP width, both at
mid-height (the Torg-Pavlov ratio), slip = the upper body's displacement over the lower one.

Half the seeds are drawn to be narrow (one or two of: a developmentally narrow canal, a focal
narrow level, posterior osteophytes, OPLL segmental or continuous, degenerative listhesis, a
borderline canal with kyphosis), half normal (ratios 0.88-1.25) with benign degeneration at random
(small posterior spurs, slips up to ~1.5 mm, kyphosis without narrowing) besides what every
phantom has (disc narrowing, anterior osteophytes, plates, ...). The label is the rule's, not the
intent's, so a few of each group land on the other side. The spec comes from its own generator
(seeded by the phantom seed), so everything else is phantom.py's anatomy for that seed.

Output per phantom: phantom.py's `<stem>.png` (16-bit) and `<stem>.json` with "canal" (the
measurements) and "csm": {"label", "min_torg_pavlov", "c2c7_deg", "features", "rule"}.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom  # noqa: E402

RULE = ("CSM-like iff the narrowest canal ratio < 0.80, or the C2-C7 angle < -5 deg (kyphosis) "
        "and the narrowest ratio < 0.85; ratios: per body C3-C7 (canal - deepest posterior "
        "osteophyte/OPLL) / body AP width at mid-height (Torg-Pavlov), per disc C2-C3..C6-C7 "
        "(min of the two canals - |slip|) / lower body AP width")
THRESHOLD = 0.80
KYPHOSIS_THRESHOLD = 0.85
KYPHOSIS_DEG = -5.0

VERTEBRAE = ["C2", "C3", "C4", "C5", "C6", "C7", "T1"]
LEVELS = ["C3", "C4", "C5", "C6", "C7"]            # where the rule looks
MECHANISMS = ["developmental", "focal", "osteophytes", "opll", "listhesis", "kyphosis"]

# Seed ranges, disjoint from every other set (tools/README.md): training, validation, held-out.
TRAIN_SEED_BASE = 30_000_000
VAL_SEED_BASE = 31_000_000
HELDOUT_SEED_BASE = 700_000


def sample_spec(seed: int) -> dict:
    """The canal spec of `seed` (phantom.canal_geometry's format) and the drawn intent."""
    rng = np.random.default_rng([seed, 20261130])
    g = rng.uniform
    narrow = bool(rng.random() < 0.5)
    base = g(0.9, 1.22)
    ratio = {n: base * g(0.96, 1.05) for n in VERTEBRAE}
    ratio["C2"] = g(1.1, 1.4)                        # C2's canal is the widest
    spec = {"ratio": ratio, "osteophytes": [], "opll": [], "opll_continuous": False,
            "slip": {}, "cobb": None, "intent": "normal", "mechanisms": []}

    def levels(k):
        start = int(rng.integers(0, len(LEVELS) - k + 1))
        return LEVELS[start:start + k]

    if not narrow:
        if rng.random() < 0.3:                       # small posterior spurs
            spec["osteophytes"].append([str(rng.choice(LEVELS)), str(rng.choice(["pi", "ps"])),
                                        g(0.02, 0.06)])
        if rng.random() < 0.25:                      # a small slip
            spec["slip"][str(rng.choice(LEVELS[:-1] + ["C2"]))] = g(-0.09, 0.09)
        if rng.random() < 0.15:                      # kyphosis without narrowing
            spec["cobb"] = g(-20.0, -6.0)
        return spec

    spec["intent"] = "narrow"
    chosen = list(rng.choice(MECHANISMS, size=int(rng.integers(1, 3)), replace=False))
    spec["mechanisms"] = [str(m) for m in chosen]
    target = g(0.5, 0.77)                            # the narrowest effective ratio aimed at
    if "developmental" in chosen:
        low = g(0.55, 0.77)
        for n in VERTEBRAE[1:]:
            ratio[n] = low * g(0.96, 1.05)
    if "focal" in chosen:
        for n in levels(int(rng.integers(1, 3))):
            ratio[n] = target * g(0.97, 1.03)
    if "osteophytes" in chosen:
        for n in levels(int(rng.integers(1, 3))):
            ratio[n] = min(ratio[n], g(0.82, 1.0))
            spec["osteophytes"].append([n, str(rng.choice(["pi", "ps"])),
                                        ratio[n] - target * g(0.97, 1.03)])
    if "opll" in chosen:
        spec["opll_continuous"] = bool(rng.random() < 0.5)
        span = levels(int(rng.integers(2, 5)) if spec["opll_continuous"]
                      else int(rng.integers(1, 3)))
        for n in span:
            ratio[n] = min(ratio[n], g(0.82, 1.0))
            spec["opll"].append([n, ratio[n] - target * g(0.97, 1.03)])
    if "listhesis" in chosen:
        upper = str(rng.choice(LEVELS[:-1] + ["C2"]))
        lower = VERTEBRAE[VERTEBRAE.index(upper) + 1]
        ratio[lower] = min(ratio[lower], g(0.82, 0.95))
        sign = 1.0 if rng.random() < 0.7 else -1.0   # degenerative anterolisthesis mostly
        spec["slip"][upper] = sign * max(min(ratio[upper], ratio[lower]) - target, 0.12)
    if "kyphosis" in chosen:
        spec["cobb"] = g(-22.0, -8.0)
        for n in LEVELS:
            ratio[n] = min(ratio[n], g(0.78, 0.84))
    return spec


def csm_label(canal: dict) -> dict:
    """The label rule (RULE) on phantom.py's "canal" measurements."""
    lv = canal["levels"]
    ratios = {n: lv[n]["effective_ratio"] for n in LEVELS}
    for upper, lower in zip(VERTEBRAE[:-2], VERTEBRAE[1:-1]):
        d = canal["discs"][f"{upper}-{lower}"]
        narrow = min(lv[upper]["canal_mm"], lv[lower]["canal_mm"]) - abs(d["slip_mm"])
        ratios[f"{upper}-{lower}"] = narrow / lv[lower]["body_ap_mm"]
    where = min(ratios, key=ratios.get)
    narrowest = ratios[where]
    kyphotic = canal["c2c7_deg"] < KYPHOSIS_DEG
    label = narrowest < THRESHOLD or (kyphotic and narrowest < KYPHOSIS_THRESHOLD)
    features = []
    if any(lv[n]["torg_pavlov"] < THRESHOLD for n in LEVELS):
        features.append("narrow_canal")
    if any(lv[n]["intrusion_mm"] > 0 for n in LEVELS):
        features.append("posterior_intrusion")
    if any(abs(canal["discs"][f"{u}-{l}"]["slip_mm"]) >= 2.0
           for u, l in zip(VERTEBRAE[:-2], VERTEBRAE[1:-1])):
        features.append("listhesis")
    if kyphotic:
        features.append("kyphosis")
    return {"label": int(label), "min_torg_pavlov": narrowest, "narrowest_at": where,
            "c2c7_deg": canal["c2c7_deg"], "features": features, "rule": RULE}


def generate(seed: int, height: int = 600) -> tuple[np.ndarray, dict]:
    """One CSM phantom: phantom.generate with the canal spec of `seed`, plus the label."""
    spec = sample_spec(seed)
    img, meta = phantom.generate(seed, height, canal=spec)
    meta["csm"] = csm_label(meta["canal"])
    meta["csm"].update({"intent": spec["intent"], "mechanisms": spec["mechanisms"]})
    meta["generator"] += "+csm-canal-v1"
    return img, meta


def _write_one(job):
    out_dir, seed, height = job
    img, meta = generate(seed, height)
    phantom.write_phantom(out_dir, f"csm_{seed}", img, meta)
    return meta["csm"]["label"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seeds", default=f"{HELDOUT_SEED_BASE}:{HELDOUT_SEED_BASE + 400}",
                    help="'A:B' (B excluded) or a comma list; default: the 400 held-out seeds")
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    jobs = [(args.out_dir, s, args.height) for s in phantom.parse_seeds(args.seeds)]
    if args.workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(args.workers) as pool:
            labels = pool.map(_write_one, jobs, chunksize=8)
    else:
        labels = [_write_one(j) for j in jobs]
    print(f"wrote {len(jobs)} phantoms to {args.out_dir}: {sum(labels)} CSM-like, "
          f"{len(labels) - sum(labels)} normal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
