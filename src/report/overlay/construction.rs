//! The construction of each of the nine parameters, drawn as `measure::cervical` defines it, in
//! the colour of the parameter's row in the panel, with a short tag naming it.

use super::draw::{Colour, Pen};
use super::{parameter_colour, Points, Style, OUTLINE, REFERENCE};
use crate::measure::{AI, AS, C2, C6, C7, DENS, OCC, PI, PNS, PS, T1_AS, T1_PS};

/// A name to draw after all lines, so that no line crosses it.
pub(super) struct Tag {
    pub at: [f64; 2],
    pub text: &'static str,
    pub colour: Colour,
}

pub(super) fn add(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

pub(super) fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

pub(super) fn scale(a: [f64; 2], factor: f64) -> [f64; 2] {
    [a[0] * factor, a[1] * factor]
}

pub(super) fn length(a: [f64; 2]) -> f64 {
    a[0].hypot(a[1])
}

pub(super) fn midpoint(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    scale(add(a, b), 0.5)
}

/// The angle of a vector in image axes (radians, 0 along +x, π/2 along +y).
fn angle(v: [f64; 2]) -> f64 {
    v[1].atan2(v[0])
}

/// The foot of the perpendicular from `p` to the line through `a` and `b`.
fn foot(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    let d = sub(b, a);
    let t = ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]) / (d[0] * d[0] + d[1] * d[1]);
    add(a, scale(d, t))
}

/// The segment `from → to` extended by `behind` × its length beyond `from` and `ahead` × its
/// length beyond `to`.
pub(super) fn extended(
    from: [f64; 2],
    to: [f64; 2],
    behind: f64,
    ahead: f64,
) -> ([f64; 2], [f64; 2]) {
    let d = sub(to, from);
    (sub(from, scale(d, behind)), add(to, scale(d, ahead)))
}

impl Style {
    /// A construction line: a thin dark edge under the colour, so that it reads on bone and on
    /// soft tissue alike.
    pub(super) fn line(
        &self,
        canvas: &mut impl Pen,
        a: [f64; 2],
        b: [f64; 2],
        colour: Colour,
        alpha: f32,
    ) {
        canvas.segment(a, b, self.line + self.outline, OUTLINE, 0.45 * alpha);
        canvas.segment(a, b, self.line, colour, alpha);
    }

    /// The part of a line beyond its landmarks: thinner and fainter than the measured part.
    pub(super) fn extension(
        &self,
        canvas: &mut impl Pen,
        a: [f64; 2],
        b: [f64; 2],
        colour: Colour,
    ) {
        canvas.segment(a, b, 0.6 * self.line, colour, 0.65);
    }

    pub(super) fn dashed(&self, canvas: &mut impl Pen, a: [f64; 2], b: [f64; 2], colour: Colour) {
        canvas.dashed(a, b, 0.7 * self.line, colour, 0.9, self.dash);
    }

    /// An endplate drawn solid between its corners and extended faintly on both sides.
    pub(super) fn endplate(
        &self,
        canvas: &mut impl Pen,
        posterior: [f64; 2],
        anterior: [f64; 2],
        colour: Colour,
    ) {
        let (back, front) = extended(posterior, anterior, 0.6, 1.6);
        self.extension(canvas, back, posterior, colour);
        self.extension(canvas, anterior, front, colour);
        self.line(canvas, posterior, anterior, colour, 1.0);
    }
}

/// Draws every construction whose landmarks are known; returns the tags that name them.
pub(super) fn draw(canvas: &mut impl Pen, style: &Style, points: &Points) -> Vec<Tag> {
    let mut tags = Vec::new();
    let at = |index: usize| points.at(index);
    let colour = |name: &str| parameter_colour(name);

    // C0–C2: the McGregor line (OCC–PNS), extended far enough to hold the foot of the RJD
    // perpendicular, against the C2 inferior endplate (the shared reference of both Cobb
    // angles and of C0–C2).
    let c2_inferior = at(C2 + PI).zip(at(C2 + AI));
    if let (Some(pns), Some(occ)) = (at(PNS), at(OCC)) {
        if length(sub(pns, occ)) > 0.0 {
            let (mut back, mut front) = extended(occ, pns, 0.35, 0.35);
            if let Some((pi, ai)) = c2_inferior {
                // Reach the foot of the perpendicular from the C2 inferior endplate midpoint.
                let f = foot(midpoint(pi, ai), occ, pns);
                let d = sub(pns, occ);
                let t =
                    ((f[0] - occ[0]) * d[0] + (f[1] - occ[1]) * d[1]) / (d[0] * d[0] + d[1] * d[1]);
                if t < -0.35 {
                    back = add(occ, scale(d, t - 0.1));
                }
                if t > 1.35 {
                    front = add(occ, scale(d, t + 0.1));
                }
            }
            let mcgregor = colour("C0-C2");
            style.extension(canvas, back, occ, mcgregor);
            style.extension(canvas, pns, front, mcgregor);
            style.line(canvas, occ, pns, mcgregor, 1.0);
            tags.push(Tag {
                at: back,
                text: "McGregor (C0-C2)",
                colour: mcgregor,
            });
        }
    }
    if let Some((pi, ai)) = c2_inferior {
        style.endplate(canvas, pi, ai, REFERENCE);
        let (_, front) = extended(pi, ai, 0.6, 1.6);
        tags.push(Tag {
            at: front,
            text: "C2 inf.",
            colour: REFERENCE,
        });
    }
    // The Cobb angles: the C6 and C7 inferior endplates against C2's.
    for (vertebra, name) in [(C6, "C2-C6"), (C7, "C2-C7")] {
        if let (Some(pi), Some(ai)) = (at(vertebra + PI), at(vertebra + AI)) {
            style.endplate(canvas, pi, ai, colour(name));
            let (_, front) = extended(pi, ai, 0.6, 1.6);
            tags.push(Tag {
                at: front,
                text: name,
                colour: colour(name),
            });
        }
    }
    // The slopes: the C7 and T1 superior endplates against the horizontal through the
    // posterior corner, with the arc between them.
    for (posterior, anterior, name) in [(C7 + PS, C7 + AS, "C7 slope"), (T1_PS, T1_AS, "T1 slope")]
    {
        let (Some(ps), Some(as_)) = (at(posterior), at(anterior)) else {
            continue;
        };
        let span = length(sub(as_, ps));
        if span <= 0.0 {
            continue;
        }
        let c = colour(name);
        let forward = if as_[0] >= ps[0] { 1.0 } else { -1.0 };
        let horizontal_end = [ps[0] + forward * 2.2 * span, ps[1]];
        style.dashed(canvas, ps, horizontal_end, c);
        let (_, front) = extended(ps, as_, 0.0, 1.2);
        style.extension(canvas, as_, front, c);
        style.line(canvas, ps, as_, c, 1.0);
        canvas.arc(
            ps,
            1.6 * span,
            (angle([forward, 0.0]), angle(sub(as_, ps))),
            0.7 * style.line,
            c,
            0.9,
        );
        tags.push(Tag {
            at: horizontal_end,
            text: name,
            colour: c,
        });
    }
    // RJD: the perpendicular from the C2 inferior endplate midpoint to the McGregor line.
    if let (Some((pi, ai)), Some(pns), Some(occ)) = (c2_inferior, at(PNS), at(OCC)) {
        if length(sub(pns, occ)) > 0.0 {
            let c = colour("RJD");
            let m = midpoint(pi, ai);
            let f = foot(m, occ, pns);
            style.line(canvas, m, f, c, 1.0);
            canvas.disc(m, 0.8 * style.point_radius, c, 1.0);
            // The right-angle mark at the foot.
            let along = sub(pns, occ);
            let along = scale(along, 1.0 / length(along));
            let up = sub(m, f);
            if length(up) > 0.0 {
                let up = scale(up, 1.0 / length(up));
                let size = 2.0 * style.point_radius;
                let corner = add(add(f, scale(along, size)), scale(up, size));
                canvas.segment(add(f, scale(along, size)), corner, 0.5 * style.line, c, 1.0);
                canvas.segment(add(f, scale(up, size)), corner, 0.5 * style.line, c, 1.0);
            }
            tags.push(Tag {
                at: midpoint(m, f),
                text: "RJD",
                colour: c,
            });
        }
    }
    // CT: the ray from the T1 superior endplate midpoint to DENS against the vertical.
    if let (Some(ps), Some(as_), Some(dens)) = (at(T1_PS), at(T1_AS), at(DENS)) {
        let c = colour("CT");
        let base = midpoint(ps, as_);
        let ray = sub(dens, base);
        let reach = length(ray);
        if reach > 0.0 {
            style.dashed(canvas, base, [base[0], base[1] - reach], c);
            style.line(canvas, base, dens, c, 0.9);
            canvas.disc(base, 0.8 * style.point_radius, c, 1.0);
            canvas.arc(
                base,
                0.22 * reach,
                (angle([0.0, -1.0]), angle(ray)),
                0.7 * style.line,
                c,
                0.9,
            );
            tags.push(Tag {
                at: [base[0], base[1] - 0.5 * reach],
                text: "CT",
                colour: c,
            });
        }
    }
    // CCA: the angle at PNS between PNS→OCC and PNS→C7 centroid.
    if let (Some(pns), Some(occ), Some(c7)) = (at(PNS), at(OCC), points.centroid(C7)) {
        let c = colour("CCA");
        let to_occ = sub(occ, pns);
        let to_c7 = sub(c7, pns);
        if length(to_occ) > 0.0 && length(to_c7) > 0.0 {
            style.line(canvas, pns, c7, c, 0.9);
            canvas.disc(c7, 0.8 * style.point_radius, c, 1.0);
            let radius = 0.6 * length(to_occ).min(0.35 * length(to_c7));
            // PNS→OCC is the McGregor line: only its first stretch, past the arc, is marked.
            let stub = (1.3 * radius / length(to_occ)).min(1.0);
            canvas.segment(pns, add(pns, scale(to_occ, stub)), 0.5 * style.line, c, 0.9);
            canvas.arc(
                pns,
                radius,
                (angle(to_occ), angle(to_c7)),
                0.7 * style.line,
                c,
                0.9,
            );
            let bisector = angle(to_occ)
                + 0.5 * {
                    let mut sweep = angle(to_c7) - angle(to_occ);
                    if sweep > std::f64::consts::PI {
                        sweep -= std::f64::consts::TAU;
                    } else if sweep < -std::f64::consts::PI {
                        sweep += std::f64::consts::TAU;
                    }
                    sweep
                };
            tags.push(Tag {
                at: add(pns, scale([bisector.cos(), bisector.sin()], 1.25 * radius)),
                text: "CCA",
                colour: c,
            });
        }
    }
    // cSVA: the plumb line from the C2 centroid, the vertical through C7_ps, and the
    // horizontal between them at the level of C7_ps.
    if let (Some(c2), Some(c7_ps)) = (points.centroid(C2), at(C7 + PS)) {
        let c = colour("cSVA");
        let reach = 0.12 * (c7_ps[1] - c2[1]).abs().max(1.0);
        let top = c2[1].min(c7_ps[1]);
        let bottom = c2[1].max(c7_ps[1]) + reach;
        style.dashed(canvas, [c7_ps[0], top], [c7_ps[0], bottom], c);
        style.line(canvas, c2, [c2[0], bottom], c, 1.0);
        style.line(canvas, [c2[0], c7_ps[1]], [c7_ps[0], c7_ps[1]], c, 1.0);
        canvas.disc(c2, 0.8 * style.point_radius, c, 1.0);
        tags.push(Tag {
            at: [0.5 * (c2[0] + c7_ps[0]), c7_ps[1] + 0.6 * reach],
            text: "cSVA",
            colour: c,
        });
    }
    tags
}
