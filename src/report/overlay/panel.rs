//! The panel: the models, each parameter's value with its unit and quality status, the
//! myelopathy screen, the record's warnings and the legend; and the "NOT FOR CLINICAL USE"
//! banner.

use super::draw::{Canvas, Colour, Pen};
use super::text::{wrap, Face, TextStyle};
use super::{
    confidence_colour, parameter_colour, Style, CONFIDENCE_HIGH, CONFIDENCE_LOW, FINDING_MARK,
    OUTLINE, PANEL, PANEL_OPACITY, REFERENCE, TEXT, WARNING_TEXT,
};
use crate::measure::{QualityStatus, PARAMETER_NAMES};
use crate::report::{CsmRecord, ImageRecord, ModelInfo, ParameterRecord};

/// The banner's background and text.
const BANNER: Colour = [200, 0, 0];
const BANNER_TEXT: Colour = [255, 255, 255];
/// Text of a flagged value: dimmed.
const DIMMED: Colour = [150, 150, 150];
const REASON_TEXT: Colour = [200, 200, 200];

/// The background of a status tag and the colour of its text.
pub(super) fn status_colours(status: QualityStatus) -> (Colour, Colour) {
    match status {
        QualityStatus::Ok => ([40, 160, 60], [255, 255, 255]),
        QualityStatus::LowConfidence => ([255, 190, 0], [0, 0, 0]),
        QualityStatus::Implausible => ([215, 30, 30], [255, 255, 255]),
        QualityStatus::NotMeasurable => ([110, 110, 110], [255, 255, 255]),
    }
}

fn status_label(status: QualityStatus) -> &'static str {
    match status {
        QualityStatus::Ok => "ok",
        QualityStatus::LowConfidence => "! LOW CONFIDENCE",
        QualityStatus::Implausible => "! IMPLAUSIBLE",
        QualityStatus::NotMeasurable => "! NOT MEASURABLE",
    }
}

/// One piece of a panel line.
enum Span {
    Text {
        text: String,
        face: Face,
        /// Relative to the panel's text size.
        size: f32,
        colour: Colour,
        struck: bool,
    },
    /// A short line sample in a construction's colour.
    Swatch(Colour),
    Dot(Colour),
    Ring,
    /// A coloured box with text in it.
    Tag {
        text: &'static str,
        background: Colour,
        colour: Colour,
    },
    /// Moves the caret to at least this many pixels from the line's left edge.
    Column(f64),
    Gap(f64),
}

type Line = Vec<Span>;

/// The value as the panel writes it: sign, one decimal, unit (° for angles).
pub(super) fn format_value(parameter: &ParameterRecord) -> String {
    let number = if parameter.name == "CCA" {
        format!("{:.1}", parameter.value)
    } else if parameter.unit == "ratio" {
        format!("{:+.2}", parameter.value)
    } else {
        format!("{:+.1}", parameter.value)
    };
    let number = number.replace('-', "\u{2212}");
    match parameter.unit {
        "deg" => format!("{number}°"),
        "ratio" => number,
        unit => format!("{number} {unit}"),
    }
}

struct Layout {
    lines: Vec<Line>,
    size: f32,
}

impl Layout {
    fn style(&self, face: Face, relative: f32) -> TextStyle {
        TextStyle::new(face, self.size * relative)
    }

    fn span_width(&self, span: &Span, caret: f64) -> f64 {
        let em = f64::from(self.size);
        match span {
            Span::Text {
                text, face, size, ..
            } => self.style(*face, *size).width(text),
            Span::Swatch(_) => 1.6 * em,
            Span::Dot(_) | Span::Ring => 0.9 * em,
            Span::Tag { text, .. } => self.style(Face::Bold, 0.8).width(text) + 0.6 * em,
            Span::Column(x) => (x - caret).max(0.0),
            Span::Gap(x) => *x,
        }
    }

    fn line_width(&self, line: &Line) -> f64 {
        let mut caret = 0.0;
        for span in line {
            caret += self.span_width(span, caret);
        }
        caret
    }

    fn line_height(&self, line: &Line) -> f64 {
        line.iter()
            .map(|span| match span {
                Span::Text { face, size, .. } => self.style(*face, *size).line_height(),
                _ => self.style(Face::Regular, 1.0).line_height(),
            })
            .fold(0.0, f64::max)
    }
}

/// The lines of the panel for `record`, with text of `size` pixels; warnings wrap at
/// `max_width`.
fn layout(record: &ImageRecord, size: f32, max_width: f64) -> Layout {
    let mut layout = Layout {
        lines: Vec::new(),
        size,
    };
    let em = f64::from(size);
    let names: Vec<&str> = model_infos(record)
        .map(|model| model.name.as_str())
        .collect();
    layout.lines.push(vec![Span::Text {
        text: format!("Model: {}", names.join(" + ")),
        face: Face::Bold,
        size: 1.0,
        colour: TEXT,
        struck: false,
    }]);
    let facing = match record.facing {
        Some(crate::measure::Facing::Left) => "facing left · ",
        Some(crate::measure::Facing::Right) => "facing right · ",
        None if record.model.is_some() => "facing unknown · ",
        None => "",
    };
    let distances = match record.model {
        Some(_) => format!("distances in {} · ", record.distance_unit),
        None => String::new(),
    };
    layout.lines.push(vec![Span::Text {
        text: format!("{facing}{distances}sagitta {}", record.engine.version),
        face: Face::Regular,
        size: 0.8,
        colour: REASON_TEXT,
        struck: false,
    }]);

    // The lumbar angles that have a value, as the rows show them.
    let lumbar_values: Vec<ParameterRecord> = record
        .lumbar
        .iter()
        .flat_map(|lumbar| &lumbar.parameters)
        .filter_map(|p| {
            Some(ParameterRecord {
                name: p.name,
                value: p.value?,
                unit: p.unit,
                status: p.status,
                reasons: p.reasons.clone(),
                min_landmark_confidence: p.min_landmark_confidence,
                standard_error: p.standard_error,
                convention: p.convention,
            })
        })
        .collect();
    // The rows: the cervical parameters, then the whole-spine and the lumbar ones, each
    // model's when it ran.
    let mut entries: Vec<(&str, Option<&ParameterRecord>, Colour)> = Vec::new();
    if record.model.is_some() {
        for name in PARAMETER_NAMES {
            let parameter = record.parameters.iter().find(|p| p.name == name);
            entries.push((name, parameter, parameter_colour(name)));
        }
    }
    if let Some(spine) = &record.wholespine {
        for name in crate::measure::wholespine::PARAMETER_NAMES {
            let parameter = spine.parameters.iter().find(|p| p.name == name);
            entries.push((name, parameter, TEXT));
        }
    }
    if record.lumbar.is_some() {
        for name in crate::measure::lumbar::PARAMETER_NAMES {
            let parameter = lumbar_values.iter().find(|p| p.name == name);
            entries.push((name, parameter, parameter_colour(name)));
        }
    }
    let regular = layout.style(Face::Regular, 1.0);
    let name_width = entries
        .iter()
        .map(|(name, _, _)| regular.width(name))
        .fold(regular.width("p(CSM)"), f64::max);
    let value_column = 1.6 * em + 0.4 * em + name_width + 0.8 * em;
    let value_width = regular.width("\u{2212}000.0 mm");
    let mut rows = Vec::new();
    for (name, parameter, colour) in entries {
        let mut line = vec![
            Span::Swatch(colour),
            Span::Gap(0.4 * em),
            Span::Text {
                text: name.to_string(),
                face: Face::Bold,
                size: 1.0,
                colour,
                struck: false,
            },
        ];
        let (value, status, reasons) = match parameter {
            Some(p) => (
                format_value(p),
                p.status,
                p.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ),
            None => (
                "\u{2014}".to_string(),
                QualityStatus::NotMeasurable,
                vec!["not_computed"],
            ),
        };
        // Right-align the value in its column.
        let width = regular.width(&value);
        line.push(Span::Column(value_column + value_width - width));
        line.push(Span::Text {
            text: value,
            face: Face::Regular,
            size: 1.0,
            colour: if status == QualityStatus::Ok {
                TEXT
            } else {
                DIMMED
            },
            struck: matches!(
                status,
                QualityStatus::Implausible | QualityStatus::NotMeasurable
            ),
        });
        if status != QualityStatus::Ok {
            let (background, colour) = status_colours(status);
            line.push(Span::Gap(0.6 * em));
            line.push(Span::Tag {
                text: status_label(status),
                background,
                colour,
            });
        }
        rows.push((line, reasons));
    }
    if let Some(screen) = &record.csm {
        rows.push(csm_row(screen, &regular, value_column + value_width, em));
    }

    // The widest of the title and the value rows (not narrower than the legend) sets the
    // width that reasons and warnings wrap to.
    let width = layout
        .lines
        .iter()
        .chain(rows.iter().map(|(line, _)| line))
        .map(|line| layout.line_width(line))
        .fold(0.0, f64::max)
        .max((20.0 * em).min(max_width));
    let reason_style = layout.style(Face::Regular, 0.75);
    for (line, reasons) in rows {
        layout.lines.push(line);
        for piece in wrap(&reasons.join(", "), reason_style, width - value_column) {
            layout.lines.push(vec![
                Span::Column(value_column),
                Span::Text {
                    text: piece,
                    face: Face::Regular,
                    size: 0.75,
                    colour: REASON_TEXT,
                    struck: false,
                },
            ]);
        }
    }
    let small = layout.style(Face::Regular, 0.8);
    for warning in &record.warnings {
        for (index, piece) in wrap(warning, small, width - 1.2 * em)
            .into_iter()
            .enumerate()
        {
            let mut line = vec![Span::Gap(if index == 0 { 0.0 } else { 0.8 * em })];
            let piece = if index == 0 {
                format!("! {piece}")
            } else {
                piece
            };
            line.push(Span::Text {
                text: piece,
                face: Face::Regular,
                size: 0.8,
                colour: WARNING_TEXT,
                struck: false,
            });
            layout.lines.push(line);
        }
    }

    if record.model.is_none() && record.wholespine.is_none() && record.lumbar.is_none() {
        return layout;
    }
    let legend_text = |t: &str| Span::Text {
        text: t.to_string(),
        face: Face::Regular,
        size: 0.8,
        colour: TEXT,
        struck: false,
    };
    layout.lines.push(vec![
        legend_text("Landmark confidence:"),
        Span::Gap(0.4 * em),
        Span::Dot(confidence_colour(Some(1.0))),
        legend_text(&format!("≥ {CONFIDENCE_HIGH}")),
        Span::Gap(0.5 * em),
        Span::Dot(confidence_colour(Some(CONFIDENCE_LOW))),
        legend_text(&format!("{CONFIDENCE_LOW}–{CONFIDENCE_HIGH}")),
        Span::Gap(0.5 * em),
        Span::Dot(confidence_colour(Some(0.0))),
        legend_text(&format!("< {CONFIDENCE_LOW}")),
    ]);
    // The light grey line is the cervical reference endplate, or without the cervical model
    // the lumbar levels' crop boxes.
    let grey_line = if record.model.is_some() {
        "C2 inferior endplate (reference)"
    } else {
        "level crop box"
    };
    layout.lines.push(vec![
        Span::Ring,
        Span::Gap(0.2 * em),
        legend_text("named in a finding"),
        Span::Gap(0.8 * em),
        Span::Swatch(REFERENCE),
        Span::Gap(0.3 * em),
        legend_text(grey_line),
    ]);
    layout
}

/// The models of a record, the landmark model first.
fn model_infos(record: &ImageRecord) -> impl Iterator<Item = &ModelInfo> {
    record
        .model
        .iter()
        .chain(record.csm.iter().map(|screen| &screen.model))
        .chain(record.wholespine.iter().map(|spine| &spine.model))
        .chain(record.lumbar.iter().map(|lumbar| &lumbar.model))
}

/// The screen's line: the probability right-aligned at `value_end`, the label as a tag, and
/// below it the threshold, the caveat's gist and any reason not to read it.
fn csm_row(
    screen: &CsmRecord,
    regular: &TextStyle,
    value_end: f64,
    em: f64,
) -> (Vec<Span>, Vec<&'static str>) {
    let value = format!("{:.3}", screen.p_csm);
    let readable = screen.status == QualityStatus::Ok;
    // No swatch: nothing is drawn on the image for the screen.
    let mut line = vec![
        Span::Gap(2.0 * em),
        Span::Text {
            text: "p(CSM)".to_string(),
            face: Face::Bold,
            size: 1.0,
            colour: TEXT,
            struck: false,
        },
        Span::Column(value_end - regular.width(&value)),
        Span::Text {
            text: value,
            face: Face::Regular,
            size: 1.0,
            colour: if readable { TEXT } else { DIMMED },
            struck: false,
        },
        Span::Gap(0.6 * em),
    ];
    let (background, colour) = if readable {
        match screen.label {
            "CSM" => status_colours(QualityStatus::LowConfidence),
            _ => status_colours(QualityStatus::Ok),
        }
    } else {
        status_colours(screen.status)
    };
    line.push(Span::Tag {
        text: if readable {
            screen.label
        } else {
            status_label(screen.status)
        },
        background,
        colour,
    });
    let mut notes = vec![if screen.threshold == 0.5 {
        "threshold 0.5"
    } else {
        "threshold from the weights"
    }];
    notes.push("myelopathy screen, not a diagnosis");
    notes.extend(screen.reasons.iter().map(|reason| reason.as_str()));
    (line, notes)
}

/// The banner's message and detail, when a model's metadata says it is not for clinical use.
pub(super) fn banner_text(record: &ImageRecord) -> Option<(&'static str, String)> {
    let research_only: Vec<&str> = model_infos(record)
        .filter(|model| model.not_for_clinical_use)
        .map(|model| model.name.as_str())
        .collect();
    let detail = match research_only.as_slice() {
        [] => return None,
        [one] => format!(" · model {one} is for research only"),
        many => format!(" · models {} are for research only", many.join(", ")),
    };
    Some(("NOT FOR CLINICAL USE", detail))
}

/// The panel's lines as plain text, each in the colour of its first words, for a viewer that
/// sets the text itself (the presentation state). The legend's swatches and dots have no text,
/// so its lines become [`legend_in_words`].
pub(super) fn plain_lines(record: &ImageRecord) -> Vec<(String, Colour)> {
    let layout = layout(record, 16.0, f64::INFINITY);
    let mut lines = Vec::new();
    let mut legend = false;
    for line in &layout.lines {
        if line
            .iter()
            .any(|span| matches!(span, Span::Dot(_) | Span::Ring))
        {
            legend = true;
            continue;
        }
        let mut text = String::new();
        let mut colour = None;
        for span in line {
            let (piece, span_colour) = match span {
                Span::Text { text, colour, .. } => (text.clone(), *colour),
                Span::Tag { text, .. } => (format!("[{}]", text.trim_start_matches("! ")), TEXT),
                _ => continue,
            };
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&piece);
            colour.get_or_insert(span_colour);
        }
        if !text.is_empty() {
            lines.push((text, colour.unwrap_or(TEXT)));
        }
    }
    if legend {
        lines.extend(legend_in_words().map(|line| (line, TEXT)));
    }
    lines
}

/// The legend for a viewer that draws the landmarks in the colours of their confidence.
fn legend_in_words() -> [String; 2] {
    [
        format!(
            "Landmark confidence: green >= {CONFIDENCE_HIGH}, yellow {CONFIDENCE_LOW}-{CONFIDENCE_HIGH}, red < {CONFIDENCE_LOW}"
        ),
        "White ring: a landmark named in a quality finding".to_string(),
    ]
}

/// Draws the banner across the top of the image; returns its height.
pub(super) fn draw_banner(canvas: &mut Canvas, style: &Style, record: &ImageRecord) -> i64 {
    let Some((message, detail)) = banner_text(record) else {
        return 0;
    };
    let width = f64::from(canvas.image.width());
    let mut size = style.banner_size;
    let mut bold = TextStyle::new(Face::Bold, size);
    while bold.width(message) > 0.95 * width && size > 6.0 {
        size *= 0.9;
        bold = TextStyle::new(Face::Bold, size);
    }
    let regular = TextStyle::new(Face::Regular, 0.7 * size);
    let with_detail = bold.width(message) + regular.width(&detail) <= 0.95 * width;
    let total = bold.width(message)
        + if with_detail {
            regular.width(&detail)
        } else {
            0.0
        };
    let height = (bold.line_height() * 1.3).ceil();
    canvas.fill_rect(0, 0, width as i64, height as i64, BANNER, 0.88);
    let left = ((width - total) / 2.0).max(0.0);
    let top = (height - bold.height()) / 2.0;
    let advance = canvas.text(left, top, message, bold, BANNER_TEXT, 1.0);
    if with_detail {
        let small_top = top + (bold.height() - regular.height()) * 0.75;
        canvas.text(
            left + advance,
            small_top,
            &detail,
            regular,
            BANNER_TEXT,
            1.0,
        );
    }
    height as i64
}

/// Where the panel goes and what it says.
pub(super) struct PanelPlan {
    layout: Layout,
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    pad: f64,
}

impl PanelPlan {
    /// The panel's box: left, top, right, bottom.
    pub(super) fn rect(&self) -> [f64; 4] {
        [
            self.left,
            self.top,
            self.left + self.width,
            self.top + self.height,
        ]
    }
}

/// Lays out the panel and puts it in the corner where it hides the fewest of `keep_visible`,
/// below the banner.
pub(super) fn plan(
    canvas: &Canvas,
    style: &Style,
    record: &ImageRecord,
    keep_visible: &[[f64; 2]],
    banner_height: i64,
) -> PanelPlan {
    let (image_width, image_height) = (
        f64::from(canvas.image.width()),
        f64::from(canvas.image.height()) - banner_height as f64,
    );
    // Shrink the text until the panel fits in the image beside the spine.
    let mut size = style.panel_size;
    let (layout, panel_width, panel_height, pad) = loop {
        let layout = layout(record, size, 0.45 * image_width);
        let pad = (0.5 * f64::from(size)).ceil();
        let width = layout
            .lines
            .iter()
            .map(|line| layout.line_width(line))
            .fold(0.0, f64::max)
            + 2.0 * pad;
        let height: f64 = layout
            .lines
            .iter()
            .map(|line| layout.line_height(line))
            .sum::<f64>()
            + 2.0 * pad;
        if (width <= 0.62 * image_width && height <= 0.95 * image_height) || size <= 7.0 {
            break (layout, width.ceil(), height.ceil(), pad);
        }
        size *= 0.9;
    };

    let margin = (0.4 * f64::from(size)).round();
    let top_row = banner_height as f64 + margin;
    let bottom_row = banner_height as f64 + image_height - panel_height - margin;
    let right_column = image_width - panel_width - margin;
    let corners = [
        (margin, top_row),
        (right_column, top_row),
        (margin, bottom_row),
        (right_column, bottom_row),
    ];
    let hidden = |&(left, top): &(f64, f64)| {
        keep_visible
            .iter()
            .filter(|p| {
                p[0] >= left
                    && p[0] < left + panel_width
                    && p[1] >= top
                    && p[1] < top + panel_height
            })
            .count()
    };
    // min_by_key keeps the first of equals: top-left wins ties.
    let (left, top) = corners
        .iter()
        .min_by_key(|corner| hidden(corner))
        .copied()
        .unwrap_or((margin, top_row));
    PanelPlan {
        layout,
        left: left.max(0.0),
        top: top.max(banner_height as f64),
        width: panel_width,
        height: panel_height,
        pad,
    }
}

/// Draws the panel where [`plan`] put it.
pub(super) fn draw_panel(canvas: &mut Canvas, style: &Style, plan: &PanelPlan) {
    let PanelPlan {
        layout,
        left,
        top,
        width: panel_width,
        height: panel_height,
        pad,
    } = plan;
    let (left, top, pad) = (*left, *top, *pad);
    canvas.fill_rect(
        left as i64,
        top as i64,
        *panel_width as i64,
        *panel_height as i64,
        PANEL,
        PANEL_OPACITY,
    );
    let em = f64::from(layout.size);
    let mut y = top + pad;
    for line in &layout.lines {
        let line_height = layout.line_height(line);
        let mut caret = left + pad;
        for span in line {
            let width = layout.span_width(span, caret - left - pad);
            let middle = y + 0.5 * layout.style(Face::Regular, 1.0).height();
            match span {
                Span::Text {
                    text,
                    face,
                    size,
                    colour,
                    struck,
                } => {
                    let text_style = layout.style(*face, *size);
                    // Smaller text sits on the same baseline as the line's full-size text.
                    let offset = layout.style(*face, 1.0).height() - text_style.height();
                    let drawn_top = if line_height > text_style.line_height() {
                        y + offset * 0.8
                    } else {
                        y
                    };
                    canvas.text(caret, drawn_top, text, text_style, *colour, 1.0);
                    if *struck {
                        let strike_y = drawn_top + 0.55 * text_style.height();
                        canvas.segment(
                            [caret, strike_y],
                            [caret + width, strike_y],
                            (0.05 * em).max(0.6),
                            *colour,
                            1.0,
                        );
                    }
                }
                Span::Swatch(colour) => {
                    canvas.segment(
                        [caret + 0.1 * em, middle],
                        [caret + width - 0.1 * em, middle],
                        (0.12 * em).max(0.8),
                        *colour,
                        1.0,
                    );
                }
                Span::Dot(colour) => {
                    canvas.disc(
                        [caret + 0.4 * em, middle],
                        0.28 * em + style.outline,
                        OUTLINE,
                        1.0,
                    );
                    canvas.disc([caret + 0.4 * em, middle], 0.28 * em, *colour, 1.0);
                }
                Span::Ring => {
                    let centre = [caret + 0.4 * em, middle];
                    canvas.ring(centre, 0.3 * em, (0.06 * em).max(0.6), FINDING_MARK, 1.0);
                    canvas.cross(centre, 0.12 * em, (0.04 * em).max(0.5), FINDING_MARK);
                }
                Span::Tag {
                    text,
                    background,
                    colour,
                } => {
                    let tag_style = layout.style(Face::Bold, 0.8);
                    let box_top = middle - 0.5 * tag_style.line_height();
                    canvas.fill_rect(
                        caret as i64,
                        box_top.round() as i64,
                        width.round() as i64,
                        tag_style.line_height().round() as i64,
                        *background,
                        1.0,
                    );
                    canvas.text(
                        caret + 0.3 * em,
                        middle - 0.5 * tag_style.height(),
                        text,
                        tag_style,
                        *colour,
                        1.0,
                    );
                }
                Span::Column(_) | Span::Gap(_) => {}
            }
            caret += width;
        }
        y += line_height;
    }
}
