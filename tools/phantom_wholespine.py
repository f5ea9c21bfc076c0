"""Synthetic whole-spine lateral radiographs with exact landmarks (SPEC-wholespine.md, paper 001).

    python3 phantom_wholespine.py OUT_DIR --seeds 0:4 [--height 1200] [--dicom] [--stats N]

Every phantom is a deterministic function of its seed (numpy PCG64). The anatomy is built in
millimetres in a canonical frame (patient facing +x, superior -y, image y down), then mapped to
pixels by a similarity transform (pixel spacing, small rotation, translation, mirror for a patient
facing left). The 45 landmarks are vertices or centroids of the drawn shapes, so they are exact by
construction; they are reported in original pixels with the centre of the top-left pixel at (0, 0),
in the SPEC's order (sagitta_ref.anatomy.wholespine.LANDMARKS).

How the alignment is drawn, sacrum first (the pelvis is rigid with the sacrum):
- PI 30-80 deg; lumbar lordosis LL = PI - mismatch (mismatch ~ N(5, 11) deg), L4-S1 carrying
  55-80 % of it; thoracic kyphosis T1-T12 ~ N(38, 14) (hypo- to hyper-kyphosis), T1-T5 a share of
  it with a T5 wedge; the per-element angles (bodies and discs) from Dirichlet splits, each capped
  so that no disc or body gets a negative height;
- a target SVA (larger with a larger PI-LL mismatch, -60..180 mm), reached by rotating the spine
  and pelvis together about the hips (pelvic retroversion): that fixes PT and SS = PI - PT;
- the C2-C7 angle from T1 slope (CL = T1S - N(14, 9)), C2 with its dens, a skull above.
The parameters computed from the exact landmarks (sagitta_ref.measure.wholespine) are stored with
them; `--stats N` prints their distribution over N seeds without rendering.

Drawn: C2 (body + dens) to L5 bodies with cortical rims and posterior arches, sacrum and coccyx,
iliac wings, acetabula, both femoral heads (parallax: the two heads apart by a few mm) with necks
and shafts, ischium and pubis, ribs, lungs, diaphragm, trunk and neck soft tissue, skull base and
mandible, shoulders with scapulae and humeri over the upper thoracic spine, posterior rods and
pedicle screws (some phantoms), stitching seams (two or three cassettes: per-segment exposure, an
overlap band, a small horizontal offset of the upper segment, landmarks moved with it), exposure,
gamma, heel-effect gradient, quantum and electronic noise, blur, facing left or right.

Output per phantom: `<stem>.png` (16-bit grey, MONOCHROME2: bone bright) and `<stem>.json`
{"image", "width", "height", "pixel_spacing_mm": [row, col], "seed", "landmarks": {name: [x, y]},
"facing", "generator", "bits_stored", "parameters": {name: value}, "parameter_units", "drawn"};
optionally `<stem>.dcm` (phantom.write_dicom: PixelSpacing set).
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
from sagitta_ref.anatomy.wholespine import LANDMARKS  # noqa: E402  (pure data, no torch)
from sagitta_ref.measure.wholespine import PARAMETERS, UNITS, wholespine  # noqa: E402

GENERATOR_VERSION = "sagitta-phantom-wholespine-v1"

# Seed ranges, disjoint from each other and from every other model's sets (tools/README.md).
TRAIN_SEED_BASE = 40_000_000
VAL_SEED_BASE = 41_000_000
HELDOUT_SEED_BASE = 800_000
SAMPLE_SEED_BASE = 950_000

# Vertebrae from C2 down to L5 and their mean sizes (mm): mid-height, depth (AP) of the body.
NAMES = ["C2", "C3", "C4", "C5", "C6", "C7"] + [f"T{i}" for i in range(1, 13)] + \
        [f"L{i}" for i in range(1, 6)]
BODY_H = dict(zip(NAMES, [15.0, 13.5, 13.3, 13.0, 13.2, 14.2] +
                  list(np.linspace(16.0, 24.0, 12)) + [25.5, 26.5, 27.0, 27.0, 26.0]))
BODY_D = dict(zip(NAMES, [15.5, 15.3, 15.6, 16.0, 16.6, 17.0] +
                  list(np.linspace(18.5, 32.0, 12)) + [34.0, 35.5, 37.0, 38.0, 38.5]))
# disc below each vertebra (mid-height, mm)
DISC_H = dict(zip(NAMES, [5.0, 5.0, 5.2, 5.4, 5.5, 5.0] + list(np.linspace(3.8, 6.5, 11)) +
                  [7.0, 9.0, 10.0, 11.0, 11.5, 10.5]))


def _u(theta_deg):
    a = math.radians(theta_deg)
    return np.array([math.cos(a), math.sin(a)])


def _n(theta_deg):
    """Superior normal of an endplate with slope theta (y down): (sin, -cos)."""
    a = math.radians(theta_deg)
    return np.array([math.sin(a), -math.cos(a)])


def _rotate(p, deg):
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.asarray(p) @ np.array([[c, -s], [s, c]]).T


def _split(rng, total, caps, conc=4.0):
    """`total` degrees split over elements by a Dirichlet draw, each |share| capped at caps[i]
    (the rest pushed to the elements with room)."""
    w = rng.dirichlet(np.full(len(caps), conc))
    k = total * w
    caps = np.asarray(caps)
    for _ in range(20):
        over = np.abs(k) > caps
        if not over.any():
            break
        excess = float(np.sum(k[over] - np.sign(k[over]) * caps[over]))
        k[over] = np.sign(k[over]) * caps[over]
        room = ~over
        if not room.any():
            break
        k[room] += excess * w[room] / w[room].sum()
    return k


def build_anatomy(rng: np.random.Generator) -> dict:
    """Landmarks and shapes in canonical mm (facing +x, y down), S1 endplate midpoint at (0, 0)."""
    g = rng.uniform
    size = g(0.9, 1.1)
    drawn = {}
    pi = float(np.clip(rng.normal(52.0, 11.0), 30.0, 80.0))
    mismatch = float(rng.normal(5.0, 11.0))
    ll = float(np.clip(pi - mismatch, 8.0, 85.0))
    l4sl = ll * g(0.55, 0.8)
    gtk = float(np.clip(rng.normal(38.0, 14.0) + 0.15 * (ll - 47.0), 2.0, 85.0))
    t5w = g(0.0, 5.0)
    ptk = float(np.clip(gtk * g(0.25, 0.45) + rng.normal(0.0, 3.0), -5.0, 40.0))
    mtk = gtk - ptk + t5w
    tl = rng.normal(0.0, 3.5)                         # T12-L1 disc (+ kyphotic)
    c7t1 = rng.normal(1.0, 2.5)                      # C7 body + C7-T1 disc
    drawn.update(PI=pi, LL=ll, L4SL=l4sl, GTK=gtk, PTK=ptk, MTK=mtk)

    h = {n: BODY_H[n] * size * g(0.93, 1.07) for n in NAMES}
    d = {n: BODY_D[n] * size * g(0.93, 1.07) for n in NAMES}
    dh = {n: DISC_H[n] * size * g(0.55, 1.1) for n in NAMES}
    s1w = g(40.0, 50.0) * size

    # Elements from S1 upwards: (kind, name) with a kyphosis angle each (slope change going up).
    def cap(kind, n):
        hh = dh[n] if kind == "disc" else h[n]
        return math.degrees(math.atan((hh - 1.5) / (d[n] / 2)))

    k = {}
    low = [("disc", "L5"), ("body", "L5"), ("disc", "L4"), ("body", "L4")]
    high = [("disc", "L3"), ("body", "L3"), ("disc", "L2"), ("body", "L2"), ("disc", "L1"),
            ("body", "L1")]
    for group, total in ((low, -l4sl), (high, -(ll - l4sl))):
        # discs carry most of the lordosis
        caps = [cap(*e) * (1.0 if e[0] == "disc" else 0.35) for e in group]
        for e, v in zip(group, _split(rng, total, caps)):
            k[e] = v
    k[("disc", "T12")] = tl
    upper = [("body", "T1")] + [e for i in range(1, 5) for e in
                                (("disc", f"T{i}"), ("body", f"T{i + 1}"))][:-1]
    lower = [e for i in range(5, 12) for e in (("disc", f"T{i}"), ("body", f"T{i + 1}"))]
    k[("body", "T5")] = t5w
    for group, total in ((upper, ptk - t5w), (lower, mtk - t5w)):
        for e, v in zip(group, _split(rng, total, [cap(*e) for e in group])):
            k[e] = v
    share = g(0.2, 0.8)
    k[("body", "C7")] = c7t1 * share
    k[("disc", "C7")] = c7t1 * (1 - share)
    listhesis = {n: rng.normal(0.0, 0.6) * size for n in NAMES}
    if rng.random() < 0.2:                           # a degenerative slip
        listhesis[str(rng.choice(["L3", "L4", "L5"]))] += g(-4.0, 8.0) * size

    # Chain in the sacral frame (S1 endplate slope 0, midpoint at the origin).
    verts = {"S1": {"ps": np.array([-s1w / 2, 0.0]), "as": np.array([s1w / 2, 0.0]),
                    "theta": 0.0, "d": s1w}}

    def grow(below, n, kdisc, kbody):
        """Vertebra n sitting on `below`'s superior endplate: disc then body."""
        b = verts[below]
        th = b["theta"]
        mid = 0.5 * (b["ps"] + b["as"])
        th_i = th + kdisc
        mid_i = mid + dh[n] * _n(th + kdisc / 2) + listhesis[n] * _u(th_i)
        pi_ = mid_i - d[n] / 2 * _u(th_i)
        ai_ = mid_i + d[n] / 2 * _u(th_i)
        th_s = th_i + kbody
        mid_s = mid_i + h[n] * _n(th_i + kbody / 2)
        ps_ = mid_s - d[n] / 2 * _u(th_s)
        as_ = mid_s + d[n] / 2 * _u(th_s)
        verts[n] = {"pi": pi_, "ai": ai_, "ps": ps_, "as": as_, "theta": th_s, "theta_i": th_i,
                    "d": d[n], "c": (pi_ + ai_ + ps_ + as_) / 4}

    order = list(reversed(NAMES))                    # L5 .. C2
    below = "S1"
    for n in order:
        if n == "C6":
            break
        grow(below, n, k[("disc", n)], k[("body", n)])
        below = n
    # Pelvis rotation: SS such that the C7 plumb line lands at the drawn SVA.
    pelvic_r = g(95.0, 125.0) * size
    ha_local = pelvic_r * np.array([math.sin(math.radians(pi)), math.cos(math.radians(pi))])
    sva_target = float(np.clip(rng.normal(8.0 + 2.5 * max(pi - ll - 5.0, 0.0), 38.0), -60, 180))

    def sva_at(ss):
        c7 = _rotate(verts["C7"]["c"], ss)
        sps = _rotate(verts["S1"]["ps"], ss)
        return c7[0] - sps[0]

    lo_ss, hi_ss = max(pi - 45.0, 5.0), min(pi + 8.0, 70.0)
    if lo_ss > hi_ss:
        lo_ss = hi_ss
    f_lo, f_hi = sva_at(lo_ss), sva_at(hi_ss)
    if (f_lo - sva_target) * (f_hi - sva_target) > 0:
        ss = lo_ss if abs(f_lo - sva_target) < abs(f_hi - sva_target) else hi_ss
    else:
        a_, b_ = lo_ss, hi_ss
        for _ in range(40):
            m_ = 0.5 * (a_ + b_)
            if (sva_at(a_) - sva_target) * (sva_at(m_) - sva_target) <= 0:
                b_ = m_
            else:
                a_ = m_
        ss = 0.5 * (a_ + b_)
    drawn.update(SVA=sva_target, SS=ss, PT=pi - ss)
    # Cervical spine: CL from the global T1 slope.
    t1s = verts["T1"]["theta"] + ss
    cl = float(np.clip(t1s - rng.normal(11.0, 9.0), -30.0, 50.0))
    drawn.update(T1S=t1s, CL=cl)
    cerv = [("disc", "C6"), ("body", "C6"), ("disc", "C5"), ("body", "C5"), ("disc", "C4"),
            ("body", "C4"), ("disc", "C3"), ("body", "C3"), ("disc", "C2")]
    for e, v in zip(cerv, _split(rng, -cl, [cap(*e) for e in cerv])):
        k[e] = v
    below = "C7"
    for n in ["C6", "C5", "C4", "C3", "C2"]:
        grow(below, n, k[("disc", n)], k[("body", n)] if n != "C2" else g(-3.0, 3.0))
        below = n
    # C2: the body above its inferior endplate, the dens on top
    c2 = verts["C2"]
    th = c2["theta"]
    top_mid = 0.5 * (c2["ps"] + c2["as"]) - 0.1 * c2["d"] * _u(th)
    dens_len = g(12.0, 16.0) * size
    dens_base = top_mid + 1.0 * _n(th)
    dens_tip = dens_base + dens_len * _n(th + g(-8.0, 8.0))
    c2["dens"] = (dens_base, dens_tip, g(4.5, 6.0) * size)
    c2["dens_c"] = 0.5 * (dens_base + dens_tip)

    # Everything to the global frame: rotate by SS about S1m, hips at HA.
    out = {}
    for n, v in verts.items():
        out[n] = {key: (_rotate(val, ss) if isinstance(val, np.ndarray) else val)
                  for key, val in v.items() if key != "dens"}
        for key in ("theta", "theta_i"):
            if key in v:
                out[n][key] = v[key] + ss
    dens = tuple(_rotate(p, ss) for p in c2["dens"][:2]) + (c2["dens"][2],)
    out["C2"]["dens"] = dens
    ha = _rotate(ha_local, ss)
    # femoral heads: parallax apart (FH1 the more posterior), radius ~ 22-26 mm
    sep = rng.normal(0.0, 1.0) * np.array([g(3.0, 14.0), g(1.0, 8.0)])
    sep[0] = abs(sep[0]) + 1.0
    fh1, fh2 = ha - sep / 2, ha + sep / 2
    lm = {}
    for n in ("C2", "C7", "T5", "T12"):
        for c in ("ai", "pi"):
            lm[f"{n}_{c}"] = out[n][c]
    for n in ("C7", "T1", "T5", "L1", "L4", "S1"):
        for c in ("ps", "as"):
            lm[f"{n}_{c}"] = out[n][c]
    lm["C2_dens"] = out["C2"]["dens_c"]
    lm["FH1"], lm["FH2"] = fh1, fh2
    for n in NAMES:
        lm[f"{n}_c"] = out[n]["c"]
    points = np.array([lm[n] for n in LANDMARKS], np.float64)
    return {"verts": out, "names": NAMES, "ha": ha, "fh": (fh1, fh2),
            "fh_r": g(22.0, 26.0) * size, "size": size, "ss": ss, "pi": pi,
            "pelvic_r": pelvic_r, "landmarks": points, "drawn": drawn}


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

def _chain_sd(X, Y, pts, r):
    sd = None
    for a, b in zip(pts[:-1], pts[1:]):
        d = _capsule_sd(X, Y, a, b, r)
        sd = d if sd is None else np.maximum(sd, d)
    return sd


def _arc(c, r, a0, a1, n=12):
    ts = np.radians(np.linspace(a0, a1, n))
    return [np.array([c[0] + r * math.cos(t), c[1] + r * math.sin(t)]) for t in ts]


def _render(cv: _Canvas, lo: _Canvas, A: dict, rng: np.random.Generator, implants: dict):
    g = rng.uniform
    px = cv.px_mm
    V, size = A["verts"], A["size"]
    bone_gain = g(0.75, 1.25)
    inner, rim = 0.45 * bone_gain, 0.6 * bone_gain
    soft = g(0.8, 1.2)
    centres = [V[n]["c"] for n in NAMES]
    s1 = V["S1"]
    s1m = 0.5 * (s1["ps"] + s1["as"])
    ss = A["ss"]
    u_s1, n_s1 = _u(ss), _n(ss)
    ha = A["ha"]

    # ---- low-frequency layers (coarse grid): trunk, neck, head, lungs, shoulders ----
    sl_all = lo._grid(((-1e4, -1e4), (1e4, 1e4)), 0.0)
    if sl_all is not None:
        _, X, Y = sl_all
        # trunk: anterior and posterior outlines relative to the spine
        belly = g(90.0, 190.0) * size
        chest = g(110.0, 160.0) * size
        back = g(45.0, 70.0) * size
        t_pts, rads = [], []
        for n, r_ in (("C6", 55.0), ("T1", 75.0), ("T6", 0.5 * (chest + back)),
                      ("T12", 0.5 * (chest + back)), ("L3", 0.5 * (belly + back))):
            t_pts.append(V[n]["c"])
            rads.append(r_ * size if n in ("C6", "T1") else r_)
        shift = [0.0, 10.0, 0.5 * (chest - back), 0.5 * (chest - back), 0.5 * (belly - back)]
        sd = None
        for i in range(len(t_pts) - 1):
            a = t_pts[i] + np.array([shift[i], 0.0])
            b = t_pts[i + 1] + np.array([shift[i + 1], 0.0])
            r_ = 0.5 * (rads[i] + rads[i + 1])
            dd = _capsule_sd(X, Y, a, b, r_)
            sd = dd if sd is None else np.maximum(sd, dd)
        pelvis_c = 0.5 * (s1m + ha) + np.array([0.3 * belly - 20.0, 10.0])
        dd = _ellipse_sd(X, Y, pelvis_c, 0.5 * (belly + back) + 40, 150 * size, 0.0)
        sd = np.maximum(sd, dd)
        lo.att += _cylinder(soft * 2.2, 150.0)(sd).astype(np.float32)
        # thighs
        for fh in A["fh"]:
            dd = _capsule_sd(X, Y, fh, fh + np.array([g(-20, 30), 400.0]), g(70, 95) * size)
            lo.att += _cylinder(soft * 1.0, 90.0)(dd).astype(np.float32)
        # neck and head
        c2, c7 = V["C2"], V["C7"]
        dd = _capsule_sd(X, Y, c7["c"] + np.array([8.0, 0]), c2["c"] + np.array([5.0, -20.0]),
                         g(50.0, 65.0) * size)
        lo.att += _cylinder(soft * 1.4, 60.0)(dd).astype(np.float32)
        hc = c2["dens_c"] + np.array([g(5.0, 30.0), -g(55.0, 80.0)]) * size
        dd = _ellipse_sd(X, Y, hc, 100 * size, 88 * size, g(-0.3, 0.3))
        lo.att += _cylinder(soft * 2.3, 88 * size)(dd).astype(np.float32)
        # lungs (subtractive) in front of and around the thoracic spine, diaphragm at T10-L1
        lung_top = V["T1"]["c"] + np.array([25.0, -10.0])
        dia = V[str(rng.choice(["T10", "T11", "T12"]))]["c"] + np.array([40.0, 0.0])
        lr = g(45.0, 70.0) * size
        dd = _capsule_sd(X, Y, lung_top + np.array([10.0, lr * 0.3]),
                         dia - np.array([0.0, lr * 0.6]), lr)
        lo.att -= _cylinder(soft * g(0.8, 1.3), lr)(dd).astype(np.float32)
        # shoulders and arms over the upper thoracic spine
        t3 = V["T3"]["c"]
        for _ in range(int(rng.integers(1, 3))):
            sc = t3 + np.array([g(-10.0, 40.0), g(-40.0, 10.0)]) * size
            dd = _ellipse_sd(X, Y, sc, g(80.0, 120.0) * size, g(60.0, 90.0) * size,
                             g(-0.4, 0.4))
            lo.att += _cylinder(soft * g(1.0, 2.0), 80.0)(dd).astype(np.float32)
    # ---- full resolution: skull base, mandible ----
    c2 = V["C2"]
    base = c2["dens_c"] + np.array([-g(10.0, 30.0), -g(25.0, 40.0)]) * size
    occ = [base + np.array([-60.0, 10.0]) * size, base + np.array([-20.0, -5.0]) * size,
           base + np.array([30.0, -25.0]) * size, base + np.array([0.0, -55.0]) * size,
           base + np.array([-70.0, -40.0]) * size]
    cv.add(occ, lambda X, Y: _poly_sd(X, Y, occ), _bone(0.45, 0.4, 2.5, px), pad_mm=3.0)
    if rng.random() < 0.85:
        m0 = c2["dens_c"] + np.array([g(25.0, 40.0), g(-5.0, 15.0)]) * size
        jaw = [m0, m0 + np.array([10.0, 45.0]) * size, m0 + np.array([75.0, 55.0]) * size]
        cv.add(jaw, lambda X, Y: _chain_sd(X, Y, jaw, 6.0 * size), _bone(0.4, 0.5, 2.0, px))
    # ---- ribs (curved bands over the thoracic spine) ----
    for i in range(1, 13):
        v = V[f"T{i}"]
        if rng.random() < 0.15:
            continue
        start = v["ps"] - v["d"] * 0.3 * _u(v["theta"])
        rr = g(60.0, 110.0) * size
        c = start + np.array([rr * 0.6, -rr * 0.2])
        ang0 = math.degrees(math.atan2(start[1] - c[1], start[0] - c[0]))
        pts = _arc(c, rr, ang0, ang0 - g(100.0, 150.0), 10)
        pts = [p + np.array([0.0, (j / 10.0) * g(20.0, 45.0)]) for j, p in enumerate(pts)]
        cv.add(pts, lambda X, Y, pts=pts: _chain_sd(X, Y, pts, g(3.5, 5.5) * size),
               _bone(0.12, 0.22, 1.5, px), pad_mm=8.0)
    # ---- shoulder girdle: scapula (posterior, T2-T7), humerus and clavicle ----
    t2, t7 = V["T2"], V["T7"]
    sc_off = g(20.0, 60.0)
    scap = [t2["ps"] - np.array([sc_off, 20.0]), t2["ps"] + np.array([30.0, -5.0]),
            t7["ps"] + np.array([10.0, 15.0]), t7["ps"] - np.array([sc_off + 20.0, -10.0])]
    cv.add(scap, lambda X, Y: _poly_sd(X, Y, scap), _bone(0.12, 0.25, 2.0, px), pad_mm=3.0)
    for side in range(2):
        hh = V["T2"]["as"] + np.array([g(10.0, 60.0), g(-50.0, 0.0)]) * size
        ang = math.radians(g(30.0, 80.0))
        he = hh + 280.0 * size * np.array([math.cos(ang), math.sin(ang)])
        cv.add([hh, he], lambda X, Y, a=hh, b=he: _capsule_sd(X, Y, a, b, 11.0 * size),
               _bone(0.25, 0.45, 3.0, px), pad_mm=3.0)
        cv.add([hh], lambda X, Y, c=hh: _ellipse_sd(X, Y, c, 24 * size, 22 * size),
               _bone(0.3, 0.35, 3.0, px), pad_mm=30.0)
        if side == 0:
            cl0 = V["C7"]["as"] + np.array([g(5.0, 25.0), g(5.0, 30.0)])
            cl1 = cl0 + np.array([g(90.0, 130.0), g(-15.0, 15.0)])
            cv.add([cl0, cl1], lambda X, Y: _capsule_sd(X, Y, cl0, cl1, 6.0 * size),
                   _bone(0.25, 0.35, 2.0, px), pad_mm=3.0)
    # ---- vertebrae: bodies and posterior arches ----
    for n in NAMES:
        v = V[n]
        quad = [v["pi"], v["ai"], v["as"], v["ps"]]
        cv.add(quad, lambda X, Y, q=quad: _poly_sd(X, Y, q), _bone(inner, rim, 1.2, px))
        # pedicle + lamina + spinous process
        th = v["theta"]
        u, nn = _u(0.5 * (th + v["theta_i"])), _n(0.5 * (th + v["theta_i"]))
        wall = 0.5 * (v["pi"] + v["ps"])
        ph = 0.35 * np.linalg.norm(v["ps"] - v["pi"])
        ped = wall - u * v["d"] * g(0.35, 0.5)
        spin = ped - u * v["d"] * g(0.5, 0.9) + nn * (-v["d"] * g(0.2, 0.6))
        arch = [wall + nn * ph, wall - nn * ph, ped - nn * ph * 1.2, spin, ped + nn * ph * 1.3]
        cv.add(arch, lambda X, Y, q=arch: _poly_sd(X, Y, q), _bone(0.2, 0.35, 1.0, px))
        if n == "C2":
            a, b, r_ = v["dens"]
            cv.add([a, b], lambda X, Y: _capsule_sd(X, Y, a, b, r_), _bone(inner, rim, 1.0, px))
            c1 = b + np.array([g(8.0, 14.0), 0.0]) * size
            cv.add([c1], lambda X, Y: _ellipse_sd(X, Y, c1, 5.0 * size, 7.0 * size),
                   _bone(inner, rim, 1.0, px), pad_mm=10.0)
    # ---- sacrum, coccyx, ilium, acetabulum, femora, ischium/pubis ----
    sl = g(95.0, 115.0) * size
    curve = g(15.0, 35.0)
    down = -n_s1
    s_tip = s1m + _rotate(down, -curve) * sl - u_s1 * 15.0
    sac = [s1["ps"], s1["as"], s1["as"] + down * 25.0 - u_s1 * 3.0, s_tip + u_s1 * 6.0,
           s_tip - u_s1 * 8.0, s1["ps"] + down * 40.0 - u_s1 * 10.0]
    cv.add(sac, lambda X, Y: _poly_sd(X, Y, sac), _bone(inner * 0.9, rim, 1.4, px))
    cc = [s_tip, s_tip + _rotate(down, -curve - 30.0) * 30.0 * size]
    cv.add(cc, lambda X, Y: _capsule_sd(X, Y, cc[0], cc[1], 4.0), _bone(0.3, 0.3, 1.0, px))
    il_c = 0.55 * s1m + 0.45 * ha + np.array([g(0.0, 25.0), -g(20.0, 45.0)]) * size
    cv.add([il_c], lambda X, Y: _ellipse_sd(X, Y, il_c, 95 * size, 70 * size, g(-0.5, 0.2)),
           _bone(0.12, 0.3, 3.0, px), pad_mm=100.0 * size + 5)
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
    # ---- implants: posterior rods with pedicle screws ----
    if implants["levels"]:
        heads = []
        for n in implants["levels"]:
            v = V[n]
            u = _u(0.5 * (v["theta"] + v["theta_i"]))
            mid = 0.5 * (v["pi"] + v["ps"])
            tip = mid + u * v["d"] * g(0.6, 0.85)
            head = mid - u * v["d"] * g(0.35, 0.5)
            cv.add([tip, head], lambda X, Y, a=tip, b=head: _capsule_sd(X, Y, a, b, 2.8),
                   _solid(implants["metal"], px), pad_mm=3.0)
            heads.append(head - u * 5.0)
        cv.add(heads, lambda X, Y: _chain_sd(X, Y, heads, 3.0), _solid(implants["metal"], px),
               pad_mm=4.0)


def _bbox_landmarks(A):
    """Extent to keep in the field: skull base above the dens down past the hips."""
    lm = A["landmarks"]
    top = lm[:, 1].min() - 60.0 * A["size"]
    bottom = max(lm[:, 1].max(), A["ha"][1]) + 60.0 * A["size"]
    return top, bottom


def generate(seed: int, height: int = 1200, width: int | None = None,
             facing: str | None = None, noise_scale: float = 1.0,
             bits: int | None = None) -> tuple[np.ndarray, dict]:
    """One whole-spine phantom: (uint16 [H, W] image, metadata with landmarks in pixels and the
    18 parameters computed from them). noise_scale and bits change no random draw."""
    rng = np.random.default_rng([seed, 20261201])
    A = build_anatomy(rng)
    g = rng.uniform
    lm_mm = A["landmarks"]
    if width is None:
        width = int(round(height * g(0.38, 0.5)))
    top, bottom = _bbox_landmarks(A)
    fov_h = (bottom - top) * g(1.12, 1.35)
    spacing = fov_h / height
    if facing is None:
        facing = "left" if rng.random() < 0.5 else "right"
    mir = -1.0 if facing == "left" else 1.0
    theta = math.radians(rng.normal(0.0, 2.0))
    c, s = math.cos(theta), math.sin(theta)
    R = np.array([[c, -s], [s, c]])
    M = (R @ np.diag([mir, 1.0])) / spacing
    p = lm_mm @ M.T
    ext = np.array([[0.0, top], [0.0, bottom]]) @ M.T
    lo_b = np.minimum(p.min(0), ext.min(0))
    hi_b = np.maximum(p.max(0), ext.max(0))
    mx, my = 0.08 * width, 0.02 * height
    tx_lo, tx_hi = mx - lo_b[0], width - 1 - mx - hi_b[0]
    ty_lo, ty_hi = my - lo_b[1], height - 1 - my - hi_b[1]
    if tx_lo > tx_hi:
        tx_lo = tx_hi = 0.5 * (tx_lo + tx_hi)
    if ty_lo > ty_hi:
        ty_lo = ty_hi = 0.5 * (ty_lo + ty_hi)
    t = np.array([g(tx_lo, tx_hi), g(ty_lo, ty_hi)])
    lm_px = p + t
    implants = {"levels": [], "metal": g(2.5, 4.0)}
    if rng.random() < 0.2:
        chain = NAMES[8:]                            # T3..L5
        n_lv = int(rng.integers(2, 8))
        start = int(rng.integers(0, len(chain) - n_lv + 1))
        implants["levels"] = chain[start:start + n_lv]

    cv = _Canvas(height, width, M, t, 1)
    f = max(1, int(round(height / 160)))
    lo = _Canvas(height, width, M, t, f)
    _render(cv, lo, A, rng, implants)
    att = np.maximum(cv.att + _upsample(lo.att, f, height, width), 0.0)

    # ---- image formation ----
    att = _blur(att, g(0.3, 1.2) / spacing)
    k = g(0.25, 0.5)
    sig = np.clip(1.0 - np.exp(-k * att), 0, 1) ** g(0.7, 1.4)
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    sig = sig * (1.0 + g(-0.1, 0.1) * xx + g(-0.15, 0.15) * yy)
    # stitching: two or three cassettes, each with its own exposure; an overlap band at each seam
    n_seams = int(rng.integers(1, 3))
    seams = sorted(int(height * (i + 1) / (n_seams + 1) + g(-0.06, 0.06) * height)
                   for i in range(n_seams))
    bounds = [0] + seams + [height]
    for i in range(len(bounds) - 1):
        a_, b_ = bounds[i], bounds[i + 1]
        sig[a_:b_] = sig[a_:b_] * g(0.85, 1.15) + g(-0.05, 0.05)
    seam_info = []
    shifts = []
    for y in seams:
        band = max(1, int(g(2.0, 10.0) / spacing))
        sig[y:y + band] = sig[y:y + band] * g(0.75, 1.3) + g(-0.04, 0.04)
        shift = int(rng.integers(-2, 3))
        shifts.append((y, shift))
        seam_info.append({"row": y, "band_px": band, "shift_px": shift})
    q, e = g(0.005, 0.03), g(0.002, 0.012)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    sig = sig + noise * ((q * np.sqrt(np.clip(sig, 0, None)) + e) * noise_scale)
    if rng.random() < 0.4:
        sig = _blur(sig, g(0.5, 1.0))
    lo_v, hi_v = g(0.02, 0.1), g(0.75, 1.0)
    out = lo_v + (hi_v - lo_v) * np.clip(sig, 0, 1.2)
    # the upper segment of a seam offset sideways (cassette misregistration): pixels and the
    # landmarks above the seam move together, by whole pixels
    for y, shift in shifts:
        if shift:
            out[:y] = np.roll(out[:y], shift, axis=1)
            if shift > 0:
                out[:y, :shift] = out[:y, shift:shift + 1]
            else:
                out[:y, shift:] = out[:y, shift - 1:shift]
            lm_px[lm_px[:, 1] < y - 0.5, 0] += shift
    bits_drawn = 12 if rng.random() < 0.6 else 16
    bits = bits_drawn if bits is None else int(bits)
    img = np.round(np.clip(out, 0, 1) * ((1 << bits) - 1)).astype(np.uint16)

    params = wholespine([tuple(q_) for q_ in lm_px], (spacing, spacing))
    meta = {
        "image": None,
        "width": int(width),
        "height": int(height),
        "pixel_spacing_mm": [float(spacing), float(spacing)],
        "seed": int(seed),
        "landmarks": {n: [float(x), float(y)] for n, (x, y) in zip(LANDMARKS, lm_px)},
        "facing": facing,
        "generator": GENERATOR_VERSION,
        "bits_stored": bits,
        "parameters": {n: params[n] for n in PARAMETERS},
        "parameter_units": dict(UNITS),
        "drawn": {key: float(val) for key, val in A["drawn"].items()} | {
            "implant_levels": list(implants["levels"]), "seams": seam_info},
    }
    return img, meta


def parameters_only(seed: int) -> dict:
    """The 18 parameters of `seed`'s anatomy in mm (no rendering): for distribution checks."""
    rng = np.random.default_rng([seed, 20261201])
    A = build_anatomy(rng)
    return wholespine([tuple(q) for q in A["landmarks"]], (1.0, 1.0))


def write_phantom(out_dir, stem, img, meta, dicom=False, png=True):
    return phantom.write_phantom(out_dir, stem, img, meta, dicom=dicom, png=png,
                                 body_part="SPINE",
                                 comment="Synthetic whole-spine phantom (sagitta "
                                         "tools/phantom_wholespine.py); not a patient image")


def print_stats(seeds) -> None:
    vals = {n: [] for n in PARAMETERS}
    for s in seeds:
        p = parameters_only(s)
        for n in PARAMETERS:
            if p[n] is not None:
                vals[n].append(p[n])
    print(f"{'param':8s} {'mean':>8s} {'sd':>7s} {'p5':>8s} {'p50':>8s} {'p95':>8s}  "
          f"(over {len(seeds)} seeds)")
    for n in PARAMETERS:
        a = np.array(vals[n])
        print(f"{n:8s} {a.mean():8.2f} {a.std():7.2f} {np.percentile(a, 5):8.2f} "
              f"{np.median(a):8.2f} {np.percentile(a, 95):8.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--seeds", default="0:4", help="'A:B' (B excluded) or a comma list")
    ap.add_argument("--height", type=int, default=1200)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--facing", choices=["left", "right"], default=None)
    ap.add_argument("--prefix", default="wholespine_")
    ap.add_argument("--dicom", action="store_true", help="also write <stem>.dcm")
    ap.add_argument("--stats", type=int, default=0,
                    help="print the parameter distribution over this many seeds (from --seeds' "
                         "first) and exit")
    args = ap.parse_args(argv)
    seeds = phantom.parse_seeds(args.seeds)
    if args.stats:
        print_stats(list(range(seeds[0], seeds[0] + args.stats)))
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required unless --stats")
    for seed in seeds:
        img, meta = generate(seed, args.height, args.width, args.facing)
        write_phantom(args.out_dir, f"{args.prefix}{seed}", img, meta, dicom=args.dicom)
    return 0


if __name__ == "__main__":
    sys.exit(main())
