//! The whole-spine constructions (SPEC-wholespine.md, as `measure::wholespine` defines them):
//! the spinal curve through the vertebral centres, the pelvis (S1 endplate, hip axis, the PI
//! perpendicular, the PT vertical, the SS horizontal), the plumb lines of SVA and cSVA, and the
//! endplates of the thoracic and lumbar Cobb angles.

use super::construction::{add, extended, length, midpoint, scale, sub, Tag};
use super::draw::Pen;
use super::{parameter_colour, Points, Style, REFERENCE};
use crate::anatomy::wholespine::{
    C2_C, C7_C, C7_PS, CENTRE_COUNT, FH1, FH2, FIRST_CENTRE, L1_AS, L1_PS, S1_AS, S1_PS, T12_AI,
    T12_PI, T1_AS, T1_PS,
};

/// Draws every construction whose landmarks are known; returns the tags that name them.
pub(super) fn draw(canvas: &mut impl Pen, style: &Style, points: &Points) -> Vec<Tag> {
    let mut tags = Vec::new();
    let at = |index: usize| points.at(index);
    let colour = |name: &str| parameter_colour(name);

    // The spinal curve: the centres in order, C2 to L5 (a missing centre is bridged).
    let centres: Vec<[f64; 2]> = (FIRST_CENTRE..FIRST_CENTRE + CENTRE_COUNT)
        .filter_map(at)
        .collect();
    for pair in centres.windows(2) {
        style.line(canvas, pair[0], pair[1], REFERENCE, 0.7);
    }

    let s1 = at(S1_PS).zip(at(S1_AS));
    let hip_axis = at(FH1).zip(at(FH2)).map(|(a, b)| {
        style.extension(canvas, a, b, colour("PT"));
        midpoint(a, b)
    });
    if let Some((posterior, anterior)) = s1 {
        // SS: the S1 endplate against the horizontal through its posterior corner.
        style.endplate(canvas, posterior, anterior, colour("SS"));
        let width = length(sub(anterior, posterior));
        let forward = (anterior[0] - posterior[0]).signum();
        style.dashed(
            canvas,
            posterior,
            add(posterior, [forward * 1.6 * width, 0.0]),
            colour("SS"),
        );
        tags.push(Tag {
            at: add(posterior, [forward * 1.7 * width, 0.0]),
            text: "SS",
            colour: colour("SS"),
        });
    }
    if let (Some((posterior, anterior)), Some(hips)) = (s1, hip_axis) {
        let centre = midpoint(posterior, anterior);
        let to_hips = sub(hips, centre);
        let reach = length(to_hips);
        // PI: the endplate's perpendicular at its midpoint (the side of the hips) and the line
        // to the hip axis.
        let along = sub(anterior, posterior);
        let mut normal = [-along[1], along[0]];
        if normal[0] * to_hips[0] + normal[1] * to_hips[1] < 0.0 {
            normal = scale(normal, -1.0);
        }
        let normal_length = length(normal);
        if normal_length > 0.0 && reach > 0.0 {
            let foot = add(centre, scale(normal, reach / normal_length));
            style.dashed(canvas, centre, foot, colour("PI"));
            style.line(canvas, centre, hips, colour("PI"), 1.0);
            tags.push(Tag {
                at: foot,
                text: "PI",
                colour: colour("PI"),
            });
            // PT: the vertical through the hip axis, up to the endplate's height.
            style.dashed(canvas, hips, [hips[0], centre[1]], colour("PT"));
            tags.push(Tag {
                at: [hips[0], centre[1]],
                text: "PT",
                colour: colour("PT"),
            });
        }
    }
    // The plumb lines: from C7's centre down to S1's posterior corner's height (SVA), and from
    // C2's down to C7's posterior superior corner's (cSVA), with the measured offsets.
    for (top, bottom, name) in [(C7_C, S1_PS, "SVA"), (C2_C, C7_PS, "cSVA")] {
        if let (Some(top), Some(bottom)) = (at(top), at(bottom)) {
            let foot = [top[0], bottom[1]];
            style.dashed(canvas, top, foot, colour(name));
            style.line(canvas, foot, bottom, colour(name), 1.0);
            tags.push(Tag {
                at: foot,
                text: name,
                colour: colour(name),
            });
        }
    }
    // The Cobb endplates: T1 superior and T12 inferior (GTK), L1 superior against S1 (LL).
    for (posterior, anterior, name) in [
        (T1_PS, T1_AS, "GTK"),
        (T12_PI, T12_AI, "GTK"),
        (L1_PS, L1_AS, "LL"),
    ] {
        if let (Some(posterior), Some(anterior)) = (at(posterior), at(anterior)) {
            style.endplate(canvas, posterior, anterior, colour(name));
            let (_, front) = extended(posterior, anterior, 0.6, 1.6);
            tags.push(Tag {
                at: front,
                text: name,
                colour: colour(name),
            });
        }
    }
    tags
}
