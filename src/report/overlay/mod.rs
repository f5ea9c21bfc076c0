//! The overlay PNG of `sagitta analyze`: the radiograph windowed to 8-bit grey with everything
//! a reader needs to check each number by eye.
//!
//! - the construction of each of the nine parameters as `measure::cervical` defines it (the
//!   endplate lines of the Cobb angles and slopes, extended, with their horizontal references;
//!   the McGregor line and the RJD perpendicular; the CT ray and the vertical; the CCA rays and
//!   arc; the cSVA plumb lines), each in the colour of its row in the panel and tagged by name;
//! - the landmarks, coloured by confidence, with a ring and a cross on those a quality finding
//!   names; the global model's points labelled by name and the vertebrae C2..T1 by level;
//! - a panel with the model, each value with its unit and quality status (flagged values are
//!   dimmed, struck through when implausible or not measurable, and tagged), the record's
//!   warnings and a legend;
//! - a "NOT FOR CLINICAL USE" banner when the model's metadata says so.
//!
//! Grey values are mapped through the DICOM VOI window when the file has one, else between
//! their 1st and 99th percentiles. Text is set in Liberation Sans (bundled, SIL OFL 1.1) with
//! anti-aliasing. Sizes scale with the image so that the picture reads the same at any size.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};

mod construction;
mod draw;
mod lumbar_construction;
mod panel;
mod spine_construction;
#[cfg(test)]
mod tests;
mod text;
pub mod vector;

pub use draw::Colour;
use draw::{Canvas, Pen};
use text::{Face, TextStyle};

use super::{ImageRecord, LandmarkRecord, LandmarkSource};
use crate::io::VoiWindow;
use crate::measure::{Facing, T1_AS, T1_PS};

/// Why an overlay could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{}: the overlay needs {expected} pixels for {width}×{height}, the image has {found}", .path.display())]
    PixelCount {
        path: PathBuf,
        width: u32,
        height: u32,
        expected: usize,
        found: usize,
    },
    #[error("{}: cannot write the overlay: {reason}", .path.display())]
    Write { path: PathBuf, reason: String },
}

/// The colour of each parameter's construction and of its name in the panel.
pub fn parameter_colour(name: &str) -> Colour {
    match name {
        "C2-C7" => [0, 215, 255],
        "C2-C6" => [110, 140, 255],
        "C0-C2" => [255, 80, 230],
        "C7 slope" => [255, 150, 30],
        "T1 slope" => [255, 105, 105],
        "cSVA" => [255, 235, 60],
        "RJD" => [0, 235, 160],
        "CT" => [190, 145, 255],
        "CCA" => [205, 255, 120],
        // The lumbar angles (SS shares the whole-spine colour).
        "L1-L5" => [0, 215, 255],
        "L1-S1" => [255, 80, 230],
        // The whole-spine constructions (cSVA shares the cervical colour).
        "PI" => [255, 80, 230],
        "PT" => [110, 140, 255],
        "SS" => [255, 150, 30],
        "LL" => [0, 215, 255],
        "SVA" => [0, 235, 160],
        "GTK" => [190, 145, 255],
        _ => TEXT,
    }
}

/// The shared reference line (the C2 inferior endplate).
const REFERENCE: Colour = [235, 235, 235];
const OUTLINE: Colour = [0, 0, 0];
const PANEL: Colour = [0, 0, 0];
const TEXT: Colour = [255, 255, 255];
const WARNING_TEXT: Colour = [255, 200, 50];
/// The ring and cross on a landmark that a finding names.
const FINDING_MARK: Colour = [255, 255, 255];

/// Landmark confidence at or above this is drawn green.
pub const CONFIDENCE_HIGH: f64 = 0.4;
/// Landmark confidence below this is drawn red; in between, yellow.
pub const CONFIDENCE_LOW: f64 = 0.1;
const CONFIDENT: Colour = [40, 220, 70];
const UNSURE: Colour = [255, 210, 0];
const DOUBTFUL: Colour = [240, 30, 30];
/// No confidence (the spread was not a finite number).
const UNKNOWN_CONFIDENCE: Colour = [150, 150, 150];

/// The colour of a landmark of this confidence: the scale the legend states.
pub fn confidence_colour(confidence: Option<f64>) -> Colour {
    match confidence {
        Some(c) if c >= CONFIDENCE_HIGH => CONFIDENT,
        Some(c) if c >= CONFIDENCE_LOW => UNSURE,
        Some(c) if c.is_finite() => DOUBTFUL,
        _ => UNKNOWN_CONFIDENCE,
    }
}

/// Opacity of the panel's and labels' dark background.
const PANEL_OPACITY: f32 = 0.75;

/// Lower and upper percentiles of the grey window without a DICOM window: robust to a few
/// saturated or black pixels (collimator edges, burnt-in labels).
const WINDOW_PERCENTILES: (f64, f64) = (0.01, 0.99);

/// Enough samples for stable percentiles; larger images are sampled with a stride.
const WINDOW_SAMPLES: usize = 1 << 20;

/// Renders the overlay of one analysed radiograph.
///
/// `pixels` are the radiograph's grey values (any range) as [`crate::io::Radiograph`] holds
/// them; `window` is its DICOM VOI window (`Radiograph::dicom.window`), used to map them to
/// grey when given; `record` supplies the landmarks, parameters, findings, model and warnings.
pub fn render(
    pixels: &[f32],
    width: u32,
    height: u32,
    window: Option<VoiWindow>,
    record: &ImageRecord,
) -> Result<RgbImage, OverlayError> {
    let expected = width as usize * height as usize;
    if pixels.len() != expected {
        return Err(OverlayError::PixelCount {
            path: PathBuf::from(&record.image),
            width,
            height,
            expected,
            found: pixels.len(),
        });
    }
    let mut canvas = Canvas {
        image: windowed_grey(pixels, width, height, window),
    };
    let style = Style::for_image(width, height);
    let Drawn {
        points,
        labels,
        keep_visible,
    } = draw_shapes(&mut canvas, &style, record);
    let banner_height = panel::draw_banner(&mut canvas, &style, record);
    let plan = panel::plan(&canvas, &style, record, &keep_visible, banner_height);
    let mut taken = vec![
        plan.rect(),
        [0.0, 0.0, f64::from(width), banner_height as f64],
    ];
    // Labels keep off the landmarks too.
    let reach = 1.5 * style.point_radius;
    taken.extend(
        points
            .0
            .iter()
            .flatten()
            .map(|p| [p[0] - reach, p[1] - reach, p[0] + reach, p[1] + reach]),
    );
    for label in &labels {
        style.place_label(&mut canvas, label, &mut taken);
    }
    panel::draw_panel(&mut canvas, &style, &plan);
    Ok(canvas.image)
}

/// What [`draw_shapes`] leaves for the text to place: the cervical landmarks, the labels and
/// tags, and the points that the panel should not hide.
struct Drawn {
    points: Points,
    labels: Vec<Label>,
    keep_visible: Vec<[f64; 2]>,
}

/// Draws every model's constructions and landmarks with `pen`.
fn draw_shapes(pen: &mut impl Pen, style: &Style, record: &ImageRecord) -> Drawn {
    let points = Points(record.landmarks.iter().map(finite_point).collect());
    let tags = construction::draw(pen, style, &points);
    let mut labels = vertebra_labels(style, &points);
    labels.extend(draw_landmarks(pen, style, record, &points));
    let mut tags = tags;
    if let Some(spine) = &record.wholespine {
        let spine_points = Points(spine.landmarks.iter().map(finite_point).collect());
        tags.extend(spine_construction::draw(pen, style, &spine_points));
    }
    let mut spine_points = draw_spine_landmarks(pen, style, record);
    if let Some(lumbar) = &record.lumbar {
        let drawn = lumbar_construction::draw(pen, style, lumbar);
        tags.extend(drawn.tags);
        labels.extend(drawn.labels);
        spine_points.extend(drawn.points);
    }
    let tag_style = TextStyle::new(Face::Bold, style.label_size);
    // What the panel should not hide: the landmarks (weighing three times) and the
    // construction tags.
    let mut keep_visible: Vec<[f64; 2]> = Vec::new();
    for _ in 0..3 {
        keep_visible.extend(points.0.iter().flatten().copied());
        keep_visible.extend(spine_points.iter().copied());
    }
    keep_visible.extend(tags.iter().map(|tag| tag.at));
    labels.extend(tags.into_iter().map(|tag| Label {
        at: tag.at,
        text: tag.text.to_string(),
        style: tag_style,
        colour: tag.colour,
    }));
    Drawn {
        points,
        labels,
        keep_visible,
    }
}

/// Lines of text in the overlay's font on a dark panel, for a viewer that draws its own
/// overlay on the GPU: each line in its colour, `size` px high, with a margin.
pub fn text_panel(lines: &[(String, Colour)], size: f32) -> RgbImage {
    let style = TextStyle::new(Face::Regular, size);
    let margin = (0.5 * size).ceil() as f64;
    let width = lines
        .iter()
        .map(|(line, _)| style.width(line))
        .fold(0.0, f64::max);
    let panel_width = (width + 2.0 * margin).ceil().max(1.0) as u32;
    let panel_height = (style.line_height() * lines.len() as f64 + 2.0 * margin).ceil() as u32;
    let mut canvas = Canvas {
        image: RgbImage::from_pixel(panel_width, panel_height.max(1), Rgb([16, 16, 16])),
    };
    for (row, (line, colour)) in lines.iter().enumerate() {
        let top = margin + style.line_height() * row as f64;
        canvas.text(margin, top, line, style, *colour, 1.0);
    }
    canvas.image
}

/// Writes `image` as a PNG.
pub fn write_png(image: &RgbImage, path: &Path) -> Result<(), OverlayError> {
    image
        .save_with_format(path, ImageFormat::Png)
        .map_err(|error| OverlayError::Write {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// Maps the grey values to 0..255 as RGB: through `window` when given (the DICOM VOI window),
/// else linearly between the 1st and 99th percentiles.
pub fn windowed_grey(
    pixels: &[f32],
    width: u32,
    height: u32,
    window: Option<VoiWindow>,
) -> RgbImage {
    let to_byte: Box<dyn Fn(f32) -> u8> = match window {
        Some(window) => Box::new(move |value: f32| {
            if !value.is_finite() {
                return 0;
            }
            (window.apply(f64::from(value)) * 255.0).round() as u8
        }),
        None => {
            let (low, high) = grey_window(pixels);
            let span = high - low;
            Box::new(move |value: f32| {
                if !value.is_finite() {
                    return 0;
                }
                if span <= 0.0 {
                    return 128;
                }
                ((value - low) / span * 255.0).round().clamp(0.0, 255.0) as u8
            })
        }
    };
    RgbImage::from_fn(width, height, |x, y| {
        let grey = to_byte(pixels[y as usize * width as usize + x as usize]);
        Rgb([grey, grey, grey])
    })
}

/// The window (low, high) of the grey values: the robust percentiles, or the full range when
/// they coincide (an image that is mostly one value).
fn grey_window(pixels: &[f32]) -> (f32, f32) {
    let stride = pixels.len().div_ceil(WINDOW_SAMPLES).max(1);
    let mut sample: Vec<f32> = pixels
        .iter()
        .step_by(stride)
        .copied()
        .filter(|value| value.is_finite())
        .collect();
    if sample.is_empty() {
        return (0.0, 0.0);
    }
    sample.sort_by(f32::total_cmp);
    let at = |quantile: f64| sample[((sample.len() - 1) as f64 * quantile).round() as usize];
    let (low, high) = (at(WINDOW_PERCENTILES.0), at(WINDOW_PERCENTILES.1));
    if high > low {
        (low, high)
    } else {
        (sample[0], sample[sample.len() - 1])
    }
}

fn finite_point(landmark: &LandmarkRecord) -> Option<[f64; 2]> {
    let (x, y) = (f64::from(landmark.x), f64::from(landmark.y));
    (x.is_finite() && y.is_finite()).then_some([x, y])
}

/// The landmarks in image pixels, `None` where not finite.
struct Points(Vec<Option<[f64; 2]>>);

impl Points {
    fn at(&self, index: usize) -> Option<[f64; 2]> {
        self.0.get(index).copied().flatten()
    }

    /// The mean of the landmarks `indices`, when all are known.
    fn mean(&self, indices: &[usize]) -> Option<[f64; 2]> {
        let found: Vec<[f64; 2]> = indices.iter().filter_map(|&i| self.at(i)).collect();
        (!found.is_empty() && found.len() == indices.len()).then(|| {
            let n = found.len() as f64;
            [
                found.iter().map(|p| p[0]).sum::<f64>() / n,
                found.iter().map(|p| p[1]).sum::<f64>() / n,
            ]
        })
    }

    /// The centroid of the vertebra whose first corner is `first` (mean of its 4 corners).
    fn centroid(&self, first: usize) -> Option<[f64; 2]> {
        self.mean(&[first, first + 1, first + 2, first + 3])
    }
}

/// Line widths, point and text sizes for one image size.
struct Style {
    /// Half the width of the construction lines, in pixels.
    line: f64,
    point_radius: f64,
    outline: f64,
    dash: f64,
    /// Text sizes in pixels: tags and labels on the image, the panel, the banner.
    label_size: f32,
    panel_size: f32,
    banner_size: f32,
}

impl Style {
    fn for_image(width: u32, height: u32) -> Self {
        let longer = f64::from(width.max(height));
        // Sizes are set for a 1000 px image and scale with it; the floors keep lines, points
        // and text visible on thumbnails.
        let unit = longer / 1000.0;
        Self {
            line: (1.1 * unit).max(0.5),
            point_radius: (4.0 * unit).max(1.5),
            outline: (1.0 * unit).max(0.5),
            dash: (10.0 * unit).max(3.0),
            label_size: (14.0 * unit).max(8.0) as f32,
            panel_size: (17.0 * unit).max(9.0) as f32,
            banner_size: (30.0 * unit).max(10.0) as f32,
        }
    }

    /// Draws `label` on a dark box centred on its point, kept inside the image, moved by whole
    /// boxes (the nearest place first) until it overlaps nothing in `taken`; adds its box to
    /// `taken`.
    fn place_label(&self, canvas: &mut Canvas, label: &Label, taken: &mut Vec<Rect>) {
        let at = label.at;
        if !(at[0].is_finite() && at[1].is_finite()) {
            return;
        }
        let style = label.style;
        let pad = (0.2 * f64::from(style.size)).ceil();
        let (width, height) = (
            (style.width(&label.text) + 2.0 * pad).ceil(),
            (style.height() + 2.0 * pad).ceil(),
        );
        let max_left = f64::from(canvas.image.width()) - width;
        let max_top = f64::from(canvas.image.height()) - height;
        let place = |dx: f64, dy: f64| -> Rect {
            let left = (at[0] - width / 2.0 + dx).min(max_left).max(0.0).round();
            let top = (at[1] - height / 2.0 + dy).min(max_top).max(0.0).round();
            [left, top, left + width, top + height]
        };
        let overlaps = |rect: &Rect| {
            taken.iter().any(|other| {
                rect[0] < other[2] && other[0] < rect[2] && rect[1] < other[3] && other[1] < rect[3]
            })
        };
        // Shifts by whole boxes up to four away, nearest first.
        let mut candidates: Vec<(f64, f64)> = (-4..=4)
            .flat_map(|i| (-4..=4).map(move |j| (f64::from(i), f64::from(j))))
            .map(|(i, j)| (i * (width + 1.0), j * (height + 1.0)))
            .collect();
        candidates.sort_by(|a, b| a.0.hypot(a.1).total_cmp(&b.0.hypot(b.1)));
        let mut rect = place(0.0, 0.0);
        for (dx, dy) in candidates {
            let candidate = place(dx, dy);
            if !overlaps(&candidate) {
                rect = candidate;
                break;
            }
        }
        canvas.fill_rect(
            rect[0] as i64,
            rect[1] as i64,
            width as i64,
            height as i64,
            PANEL,
            PANEL_OPACITY,
        );
        canvas.text(
            rect[0] + pad,
            rect[1] + pad,
            &label.text,
            style,
            label.colour,
            1.0,
        );
        taken.push(rect);
    }
}

/// A box on the image: left, top, right, bottom.
type Rect = [f64; 4];

/// A name to write on the image near a point.
struct Label {
    at: [f64; 2],
    text: String,
    style: TextStyle,
    colour: Colour,
}

/// "C2" … "T1" beside each vertebra, on its posterior side where there is soft tissue rather
/// than the vertebral bodies.
fn vertebra_labels(style: &Style, points: &Points) -> Vec<Label> {
    let mut placed = Vec::new();
    let labels = ["C2", "C3", "C4", "C5", "C6", "C7", "T1"];
    let text_style = TextStyle::new(Face::Bold, style.label_size * 1.1);
    for (vertebra, label) in labels.iter().enumerate() {
        let first = 4 * vertebra;
        // T1 has only its superior corners (as, ps).
        let (front, back) = if vertebra == 6 {
            (points.at(T1_AS), points.at(T1_PS))
        } else {
            (
                points.mean(&[first, first + 3]),
                points.mean(&[first + 1, first + 2]),
            )
        };
        let (Some(front), Some(back)) = (front, back) else {
            continue;
        };
        let depth = (front[0] - back[0]).abs().max(4.0 * style.point_radius);
        let away = if front[0] >= back[0] { -1.0 } else { 1.0 };
        placed.push(Label {
            at: [back[0] + away * 0.7 * depth, back[1]],
            text: label.to_string(),
            style: text_style,
            colour: TEXT,
        });
    }
    placed
}

/// One landmark: a disc in its confidence's colour, with a ring and a cross when a finding
/// names it.
fn draw_point(
    canvas: &mut impl Pen,
    style: &Style,
    point: [f64; 2],
    confidence: Option<f64>,
    named: bool,
) {
    let radius = style.point_radius;
    canvas.disc(point, radius + style.outline, OUTLINE, 1.0);
    canvas.disc(point, radius, confidence_colour(confidence), 1.0);
    if named {
        let ring = 2.2 * radius;
        canvas.ring(point, ring, 0.5 * style.outline + 0.6, OUTLINE, 0.8);
        canvas.ring(point, ring, 0.5 * style.outline, FINDING_MARK, 1.0);
        canvas.cross(point, 0.6 * radius, 0.3 * style.outline + 0.3, FINDING_MARK);
    }
}

/// The whole-spine model's landmarks as points (over its constructions); returns
/// where they are, for the panel and the labels to keep clear of.
fn draw_spine_landmarks(
    canvas: &mut impl Pen,
    style: &Style,
    record: &ImageRecord,
) -> Vec<[f64; 2]> {
    let Some(spine) = &record.wholespine else {
        return Vec::new();
    };
    let named: Vec<&str> = spine
        .findings
        .iter()
        .flat_map(|finding| finding.landmarks.iter().copied())
        .collect();
    let mut drawn = Vec::new();
    for landmark in &spine.landmarks {
        if let Some(point) = finite_point(landmark) {
            draw_point(
                canvas,
                style,
                point,
                landmark.confidence,
                named.contains(&landmark.name),
            );
            drawn.push(point);
        }
    }
    drawn
}

/// Draws the landmarks coloured by confidence, with a ring and a cross on those a finding
/// names; returns the labels of the global model's points.
fn draw_landmarks(
    canvas: &mut impl Pen,
    style: &Style,
    record: &ImageRecord,
    points: &Points,
) -> Vec<Label> {
    let mut labels = Vec::new();
    let named: Vec<&str> = record
        .findings
        .iter()
        .flat_map(|finding| finding.landmarks.iter().copied())
        .collect();
    let anterior = match record.facing {
        Some(Facing::Left) => -1.0,
        _ => 1.0,
    };
    let label_style = TextStyle::new(Face::Regular, style.label_size);
    for (index, landmark) in record.landmarks.iter().enumerate() {
        let Some(point) = points.at(index) else {
            continue;
        };
        let radius = style.point_radius;
        draw_point(
            canvas,
            style,
            point,
            landmark.confidence,
            named.contains(&landmark.name),
        );
        if landmark.source == LandmarkSource::Global {
            // C2_ps and OCC lie posterior, the others anterior: label away from the spine.
            let side = match landmark.name {
                "C2_ps" | "OCC" => -anterior,
                _ => anterior,
            };
            let width = label_style.width(landmark.name) + 0.4 * f64::from(label_style.size);
            let offset = 2.8 * radius + width / 2.0;
            labels.push(Label {
                at: [point[0] + side * offset, point[1] - 1.5 * radius],
                text: landmark.name.to_string(),
                style: label_style,
                colour: TEXT,
            });
        }
    }
    labels
}
