//! The overlay PNG of `sagitta analyze`: the radiograph windowed to 8-bit grey, with the
//! landmarks, the endplate lines, the McGregor line, the C2 plumb line, the `C7_ps` vertical
//! and a panel with the nine parameters drawn on it.
//!
//! Everything is drawn here with a few primitives (anti-aliased thick segments, discs, filled
//! rectangles and a built-in 5×7 bitmap font), so no font or drawing library is needed at run
//! time. Sizes scale with the image so that the picture reads the same at any resolution.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};

use super::{ImageRecord, LandmarkRecord, LandmarkSource};
use crate::measure::{Facing, C2, C7, OCC, PNS, PS, T1_AS, T1_PS};

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

type Colour = [u8; 3];

const REFINED_POINT: Colour = [40, 230, 120];
const GLOBAL_POINT: Colour = [255, 150, 20];
const ENDPLATE: Colour = [0, 200, 255];
const MCGREGOR: Colour = [255, 60, 220];
const C2_PLUMB: Colour = [255, 230, 0];
const C7_VERTICAL: Colour = [255, 70, 70];
const OUTLINE: Colour = [0, 0, 0];
const PANEL: Colour = [0, 0, 0];
const TEXT: Colour = [255, 255, 255];
const WARNING_TEXT: Colour = [255, 210, 60];

/// Opacity of the text panel's and labels' dark background.
const PANEL_OPACITY: f32 = 0.72;

/// Lower and upper percentiles of the grey window: robust to a few saturated or black pixels
/// (collimator edges, burnt-in labels).
const WINDOW_PERCENTILES: (f64, f64) = (0.01, 0.99);

/// Enough samples for stable percentiles; larger images are sampled with a stride.
const WINDOW_SAMPLES: usize = 1 << 20;

const C7_PS: usize = C7 + PS;

/// Renders the overlay of one analysed radiograph.
///
/// `pixels` are the radiograph's grey values (any range) as [`crate::io::Radiograph`] holds
/// them; `record` supplies the landmarks, parameters, facing and warnings.
pub fn render(
    pixels: &[f32],
    width: u32,
    height: u32,
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
        image: windowed_grey(pixels, width, height),
    };
    let style = Style::for_image(width, height);
    let points: Vec<Option<[f64; 2]>> = record.landmarks.iter().map(finite_point).collect();
    draw_geometry(&mut canvas, &style, &points);
    draw_vertebra_labels(&mut canvas, &style, &points);
    for (landmark, point) in record.landmarks.iter().zip(&points) {
        if let Some(point) = point {
            let colour = match landmark.source {
                LandmarkSource::Refined => REFINED_POINT,
                LandmarkSource::Global => GLOBAL_POINT,
            };
            canvas.disc(*point, style.point_radius + style.outline, OUTLINE, 1.0);
            canvas.disc(*point, style.point_radius, colour, 1.0);
        }
    }
    draw_panel(&mut canvas, &style, record, &points);
    Ok(canvas.image)
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

/// Maps the grey values to 0..255 between the 1st and 99th percentiles, as RGB.
pub fn windowed_grey(pixels: &[f32], width: u32, height: u32) -> RgbImage {
    let (low, high) = grey_window(pixels);
    let span = high - low;
    let to_byte = |value: f32| -> u8 {
        if !value.is_finite() {
            return 0;
        }
        if span <= 0.0 {
            return 128;
        }
        ((value - low) / span * 255.0).round().clamp(0.0, 255.0) as u8
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

/// Line widths, point sizes and the font scale for one image size.
struct Style {
    /// Half the width of the lines, in pixels.
    line_half_width: f64,
    point_radius: f64,
    outline: f64,
    /// Integer magnification of the 5×7 font.
    font_scale: u32,
    dash: f64,
}

impl Style {
    fn for_image(width: u32, height: u32) -> Self {
        let longer = f64::from(width.max(height));
        // Sizes are set for a 1000 px image and scale with it; the floors keep lines and
        // points visible on thumbnails.
        let unit = longer / 1000.0;
        let font_scale = (longer / 650.0).round().max(1.0) as u32;
        // The panel must not swallow the image: cap the font so that the panel's roughly
        // 16 lines fit in 45 % of the height.
        let cap = ((0.45 * f64::from(height)) / (16.0 * f64::from(font::LINE_HEIGHT)))
            .floor()
            .max(1.0) as u32;
        Self {
            line_half_width: (1.5 * unit).max(0.6),
            point_radius: (4.5 * unit).max(1.5),
            outline: (1.2 * unit).max(0.6),
            font_scale: font_scale.min(cap),
            dash: (14.0 * unit).max(4.0),
        }
    }
}

fn draw_geometry(canvas: &mut Canvas, style: &Style, points: &[Option<[f64; 2]>]) {
    let at = |index: usize| points.get(index).copied().flatten();
    let width = style.line_half_width;
    let segment = |canvas: &mut Canvas, from: usize, to: usize, colour: Colour| {
        if let (Some(a), Some(b)) = (at(from), at(to)) {
            canvas.segment(a, b, width + style.outline * 0.6, OUTLINE, 0.6);
            canvas.segment(a, b, width, colour, 1.0);
        }
    };
    // Endplates: C2 inferior, C3..C7 superior (ps→as) and inferior (pi→ai), T1 superior.
    segment(canvas, C2 + 2, C2 + 3, ENDPLATE);
    for vertebra in 1..6 {
        let first = 4 * vertebra;
        segment(canvas, first + 1, first, ENDPLATE);
        segment(canvas, first + 2, first + 3, ENDPLATE);
    }
    segment(canvas, T1_PS, T1_AS, ENDPLATE);
    segment(canvas, PNS, OCC, MCGREGOR);

    // The cSVA construction: the plumb line from the C2 centroid, the vertical through C7_ps,
    // and the horizontal between them at the level of C7_ps.
    let c2: Vec<[f64; 2]> = (C2..C2 + 4).filter_map(at).collect();
    if let (4, Some(c7_ps)) = (c2.len(), at(C7_PS)) {
        let centroid = [
            c2.iter().map(|p| p[0]).sum::<f64>() / 4.0,
            c2.iter().map(|p| p[1]).sum::<f64>() / 4.0,
        ];
        let reach = 0.15 * (c7_ps[1] - centroid[1]).abs().max(1.0);
        let bottom = centroid[1].max(c7_ps[1]) + reach;
        let top = centroid[1].min(c7_ps[1]);
        canvas.dashed(
            [c7_ps[0], top],
            [c7_ps[0], bottom],
            width,
            C7_VERTICAL,
            style.dash,
        );
        canvas.segment(
            [centroid[0], centroid[1]],
            [centroid[0], bottom],
            width,
            C2_PLUMB,
            1.0,
        );
        canvas.segment(
            [centroid[0], c7_ps[1]],
            [c7_ps[0], c7_ps[1]],
            width * 0.6,
            C2_PLUMB,
            0.8,
        );
        canvas.disc(centroid, style.point_radius * 0.8, C2_PLUMB, 1.0);
    }
}

/// "C2" … "T1" beside each vertebra, on its posterior side where there is soft tissue rather
/// than the vertebral bodies.
fn draw_vertebra_labels(canvas: &mut Canvas, style: &Style, points: &[Option<[f64; 2]>]) {
    let at = |index: usize| points.get(index).copied().flatten();
    let labels = ["C2", "C3", "C4", "C5", "C6", "C7", "T1"];
    for (vertebra, label) in labels.iter().enumerate() {
        let first = 4 * vertebra;
        // T1 has only its superior corners (as, ps).
        let (anterior, posterior): (Vec<usize>, Vec<usize>) = if vertebra == 6 {
            (vec![T1_AS], vec![T1_PS])
        } else {
            (vec![first, first + 3], vec![first + 1, first + 2])
        };
        let mean = |indices: &[usize]| -> Option<[f64; 2]> {
            let found: Vec<[f64; 2]> = indices.iter().filter_map(|&i| at(i)).collect();
            (found.len() == indices.len()).then(|| {
                let n = found.len() as f64;
                [
                    found.iter().map(|p| p[0]).sum::<f64>() / n,
                    found.iter().map(|p| p[1]).sum::<f64>() / n,
                ]
            })
        };
        let (Some(front), Some(back)) = (mean(&anterior), mean(&posterior)) else {
            continue;
        };
        let depth = (front[0] - back[0]).abs().max(4.0 * style.point_radius);
        let away = if front[0] >= back[0] { -1.0 } else { 1.0 };
        let (text_width, text_height) = text_size(label, style.font_scale);
        let centre_x = back[0] + away * 0.8 * depth;
        let left = (centre_x - f64::from(text_width) / 2.0).round() as i64;
        let top = (back[1] - f64::from(text_height) / 2.0).round() as i64;
        let pad = i64::from(style.font_scale);
        canvas.fill_rect(
            left - pad,
            top - pad,
            i64::from(text_width) + 2 * pad,
            i64::from(text_height) + 2 * pad,
            PANEL,
            PANEL_OPACITY,
        );
        canvas.text(left, top, label, style.font_scale, TEXT);
    }
}

/// The parameter panel, in the image corner that hides the fewest landmarks.
fn draw_panel(
    canvas: &mut Canvas,
    style: &Style,
    record: &ImageRecord,
    points: &[Option<[f64; 2]>],
) {
    let mut lines: Vec<(String, Colour)> = Vec::new();
    let facing = match record.facing {
        Some(Facing::Left) => "facing left",
        Some(Facing::Right) => "facing right",
        None => "facing unknown",
    };
    lines.push((format!("sagitta  {facing}"), TEXT));
    if record.parameters.is_empty() {
        lines.push(("parameters not computed".to_string(), WARNING_TEXT));
    }
    let name_width = record
        .parameters
        .iter()
        .map(|parameter| parameter.name.len())
        .max()
        .unwrap_or(0);
    for parameter in &record.parameters {
        let unit = parameter.unit;
        lines.push((
            format!(
                "{:<name_width$} {:>7.1} {unit}",
                parameter.name, parameter.value
            ),
            TEXT,
        ));
    }
    if record
        .warnings
        .iter()
        .any(|warning| warning.contains("confidence"))
    {
        lines.push(("! low confidence: unreliable".to_string(), WARNING_TEXT));
    }
    if record.distance_unit == "px" {
        lines.push(("! no pixel spacing: px".to_string(), WARNING_TEXT));
    }
    let legend: [(&str, Colour, bool); 6] = [
        ("refined", REFINED_POINT, true),
        ("global", GLOBAL_POINT, true),
        ("endplate", ENDPLATE, false),
        ("McGregor", MCGREGOR, false),
        ("C2 plumb", C2_PLUMB, false),
        ("C7_ps", C7_VERTICAL, false),
    ];

    let scale = style.font_scale;
    let line_height = i64::from(font::LINE_HEIGHT * scale);
    let pad = i64::from(4 * scale);
    let swatch = i64::from(7 * scale);
    let legend_rows = legend.len().div_ceil(2) as i64;
    // Swatch, a gap, the longest name, and two characters' room before the next column.
    let legend_cell = swatch
        + i64::from(scale) * 2
        + i64::from(text_size("McGregor", scale).0)
        + i64::from(2 * font::ADVANCE * scale);
    let text_width = lines
        .iter()
        .map(|(line, _)| i64::from(text_size(line, scale).0))
        .max()
        .unwrap_or(0)
        .max(2 * legend_cell + pad);
    let panel_width = text_width + 2 * pad;
    let panel_height = (lines.len() as i64 + legend_rows) * line_height + 2 * pad;

    let (image_width, image_height) = (
        i64::from(canvas.image.width()),
        i64::from(canvas.image.height()),
    );
    let margin = i64::from(scale) * 2;
    let corners = [
        (margin, margin),
        (image_width - panel_width - margin, margin),
        (margin, image_height - panel_height - margin),
        (
            image_width - panel_width - margin,
            image_height - panel_height - margin,
        ),
    ];
    let hidden = |&(left, top): &(i64, i64)| {
        points
            .iter()
            .flatten()
            .filter(|p| {
                p[0] >= left as f64
                    && p[0] < (left + panel_width) as f64
                    && p[1] >= top as f64
                    && p[1] < (top + panel_height) as f64
            })
            .count()
    };
    // min_by_key keeps the first of equals: top-left wins ties.
    let (left, top) = corners
        .iter()
        .min_by_key(|corner| hidden(corner))
        .copied()
        .unwrap_or((margin, margin));
    let (left, top) = (left.max(0), top.max(0));

    canvas.fill_rect(left, top, panel_width, panel_height, PANEL, PANEL_OPACITY);
    let mut y = top + pad;
    for (line, colour) in &lines {
        canvas.text(left + pad, y, line, scale, *colour);
        y += line_height;
    }
    for (index, (name, colour, is_point)) in legend.iter().enumerate() {
        let x = left + pad + (index as i64 % 2) * legend_cell;
        let row_y = y + (index as i64 / 2) * line_height;
        if *is_point {
            let radius = swatch as f64 / 2.0 - 0.5;
            let centre = [
                x as f64 + swatch as f64 / 2.0,
                row_y as f64 + swatch as f64 / 2.0,
            ];
            canvas.disc(centre, radius, *colour, 1.0);
        } else {
            let middle = row_y + swatch / 2 - i64::from(scale) / 2;
            canvas.fill_rect(x, middle, swatch, i64::from(scale).max(1), *colour, 1.0);
        }
        canvas.text(x + swatch + 2 * i64::from(scale), row_y, name, scale, TEXT);
    }
}

/// An RGB image with anti-aliased drawing.
struct Canvas {
    image: RgbImage,
}

impl Canvas {
    /// Blends `colour` into one pixel with opacity `alpha`; pixels off the image are ignored.
    fn blend(&mut self, x: i64, y: i64, colour: Colour, alpha: f32) {
        if x < 0 || y < 0 || alpha <= 0.0 {
            return;
        }
        let (x, y) = (x as u32, y as u32);
        if x >= self.image.width() || y >= self.image.height() {
            return;
        }
        let alpha = alpha.min(1.0);
        let pixel = self.image.get_pixel_mut(x, y);
        for (channel, &target) in pixel.0.iter_mut().zip(&colour) {
            let mixed = f32::from(*channel) * (1.0 - alpha) + f32::from(target) * alpha;
            *channel = mixed.round().clamp(0.0, 255.0) as u8;
        }
    }

    /// The pixel range [low, high] that a shape spanning `low..high` in image coordinates can
    /// touch, clipped to the image.
    fn span(&self, low: f64, high: f64, size: u32) -> (i64, i64) {
        let low = low.floor().max(0.0) as i64;
        let high = high.ceil().min(f64::from(size) - 1.0) as i64;
        (low, high)
    }

    /// A segment of half-width `half_width`, with a one-pixel soft edge. Pixel centres sit at
    /// integer coordinates, the convention of the landmarks.
    fn segment(&mut self, a: [f64; 2], b: [f64; 2], half_width: f64, colour: Colour, alpha: f32) {
        let reach = half_width + 1.0;
        let (x0, x1) = self.span(
            a[0].min(b[0]) - reach,
            a[0].max(b[0]) + reach,
            self.image.width(),
        );
        let (y0, y1) = self.span(
            a[1].min(b[1]) - reach,
            a[1].max(b[1]) + reach,
            self.image.height(),
        );
        let direction = [b[0] - a[0], b[1] - a[1]];
        let length_squared = direction[0] * direction[0] + direction[1] * direction[1];
        for y in y0..=y1 {
            for x in x0..=x1 {
                let offset = [x as f64 - a[0], y as f64 - a[1]];
                let along = if length_squared > 0.0 {
                    ((offset[0] * direction[0] + offset[1] * direction[1]) / length_squared)
                        .clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let dx = offset[0] - along * direction[0];
                let dy = offset[1] - along * direction[1];
                let coverage = (half_width + 0.5 - dx.hypot(dy)).clamp(0.0, 1.0) as f32;
                self.blend(x, y, colour, coverage * alpha);
            }
        }
    }

    fn dashed(&mut self, a: [f64; 2], b: [f64; 2], half_width: f64, colour: Colour, dash: f64) {
        let length = (b[0] - a[0]).hypot(b[1] - a[1]);
        if length <= 0.0 || dash <= 0.0 {
            return;
        }
        let point_at = |distance: f64| {
            let t = (distance / length).min(1.0);
            [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
        };
        let mut start = 0.0;
        while start < length {
            self.segment(
                point_at(start),
                point_at(start + dash),
                half_width,
                colour,
                1.0,
            );
            start += 2.0 * dash;
        }
    }

    fn disc(&mut self, centre: [f64; 2], radius: f64, colour: Colour, alpha: f32) {
        let (x0, x1) = self.span(
            centre[0] - radius - 1.0,
            centre[0] + radius + 1.0,
            self.image.width(),
        );
        let (y0, y1) = self.span(
            centre[1] - radius - 1.0,
            centre[1] + radius + 1.0,
            self.image.height(),
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let distance = (x as f64 - centre[0]).hypot(y as f64 - centre[1]);
                let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0) as f32;
                self.blend(x, y, colour, coverage * alpha);
            }
        }
    }

    fn fill_rect(
        &mut self,
        left: i64,
        top: i64,
        width: i64,
        height: i64,
        colour: Colour,
        alpha: f32,
    ) {
        let right = (left + width).min(i64::from(self.image.width()));
        let bottom = (top + height).min(i64::from(self.image.height()));
        for y in top.max(0)..bottom {
            for x in left.max(0)..right {
                self.blend(x, y, colour, alpha);
            }
        }
    }

    /// Draws `text` with its top-left corner at (`left`, `top`), each font pixel `scale` image
    /// pixels wide.
    fn text(&mut self, left: i64, top: i64, text: &str, scale: u32, colour: Colour) {
        let scale = i64::from(scale.max(1));
        for (column, character) in text.chars().enumerate() {
            let glyph = font::glyph(character);
            let glyph_left = left + column as i64 * font::ADVANCE as i64 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for (bit, cell) in bits.bytes().enumerate() {
                    if cell != b'#' {
                        continue;
                    }
                    let x = glyph_left + bit as i64 * scale;
                    let y = top + row as i64 * scale;
                    self.fill_rect(x, y, scale, scale, colour, 1.0);
                }
            }
        }
    }
}

/// Width and height in pixels of `text` drawn at `scale`.
fn text_size(text: &str, scale: u32) -> (u32, u32) {
    let characters = text.chars().count() as u32;
    let width = (characters * font::ADVANCE).saturating_sub(font::ADVANCE - font::WIDTH);
    (width * scale, font::HEIGHT * scale)
}

/// A 5×7 bitmap font for the characters the overlay writes; anything else is drawn as a box.
mod font {
    pub const WIDTH: u32 = 5;
    /// Cap height plus two rows for the descenders of g, j, p, q and y.
    pub const HEIGHT: u32 = 9;
    /// Horizontal distance between the left edges of consecutive characters.
    pub const ADVANCE: u32 = 6;
    /// Vertical distance between the tops of consecutive lines.
    pub const LINE_HEIGHT: u32 = 12;

    /// Rows from the top, '#' for ink; seven rows, or nine for letters with a descender.
    type Glyph = &'static [&'static str];

    const MISSING: Glyph = &[
        "#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####",
    ];

    pub fn glyph(character: char) -> Glyph {
        GLYPHS
            .iter()
            .find(|(known, _)| *known == character)
            .map_or(MISSING, |(_, glyph)| glyph)
    }

    #[rustfmt::skip]
    const GLYPHS: &[(char, Glyph)] = &[
        (' ', &[".....", ".....", ".....", ".....", ".....", ".....", "....."]),
        ('0', &[".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."]),
        ('1', &["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."]),
        ('2', &[".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"]),
        ('3', &["####.", "....#", "....#", ".###.", "....#", "....#", "####."]),
        ('4', &["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."]),
        ('5', &["#####", "#....", "####.", "....#", "....#", "#...#", ".###."]),
        ('6', &["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."]),
        ('7', &["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."]),
        ('8', &[".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."]),
        ('9', &[".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."]),
        ('A', &[".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
        ('B', &["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."]),
        ('C', &[".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."]),
        ('D', &["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."]),
        ('E', &["#####", "#....", "#....", "####.", "#....", "#....", "#####"]),
        ('F', &["#####", "#....", "#....", "####.", "#....", "#....", "#...."]),
        ('G', &[".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"]),
        ('H', &["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
        ('I', &[".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."]),
        ('J', &["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
        ('K', &["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"]),
        ('L', &["#....", "#....", "#....", "#....", "#....", "#....", "#####"]),
        ('M', &["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"]),
        ('N', &["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"]),
        ('O', &[".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
        ('P', &["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."]),
        ('Q', &[".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"]),
        ('R', &["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"]),
        ('S', &[".####", "#....", "#....", ".###.", "....#", "....#", "####."]),
        ('T', &["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."]),
        ('U', &["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
        ('V', &["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."]),
        ('W', &["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."]),
        ('X', &["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"]),
        ('Y', &["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."]),
        ('Z', &["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"]),
        ('a', &[".....", ".....", ".###.", "....#", ".####", "#...#", ".####"]),
        ('b', &["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."]),
        ('c', &[".....", ".....", ".###.", "#....", "#....", "#...#", ".###."]),
        ('d', &["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"]),
        ('e', &[".....", ".....", ".###.", "#...#", "#####", "#....", ".###."]),
        ('f', &["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."]),
        ('g', &[".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
        ('h', &["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"]),
        ('i', &["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."]),
        ('j', &["...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
        ('k', &["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."]),
        ('l', &[".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."]),
        ('m', &[".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"]),
        ('n', &[".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"]),
        ('o', &[".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."]),
        ('p', &[".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."]),
        ('q', &[".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"]),
        ('r', &[".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."]),
        ('s', &[".....", ".....", ".####", "#....", ".###.", "....#", "####."]),
        ('t', &[".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."]),
        ('u', &[".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"]),
        ('v', &[".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."]),
        ('w', &[".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."]),
        ('x', &[".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"]),
        ('y', &[".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."]),
        ('z', &[".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"]),
        ('-', &[".....", ".....", ".....", ".###.", ".....", ".....", "....."]),
        ('+', &[".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."]),
        ('.', &[".....", ".....", ".....", ".....", ".....", ".##..", ".##.."]),
        (',', &[".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."]),
        (':', &[".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."]),
        ('(', &["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."]),
        (')', &[".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."]),
        ('[', &[".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."]),
        (']', &[".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."]),
        ('/', &[".....", "....#", "...#.", "..#..", ".#...", "#....", "....."]),
        ('_', &[".....", ".....", ".....", ".....", ".....", ".....", "#####"]),
        ('%', &["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"]),
        ('=', &[".....", ".....", "#####", ".....", "#####", ".....", "....."]),
        ('<', &["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."]),
        ('>', &[".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."]),
        ('!', &["..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."]),
        ('?', &[".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."]),
        ('|', &["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."]),
        ('\'', &["..#..", "..#..", ".....", ".....", ".....", ".....", "....."]),
        ('°', &[".##..", "#..#.", "#..#.", ".##..", ".....", ".....", "....."]),
    ];

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_glyph_is_five_by_seven_and_listed_once() {
            for (index, (character, glyph)) in GLYPHS.iter().enumerate() {
                assert!(
                    glyph.len() == 7 || glyph.len() == HEIGHT as usize,
                    "{character:?}"
                );
                for row in glyph.iter() {
                    assert_eq!(row.len(), WIDTH as usize, "{character:?}");
                    assert!(row.bytes().all(|b| b == b'#' || b == b'.'), "{character:?}");
                }
                assert!(
                    GLYPHS[index + 1..]
                        .iter()
                        .all(|(other, _)| other != character),
                    "{character:?} twice"
                );
            }
            for character in ('0'..='9').chain('A'..='Z').chain('a'..='z') {
                assert_ne!(glyph(character), MISSING, "{character:?}");
            }
            assert_eq!(glyph('€'), MISSING);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ignores_outliers_and_survives_flat_and_non_finite_images() {
        let mut pixels: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32).collect();
        pixels[0] = 1e9;
        pixels[1] = -1e9;
        pixels[2] = f32::NAN;
        let (low, high) = grey_window(&pixels);
        assert!((0.0..=2.0).contains(&low) && (97.0..=99.0).contains(&high));
        assert_eq!(grey_window(&[5.0; 100]), (5.0, 5.0));
        let flat = windowed_grey(&[5.0; 16], 4, 4);
        assert!(flat.pixels().all(|p| p.0 == [128, 128, 128]));
        assert_eq!(grey_window(&[f32::NAN; 4]), (0.0, 0.0));
    }

    #[test]
    fn text_size_counts_characters() {
        assert_eq!(text_size("", 1), (0, 9));
        assert_eq!(text_size("C2", 1), (11, 9));
        assert_eq!(text_size("C2", 3), (33, 27));
    }

    #[test]
    fn drawing_off_the_image_is_clipped() {
        let mut canvas = Canvas {
            image: RgbImage::new(8, 8),
        };
        canvas.segment([-100.0, -100.0], [100.0, 100.0], 2.0, [255, 0, 0], 1.0);
        canvas.disc([-50.0, 4.0], 3.0, [0, 255, 0], 1.0);
        canvas.fill_rect(-5, -5, 100, 2, [0, 0, 255], 1.0);
        canvas.text(-20, 6, "C2-C7 12.5 deg", 2, [255, 255, 255]);
        assert_eq!(canvas.image.get_pixel(4, 4).0, [255, 0, 0]);
    }
}
