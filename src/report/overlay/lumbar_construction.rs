//! The lumbar constructions (SPEC-lumbar.md, as `measure::lumbar` defines them): each present
//! level's crop box and name, its corners by confidence, the L1 superior, L5 inferior and S1
//! superior endplates of the two lordosis angles, and the horizontal of the sacral slope.

use super::construction::{add, extended, length, sub, Tag};
use super::draw::Pen;
use super::text::{Face, TextStyle};
use super::{draw_point, finite_point, parameter_colour, Label, Style, REFERENCE, TEXT};
use crate::report::LumbarRecord;

/// What the lumbar block put on the image: the tags naming its constructions, the level names,
/// and where its corners are (for the panel and the labels to keep clear of).
pub(super) struct Drawn {
    pub tags: Vec<Tag>,
    pub labels: Vec<Label>,
    pub points: Vec<[f64; 2]>,
}

pub(super) fn draw(canvas: &mut impl Pen, style: &Style, record: &LumbarRecord) -> Drawn {
    let mut drawn = Drawn {
        tags: Vec::new(),
        labels: Vec::new(),
        points: Vec::new(),
    };
    let corner = |name: String| {
        record
            .landmarks
            .iter()
            .find(|landmark| landmark.name == name)
            .and_then(finite_point)
    };
    let name_style = TextStyle::new(Face::Bold, style.label_size * 1.1);
    for level in record.levels.iter().filter(|level| level.present) {
        let Some([x0, y0, x1, y1]) = level.crop_box.map(|b| b.map(f64::from)) else {
            continue;
        };
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            continue;
        }
        for (a, b) in [
            ([x0, y0], [x1, y0]),
            ([x1, y0], [x1, y1]),
            ([x1, y1], [x0, y1]),
            ([x0, y1], [x0, y0]),
        ] {
            canvas.dashed(a, b, 0.5 * style.line, REFERENCE, 0.6, style.dash);
        }
        drawn.labels.push(Label {
            at: [x0, 0.5 * (y0 + y1)],
            text: level.name.to_string(),
            style: name_style,
            colour: TEXT,
        });
    }
    // The endplates the angles read, posterior to anterior.
    let endplates = [("L1", "as", "ps", "L1-L5"), ("L5", "ai", "pi", "L1-L5")];
    for (level, front, back, name) in endplates {
        let ends = corner(format!("{level}_{back}")).zip(corner(format!("{level}_{front}")));
        if let Some((posterior, anterior)) = ends {
            style.endplate(canvas, posterior, anterior, parameter_colour(name));
            let (_, tip) = extended(posterior, anterior, 0.6, 1.6);
            drawn.tags.push(Tag {
                at: tip,
                text: if level == "L1" { "L1" } else { "L5" },
                colour: parameter_colour(name),
            });
        }
    }
    if let Some((posterior, anterior)) = corner("S1_ps".into()).zip(corner("S1_as".into())) {
        // L1–S1 and SS read the S1 superior endplate; SS against the horizontal through its
        // posterior corner.
        style.endplate(canvas, posterior, anterior, parameter_colour("L1-S1"));
        let width = length(sub(anterior, posterior));
        let forward = (anterior[0] - posterior[0]).signum();
        style.dashed(
            canvas,
            posterior,
            add(posterior, [forward * 1.6 * width, 0.0]),
            parameter_colour("SS"),
        );
        drawn.tags.push(Tag {
            at: add(posterior, [forward * 1.7 * width, 0.0]),
            text: "SS",
            colour: parameter_colour("SS"),
        });
    }
    let named: Vec<&str> = record
        .findings
        .iter()
        .flat_map(|finding| finding.landmarks.iter().copied())
        .collect();
    for landmark in &record.landmarks {
        if let Some(point) = finite_point(landmark) {
            draw_point(
                canvas,
                style,
                point,
                landmark.confidence,
                named.contains(&landmark.name),
            );
            drawn.points.push(point);
        }
    }
    drawn
}
