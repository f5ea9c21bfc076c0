//! The overlay as a Grayscale Softcopy Presentation State (PS3.3 A.33.1): the constructions,
//! landmarks, labels and values of the PNG overlay as graphic annotations on the original
//! image, which a PACS viewer (OHIF, Weasis, ...) draws over the untouched pixels.
//!
//! - Each kind of shape is a graphic layer, named by what it draws (a parameter's
//!   construction, the reference endplate, the landmarks of one confidence class, the quality
//!   findings' marks) with the PNG's colour as its recommended display colour (CIELab, D50, as
//!   PS3.3 C.10.7.1.1 asks), so that a reader can switch each off;
//! - lines, arcs and dashes are POLYLINEs, points are filled CIRCLEs, finding marks hollow
//!   ones, all in PIXEL units, where (0, 0) is the top-left corner of the top-left pixel: the
//!   record's coordinates (pixel centres at integers) plus one half;
//! - the landmark names, vertebra levels and construction tags are text objects on the image;
//!   the panel (the model, each value with its quality status, the warnings) and the "NOT FOR
//!   CLINICAL USE" banner are text objects in DISPLAY units at the top left;
//! - the grey pipeline reproduces the source's: its rescale as the Modality LUT, its first VOI
//!   window, and `INVERSE` for a `MONOCHROME1` source.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::FileDicomObject;

use super::super::overlay::vector::{self, Annotations, Shape};
use super::super::overlay::Colour;
use super::super::ImageRecord;
use super::{common_modules, decimal_string, floats, sequence, text, unsigned_short, with_meta};
use super::{DicomOutError, Kind, ObjectIdentity, Source};

/// Grayscale Softcopy Presentation State Storage.
pub const GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.11.1";
/// The Series Number of the presentation states' new series (after the SRs').
pub const SERIES_NUMBER: i32 = 9902;
/// Height of one panel line as a fraction of the displayed area's height.
const PANEL_LINE: f64 = 0.022;

/// A DICOM Code String for a layer: upper case, digits, underscores, at most 16 characters.
fn layer_code(name: &str) -> String {
    let code: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut code = code
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    code.truncate(16);
    code
}

/// sRGB to CIELab (D50) in DICOM's encoding: L* 0..100 and a*, b* −128..127 mapped onto
/// 0..65535 (PS3.3 C.10.7.1.1).
pub fn cielab(colour: Colour) -> [u16; 3] {
    let linear = colour.map(|c| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    // sRGB primaries adapted to D50 (Bradford), as in ICC profiles.
    let [r, g, b] = linear;
    let x = 0.436_074_7 * r + 0.385_064_9 * g + 0.143_080_4 * b;
    let y = 0.222_504_5 * r + 0.716_878_6 * g + 0.060_616_9 * b;
    let z = 0.013_932_2 * r + 0.097_104_5 * g + 0.714_173_3 * b;
    let f = |t: f64| {
        if t > (6.0f64 / 29.0).powi(3) {
            t.cbrt()
        } else {
            t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0
        }
    };
    // The white point is the matrix's own image of white (D50 as the matrix rounds it).
    let (fx, fy, fz) = (f(x / 0.964_220_0), f(y), f(z / 0.825_210_0));
    let l = 116.0 * fy - 16.0;
    let a = 500.0 * (fx - fy);
    let b = 200.0 * (fy - fz);
    let scale = |value: f64, low: f64, high: f64| {
        ((value - low) / (high - low) * 65535.0)
            .round()
            .clamp(0.0, 65535.0) as u16
    };
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 127.0),
        scale(b, -128.0, 127.0),
    ]
}

/// A point in DICOM's PIXEL annotation units.
fn pixel_point(point: [f64; 2]) -> [f32; 2] {
    [(point[0] + 0.5) as f32, (point[1] + 0.5) as f32]
}

fn graphic_object(shape: &Shape) -> Option<InMemDicomObject> {
    let (graphic_type, points, filled): (&str, Vec<[f32; 2]>, Option<bool>) = match shape {
        Shape::Polyline(points) if points.len() >= 2 => (
            "POLYLINE",
            points.iter().map(|&p| pixel_point(p)).collect(),
            None,
        ),
        Shape::Polyline(_) => return None,
        Shape::Circle {
            centre,
            radius,
            filled,
        } => (
            "CIRCLE",
            vec![
                pixel_point(*centre),
                pixel_point([centre[0] + radius, centre[1]]),
            ],
            Some(*filled),
        ),
    };
    if !points.iter().flatten().all(|v| v.is_finite()) {
        return None;
    }
    let data: Vec<f32> = points.iter().flatten().copied().collect();
    let mut item = InMemDicomObject::from_element_iter([
        text(tags::GRAPHIC_ANNOTATION_UNITS, VR::CS, "PIXEL"),
        unsigned_short(tags::GRAPHIC_DIMENSIONS, &[2]),
        unsigned_short(tags::NUMBER_OF_GRAPHIC_POINTS, &[points.len() as u16]),
        floats(tags::GRAPHIC_DATA, &data),
        text(tags::GRAPHIC_TYPE, VR::CS, graphic_type),
    ]);
    if let Some(filled) = filled {
        item.put(text(
            tags::GRAPHIC_FILLED,
            VR::CS,
            if filled { "Y" } else { "N" },
        ));
    }
    Some(item)
}

/// A text in a box: PIXEL units on the image, or DISPLAY units (fractions of the displayed
/// area) for the panel.
fn text_object(
    value: &str,
    top_left: [f32; 2],
    bottom_right: [f32; 2],
    display: bool,
) -> InMemDicomObject {
    let units = if display { "DISPLAY" } else { "PIXEL" };
    InMemDicomObject::from_element_iter([
        text(tags::BOUNDING_BOX_ANNOTATION_UNITS, VR::CS, units),
        text(tags::UNFORMATTED_TEXT_VALUE, VR::ST, value),
        floats(tags::BOUNDING_BOX_TOP_LEFT_HAND_CORNER, &top_left),
        floats(tags::BOUNDING_BOX_BOTTOM_RIGHT_HAND_CORNER, &bottom_right),
        text(
            tags::BOUNDING_BOX_TEXT_HORIZONTAL_JUSTIFICATION,
            VR::CS,
            if display { "LEFT" } else { "CENTER" },
        ),
    ])
}

/// One graphic layer: what it draws, in which colour, and its annotations.
struct Layer {
    code: String,
    description: String,
    colour: Colour,
    graphics: Vec<InMemDicomObject>,
    texts: Vec<InMemDicomObject>,
}

/// The annotations grouped into layers, in drawing order (first drawn, lowest).
fn layers(annotations: &Annotations, width: u32, height: u32) -> Vec<Layer> {
    let mut layers: Vec<Layer> = Vec::new();
    let mut layer_for = |description: &str, colour: Colour| -> usize {
        if let Some(index) = layers
            .iter()
            .position(|layer| layer.description == description)
        {
            return index;
        }
        let base = layer_code(description);
        let mut code = base.clone();
        let mut suffix = 2;
        while layers.iter().any(|layer| layer.code == code) {
            let tail = format!("_{suffix}");
            code = format!("{}{tail}", &base[..base.len().min(16 - tail.len())]);
            suffix += 1;
        }
        layers.push(Layer {
            code,
            description: description.to_string(),
            colour,
            graphics: Vec::new(),
            texts: Vec::new(),
        });
        layers.len() - 1
    };
    let mut placed: Vec<(usize, InMemDicomObject, bool)> = Vec::new();
    for graphic in &annotations.graphics {
        if let Some(item) = graphic_object(&graphic.shape) {
            placed.push((layer_for(&graphic.layer, graphic.colour), item, false));
        }
    }
    let (columns, rows) = (f64::from(width), f64::from(height));
    for note in &annotations.notes {
        let pad = 0.2 * note.size;
        let (half_width, half_height) = (0.5 * note.width + pad, 0.5 * note.size + pad);
        // Kept on the image: a box off it may not be drawn at all.
        let left =
            (note.at[0] + 0.5 - half_width).clamp(0.0, (columns - 2.0 * half_width).max(0.0));
        let top = (note.at[1] + 0.5 - half_height).clamp(0.0, (rows - 2.0 * half_height).max(0.0));
        let item = text_object(
            &note.text,
            [left as f32, top as f32],
            [
                (left + 2.0 * half_width).min(columns) as f32,
                (top + 2.0 * half_height).min(rows) as f32,
            ],
            false,
        );
        placed.push((layer_for("labels", note.colour), item, true));
    }
    let mut top = 0.01;
    if let Some(banner) = &annotations.banner {
        let item = text_object(
            banner,
            [0.01, top as f32],
            [0.99, (top + 1.4 * PANEL_LINE) as f32],
            true,
        );
        placed.push((layer_for("banner", [255, 255, 255]), item, true));
        top += 1.6 * PANEL_LINE;
    }
    for (line, colour) in &annotations.panel {
        let item = text_object(
            line,
            [0.01, top as f32],
            [0.7, (top + PANEL_LINE) as f32],
            true,
        );
        placed.push((layer_for("panel", *colour), item, true));
        top += PANEL_LINE;
        if top > 0.98 {
            break;
        }
    }
    for (index, item, is_text) in placed {
        if is_text {
            layers[index].texts.push(item);
        } else {
            layers[index].graphics.push(item);
        }
    }
    layers
}

/// The Grayscale Softcopy Presentation State that draws the overlay of an analysed DICOM
/// image over its original pixels.
pub fn presentation_state(
    record: &ImageRecord,
    identity: &ObjectIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<FileDicomObject<InMemDicomObject>, DicomOutError> {
    let source = Source::of(record)?;
    let annotations = vector::annotations(record);
    let texts: Vec<&str> = annotations
        .notes
        .iter()
        .map(|note| note.text.as_str())
        .chain(annotations.panel.iter().map(|(line, _)| line.as_str()))
        .chain(annotations.banner.as_deref())
        .collect();
    let mut object = common_modules(
        &source,
        record,
        identity,
        &Kind {
            sop_class_uid: GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
            modality: "PR",
            series_number: SERIES_NUMBER,
            series_description: "sagitta overlay",
        },
        now,
        &texts,
    );
    let mut put = |tag, vr, value: &str| object.put(text(tag, vr, value));
    // Presentation State Identification.
    put(tags::CONTENT_LABEL, VR::CS, "SAGITTA");
    put(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "sagitta landmarks, constructions and values",
    );
    put(
        tags::PRESENTATION_CREATION_DATE,
        VR::DA,
        &now.format("%Y%m%d").to_string(),
    );
    put(
        tags::PRESENTATION_CREATION_TIME,
        VR::TM,
        &now.format("%H%M%S%.6f").to_string(),
    );
    put(tags::CONTENT_CREATOR_NAME, VR::PN, "");
    // Presentation State Relationship.
    object.put(sequence(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![source.referenced_series(tags::REFERENCED_IMAGE_SEQUENCE)],
    ));
    let referenced_image = || {
        sequence(
            tags::REFERENCED_IMAGE_SEQUENCE,
            vec![source.image.referenced_sop()],
        )
    };
    // Displayed Area: the whole image, scaled to fit, with the source's pixel shape.
    let mut area = InMemDicomObject::from_element_iter([
        referenced_image(),
        DataElement::new(
            tags::DISPLAYED_AREA_TOP_LEFT_HAND_CORNER,
            VR::SL,
            PrimitiveValue::I32([1, 1].as_slice().into()),
        ),
        DataElement::new(
            tags::DISPLAYED_AREA_BOTTOM_RIGHT_HAND_CORNER,
            VR::SL,
            PrimitiveValue::I32(
                [record.width as i32, record.height as i32]
                    .as_slice()
                    .into(),
            ),
        ),
        text(tags::PRESENTATION_SIZE_MODE, VR::CS, "SCALE TO FIT"),
    ]);
    match record.pixel_spacing {
        Some(spacing) if spacing.row_mm > 0.0 && spacing.column_mm > 0.0 => {
            area.put(text(
                tags::PRESENTATION_PIXEL_SPACING,
                VR::DS,
                &format!(
                    "{}\\{}",
                    decimal_string(spacing.row_mm),
                    decimal_string(spacing.column_mm)
                ),
            ));
        }
        _ => {
            area.put(text(tags::PRESENTATION_PIXEL_ASPECT_RATIO, VR::IS, "1\\1"));
        }
    }
    object.put(sequence(
        tags::DISPLAYED_AREA_SELECTION_SEQUENCE,
        vec![area],
    ));

    // The source's grey pipeline.
    let dicom = record.dicom.as_ref().ok_or(DicomOutError::NotDicom)?;
    let stored_to_grey = dicom.stored_to_grey;
    if let Some(rescale) = stored_to_grey.filter(|r| r.slope != 1.0 || r.intercept != 0.0) {
        object.put(text(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            &decimal_string(rescale.intercept),
        ));
        object.put(text(
            tags::RESCALE_SLOPE,
            VR::DS,
            &decimal_string(rescale.slope),
        ));
        object.put(text(tags::RESCALE_TYPE, VR::LO, "US"));
    }
    let mirror_sum = stored_to_grey.and_then(|r| r.mirror_sum);
    if let Some(window) = dicom.window {
        // The record's window applies to the mirrored values of a MONOCHROME1 image.
        let center = mirror_sum.map_or(window.center, |sum| sum - window.center);
        object.put(sequence(
            tags::SOFTCOPY_VOILUT_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                referenced_image(),
                text(tags::WINDOW_CENTER, VR::DS, &decimal_string(center)),
                text(
                    tags::WINDOW_WIDTH,
                    VR::DS,
                    &decimal_string(window.width.max(1.0)),
                ),
            ])],
        ));
    }
    object.put(text(
        tags::PRESENTATION_LUT_SHAPE,
        VR::CS,
        if mirror_sum.is_some() {
            "INVERSE"
        } else {
            "IDENTITY"
        },
    ));

    // Graphic Annotation and Graphic Layer.
    let layers = layers(&annotations, record.width, record.height);
    let mut annotation_items = Vec::new();
    let mut layer_items = Vec::new();
    for (order, layer) in layers.into_iter().enumerate() {
        let lab = cielab(layer.colour);
        layer_items.push(InMemDicomObject::from_element_iter([
            text(tags::GRAPHIC_LAYER, VR::CS, &layer.code),
            text(tags::GRAPHIC_LAYER_ORDER, VR::IS, &(order + 1).to_string()),
            unsigned_short(
                tags::GRAPHIC_LAYER_RECOMMENDED_DISPLAY_GRAYSCALE_VALUE,
                &[lab[0]],
            ),
            unsigned_short(tags::GRAPHIC_LAYER_RECOMMENDED_DISPLAY_CIE_LAB_VALUE, &lab),
            text(tags::GRAPHIC_LAYER_DESCRIPTION, VR::LO, &layer.description),
        ]));
        let mut item = InMemDicomObject::from_element_iter([
            referenced_image(),
            text(tags::GRAPHIC_LAYER, VR::CS, &layer.code),
        ]);
        if !layer.texts.is_empty() {
            item.put(sequence(tags::TEXT_OBJECT_SEQUENCE, layer.texts));
        }
        if !layer.graphics.is_empty() {
            item.put(sequence(tags::GRAPHIC_OBJECT_SEQUENCE, layer.graphics));
        }
        annotation_items.push(item);
    }
    if !annotation_items.is_empty() {
        object.put(sequence(
            tags::GRAPHIC_ANNOTATION_SEQUENCE,
            annotation_items,
        ));
        object.put(sequence(tags::GRAPHIC_LAYER_SEQUENCE, layer_items));
    }
    with_meta(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_codes_are_dicom_code_strings() {
        assert_eq!(layer_code("C2-C7"), "C2_C7");
        assert_eq!(layer_code("C7 slope"), "C7_SLOPE");
        assert_eq!(layer_code("C0-C2, PI"), "C0_C2_PI");
        assert_eq!(layer_code("landmarks no confidence"), "LANDMARKS_NO_CON");
    }

    #[test]
    fn cielab_of_white_black_and_red() {
        assert_eq!(cielab([255, 255, 255]), [65535, 32896, 32896]);
        assert_eq!(cielab([0, 0, 0]), [0, 32896, 32896]);
        // sRGB red in D50 Lab is about (54.3, 80.8, 69.9).
        let [l, a, b] = cielab([255, 0, 0]);
        let decode = |v: u16, low: f64, high: f64| low + f64::from(v) / 65535.0 * (high - low);
        assert!((decode(l, 0.0, 100.0) - 54.3).abs() < 0.5, "{l}");
        assert!((decode(a, -128.0, 127.0) - 80.8).abs() < 0.8, "{a}");
        assert!((decode(b, -128.0, 127.0) - 69.9).abs() < 0.8, "{b}");
    }
}
