"""Synthetic lateral cervical radiographs with exact landmarks (sagitta's training/eval phantoms).

    python3 phantom.py OUT_DIR --seeds 0:10 [--height 1200] [--dicom]

Every phantom is a deterministic function of its seed (numpy PCG64). The anatomy is built in
millimetres in a canonical frame (patient facing +x, superior -y, image y down), then mapped to
pixels by a similarity transform (pixel spacing, rotation, translation, optional mirror for a
patient facing left). The 29 landmarks are vertices of the drawn shapes, so they are exact by
construction; they are reported in original pixels with the centre of the top-left pixel at (0, 0),
x to the right, y down (SPEC-cervical.md), in the SPEC's order:

    C2_as C2_ps C2_pi C2_ai C3_as .. C7_ai T1_as T1_ps PNS OCC DENS

Output per phantom: `<stem>.png` (16-bit grey, MONOCHROME2: bone bright) and `<stem>.json`
{"image", "width", "height", "pixel_spacing_mm": [row, col], "seed", "landmarks": {name: [x, y]},
"facing": "left"|"right", "generator"}; optionally `<stem>.dcm` (see `write_dicom`).

Modelled: C2 (body + dens) to T1 bodies with cortical rims, discs (narrowed at random),
anterior osteophytes, pedicles, articular pillars with oblique facets, laminae and spinous
processes, C1 arches, skull base (occipital squama with OCC at its lowest point, clivus,
mastoid/petrous block, hard palate ending at PNS, maxillary teeth, mandible), cranial vault, neck
soft tissue, airway, shoulders partly hiding C7/T1, anterior cervical plates with screws; lordosis
to kyphosis, head flexion/extension (C0-C2), rotation, translation, facing left/right, exposure,
contrast/gamma, quantum + electronic noise, blur, heel-effect gradient, collimation borders and
black margins.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref.anatomy.cervical import LANDMARKS  # noqa: E402  (pure data, no torch)

GENERATOR_VERSION = "sagitta-phantom-v1"


# ----------------------------------------------------------------------------------------------
# Signed distances (positive inside), evaluated on mm grids X, Y
# ----------------------------------------------------------------------------------------------

def _poly_sd(X, Y, verts):
    """Convex polygon: min over edges of the signed distance to the edge line (positive inside)."""
    v = np.asarray(verts, dtype=np.float64)
    area = 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
    if area < 0:
        v = v[::-1]
    sd = None
    n = len(v)
    for i in range(n):
        x0, y0 = v[i]
        x1, y1 = v[(i + 1) % n]
        ex, ey = x1 - x0, y1 - y0
        L = math.hypot(ex, ey) + 1e-12
        # interior is to the left of a counter-clockwise edge (in x-right, y-up math terms; the
        # sign of the area above is computed in the same terms, so this is consistent)
        d = ((X - x0) * (-ey) + (Y - y0) * ex) / L
        sd = d if sd is None else np.minimum(sd, d)
    return sd


def _capsule_sd(X, Y, a, b, r):
    ax, ay = a
    bx, by = b
    ex, ey = bx - ax, by - ay
    L2 = ex * ex + ey * ey + 1e-12
    t = np.clip(((X - ax) * ex + (Y - ay) * ey) / L2, 0.0, 1.0)
    dx = X - (ax + t * ex)
    dy = Y - (ay + t * ey)
    return r - np.sqrt(dx * dx + dy * dy)


def _ellipse_sd(X, Y, c, a, b, ang=0.0):
    ca, sa = math.cos(ang), math.sin(ang)
    dx, dy = X - c[0], Y - c[1]
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    return (1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * min(a, b)


# ----------------------------------------------------------------------------------------------
# Renderer: shapes in mm, accumulated into an attenuation image in pixels
# ----------------------------------------------------------------------------------------------

class _Canvas:
    def __init__(self, h, w, M, t, factor=1):
        """Pixel p = M @ mm + t. factor > 1 renders on a coarser grid (low-frequency layers)."""
        self.h, self.w, self.f = h, w, factor
        self.M = M
        self.t = t
        self.Minv = np.linalg.inv(M)
        self.px_mm = 1.0 / math.sqrt(abs(np.linalg.det(M)))  # mm per (full-res) pixel
        hh, ww = -(-h // factor), -(-w // factor)
        self.att = np.zeros((hh, ww), np.float32)
        # pixel-centre coordinates of the (possibly coarse) grid, in full-res pixels
        self.js = (np.arange(ww) * factor + (factor - 1) / 2.0)
        self.is_ = (np.arange(hh) * factor + (factor - 1) / 2.0)

    def _grid(self, bbox_mm, pad_mm):
        (x0, y0), (x1, y1) = bbox_mm
        x0 -= pad_mm
        y0 -= pad_mm
        x1 += pad_mm
        y1 += pad_mm
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) @ self.M.T + self.t
        f = self.f
        j0 = max(int(math.floor(corners[:, 0].min() / f)) - 1, 0)
        j1 = min(int(math.ceil(corners[:, 0].max() / f)) + 2, self.att.shape[1])
        i0 = max(int(math.floor(corners[:, 1].min() / f)) - 1, 0)
        i1 = min(int(math.ceil(corners[:, 1].max() / f)) + 2, self.att.shape[0])
        if j0 >= j1 or i0 >= i1:
            return None
        jj = self.js[j0:j1] - self.t[0]
        ii = self.is_[i0:i1] - self.t[1]
        X = self.Minv[0, 0] * jj[None, :] + self.Minv[0, 1] * ii[:, None]
        Y = self.Minv[1, 0] * jj[None, :] + self.Minv[1, 1] * ii[:, None]
        return (slice(i0, i1), slice(j0, j1)), X, Y

    def add(self, pts_mm, sd_fn, profile, pad_mm=2.0):
        """Evaluate sd_fn(X, Y) on the bbox of pts_mm and add profile(sd) to the attenuation."""
        p = np.asarray(pts_mm, dtype=np.float64).reshape(-1, 2)
        g = self._grid((p.min(0), p.max(0)), pad_mm)
        if g is None:
            return
        sl, X, Y = g
        sd = sd_fn(X, Y)
        self.att[sl] += profile(sd).astype(np.float32)


def _bone(inner, rim, cort_mm, px_mm):
    """Cancellous `inner` plus a cortical rim of width ~cort_mm, antialiased edge."""
    edge = max(px_mm, 0.25)

    def f(sd):
        cov = np.clip(sd / edge + 0.5, 0.0, 1.0)
        s = np.maximum(sd, 0.0)
        return cov * (inner + rim * np.exp(-s / cort_mm))
    return f


def _solid(val, px_mm, soft_mm=0.0):
    edge = max(px_mm, 0.25) + soft_mm

    def f(sd):
        return val * np.clip(sd / edge + 0.5, 0.0, 1.0)
    return f


def _cylinder(val, radius):
    """Projected thickness of a round body: sqrt profile, normalized to `val` at the centre."""
    def f(sd):
        s = np.clip(sd, 0.0, None)
        return val * np.sqrt(np.clip(s * (2 * radius - s), 0.0, None)) / radius
    return f


# ----------------------------------------------------------------------------------------------
# Anatomy
# ----------------------------------------------------------------------------------------------

def _rot(u):
    """Local frame from the unit endplate direction u (posterior->anterior): n = superior normal."""
    return np.array([u[1], -u[0]])


def _dir(slope_deg):
    a = math.radians(slope_deg)
    return np.array([math.cos(a), math.sin(a)])


def build_anatomy(rng: np.random.Generator, canal: dict | None = None) -> dict:
    """Landmarks and shape parameters in canonical mm (facing +x, y down).

    `canal` (a spinal-canal spec, see `canal_geometry`) may set the C2-C7 Cobb angle ("cobb",
    degrees, negative = kyphosis) and add a slip to a vertebra over the one below ("slip": {name:
    fraction of the lower body's depth, + anterior}); the random draws stay those of the seed."""
    g = rng.uniform
    size = g(0.88, 1.12)                               # patient size factor
    # Sagittal alignment: C2-C7 Cobb from kyphosis to strong lordosis
    t1_slope = float(np.clip(rng.normal(25.0, 7.0), 8.0, 45.0))
    cobb = float(np.clip(t1_slope - rng.normal(14.0, 9.0), -22.0, 45.0))
    if canal is not None and canal.get("cobb") is not None:
        cobb = float(canal["cobb"])

    verts = []     # per vertebra C2..T1: dict with corners and frame
    # Per-level angles from T1 upward: C7-T1 disc, C7 body, ..., C2-C3 disc (C2 body last).
    n_levels = 6   # discs C2-C3 .. C7-T1
    w = rng.dirichlet(np.full(2 * n_levels - 1, 4.0))
    # angles[k]: change of slope across element k going up (discs and bodies C7..C3)
    angles = cobb * w
    depths = {"C2": 15.5, "C3": 15.3, "C4": 15.6, "C5": 16.0, "C6": 16.6, "C7": 17.0, "T1": 18.5}
    heights = {"C2": 16.5, "C3": 13.5, "C4": 13.3, "C5": 13.0, "C6": 13.2, "C7": 14.2, "T1": 16.0}
    names = ["T1", "C7", "C6", "C5", "C4", "C3", "C2"]

    # T1 superior endplate
    s = t1_slope
    u = _dir(s)
    t1_ps = np.array([0.0, 0.0])
    d_t1 = depths["T1"] * size * g(0.93, 1.07)
    t1_as = t1_ps + d_t1 * u
    h_t1 = heights["T1"] * size
    n = _rot(u)
    t1 = {"name": "T1", "ps": t1_ps, "as": t1_as, "pi": t1_ps - h_t1 * n,
          "ai": t1_as - h_t1 * n + 0.0, "u": u, "depth": d_t1, "h": h_t1}
    verts.append(t1)
    below = t1
    narrowed = rng.random(n_levels) < 0.18
    for k, name in enumerate(names[1:]):
        # disc between `below` (superior endplate) and this vertebra (inferior endplate)
        disc_ang = angles[2 * k]
        s_inf = s - disc_ang
        u_inf = _dir(s_inf)
        n_sup = _rot(_dir(s))
        dp = g(3.2, 4.5) * size
        if narrowed[k]:
            dp *= g(0.25, 0.6)
        listhesis = rng.normal(0.0, 0.6) * size
        if canal is not None:
            listhesis += canal.get("slip", {}).get(name, 0.0) * below["depth"]
        pi = below["ps"] + dp * n_sup + listhesis * _dir(s)
        depth = depths[name] * size * g(0.93, 1.07)
        ai = pi + depth * u_inf
        # the disc must keep a positive anterior height
        da = float(np.dot(ai - below["as"], n_sup))
        if da < 1.0:
            shift = (1.0 - da) + (0.0 if not narrowed[k] else 0.0)
            pi = pi + shift * n_sup
            ai = ai + shift * n_sup
        n_inf = _rot(u_inf)
        hp = heights[name] * size * g(0.94, 1.06)
        body_ang = angles[2 * k + 1] if k < n_levels - 1 else rng.normal(0.0, 2.0)
        s_sup = s_inf - body_ang
        u_sup = _dir(s_sup)
        ps = pi + hp * n_inf + rng.normal(0.0, 0.4) * u_inf
        depth_sup = depth * g(0.95, 1.03)
        as_ = ps + depth_sup * u_sup
        # keep the anterior height plausible (wedged bodies in kyphosis/lordosis)
        ha = float(np.dot(as_ - ai, n_inf))
        if ha < 0.7 * hp:
            as_ = as_ + (0.7 * hp - ha) * n_inf
        v = {"name": name, "pi": pi, "ai": ai, "ps": ps, "as": as_, "u": u_inf, "u_sup": u_sup,
             "depth": depth, "h": hp, "narrowed_below": bool(narrowed[k])}
        verts.append(v)
        below = v
        s = float(math.degrees(math.atan2(*(as_ - ps)[::-1])))
    verts = verts[::-1]            # C2 .. T1
    c2 = verts[0]

    # Dens: from the C2 superior endplate, tilted posteriorly
    u2 = c2["u_sup"]
    n2 = _rot(u2)
    dens_len = g(12.0, 16.0) * size
    dens_r = g(4.2, 5.2) * size
    tilt = math.radians(g(5.0, 20.0))            # posterior tilt of the dens
    ddir = n2 * math.cos(tilt) - u2 * math.sin(tilt)
    base = c2["ps"] + (0.52 + g(-0.05, 0.05)) * (c2["as"] - c2["ps"])
    dens_top_c = base + ddir * dens_len
    dens_tip = dens_top_c + ddir * dens_r

    # Skull: McGregor line near the dens tip
    c02 = float(np.clip(rng.normal(16.0, 8.0), -6.0, 42.0))    # C0-C2 (head flexion/extension)
    s2_inf = math.degrees(math.atan2(*(c2["ai"] - c2["pi"])[::-1]))
    s_m = s2_inf - c02
    m = _dir(s_m)                 # posterior -> anterior along McGregor
    nm = _rot(m)                  # superior
    gap = g(-3.0, 7.0)            # McGregor line above the dens tip by `gap` mm
    Q = dens_tip + nm * gap
    a_p = g(22.0, 34.0) * size
    b_o = g(32.0, 46.0) * size
    pns = Q + m * a_p
    occ = Q - m * b_o

    lm = []
    for v in verts[:6]:
        lm += [v["as"], v["ps"], v["pi"], v["ai"]]
    lm += [verts[6]["as"], verts[6]["ps"], pns, occ, dens_tip]
    return {"verts": verts, "landmarks": np.array(lm), "dens": (base, dens_top_c, dens_r),
            "ddir": ddir, "head": (Q, m, nm, a_p, b_o), "size": size, "cobb": cobb}


def canal_geometry(A: dict, spec: dict) -> dict:
    """The spinal canal drawn to scale (opt-in; `generate(..., canal=spec)`), in canonical mm.

    `spec` gives, per vertebra C2..T1, the Torg-Pavlov ratio ("ratio": {name: canal / body}) and
    optionally posterior osteophytes ("osteophytes": [[name, "pi"|"ps", length]]) and ossified
    posterior longitudinal ligament ("opll": [[name, thickness]], bridging the discs between
    consecutive listed bodies when "opll_continuous"), lengths as fractions of that body's AP
    width. Per vertebra: body AP width W and canal D = ratio * W, both at mid-height (posterior
    wall midpoint to anterior wall midpoint, and to the spinolaminar line, along the inferior
    endplate's direction); the effective canal is D less the deepest intrusion (osteophyte or
    OPLL) behind the body. Per disc (upper over lower): the slip of the upper body's
    posterior-inferior corner along the lower's superior endplate (+ anterior). Also the C2-C7
    angle between the inferior endplates of C2 and C7 (+ lordosis). Returns the drawing
    ("levels": {name: {"spinolaminar_u", "intrusions"}}) and the measurements ("report")."""
    verts = {v["name"]: v for v in A["verts"]}
    levels, report = {}, {"levels": {}, "discs": {}}
    for name, v in verts.items():
        u, n = v["u"], _rot(v["u"])
        mid_post, mid_ant = 0.5 * (v["pi"] + v["ps"]), 0.5 * (v["ai"] + v["as"])
        wall_u = float(np.dot(mid_post - v["pi"], u))
        body = float(np.dot(mid_ant - mid_post, u))
        canal = spec["ratio"][name] * body
        intrusions = []
        for vn, corner, frac in spec.get("osteophytes", []):
            if vn == name:
                c = v[corner]
                along = n if corner == "pi" else -n    # from the corner into the wall
                intrusions.append([c + along * 4.0, c + u * 1.5, c - u * frac * body - along])
        opll = {vn: frac for vn, frac in spec.get("opll", [])}
        if name in opll:
            t = opll[name] * body
            intrusions.append([v["pi"], v["ps"], v["ps"] - u * t, v["pi"] - u * t])
        spinolaminar_u = wall_u - canal
        deepest = min([float(np.dot(p - v["pi"], u)) for q in intrusions for p in q],
                      default=wall_u)
        effective = min(canal, deepest - spinolaminar_u)
        report["levels"][name] = {
            "body_ap_mm": body, "canal_mm": canal, "effective_canal_mm": effective,
            "torg_pavlov": canal / body, "effective_ratio": effective / body,
            "intrusion_mm": canal - effective}
        levels[name] = {"spinolaminar_u": spinolaminar_u, "intrusions": intrusions}
    names = [v["name"] for v in A["verts"]]
    for upper, lower in zip(names[:-1], names[1:]):
        U, B = verts[upper], verts[lower]
        ub = (B["as"] - B["ps"]) / np.linalg.norm(B["as"] - B["ps"])
        slip = float(np.dot(U["pi"] - B["ps"], ub))
        report["discs"][f"{upper}-{lower}"] = {"slip_mm": slip}
        if spec.get("opll_continuous") and upper in opll and lower in opll:
            t = min(opll[upper], opll[lower]) * report["levels"][lower]["body_ap_mm"]
            levels[upper]["intrusions"].append(
                [U["pi"], U["pi"] - U["u"] * t, B["ps"] - B["u"] * t, B["ps"]])

    def slope(v):
        d = v["ai"] - v["pi"]
        return math.degrees(math.atan2(d[1], d[0]))
    report["c2c7_deg"] = slope(verts["C7"]) - slope(verts["C2"])
    return {"levels": levels, "report": report}


def _render_anatomy(cv: _Canvas, lo: _Canvas, A: dict, rng: np.random.Generator):
    g = rng.uniform
    px = cv.px_mm
    verts = A["verts"]
    size = A["size"]
    bone_gain = g(0.8, 1.25)
    inner = 0.55 * bone_gain
    rim = 0.75 * bone_gain
    Q, m, nm, a_p, b_o = A["head"]

    def H(a, b):                  # head coordinates -> canonical mm
        return Q + m * a + nm * b

    # ---- low-frequency layers: neck, head, shoulders, airway (coarse grid) ----
    centres = [0.5 * (v["ps"] + v["ai"]) - 6.0 * v["u"] for v in verts]
    axis_dir = centres[-1] - centres[0]
    axis_dir /= np.linalg.norm(axis_dir)
    chain = [H(-5, 40)] + centres + [centres[-1] + axis_dir * 160.0]
    neck_r = g(52.0, 68.0) * size
    soft = g(0.9, 1.3)
    # union of capsules: compute max of sd over the chain on the whole coarse grid
    sl_all = lo._grid(((-1e4, -1e4), (1e4, 1e4)), 0.0)
    if sl_all is not None:
        _, X, Y = sl_all
        sd = None
        for a, b in zip(chain[:-1], chain[1:]):
            d = _capsule_sd(X, Y, a, b, neck_r)
            sd = d if sd is None else np.maximum(sd, d)
        lo.att += _cylinder(soft * 1.6, neck_r)(sd).astype(np.float32)
        # head
        hc = H(g(-10, 20), g(55, 75))
        hd = _ellipse_sd(X, Y, hc, 100 * size, 88 * size, math.atan2(m[1], m[0]))
        lo.att += _cylinder(soft * 2.4, 88 * size)(hd).astype(np.float32)
        # face / jaw soft tissue
        fc = H(a_p + 30, -25)
        fd = _ellipse_sd(X, Y, fc, 45 * size, 40 * size, math.atan2(m[1], m[0]))
        lo.att += _cylinder(soft * 0.9, 40 * size)(fd).astype(np.float32)
        # airway (subtractive): pharynx from nasopharynx down in front of the bodies
        aw_off = g(12.0, 22.0)
        aw_pts = [H(a_p - 5, 8)] + [v["ai"] + v["u"] * aw_off for v in verts[:-1]] + \
                 [verts[-1]["as"] + verts[-1]["u"] * (aw_off + 4) + axis_dir * 80]
        aw_r = g(4.5, 8.0)
        sd = None
        for a, b in zip(aw_pts[:-1], aw_pts[1:]):
            d = _capsule_sd(X, Y, a, b, aw_r)
            sd = d if sd is None else np.maximum(sd, d)
        lo.att -= _cylinder(soft * g(0.25, 0.45), aw_r)(sd).astype(np.float32)
        # shoulders: level relative to T1 superior endplate (partly hides C7/T1)
        t1m = 0.5 * (verts[-1]["as"] + verts[-1]["ps"])
        level = g(-28.0, 25.0)           # + = below T1 endplate
        sh_r = g(70.0, 100.0)
        for side in range(rng.integers(1, 3)):
            c = t1m + axis_dir * (level + sh_r) - verts[-1]["u"] * g(-10.0, 25.0) \
                + rng.normal(0, 6, 2)
            sd = _ellipse_sd(X, Y, c, sh_r * g(1.1, 1.6), sh_r, g(-0.3, 0.3))
            lo.att += _cylinder(soft * g(1.6, 3.0), sh_r)(sd).astype(np.float32)
            # humeral head / clavicle: a round bony density
            hc2 = c + rng.normal(0, 15, 2) - axis_dir * sh_r * 0.6
            sd = _ellipse_sd(X, Y, hc2, g(20, 28), g(20, 28))
            lo.att += _bone(0.35, 0.4, 3.0, lo.px_mm * lo.f)(sd).astype(np.float32)

    # ---- skull (full resolution) ----
    ang_m = math.atan2(m[1], m[0])
    # cranial vault shell (large ring); only its lower part is usually in view
    vc = H(g(-5, 25), g(60, 80))
    va, vb = 98 * size, 85 * size
    th = g(5.0, 8.0)
    cv.add([vc - 110, vc + 110], lambda X, Y: np.minimum(_ellipse_sd(X, Y, vc, va, vb, ang_m),
                                                         -_ellipse_sd(X, Y, vc, va - th, vb - th,
                                                                      ang_m) + 0.0),
           _bone(0.5, 0.5, 2.0, px))
    # occipital squama: ring whose lowest point (head frame) is OCC
    ra, rb = g(28, 40) * size, g(22, 32) * size
    oc = H(-b_o, rb)
    th_o = g(5.0, 8.0)
    cv.add([oc - 45, oc + 45], lambda X, Y: np.minimum(_ellipse_sd(X, Y, oc, ra, rb, ang_m),
                                                       -_ellipse_sd(X, Y, oc, ra - th_o,
                                                                    rb - th_o, ang_m)),
           _bone(0.6, 0.6, 1.5, px))
    # posterior fossa content behind the occiput: mild density inside the ring
    cv.add([oc - 45, oc + 45], lambda X, Y: _ellipse_sd(X, Y, oc, ra - th_o, rb - th_o, ang_m),
           _solid(0.15, px, 3.0))
    # mastoid / petrous block (clutter over C1/dens region)
    mc = H(g(-22, -8), g(8, 22))
    cv.add([mc - 30, mc + 30], lambda X, Y: _ellipse_sd(X, Y, mc, g(14, 20), g(9, 13),
                                                        ang_m + g(-0.5, 0.5)),
           _bone(0.45, 0.35, 3.0, px))
    # clivus: from near the basion up-anteriorly
    b0 = H(g(-2, 3), g(5, 9))
    b1 = H(g(14, 22), g(35, 45))
    cv.add([b0, b1], lambda X, Y: _capsule_sd(X, Y, b0, b1, 5.0), _bone(0.35, 0.4, 1.5, px), 6)
    # hard palate, ending posteriorly exactly at PNS (a polygon vertex)
    pl = [(0, 0), (8, 2.0), (46, 3.2), (52, -0.5), (44, -4.5), (8, -2.4)]
    ppts = [H(a_p + a, b) for a, b in pl]
    cv.add(ppts, lambda X, Y: _poly_sd(X, Y, ppts), _bone(0.45, 0.5, 1.2, px))
    # maxilla + teeth below the anterior palate
    if rng.random() < 0.9:
        tc = H(a_p + g(32, 42), g(-16, -11))
        cv.add([tc - 20, tc + 20], lambda X, Y: _ellipse_sd(X, Y, tc, 13, 10, ang_m),
               _bone(0.6, 0.6, 2.0, px))
    # mandible: ramus + body, cortical band
    cond = H(a_p - g(18, 28), g(2, 10))
    angle_pt = H(a_p - g(14, 24), -g(45, 60))
    chin = H(a_p + g(45, 60), -g(55, 70))
    for a, b in ((cond, angle_pt), (angle_pt, chin)):
        r = g(4.5, 6.5)
        cv.add([a, b], lambda X, Y, a=a, b=b, r=r: _capsule_sd(X, Y, a, b, r),
               _bone(0.25, 0.6, 1.5, px), r + 1)
    # hyoid
    if rng.random() < 0.7:
        hy = verts[2]["ai"] + verts[2]["u"] * g(20, 32) + rng.normal(0, 4, 2)
        hy2 = hy + verts[2]["u"] * g(10, 16)
        cv.add([hy, hy2], lambda X, Y: _capsule_sd(X, Y, hy, hy2, 3.0), _bone(0.3, 0.4, 1.0, px))

    # ---- C1 ----
    base, top, r = A["dens"]
    ddir = A["ddir"]
    u2 = verts[0]["u_sup"]
    c1c = top - ddir * (r * 0.3) + u2 * (r + g(2.0, 3.5) + 5.0)
    cv.add([c1c - 10, c1c + 10], lambda X, Y: _ellipse_sd(X, Y, c1c, 5.0, 7.0,
                                                          math.atan2(u2[1], u2[0])),
           _bone(0.35, 0.6, 1.5, px))
    p0 = top - u2 * (r + 12)
    p1 = top - u2 * g(38, 48) * size - ddir * g(0, 6)
    cv.add([p0, p1], lambda X, Y: _capsule_sd(X, Y, p0, p1, 3.6), _bone(0.35, 0.55, 1.3, px), 5)
    cv.add([p1 - 8, p1 + 8], lambda X, Y: _ellipse_sd(X, Y, p1, 6, 4.5,
                                                      math.atan2(u2[1], u2[0])),
           _bone(0.35, 0.55, 1.3, px))
    # C1 lateral masses over the dens (a mild density)
    lm_c = top - u2 * 2.0 - ddir * 3.0
    cv.add([lm_c - 14, lm_c + 14], lambda X, Y: _ellipse_sd(X, Y, lm_c, 11, 7,
                                                           math.atan2(u2[1], u2[0])),
           _solid(0.2, px, 1.5))

    # ---- vertebrae ----
    for idx, v in enumerate(verts):
        u = v["u"]
        n = _rot(u)
        pi = v["pi"]
        hgt = v["h"]

        def L(a, b, pi=pi, u=u, n=n):          # local (along u, along n) -> mm
            return pi + u * a + n * b
        if v["name"] == "T1":
            quad = [v["ps"], v["as"], v["ai"], v["pi"]]
        else:
            quad = [v["pi"], v["ai"], v["as"], v["ps"]]
        # concave endplates: slightly bulge inward by intersecting with ellipses is costly; keep
        # straight endplates with a cortical rim
        cv.add(quad, lambda X, Y, q=quad: _poly_sd(X, Y, q), _bone(inner, rim, 1.0, px))
        if v["name"] == "C2":
            b0 = base - ddir * 3.0
            cv.add([b0, top], lambda X, Y: _capsule_sd(X, Y, b0, top, r),
                   _bone(inner, rim, 1.0, px), r + 2)
            # dens base widening into the body
            wq = [v["ps"] + (v["as"] - v["ps"]) * 0.2, v["ps"] + (v["as"] - v["ps"]) * 0.85,
                  base + ddir * 5.0 + u2 * r, base + ddir * 5.0 - u2 * r]
            cv.add(wq, lambda X, Y, q=wq: _poly_sd(X, Y, q), _solid(inner, px))
            # anterior-inferior lip of C2
            lip = [v["ai"], v["ai"] - u * 5.0 + n * 2.0, v["ai"] - u * 1.0 - n * g(1.0, 3.0)]
            cv.add(lip, lambda X, Y, q=lip: _poly_sd(X, Y, q), _solid(rim * 0.8, px))
        # osteophytes at anterior corners
        if rng.random() < 0.22 and v["name"] != "T1":
            for corner, sgn in ((v["ai"], -1.0), (v["as"], 1.0)):
                if rng.random() < 0.6:
                    ln = g(1.5, 4.5)
                    tri = [corner - n * sgn * 1.0, corner + u * g(0.5, 2.0) + n * sgn * ln * 0.3,
                           corner - n * sgn * (4.0 + ln)]
                    tri = [corner - n * sgn * 3.5, corner + u * g(1.0, 2.5),
                           corner + u * g(0.5, 2.0) + n * sgn * ln]
                    cv.add(tri, lambda X, Y, q=tri: _poly_sd(X, Y, q), _solid(rim * 0.9, px))
        # posterior elements (offsets along u from the posterior-inferior corner)
        pw = g(10.0, 13.0) * size
        sl = g(0.45, 0.8)                       # facet obliquity
        canal = g(13.0, 17.0) * size
        if A.get("canal") is None:
            # the canal is not drawn to scale: the lamina ends `canal` + 8 mm behind the body
            ped_back, pil_front, pil_w = -5.5, -4.0, pw
            pil_back = -4.0 - pw
            lam_front, lam_back = pil_back, -canal - 8.0
            sp_start, drop = -canal - 6.0, canal * sl * 0.5
            lamina = _solid(0.22 * bone_gain, px)
        else:
            # the canal to scale: the lamina's cortical front is the spinolaminar line; the
            # pillars sit just in front of it and overlap the body when the canal is narrow
            lv = A["canal"]["levels"][v["name"]]
            lam_front = lv["spinolaminar_u"]
            pil_w = 0.75 * pw
            pil_back = lam_front + 2.0
            pil_front = pil_back + pil_w
            ped_back = min(pil_front - 1.5, -1.0)
            lam_back = lam_front - 5.0
            sp_start, drop = lam_front - 3.0, pil_w * sl + 1.0
            lamina = _bone(0.22 * bone_gain, 0.45 * bone_gain, 0.8, px)
            for q in lv["intrusions"]:
                cv.add(q, lambda X, Y, q=q: _poly_sd(X, Y, q), _solid(rim * 0.9, px))
        ped = [L(0.5, 0.45 * hgt), L(0.5, 0.8 * hgt), L(ped_back, 0.85 * hgt),
               L(ped_back, 0.4 * hgt)]
        cv.add(ped, lambda X, Y, q=ped: _poly_sd(X, Y, q), _solid(0.25 * bone_gain, px))
        pil = [L(pil_front, -2.0), L(pil_front, hgt + 3.0), L(pil_back, hgt + 3.0 - pil_w * sl),
               L(pil_back, -2.0 - pil_w * sl)]
        if v["name"] != "C2":
            cv.add(pil, lambda X, Y, q=pil: _poly_sd(X, Y, q), _bone(0.25 * bone_gain,
                                                                       0.35 * bone_gain, 1.2, px))
        else:
            cv.add(pil, lambda X, Y, q=pil: _poly_sd(X, Y, q), _solid(0.3 * bone_gain, px, 0.5))
        lam = [L(lam_front, 0.15 * hgt - pil_w * sl), L(lam_front, 0.7 * hgt - pil_w * sl),
               L(lam_back, 0.45 * hgt - drop), L(lam_back, 0.05 * hgt - drop)]
        cv.add(lam, lambda X, Y, q=lam: _poly_sd(X, Y, q), lamina)
        sp_len = {"C2": 26, "C3": 18, "C4": 18, "C5": 20, "C6": 26, "C7": 38, "T1": 40}[v["name"]]
        sp_len *= size * g(0.85, 1.15)
        sp_a = math.radians(g(10.0, 35.0))
        s0 = L(sp_start, 0.25 * hgt - drop)
        s1 = s0 - u * sp_len * math.cos(sp_a) - n * sp_len * math.sin(sp_a)
        sr = 3.5 if v["name"] in ("C2", "C7", "T1") else 2.7
        cv.add([s0, s1], lambda X, Y, a=s0, b=s1, r=sr: _capsule_sd(X, Y, a, b, r),
               _bone(0.2 * bone_gain, 0.4 * bone_gain, 1.2, px), sr + 1)
        # ribs / transverse processes near T1: some clutter
        if v["name"] in ("C7", "T1") and rng.random() < 0.6:
            tp = L(g(-2, 8), 0.5 * hgt)
            tp2 = tp - u * g(10, 25) - n * g(5, 25)
            cv.add([tp, tp2], lambda X, Y, a=tp, b=tp2: _capsule_sd(X, Y, a, b, 4.0),
                   _bone(0.15, 0.3, 1.5, px), 5)

    # ---- implants: anterior plate with screws ----
    if rng.random() < 0.14:
        k = int(rng.integers(1, 5))            # top vertebra index (C3..C6)
        span = int(rng.integers(1, 3))
        top_v, bot_v = verts[k], verts[min(k + span, 6)]
        off = g(1.0, 2.5)
        a = 0.5 * (top_v["as"] + top_v["ai"]) + top_v["u"] * off - _rot(top_v["u"]) * 0.35 * top_v["h"]
        b = 0.5 * (bot_v["as"] + bot_v["ai"]) + bot_v["u"] * off + _rot(bot_v["u"]) * 0.35 * bot_v["h"]
        if bot_v["name"] == "T1":
            b = bot_v["as"] + bot_v["u"] * off - _rot(bot_v["u"]) * 4.0
        metal = g(2.5, 5.0)
        cv.add([a, b], lambda X, Y: _capsule_sd(X, Y, a, b, 1.4), _solid(metal, px), 3)
        for vv in (top_v, bot_v):
            c = 0.5 * (vv["as"] + vv["ai"]) if vv["name"] != "T1" else vv["as"] - _rot(vv["u"]) * 5
            for dy in (-0.2, 0.2):
                s0 = c + vv["u"] * off + _rot(vv["u"]) * dy * vv["h"]
                s1 = s0 - vv["u"] * g(12, 15) + _rot(vv["u"]) * g(-2, 2)
                cv.add([s0, s1], lambda X, Y, a=s0, b=s1: _capsule_sd(X, Y, a, b, 1.8),
                       _solid(metal, px), 3)
        # an interbody cage between them sometimes
        if rng.random() < 0.5 and span >= 1:
            lv = verts[k]
            nb = verts[k + 1]
            cage = [lv["pi"] + lv["u"] * 3, lv["ai"] - lv["u"] * 2, nb["as"] - nb["u"] * 2,
                    nb["ps"] + nb["u"] * 3]
            cv.add(cage, lambda X, Y, q=cage: _poly_sd(X, Y, q), _solid(g(0.4, 1.2), px))


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return img
    r = int(math.ceil(3 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_px) ** 2)
    k /= k.sum()
    p = np.pad(img, ((r, r), (r, r)), mode="edge")
    out = np.zeros((p.shape[0], img.shape[1]), np.float32)
    for i, kv in enumerate(k):
        out += kv * p[:, i:i + img.shape[1]]
    out2 = np.zeros_like(img)
    for i, kv in enumerate(k):
        out2 += kv * out[i:i + img.shape[0], :]
    return out2


def _upsample(lo: np.ndarray, f: int, h: int, w: int) -> np.ndarray:
    """Bilinear upsample of a grid whose cell centres sit at full-res (k f + (f-1)/2)."""
    ys = (np.arange(h) - (f - 1) / 2.0) / f
    xs = (np.arange(w) - (f - 1) / 2.0) / f
    y0 = np.clip(np.floor(ys).astype(int), 0, lo.shape[0] - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, lo.shape[1] - 1)
    y1 = np.clip(y0 + 1, 0, lo.shape[0] - 1)
    x1 = np.clip(x0 + 1, 0, lo.shape[1] - 1)
    wy = np.clip(ys - y0, 0, 1)[:, None].astype(np.float32)
    wx = np.clip(xs - x0, 0, 1)[None, :].astype(np.float32)
    a = lo[y0][:, x0] * (1 - wx) + lo[y0][:, x1] * wx
    b = lo[y1][:, x0] * (1 - wx) + lo[y1][:, x1] * wx
    return a * (1 - wy) + b * wy


def generate(seed: int, height: int = 1200, width: int | None = None,
             facing: str | None = None, noise_scale: float = 1.0,
             bits: int | None = None, canal: dict | None = None) -> tuple[np.ndarray, dict]:
    """One phantom: (uint16 [H, W] image, metadata dict with landmarks in pixels).

    noise_scale multiplies the drawn noise amplitudes and `bits` overrides the drawn bit depth;
    neither changes the random draws, so the anatomy and landmarks stay those of the seed.
    `canal` (opt-in, see `canal_geometry`) draws the spinal canal to scale with the given
    narrowing and adds its measurements to the metadata as "canal"; without it the output is
    that of earlier versions, byte for byte."""
    rng = np.random.default_rng([seed, 20240601])
    A = build_anatomy(rng, canal)
    if canal is not None:
        A["canal"] = canal_geometry(A, canal)
    lm_mm = A["landmarks"]
    g = rng.uniform
    if width is None:
        width = int(round(height * g(0.72, 1.05)))
    fov_h = g(175.0, 250.0)
    spacing = fov_h / height
    if facing is None:
        facing = "left" if rng.random() < 0.5 else "right"
    mir = -1.0 if facing == "left" else 1.0
    theta = math.radians(rng.normal(0.0, 4.0))
    c, s = math.cos(theta), math.sin(theta)
    R = np.array([[c, -s], [s, c]])
    M = (R @ np.diag([mir, 1.0])) / spacing
    p = lm_mm @ M.T
    lo_b, hi_b = p.min(0), p.max(0)
    # translation: keep every landmark inside with a margin
    mx, my = 0.06 * width, 0.05 * height
    tx_lo, tx_hi = mx - lo_b[0], width - 1 - mx - hi_b[0]
    ty_lo, ty_hi = my - lo_b[1], height - 1 - my - hi_b[1]
    if tx_lo > tx_hi:
        tx_lo = tx_hi = 0.5 * (tx_lo + tx_hi)
    if ty_lo > ty_hi:
        ty_lo = ty_hi = 0.5 * (ty_lo + ty_hi)
    t = np.array([g(tx_lo, tx_hi), g(ty_lo, ty_hi)])
    lm_px = p + t

    cv = _Canvas(height, width, M, t, 1)
    f = max(1, int(round(height / 150)))
    lo = _Canvas(height, width, M, t, f)
    _render_anatomy(cv, lo, A, rng)
    att = cv.att + _upsample(lo.att, f, height, width)

    # ---- image formation ----
    att = np.maximum(att, 0.0)
    blur_sigma_mm = g(0.1, 0.6)
    att = _blur(att, blur_sigma_mm / spacing)
    k = g(0.55, 1.0)
    sig = 1.0 - np.exp(-k * att)                     # 0 (air) .. ~1 (dense)
    gamma = g(0.7, 1.5)
    sig = np.clip(sig, 0, 1) ** gamma
    # heel effect / uneven exposure
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    grad = 1.0 + g(-0.12, 0.12) * xx + g(-0.12, 0.12) * yy
    sig = sig * grad
    # noise: quantum (signal dependent) + electronic
    q = g(0.005, 0.03)
    e = g(0.002, 0.015)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    sig = sig + noise * ((q * np.sqrt(np.clip(sig, 0, None)) + e) * noise_scale)
    if rng.random() < 0.5:                           # correlated noise
        sig = _blur(sig, g(0.5, 1.0))
    lo_v, hi_v = g(0.02, 0.12), g(0.7, 1.0)
    out = lo_v + (hi_v - lo_v) * np.clip(sig, 0, 1.2)

    # collimation: outside a rotated rectangle the field is unexposed (bright) or shuttered (dark)
    if rng.random() < 0.55:
        ang = math.radians(rng.normal(0, 2.0))
        ca, sa = math.cos(ang), math.sin(ang)
        cx, cy = width / 2 + g(-0.05, 0.05) * width, height / 2 + g(-0.05, 0.05) * height
        jj = np.arange(width, dtype=np.float32)[None, :] - cx
        ii = np.arange(height, dtype=np.float32)[:, None] - cy
        uu = jj * ca + ii * sa
        vv = -jj * sa + ii * ca
        # the field must contain every landmark (margin 2%)
        du = (lm_px[:, 0] - cx) * ca + (lm_px[:, 1] - cy) * sa
        dv = -(lm_px[:, 0] - cx) * sa + (lm_px[:, 1] - cy) * ca
        hw = max(np.abs(du).max() + 0.03 * width, g(0.35, 0.5) * width)
        hh = max(np.abs(dv).max() + 0.03 * height, g(0.38, 0.5) * height)
        inside = (np.abs(uu) < hw) & (np.abs(vv) < hh)
        level = g(0.85, 1.0) if rng.random() < 0.6 else g(0.0, 0.05)
        out = np.where(inside, out, level + 0.01 * noise_scale * noise)
    # black margins (padding) on some sides
    if rng.random() < 0.3:
        for side in range(4):
            if rng.random() < 0.4:
                nb = int(g(0.01, 0.06) * (width if side < 2 else height))
                nb = min(nb, int(0.9 * (lm_px[:, 0].min() if side == 0 else
                                        width - lm_px[:, 0].max() if side == 1 else
                                        lm_px[:, 1].min() if side == 2 else
                                        height - lm_px[:, 1].max())))
                if nb <= 0:
                    continue
                if side == 0:
                    out[:, :nb] = 0
                elif side == 1:
                    out[:, width - nb:] = 0
                elif side == 2:
                    out[:nb, :] = 0
                else:
                    out[height - nb:, :] = 0
    bits_drawn = 12 if rng.random() < 0.6 else 16
    bits = bits_drawn if bits is None else int(bits)
    vmax = (1 << bits) - 1
    img = np.clip(out, 0, 1) * vmax
    img = np.round(img).astype(np.uint16)

    meta = {
        "image": None,
        "width": int(width),
        "height": int(height),
        "pixel_spacing_mm": [float(spacing), float(spacing)],
        "seed": int(seed),
        "landmarks": {nm_: [float(x), float(y)] for nm_, (x, y) in zip(LANDMARKS, lm_px)},
        "facing": facing,
        "generator": GENERATOR_VERSION,
        "bits_stored": bits,
    }
    if canal is not None:
        meta["canal"] = A["canal"]["report"]
    return img, meta


# ----------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------

def write_png16(path: str, img: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(img.astype(np.uint16)).save(path, optimize=True)


def write_dicom(path: str, img: np.ndarray, meta: dict, body_part: str = "CSPINE",
                comment: str = "Synthetic phantom (sagitta tools/phantom.py); not a patient image",
                ) -> None:
    """MONOCHROME2, 16 bits allocated, uncompressed explicit VR little endian, PixelSpacing set."""
    import datetime

    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"   # Digital X-Ray, presentation
    uid_seed = f"sagitta-phantom-{meta['seed']}"
    fm.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed, "sop"])
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = generate_uid(entropy_srcs=["sagitta-phantom-impl"])
    ds = FileDataset(path, {}, file_meta=fm, preamble=b"\0" * 128)
    ds.SOPClassUID = fm.MediaStorageSOPClassUID
    ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.PatientName = "PHANTOM^SYNTHETIC"
    ds.PatientID = f"PHANTOM{meta['seed']}"
    ds.Modality = "DX"
    ds.BodyPartExamined = body_part
    ds.ViewPosition = "LL"
    ds.StudyDate = "20240101"
    ds.ImageComments = comment
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated = 16
    bits = int(meta.get("bits_stored", 16))
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    sp = meta["pixel_spacing_mm"]
    ds.PixelSpacing = [f"{sp[0]:.6f}", f"{sp[1]:.6f}"]
    ds.ImagerPixelSpacing = [f"{sp[0]:.6f}", f"{sp[1]:.6f}"]
    ds.PixelData = np.ascontiguousarray(img.astype("<u2")).tobytes()
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    del datetime
    ds.save_as(path, enforce_file_format=True)


def write_phantom(out_dir: str, stem: str, img: np.ndarray, meta: dict, dicom: bool = False,
                  png: bool = True, **dicom_kw) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta)
    if png:
        meta["image"] = f"{stem}.png"
        write_png16(os.path.join(out_dir, f"{stem}.png"), img)
    if dicom:
        write_dicom(os.path.join(out_dir, f"{stem}.dcm"), img, meta, **dicom_kw)
        if not png:
            meta["image"] = f"{stem}.dcm"
    with open(os.path.join(out_dir, f"{stem}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def parse_seeds(text: str) -> list[int]:
    """'0:10' -> 0..9; '3,5,9' -> [3, 5, 9]."""
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",") if s]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--seeds", default="0:4", help="'A:B' (B excluded) or a comma list")
    ap.add_argument("--height", type=int, default=1200)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--facing", choices=["left", "right"], default=None)
    ap.add_argument("--prefix", default="phantom_")
    ap.add_argument("--dicom", action="store_true", help="also write <stem>.dcm")
    ap.add_argument("--overlay", action="store_true", help="also write an 8-bit overlay PNG")
    args = ap.parse_args(argv)
    for seed in parse_seeds(args.seeds):
        img, meta = generate(seed, args.height, args.width, args.facing)
        stem = f"{args.prefix}{seed:06d}"
        write_phantom(args.out_dir, stem, img, meta, dicom=args.dicom)
        if args.overlay:
            save_overlay(os.path.join(args.out_dir, f"{stem}_overlay.png"), img, meta)
    return 0


def save_overlay(path: str, img: np.ndarray, meta: dict, pred: dict | None = None) -> None:
    """8-bit RGB view with ground-truth landmarks (green) and optional predictions (red)."""
    from PIL import Image, ImageDraw
    a = img.astype(np.float32)
    a = (a - a.min()) / max(a.max() - a.min(), 1.0) * 255
    im = Image.fromarray(a.astype(np.uint8)).convert("RGB")
    d = ImageDraw.Draw(im)
    r = max(2, img.shape[0] // 300)
    for name, (x, y) in meta["landmarks"].items():
        col = (0, 255, 0) if name not in ("PNS", "OCC", "DENS") else (0, 200, 255)
        d.ellipse([x - r, y - r, x + r, y + r], outline=col)
    pts = meta["landmarks"]
    d.line([tuple(pts["PNS"]), tuple(pts["OCC"])], fill=(0, 200, 255))
    if pred:
        for name, (x, y) in pred.items():
            d.line([x - r, y, x + r, y], fill=(255, 0, 0))
            d.line([x, y - r, x, y + r], fill=(255, 0, 0))
    im.save(path)


if __name__ == "__main__":
    sys.exit(main())
