"""Synthetic thoracolumbar lateral radiographs with exact vertebral corners (SPEC-lumbar.md, papers
002/004: the 2-step lumbar model, levels C2..S1, corners as, ps, pi, ai).

    python3 phantom_lumbar.py OUT_DIR --seeds 0:4 [--height 1200] [--dicom] [--overlay]
    python3 phantom_lumbar.py --stats 500 --seeds 60000000:60000500

Every phantom is a deterministic function of its seed (numpy PCG64). The anatomy is built in
millimetres in a canonical frame (patient facing +x, superior -y, image y down), S1 up to T6, then
mapped to pixels by a similarity transform (spacing, small rotation, translation, mirror for a
patient facing left). Every corner is a vertex of a drawn body quadrilateral, so it is exact by
construction; corners are reported in original pixels with the centre of the top-left pixel at
(0, 0), named `L1_as` etc. (sagitta_ref.anatomy.lumbar).

Field of view: a portrait lumbar/thoracolumbar lateral. The top edge of the exposed field falls
inside the level above a drawn "top level" (T8 10 %, T9 25 %, T10 30 %, T11 25 %, T12 7 %, L1 3 %),
so that level is cut; the bottom edge lies below S1's inferior corners, usually below the femoral
heads. Some films have black (shuttered) bands on any side; the exposed field is the rectangle
inside them.

Present levels: a level is present iff all four of its corners lie inside the exposed field (a
vertebra cut by the field edge or hidden by a black band is not present and none of its corners
is reported; it is listed under `cut_levels`). The paper's annotator marked "each vertebra visible
in the image"; a corner off the field cannot be marked, so a cut vertebra has no full label.
L1..S1 are always present by construction.

S1: `S1_as`, `S1_ps` are the ends of the sacral endplate; `S1_pi`, `S1_ai` the posterior and
anterior ends of the S1-S2 junction (the fused remnant disc, drawn as a faint line; a gap in a
lumbarised S1), so S1 is a quadrilateral like the others (SPEC: computed, entering nothing).

Alignment: PI ~ N(52, 11) clipped 30-80; L1-S1 lordosis LL = PI - mismatch (N(3, 12)), redrawn
until it lies in 10-80 deg; the L5-S1 disc carries 18-35 % of LL and L4-S1 55-80 %; T6-T12
kyphosis ~ N(20, 8), T12-L1 disc ~ N(0, 4); per-element angles by Dirichlet splits capped so no
disc or body gets a negative height. The pelvis then rotates the spine to a standing balance: SS
(PI - 40 .. PI + 5, within 5-65) puts the T12 centre N(20, 14) mm in front of S1_ps, so PT = PI - SS
and a lordosis short of the PI comes with retroversion. Parameters are computed from the exact
pixel corners with sagitta_ref.measure.lumbar (so SS includes the film's small rotation).

Drawn: T6..L5 bodies with cortical rims, pedicles, laminae, spinous and transverse processes,
facets; ribs on the thoracic levels in view; sacrum with the S1 segment and coccyx, iliac wings
with the crest near L4-L5, acetabula, both femoral heads (parallax), necks and shafts, ischium,
pubis; trunk and buttock soft tissue, lungs and diaphragm at the top, bowel gas.
Variants (flags in `drawn`): transitional anatomy (18 %: `sacralised_l5` = a rudimentary L5-S1
disc, L5 deep between the iliac crests with a large transverse process over the ala;
`lumbarised_s1` = a disc-like gap at S1-S2, a squarer S1, high crests; `rib13` = a short rib on
L1; `no_rib12` = no T12 rib) -- the labels stay those of the counted chain from S1 upward, as an
annotator counting up from the sacrum gives them; degenerative discs (30 %: 1-3 lumbar or T12-L1
discs narrowed to 20-55 %, anterior osteophytes outside the body quad, endplate sclerosis,
sometimes vacuum phenomenon); degenerative slip (15 %); implants (15 %: pedicle screws and rods
over 2-5 levels, an interbody cage with markers in 60 % of them); exposure, gamma, heel effect,
quantum and electronic noise, blur, facing left or right.

Output per phantom: `<stem>.png` (16-bit grey, MONOCHROME2) and `<stem>.json` {"image", "width",
"height", "pixel_spacing_mm", "seed", "generator", "facing", "bits_stored", "present_levels",
"cut_levels", "field", "landmarks" {name: [x, y]} (present levels' 4 corners), "parameters" (signed
and unsigned), "parameter_units", "drawn"}; optionally `<stem>.dcm` (phantom.write_dicom).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom  # noqa: E402
from phantom import (_blur, _bone, _Canvas, _capsule_sd, _cylinder, _ellipse_sd,  # noqa: E402
                     _poly_sd, _solid, _upsample)
from phantom_wholespine import (BODY_D, BODY_H, DISC_H, _arc, _chain_sd, _n,  # noqa: E402
                                _rotate, _split, _u)
from sagitta_ref.anatomy.lumbar import CORNERS, LEVELS  # noqa: E402  (pure data, no torch)
from sagitta_ref.measure.lumbar import PARAMETERS, lumbar  # noqa: E402

GENERATOR_VERSION = "sagitta-phantom-lumbar-v1"

# Seed ranges, disjoint from each other and from every other model's sets (tools/README.md).
TRAIN_SEED_BASE = 60_000_000
VAL_SEED_BASE = 61_000_000
HELDOUT_SEED_BASE = 850_000
SAMPLE_SEED_BASE = 970_000

# Drawn vertebrae, cranial to caudal; T6/T7 only exist so that the level above a T8 top is drawn.
CHAIN = [f"T{i}" for i in range(6, 13)] + [f"L{i}" for i in range(1, 6)]
TOP_LEVELS = ["T8", "T9", "T10", "T11", "T12", "L1"]
TOP_PROBS = [0.10, 0.25, 0.30, 0.25, 0.07, 0.03]
LUMBAR_DISCS = ["T12", "L1", "L2", "L3", "L4", "L5"]   # disc below each


def _above(level: str) -> str:
    return LEVELS[LEVELS.index(level) - 1]


def _grow(verts, below, n, kdisc, kbody, dh, h, d, slip):
    """Vertebra n on `below`'s superior endplate: disc then body (as phantom_wholespine)."""
    b = verts[below]
    th = b["theta"]
    mid = 0.5 * (b["ps"] + b["as"])
    th_i = th + kdisc
    mid_i = mid + dh * _n(th + kdisc / 2) + slip * _u(th_i)
    pi_ = mid_i - d / 2 * _u(th_i)
    ai_ = mid_i + d / 2 * _u(th_i)
    th_s = th_i + kbody
    mid_s = mid_i + h * _n(th_i + kbody / 2)
    verts[n] = {"pi": pi_, "ai": ai_, "ps": mid_s - d / 2 * _u(th_s),
                "as": mid_s + d / 2 * _u(th_s), "theta": th_s, "theta_i": th_i, "d": d}
    verts[n]["c"] = (verts[n]["pi"] + verts[n]["ai"] + verts[n]["ps"] + verts[n]["as"]) / 4


def build_anatomy(rng: np.random.Generator) -> dict:
    """Corners and shapes in canonical mm (facing +x, y down), S1 endplate midpoint at (0, 0)."""
    g = rng.uniform
    size = g(0.9, 1.1)
    pi = float(np.clip(rng.normal(52.0, 11.0), 30.0, 80.0))
    for _ in range(20):
        mismatch = float(rng.normal(3.0, 12.0))
        ll = pi - mismatch
        if 10.0 <= ll <= 80.0:
            break
    ll = float(np.clip(ll, 10.0, 80.0))
    # standing balance: the thoracolumbar junction above or a little in front of the back of S1
    # (retroversion compensates a lordosis too small for the PI); SS follows from it below
    t12_offset = float(rng.normal(20.0, 14.0))
    l4sl = ll * g(0.55, 0.8)
    tk = float(np.clip(rng.normal(20.0, 8.0), -5.0, 45.0))
    tl = rng.normal(0.0, 4.0)

    trans = None
    if rng.random() < 0.18:
        trans = str(rng.choice(["sacralised_l5", "lumbarised_s1", "rib13", "no_rib12"]))
    degen = []
    if rng.random() < 0.30:
        k = int(rng.integers(1, 4))
        degen = [str(x) for x in rng.choice(LUMBAR_DISCS, size=k, replace=False,
                                            p=[0.05, 0.1, 0.15, 0.2, 0.27, 0.23])]
    implants = {"levels": [], "cage": None}
    if rng.random() < 0.15:
        n_lv = int(rng.integers(2, 6))
        chain = ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
        start = int(rng.integers(max(0, len(chain) - n_lv - 4), len(chain) - n_lv + 1))
        implants["levels"] = chain[start:start + n_lv]
        if rng.random() < 0.6:
            # a cage in one instrumented disc (named by the vertebra above it)
            implants["cage"] = str(rng.choice(implants["levels"][:-1]))

    h = {n: BODY_H[n] * size * g(0.93, 1.07) for n in CHAIN}
    d = {n: BODY_D[n] * size * g(0.93, 1.07) for n in CHAIN}
    dh = {n: DISC_H[n] * size * g(0.6, 1.1) for n in CHAIN}
    for n in degen:
        if n != implants["cage"]:
            dh[n] *= g(0.2, 0.55)
    if trans == "sacralised_l5":
        dh["L5"] *= g(0.15, 0.4)
    dh = {n: max(v, 2.0) for n, v in dh.items()}
    s1w = g(40.0, 50.0) * size

    def cap(kind, n):
        hh = dh[n] if kind == "disc" else h[n]
        return math.degrees(math.atan(max(hh - 1.5, 0.5) / (d[n] / 2)))

    k = {}
    # the L5-S1 disc is the most lordotic segment (about a quarter of L1-S1)
    k[("disc", "L5")] = -min(ll * g(0.18, 0.35), cap("disc", "L5"))
    low = [("body", "L5"), ("disc", "L4"), ("body", "L4")]
    high = [("disc", "L3"), ("body", "L3"), ("disc", "L2"), ("body", "L2"), ("disc", "L1"),
            ("body", "L1")]
    for group, total in ((low, -l4sl - k[("disc", "L5")]), (high, -(ll - l4sl))):
        caps = [cap(*e) * (1.0 if e[0] == "disc" else 0.35) for e in group]
        for e, v in zip(group, _split(rng, total, caps)):
            k[e] = v
    k[("disc", "T12")] = tl
    thor = [e for i in range(11, 5, -1) for e in (("body", f"T{i + 1}"), ("disc", f"T{i}"))]
    thor.append(("body", "T6"))
    for e, v in zip(thor, _split(rng, tk, [cap(*e) for e in thor])):
        k[e] = v
    slip = {n: rng.normal(0.0, 0.5) * size for n in CHAIN}
    slipped = None
    if rng.random() < 0.15:
        slipped = str(rng.choice(["L3", "L4", "L5"]))
        slip[slipped] += g(-4.0, 9.0) * size

    verts = {"S1": {"ps": np.array([-s1w / 2, 0.0]), "as": np.array([s1w / 2, 0.0]),
                    "theta": 0.0, "d": s1w}}
    below = "S1"
    for n in reversed(CHAIN):
        _grow(verts, below, n, k[("disc", n)], k[("body", n)], dh[n], h[n], d[n], slip[n])
        below = n
    # S1 as a body: its inferior corners at the S1-S2 junction, wedged (the sacrum is kyphotic)
    lumb_s1 = trans == "lumbarised_s1"
    ha_ = g(24.0, 30.0) * size
    hp_ = ha_ * (g(0.9, 1.0) if lumb_s1 else g(0.72, 0.9))
    down = np.array([0.0, 1.0])
    verts["S1"]["ai"] = verts["S1"]["as"] + down * ha_ + np.array([-g(1.0, 4.0), 0.0])
    verts["S1"]["pi"] = verts["S1"]["ps"] + down * hp_ + np.array([g(0.0, 3.0), 0.0])
    verts["S1"]["theta_i"] = math.degrees(math.atan2(
        verts["S1"]["ai"][1] - verts["S1"]["pi"][1], verts["S1"]["ai"][0] - verts["S1"]["pi"][0]))
    verts["S1"]["c"] = sum(verts["S1"][c] for c in CORNERS) / 4
    def offset_at(ss_):
        return _rotate(verts["T12"]["c"], ss_)[0] - _rotate(verts["S1"]["ps"], ss_)[0]

    lo_ss, hi_ss = max(pi - 40.0, 5.0), min(pi + 5.0, 65.0)
    if (offset_at(lo_ss) - t12_offset) * (offset_at(hi_ss) - t12_offset) > 0:
        ss = lo_ss if abs(offset_at(lo_ss) - t12_offset) < abs(offset_at(hi_ss) - t12_offset) \
            else hi_ss
    else:
        a_, b_ = lo_ss, hi_ss
        for _ in range(40):
            m_ = 0.5 * (a_ + b_)
            if (offset_at(a_) - t12_offset) * (offset_at(m_) - t12_offset) <= 0:
                b_ = m_
            else:
                a_ = m_
        ss = 0.5 * (a_ + b_)
    pelvic_r = g(95.0, 125.0) * size
    ha_local = pelvic_r * np.array([math.sin(math.radians(pi)), math.cos(math.radians(pi))])

    out = {}
    for n, v in verts.items():
        out[n] = {key: (_rotate(val, ss) if isinstance(val, np.ndarray) else val)
                  for key, val in v.items()}
        for key in ("theta", "theta_i"):
            if key in v:
                out[n][key] = v[key] + ss
    ha = _rotate(ha_local, ss)
    sep = rng.normal(0.0, 1.0) * np.array([g(3.0, 14.0), g(1.0, 8.0)])
    sep[0] = abs(sep[0]) + 1.0
    drawn = {"PI": pi, "LL": ll, "PT": pi - ss, "SS": ss, "TK_T6_T12": tk,
             "T12_offset_mm": t12_offset,
             "transitional": trans, "degenerative_discs": sorted(degen, key=CHAIN.index),
             "slip": slipped, "implant_levels": implants["levels"], "cage": implants["cage"]}
    return {"verts": out, "ha": ha, "fh": (ha - sep / 2, ha + sep / 2),
            "fh_r": g(22.0, 26.0) * size, "size": size, "ss": ss, "pi": pi, "trans": trans,
            "degen": degen, "implants": implants, "s1_gap": g(2.0, 5.0) * size if lumb_s1 else 0.0,
            "drawn": drawn}


def corners_mm(A: dict) -> dict:
    """{level: [4, 2] array in CORNERS order} for every drawn level (T6..S1)."""
    V = A["verts"]
    return {n: np.array([V[n][c] for c in CORNERS]) for n in CHAIN + ["S1"]}


def layout(rng: np.random.Generator, A: dict, height: int, width: int | None,
           facing: str | None) -> dict:
    """The film: facing, rotation, exposed field and black bands, spacing; corners in pixels and
    the present levels. All draws here are independent of `height` and `width`."""
    g = rng.uniform
    if facing is None:
        facing = "left" if rng.random() < 0.5 else "right"
    mir = -1.0 if facing == "left" else 1.0
    theta = math.radians(rng.normal(0.0, 2.5))
    c, s = math.cos(theta), math.sin(theta)
    R = np.array([[c, -s], [s, c]]) @ np.diag([mir, 1.0])
    C = {n: q @ R.T for n, q in corners_mm(A).items()}       # rotated mm
    top = str(rng.choice(TOP_LEVELS, p=TOP_PROBS))
    up = _above(top)
    ytop = C[top][:2, 1].min()
    yup = C[up][:2, 1].min()
    y0 = g(yup + 2.0, ytop - 1.5)
    fh_bottom = max(f @ R.T @ np.array([0.0, 1.0]) for f in A["fh"]) + A["fh_r"]
    ys1 = C["S1"][:, 1].max()
    if rng.random() < 0.75:
        y1 = max(fh_bottom + g(5.0, 50.0), ys1 + 20.0)
    else:
        y1 = ys1 + g(15.0, 45.0)
    fov_h = y1 - y0
    inview = LEVELS[LEVELS.index(top):]
    pts = np.concatenate([C[n] for n in inview])
    span = pts[:, 0].max() - pts[:, 0].min()
    fov_w = max(fov_h * g(0.55, 0.85), span + 40.0)
    slack = fov_w - span - 2 * 15.0
    # most of the spare width in front of the spine (abdomen), some behind it (back, air)
    post = g(0.15, 0.5)
    x0 = pts[:, 0].min() - 15.0 - (post if facing == "right" else 1.0 - post) * slack
    x1 = x0 + fov_w
    band = [0.0, 0.0, 0.0, 0.0]                              # left, right, top, bottom, mm
    if rng.random() < 0.35:
        for i in range(4):
            if rng.random() < 0.45:
                band[i] = g(0.02, 0.2) * (fov_w if i < 2 else fov_h)
    img_h_mm = fov_h + band[2] + band[3]
    spacing = img_h_mm / height
    natural_w = int(round((fov_w + band[0] + band[1]) / spacing))
    if width is None:
        width = natural_w
    # a given width keeps the field centred on its own centre, cropped or padded evenly
    ox = x0 - band[0] - 0.5 * (width - natural_w) * spacing
    oy = y0 - band[2]
    # pixel centre (0, 0) at the image's top-left mm corner + spacing / 2
    M = R / spacing
    t = -np.array([ox, oy]) / spacing - 0.5
    field = [max((x0 - ox) / spacing - 0.5, -0.5), max((y0 - oy) / spacing - 0.5, -0.5),
             min((x1 - ox) / spacing - 0.5, width - 0.5),
             min((y1 - oy) / spacing - 0.5, height - 0.5)]
    px = {n: q @ M.T + t for n, q in corners_mm(A).items()}
    present, cut = [], []
    for n in LEVELS:
        if n not in px:
            continue
        q = px[n]
        inside = ((q[:, 0] >= field[0]) & (q[:, 0] <= field[2]) &
                  (q[:, 1] >= field[1]) & (q[:, 1] <= field[3]))
        if inside.all():
            present.append(n)
        elif inside.any() or _overlaps(q, field):
            cut.append(n)
    return {"facing": facing, "theta_deg": math.degrees(theta), "M": M, "t": t,
            "spacing": spacing, "width": int(width), "height": int(height), "field": field,
            "top_level": top, "corners_px": px, "present": present, "cut": cut}


def _overlaps(q, field):
    return (q[:, 0].max() >= field[0] and q[:, 0].min() <= field[2] and
            q[:, 1].max() >= field[1] and q[:, 1].min() <= field[3])


def measure(L: dict) -> dict:
    levels = {n: [tuple(p) for p in L["corners_px"][n]] for n in L["present"]}
    return lumbar(levels, (L["spacing"], L["spacing"]))


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

def _render(cv: _Canvas, lo: _Canvas, A: dict, rng: np.random.Generator):
    g = rng.uniform
    px = cv.px_mm
    V, size = A["verts"], A["size"]
    bone_gain = g(0.75, 1.25)
    inner, rim = 0.45 * bone_gain, 0.6 * bone_gain
    soft = g(0.8, 1.2)
    s1 = V["S1"]
    s1m = 0.5 * (s1["ps"] + s1["as"])
    ss = A["ss"]
    u_s1, n_s1 = _u(ss), _n(ss)
    ha = A["ha"]
    trans = A["trans"]

    # ---- low-frequency layers: trunk, buttocks and thighs, lungs, bowel gas ----
    sl_all = lo._grid(((-1e4, -1e4), (1e4, 1e4)), 0.0)
    if sl_all is not None:
        _, X, Y = sl_all
        belly = g(90.0, 200.0) * size
        back = g(85.0, 130.0) * size
        chest = g(110.0, 160.0) * size
        sd = None
        prev = None
        for n, front in (("T6", chest), ("T10", chest), ("L1", 0.5 * (chest + belly)),
                         ("L4", belly)):
            cen = V[n]["c"] + np.array([0.5 * (front - back), 0.0])
            if prev is not None:
                dd = _capsule_sd(X, Y, prev[0], cen, 0.5 * (prev[1] + 0.5 * (front + back)))
                sd = dd if sd is None else np.maximum(sd, dd)
            prev = (cen, 0.5 * (front + back))
        # pelvis and buttocks: the trunk widening down past the hips
        hip_c = ha + np.array([0.5 * (belly - back) - 10.0, 60.0])
        sd = np.maximum(sd, _capsule_sd(X, Y, prev[0], hip_c,
                                        0.5 * (belly + back) + g(10.0, 40.0)))
        lo.att += _cylinder(soft * 2.2, 150.0)(sd).astype(np.float32)
        for fh in A["fh"]:
            dd = _capsule_sd(X, Y, fh, fh + np.array([g(-20, 30), 400.0]), g(70, 95) * size)
            lo.att += _cylinder(soft * 1.0, 90.0)(dd).astype(np.float32)
        # lungs down to a diaphragm dome at T10-T12 (anterior), deeper posteriorly
        dia = V[str(rng.choice(["T10", "T11", "T12"]))]["c"]
        lr = g(45.0, 70.0) * size
        for off, depth in ((np.array([lr * 0.9, 0.0]), 0.0), (np.array([-lr * 0.8, 0.0]),
                                                              g(20.0, 50.0))):
            a = V["T6"]["c"] + off + np.array([0.0, -200.0])
            b = dia + off + np.array([0.0, depth - lr])
            dd = _capsule_sd(X, Y, a, b, lr)
            lo.att -= _cylinder(soft * g(0.6, 1.2), lr)(dd).astype(np.float32)
        # bowel gas: dark blobs in front of and over the lumbar spine
        for _ in range(int(rng.integers(2, 9))):
            n = str(rng.choice(["L1", "L2", "L3", "L4", "L5"]))
            bc = V[n]["c"] + np.array([g(-20.0, 120.0), g(-30.0, 30.0)]) * size
            dd = _ellipse_sd(X, Y, bc, g(8.0, 35.0), g(6.0, 20.0), g(-1.0, 1.0))
            lo.att -= _cylinder(soft * g(0.2, 0.6), 15.0)(dd).astype(np.float32)

    # ---- ribs: curved bands from the posterior elements, forward and down ----
    rib_levels = [f"T{i}" for i in range(6, 13)]
    if trans == "no_rib12":
        rib_levels.remove("T12")
    if trans == "rib13":
        rib_levels.append("L1")
    for n in rib_levels:
        v = V[n]
        if rng.random() < 0.1:
            continue
        short = n in ("T11", "T12", "L1")
        start = v["ps"] - v["d"] * 0.3 * _u(v["theta"])
        rr = g(60.0, 110.0) * size * (0.6 if n == "L1" else 1.0)
        c = start + np.array([rr * 0.6, -rr * 0.2])
        ang0 = math.degrees(math.atan2(start[1] - c[1], start[0] - c[0]))
        sweep = g(50.0, 90.0) if short else g(100.0, 150.0)
        if n == "L1":
            sweep *= 0.5
        pts = _arc(c, rr, ang0, ang0 - sweep, 10)
        pts = [p + np.array([0.0, (j / 10.0) * g(20.0, 45.0)]) for j, p in enumerate(pts)]
        # two ribs per level (left and right), offset by the beam's divergence
        for dup in range(2):
            q = [p + dup * np.array([g(-6.0, 6.0), g(2.0, 10.0)]) for p in pts]
            cv.add(q, lambda X, Y, q=q: _chain_sd(X, Y, q, g(3.5, 5.5) * size),
                   _bone(0.1, 0.2, 1.5, px), pad_mm=8.0)

    # ---- pelvis: iliac wings (crest near L4-L5, lower in a sacralised L5) ----
    crest_at = {"sacralised_l5": "L4", "lumbarised_s1": "L4"}.get(trans, "L5")
    cl = V[crest_at]
    crest_y = (cl["ps"][1] if trans == "sacralised_l5" else
               0.5 * (cl["ps"][1] + cl["pi"][1]) if trans == "lumbarised_s1" else
               cl["ps"][1] + g(-8.0, 8.0))
    il_a, il_b = 95 * size, 70 * size
    il_c = np.array([0.5 * (s1m[0] + ha[0]) + g(-15.0, 20.0) * size, crest_y + il_b])
    for dup in range(2):
        cc = il_c + dup * np.array([g(-10.0, 10.0), g(0.0, 8.0)])
        ang = g(-0.4, 0.2)
        cv.add([cc], lambda X, Y, c_=cc, a_=ang: _ellipse_sd(X, Y, c_, il_a, il_b, a_),
               _bone(0.1, 0.25, 2.5, px), pad_mm=il_a + 5)
    # ---- sacrum: S1 segment, the rest, coccyx ----
    gap = A["s1_gap"]
    down = -n_s1
    sl_ = g(95.0, 115.0) * size
    curve = g(15.0, 35.0)
    s_tip = s1m + _rotate(down, -curve) * sl_ - u_s1 * 15.0
    s1q = [s1["pi"], s1["ai"], s1["as"], s1["ps"]]
    cv.add(s1q, lambda X, Y: _poly_sd(X, Y, s1q), _bone(inner * 0.9, rim, 1.3, px))
    s2a, s2p = s1["ai"] + down * gap, s1["pi"] + down * gap
    rest = [s2p, s2a, s_tip + u_s1 * 6.0, s_tip - u_s1 * 8.0]
    cv.add(rest, lambda X, Y: _poly_sd(X, Y, rest), _bone(inner * 0.8, rim * 0.8, 1.3, px))
    # the sacral canal's posterior wall (laminae, median crest) behind the sacral bodies
    tipb = s_tip - u_s1 * 8.0
    mid_b = s1["ps"] + 0.6 * (tipb - s1["ps"])
    plate = [s1["ps"] - u_s1 * 6.0, s1["ps"] - u_s1 * g(14.0, 20.0), mid_b - u_s1 * 12.0,
             mid_b - u_s1 * 3.0]
    cv.add(plate, lambda X, Y: _poly_sd(X, Y, plate), _bone(0.1, 0.25, 1.5, px))
    cc_ = [s_tip, s_tip + _rotate(down, -curve - 30.0) * 30.0 * size]
    cv.add(cc_, lambda X, Y: _capsule_sd(X, Y, cc_[0], cc_[1], 4.0), _bone(0.3, 0.3, 1.0, px))
    if trans == "sacralised_l5":
        # the enlarged transverse process of L5 against the ala, over the L5-S1 disc
        l5 = V["L5"]
        tp = 0.5 * (l5["pi"] + s1["ps"]) - _u(ss) * g(0.0, 8.0)
        cv.add([tp], lambda X, Y: _ellipse_sd(X, Y, tp, 16.0 * size, 11.0 * size, g(-0.3, 0.3)),
               _bone(0.2, 0.3, 1.5, px), pad_mm=20.0)
    # ---- femora, acetabula, ischium, pubis ----
    fr = A["fh_r"]
    for fh in A["fh"]:
        cv.add([fh], lambda X, Y, c=fh: _ellipse_sd(X, Y, c, fr, fr),
               _bone(inner * 0.9, rim * 0.9, 2.0, px), pad_mm=fr + 5)
        cv.add([fh], lambda X, Y, c=fh: np.minimum(_ellipse_sd(X, Y, c, fr + 7, fr + 7),
                                                   -_ellipse_sd(X, Y, c, fr + 3, fr + 3)),
               _bone(0.15, 0.2, 1.0, px), pad_mm=fr + 12)
        neck_ang = math.radians(g(20.0, 50.0))
        nk = fh + np.array([-math.cos(neck_ang), math.sin(neck_ang)]) * 45.0 * size
        cv.add([fh, nk], lambda X, Y, a=fh, b=nk: _capsule_sd(X, Y, a, b, 14.0 * size),
               _bone(0.3, 0.4, 2.0, px), pad_mm=3.0)
        shaft_end = nk + np.array([g(-10.0, 30.0), 420.0]) * size
        cv.add([nk, shaft_end], lambda X, Y, a=nk, b=shaft_end: _capsule_sd(X, Y, a, b,
                                                                           15.0 * size),
               _cylinder(0.9, 15.0 * size), pad_mm=3.0)
    isch = ha + np.array([-g(10.0, 30.0), g(45.0, 65.0)]) * size
    pub = ha + np.array([g(45.0, 70.0), g(25.0, 45.0)]) * size
    for c_, a_, b_ in ((isch, 22.0, 14.0), (pub, 18.0, 10.0)):
        cv.add([c_], lambda X, Y, c=c_, a=a_, b=b_: _ellipse_sd(X, Y, c, a * size, b * size,
                                                               g(-0.6, 0.6)),
               _bone(0.2, 0.35, 2.0, px), pad_mm=30.0)

    # ---- vertebrae: bodies, posterior elements ----
    for n in CHAIN:
        v = V[n]
        quad = [v["pi"], v["ai"], v["as"], v["ps"]]
        cv.add(quad, lambda X, Y, q=quad: _poly_sd(X, Y, q), _bone(inner, rim, 1.2, px))
        th = 0.5 * (v["theta"] + v["theta_i"])
        u, nn = _u(th), _n(th)
        wall = 0.5 * (v["pi"] + v["ps"])
        hgt = np.linalg.norm(v["ps"] - v["pi"])
        lumbar_ = n.startswith("L")
        # pedicle from the upper half of the posterior wall, lamina, spinous process
        ped0 = wall + nn * 0.2 * hgt
        ped1 = ped0 - u * v["d"] * g(0.3, 0.4)
        pw = 0.18 * hgt
        pedicle = [ped0 + nn * pw, ped0 - nn * pw, ped1 - nn * pw, ped1 + nn * pw]
        cv.add(pedicle, lambda X, Y, q=pedicle: _poly_sd(X, Y, q), _bone(0.1, 0.25, 1.0, px))
        spin_len = v["d"] * (g(0.7, 0.95) if lumbar_ else g(0.6, 0.9))
        spin_drop = hgt * (g(0.0, 0.3) if lumbar_ else g(0.5, 1.0))
        sp0 = ped1 - nn * 0.1 * hgt
        sp1 = sp0 - u * spin_len - nn * spin_drop
        spw = 0.3 * hgt if lumbar_ else 0.15 * hgt
        spin = [sp0 + nn * spw, sp0 - nn * spw * 1.4, sp1 - nn * spw * 0.8, sp1 + nn * spw * 0.6]
        cv.add(spin, lambda X, Y, q=spin: _poly_sd(X, Y, q), _bone(0.1, 0.22, 1.2, px))
        # articular processes: superior above the pedicle, inferior below (facet joint)
        for sgn in (1.0, -1.0):
            fc = ped1 + nn * sgn * 0.55 * hgt - u * 0.05 * v["d"]
            cv.add([fc], lambda X, Y, c=fc, a=th: _ellipse_sd(X, Y, c, 0.17 * v["d"],
                                                              0.3 * hgt, math.radians(a) + 0.3),
                   _bone(0.12, 0.25, 1.0, px), pad_mm=0.4 * hgt)
        # transverse process seen end-on over the pedicle
        if lumbar_:
            tp = ped0 - u * 0.15 * v["d"] + nn * g(-0.1, 0.15) * hgt
            cv.add([tp], lambda X, Y, c=tp: _ellipse_sd(X, Y, c, 6.0 * size, 5.0 * size),
                   _bone(0.08, 0.15, 1.0, px), pad_mm=8.0)

    # ---- degenerative discs: osteophytes, sclerosis, vacuum ----
    for n in A["degen"]:
        up_v = V[n]
        lo_v = V["S1"] if n == "L5" else V[CHAIN[CHAIN.index(n) + 1]]
        for sgn, corner, ref in ((1.0, up_v["ai"], up_v), (-1.0, lo_v["as"], lo_v)):
            th = ref["theta_i"] if sgn > 0 else ref["theta"]
            u, nn = _u(th), _n(th)
            if rng.random() < 0.85:
                # spur: from the anterior wall outward, hooking toward the disc
                ln = g(3.0, 9.0) * size
                tri = [corner - nn * sgn * 0.5, corner + u * ln * 0.8 - nn * sgn * ln * 0.5,
                       corner + nn * sgn * g(4.0, 8.0) * size]
                cv.add(tri, lambda X, Y, q=tri: _poly_sd(X, Y, q), _bone(0.25, 0.3, 0.8, px),
                       pad_mm=2.0)
            # endplate sclerosis: a dense band inside the body along the endplate
            p_ = ref["pi"] if sgn > 0 else ref["ps"]
            a_ = corner
            bw = g(1.5, 4.0) * size
            band = [p_, a_, a_ + nn * sgn * bw, p_ + nn * sgn * bw]
            cv.add(band, lambda X, Y, q=band: _poly_sd(X, Y, q), _solid(g(0.1, 0.35), px),
                   pad_mm=1.0)
        if rng.random() < 0.35:
            mid = 0.25 * (up_v["pi"] + up_v["ai"] + lo_v["ps"] + lo_v["as"])
            cv.add([mid], lambda X, Y, c=mid, a=math.radians(up_v["theta_i"]):
                   _ellipse_sd(X, Y, c, 0.3 * up_v["d"], 0.8, a),
                   _solid(-g(0.1, 0.25), px), pad_mm=15.0)

    # ---- implants: pedicle screws, rods, cage ----
    imp = A["implants"]
    if imp["levels"]:
        metal = g(2.5, 4.0)
        heads = []
        for n in imp["levels"]:
            v = V[n]
            if n == "S1":
                u = _u(ss + g(15.0, 30.0))
                base = 0.5 * (v["ps"] + v["pi"]) + n_s1 * 4.0
            else:
                u = _u(0.5 * (v["theta"] + v["theta_i"]))
                base = 0.5 * (v["pi"] + v["ps"])
            tip = base + u * v["d"] * g(0.6, 0.85)
            head = base - u * v["d"] * g(0.35, 0.5)
            for dup in range(2):                     # left and right screws, a little apart
                o = dup * np.array([g(-3.0, 3.0), g(-3.0, 3.0)])
                cv.add([tip + o, head + o], lambda X, Y, a=tip + o, b=head + o:
                       _capsule_sd(X, Y, a, b, 2.4), _solid(metal, px), pad_mm=3.0)
            heads.append(head - u * 5.0)
            cv.add([heads[-1]], lambda X, Y, c=heads[-1]: _ellipse_sd(X, Y, c, 6.0, 5.0),
                   _solid(metal, px), pad_mm=7.0)
        cv.add(heads, lambda X, Y: _chain_sd(X, Y, heads, 3.0), _solid(metal, px), pad_mm=4.0)
        if imp["cage"]:
            n = imp["cage"]
            up_v = V[n]
            lo_v = V["S1"] if n == "L5" else V[CHAIN[CHAIN.index(n) + 1]]
            f0, f1 = g(0.15, 0.3), g(0.7, 0.85)
            cage = [up_v["pi"] + (up_v["ai"] - up_v["pi"]) * f0,
                    up_v["pi"] + (up_v["ai"] - up_v["pi"]) * f1,
                    lo_v["ps"] + (lo_v["as"] - lo_v["ps"]) * f1,
                    lo_v["ps"] + (lo_v["as"] - lo_v["ps"]) * f0]
            titanium = rng.random() < 0.35
            cv.add(cage, lambda X, Y: _poly_sd(X, Y, cage),
                   _solid(g(1.5, 2.5) if titanium else g(0.15, 0.35), px), pad_mm=1.0)
            if not titanium:                          # PEEK: radiolucent, metal marker pins
                for q in (cage[0], cage[1], 0.5 * (cage[2] + cage[3])):
                    mk = 0.8 * q + 0.2 * sum(cage) / 4
                    cv.add([mk], lambda X, Y, c=mk: _ellipse_sd(X, Y, c, 1.0, 1.0),
                           _solid(metal, px), pad_mm=2.0)


def generate(seed: int, height: int = 1200, width: int | None = None,
             facing: str | None = None, noise_scale: float = 1.0,
             bits: int | None = None) -> tuple[np.ndarray, dict]:
    """One lumbar phantom: (uint16 [H, W] image, metadata). noise_scale and bits change no
    random draw; height and width change no draw either (the anatomy and the field are those of
    the seed at any size)."""
    rng = np.random.default_rng([seed, 20261213])
    A = build_anatomy(rng)
    L = layout(rng, A, height, width, facing)
    g = rng.uniform
    height, width, spacing = L["height"], L["width"], L["spacing"]
    cv = _Canvas(height, width, L["M"], L["t"], 1)
    f = max(1, int(round(height / 160)))
    lo = _Canvas(height, width, L["M"], L["t"], f)
    _render(cv, lo, A, rng)
    att = np.maximum(cv.att + _upsample(lo.att, f, height, width), 0.0)

    # ---- image formation ----
    att = _blur(att, g(0.2, 0.8) / spacing)
    k = g(0.3, 0.6)
    sig = np.clip(1.0 - np.exp(-k * att), 0, 1) ** g(0.7, 1.5)
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    sig = sig * (1.0 + g(-0.12, 0.12) * xx + g(-0.15, 0.15) * yy)
    q, e = g(0.005, 0.03), g(0.002, 0.012)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    sig = sig + noise * ((q * np.sqrt(np.clip(sig, 0, None)) + e) * noise_scale)
    if rng.random() < 0.4:
        sig = _blur(sig, g(0.5, 1.0))
    lo_v, hi_v = g(0.02, 0.12), g(0.7, 1.0)
    out = lo_v + (hi_v - lo_v) * np.clip(sig, 0, 1.2)
    # shuttered bands outside the exposed field: near black, with a little electronic noise
    x0, y0, x1, y1 = L["field"]
    jj = np.arange(width)[None, :]
    ii = np.arange(height)[:, None]
    outside = (jj < x0) | (jj > x1) | (ii < y0) | (ii > y1)
    if outside.any():
        out = np.where(outside, g(0.0, 0.04) + 0.005 * noise_scale * noise, out)
    bits_drawn = 12 if rng.random() < 0.6 else 16
    bits = bits_drawn if bits is None else int(bits)
    img = np.round(np.clip(out, 0, 1) * ((1 << bits) - 1)).astype(np.uint16)

    params = measure(L)
    landmarks = {f"{n}_{c}": [float(x), float(y)]
                 for n in L["present"] for c, (x, y) in zip(CORNERS, L["corners_px"][n])}
    drawn = {key: (float(val) if isinstance(val, float) else val)
             for key, val in A["drawn"].items()}
    drawn |= {"top_level": L["top_level"], "rotation_deg": float(L["theta_deg"])}
    meta = {
        "image": None,
        "width": int(width),
        "height": int(height),
        "pixel_spacing_mm": [float(spacing), float(spacing)],
        "seed": int(seed),
        "generator": GENERATOR_VERSION,
        "facing": L["facing"],
        "bits_stored": bits,
        "present_levels": list(L["present"]),
        "cut_levels": list(L["cut"]),
        "field": [float(v) for v in L["field"]],
        "landmarks": landmarks,
        "parameters": {key: params[key] for key in PARAMETERS} |
                      {f"{key} unsigned": params[f"{key} unsigned"] for key in PARAMETERS},
        "parameter_units": {key: "deg" for key in PARAMETERS},
        "drawn": drawn,
    }
    return img, meta


def layout_only(seed: int, height: int = 1200) -> tuple[dict, dict, dict]:
    """Anatomy, film layout and parameters of `seed` without rendering (the same draws as
    `generate` up to the rendering)."""
    rng = np.random.default_rng([seed, 20261213])
    A = build_anatomy(rng)
    L = layout(rng, A, height, None, None)
    return A, L, measure(L)


def write_phantom(out_dir, stem, img, meta, dicom=False, png=True):
    return phantom.write_phantom(out_dir, stem, img, meta, dicom=dicom, png=png,
                                 body_part="LSPINE",
                                 comment="Synthetic thoracolumbar phantom (sagitta "
                                         "tools/phantom_lumbar.py); not a patient image")


def save_overlay(path: str, img: np.ndarray, meta: dict) -> None:
    """8-bit RGB view with the corners (as red, ps green, pi blue, ai yellow) and level names."""
    from PIL import Image, ImageDraw
    a = img.astype(np.float32)
    a = (a - a.min()) / max(a.max() - a.min(), 1.0) * 255
    im = Image.fromarray(a.astype(np.uint8)).convert("RGB")
    d = ImageDraw.Draw(im)
    r = max(2, img.shape[0] // 300)
    cols = {"as": (255, 0, 0), "ps": (0, 255, 0), "pi": (0, 128, 255), "ai": (255, 255, 0)}
    for name, (x, y) in meta["landmarks"].items():
        lv, c = name.rsplit("_", 1)
        d.ellipse([x - r, y - r, x + r, y + r], outline=cols[c])
        if c == "ps":
            d.text((x - 40, y), lv, fill=(0, 255, 0))
    im.save(path)


def print_stats(seeds) -> None:
    vals = {k: [] for k in ("L1-L5", "L1-S1", "SS", "L1-L5 unsigned", "L1-S1 unsigned",
                            "SS unsigned", "PI", "spacing_mm")}
    counts, tops, flags = {}, {}, {}
    lumbar_all = 0
    for s in seeds:
        A, L, p = layout_only(s)
        lumbar_all += all(n in L["present"] for n in ("L1", "L2", "L3", "L4", "L5", "S1"))
        for key in vals:
            if key == "PI":
                vals[key].append(A["pi"])
            elif key == "spacing_mm":
                vals[key].append(L["spacing"])
            elif p[key] is not None:
                vals[key].append(p[key])
        counts[len(L["present"])] = counts.get(len(L["present"]), 0) + 1
        tops[L["present"][0]] = tops.get(L["present"][0], 0) + 1
        dr = A["drawn"]
        for key, on in (("transitional:" + str(dr["transitional"]), dr["transitional"]),
                        ("degenerative", dr["degenerative_discs"]), ("slip", dr["slip"]),
                        ("implants", dr["implant_levels"]), ("cage", dr["cage"]),
                        ("facing " + L["facing"], True)):
            if on:
                flags[key] = flags.get(key, 0) + 1
    n = len(seeds)
    print(f"{'value':15s} {'mean':>7s} {'sd':>6s} {'min':>7s} {'p5':>7s} {'p50':>7s} "
          f"{'p95':>7s} {'max':>7s}  (over {n} seeds, 1200 px high)")
    for key, v in vals.items():
        a = np.array(v)
        print(f"{key:15s} {a.mean():7.2f} {a.std():6.2f} {a.min():7.2f} "
              f"{np.percentile(a, 5):7.2f} {np.median(a):7.2f} {np.percentile(a, 95):7.2f} "
              f"{a.max():7.2f}")
    a = np.array(vals["L1-S1"])
    print("L1-S1 by decade: " + ", ".join(
        f"{lo_}-{lo_ + 10}: {int(((a >= lo_) & (a < lo_ + 10)).sum())}"
        for lo_ in range(0, 90, 10)))
    print("present levels per image: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"L1..S1 all present: {lumbar_all} of {n}")
    print("top present level: " + ", ".join(f"{k}: {tops[k]}" for k in LEVELS if k in tops))
    print("drawn: " + ", ".join(f"{k}: {v}" for k, v in sorted(flags.items())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--seeds", default="0:4", help="'A:B' (B excluded) or a comma list")
    ap.add_argument("--height", type=int, default=1200)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--facing", choices=["left", "right"], default=None)
    ap.add_argument("--prefix", default="lumbar_")
    ap.add_argument("--dicom", action="store_true", help="also write <stem>.dcm")
    ap.add_argument("--overlay", action="store_true", help="also write an 8-bit overlay PNG")
    ap.add_argument("--stats", type=int, default=0,
                    help="print the parameter, level-count and variant distributions over this "
                         "many seeds (from --seeds' first), without rendering, and exit")
    args = ap.parse_args(argv)
    seeds = phantom.parse_seeds(args.seeds)
    if args.stats:
        print_stats(list(range(seeds[0], seeds[0] + args.stats)))
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required unless --stats")
    for seed in seeds:
        img, meta = generate(seed, args.height, args.width, args.facing)
        stem = f"{args.prefix}{seed}"
        write_phantom(args.out_dir, stem, img, meta, dicom=args.dicom)
        if args.overlay:
            save_overlay(os.path.join(args.out_dir, f"{stem}_overlay.png"), img, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
