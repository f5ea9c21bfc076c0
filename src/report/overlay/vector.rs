//! The overlay as vector shapes and texts, for a viewer to draw over the original pixels (the
//! DICOM presentation state): the same constructions, landmarks, labels and panel as the PNG,
//! from the same drawing code, in image coordinates (pixel centres at integers).

use super::draw::{arc_points, dashes, Colour, Pen};
use super::{confidence_colour, draw_shapes, panel, parameter_colour, Style, OUTLINE};
use super::{FINDING_MARK, REFERENCE};
use crate::report::ImageRecord;

/// A shape in image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Polyline(Vec<[f64; 2]>),
    Circle {
        centre: [f64; 2],
        radius: f64,
        filled: bool,
    },
}

/// A shape, the colour the PNG draws it in, and what it belongs to: a parameter's
/// construction (named by the parameters drawn in that colour), the reference endplate, the
/// landmarks of one confidence class, or the marks of the quality findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Graphic {
    pub shape: Shape,
    pub colour: Colour,
    pub layer: String,
}

/// A text on the image, centred on `at`, `size` pixels high.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub at: [f64; 2],
    pub text: String,
    pub colour: Colour,
    pub width: f64,
    pub size: f64,
}

/// Everything the overlay shows, as a viewer would draw it itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Annotations {
    pub graphics: Vec<Graphic>,
    /// Landmark names, vertebra levels and construction tags, on the image.
    pub notes: Vec<Note>,
    /// The panel's lines (model, values with their status, reasons, warnings, legend).
    pub panel: Vec<(String, Colour)>,
    /// "NOT FOR CLINICAL USE" and why, when a model's metadata says so.
    pub banner: Option<String>,
}

/// Records what the overlay draws. The dark halos under lines and points only keep them
/// readable on a raster and are left out.
#[derive(Default)]
struct Recorder {
    graphics: Vec<Graphic>,
}

impl Recorder {
    fn push(&mut self, shape: Shape, colour: Colour) {
        if colour != OUTLINE {
            self.graphics.push(Graphic {
                shape,
                colour,
                layer: String::new(),
            });
        }
    }
}

impl Pen for Recorder {
    fn segment(&mut self, a: [f64; 2], b: [f64; 2], _: f64, colour: Colour, _: f32) {
        if a.iter().chain(&b).all(|v| v.is_finite()) {
            self.push(Shape::Polyline(vec![a, b]), colour);
        }
    }

    fn dashed(&mut self, a: [f64; 2], b: [f64; 2], _: f64, colour: Colour, _: f32, dash: f64) {
        for (from, to) in dashes(a, b, dash) {
            self.push(Shape::Polyline(vec![from, to]), colour);
        }
    }

    fn disc(&mut self, centre: [f64; 2], radius: f64, colour: Colour, _: f32) {
        self.push(
            Shape::Circle {
                centre,
                radius,
                filled: true,
            },
            colour,
        );
    }

    fn ring(&mut self, centre: [f64; 2], radius: f64, _: f64, colour: Colour, _: f32) {
        self.push(
            Shape::Circle {
                centre,
                radius,
                filled: false,
            },
            colour,
        );
    }

    fn arc(
        &mut self,
        centre: [f64; 2],
        radius: f64,
        angles: (f64, f64),
        _: f64,
        colour: Colour,
        _: f32,
    ) {
        if let Some(points) = arc_points(centre, radius, angles) {
            self.push(Shape::Polyline(points), colour);
        }
    }
}

/// The overlay of `record` as vector annotations, sized for its image.
pub fn annotations(record: &ImageRecord) -> Annotations {
    let style = Style::for_image(record.width, record.height);
    let mut recorder = Recorder::default();
    let drawn = draw_shapes(&mut recorder, &style, record);
    let notes = drawn
        .labels
        .into_iter()
        .filter(|label| label.at.iter().all(|v| v.is_finite()))
        .map(|label| Note {
            at: label.at,
            width: label.style.width(&label.text),
            size: label.style.height(),
            text: label.text,
            colour: label.colour,
        })
        .collect();
    let mut graphics = recorder.graphics;
    for graphic in &mut graphics {
        graphic.layer = layer_name(graphic.colour, record);
    }
    Annotations {
        graphics,
        notes,
        panel: panel::plain_lines(record),
        banner: panel::banner_text(record).map(|(message, detail)| format!("{message}{detail}")),
    }
}

/// What is drawn in `colour` for this record: the parameters of the models that ran whose
/// construction has that colour (joined by ", "), else the landmark or reference class.
fn layer_name(colour: Colour, record: &ImageRecord) -> String {
    let mut names: Vec<&str> = Vec::new();
    if record.model.is_some() {
        names.extend(crate::measure::PARAMETER_NAMES);
    }
    if record.wholespine.is_some() {
        names.extend(crate::measure::wholespine::PARAMETER_NAMES);
    }
    if record.lumbar.is_some() {
        names.extend(crate::measure::lumbar::PARAMETER_NAMES);
    }
    let mut matching: Vec<&str> = Vec::new();
    for name in names {
        if parameter_colour(name) == colour && !matching.contains(&name) {
            matching.push(name);
        }
    }
    if !matching.is_empty() {
        return matching.join(", ");
    }
    let class = [
        (REFERENCE, "reference"),
        (FINDING_MARK, "findings"),
        (confidence_colour(Some(1.0)), "landmarks confident"),
        (
            confidence_colour(Some(super::CONFIDENCE_LOW)),
            "landmarks unsure",
        ),
        (confidence_colour(Some(0.0)), "landmarks doubtful"),
        (confidence_colour(None), "landmarks no confidence"),
    ];
    class
        .iter()
        .find(|(class_colour, _)| *class_colour == colour)
        .map_or_else(|| "other".to_string(), |(_, name)| name.to_string())
}
