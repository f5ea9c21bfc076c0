//! The overlay checked by its pixels, on records built from a spine drawn by construction.

use std::path::Path;

use super::panel::{format_value, status_colours};
use super::*;
use crate::io::{DicomAttributes, Radiograph, SpacingSource};
use crate::measure::{
    cervical, Finding, PixelSpacing, QualityStatus, ReasonCode, AI, AS, LANDMARK_COUNT,
    LANDMARK_NAMES, PI, PS,
};
use crate::report::{build_record, LandmarkOutcome, ModelInfo, RecordContext, TimingMs};

const SIZE: u32 = 800;
const SPACING: PixelSpacing = PixelSpacing {
    row_mm: 0.4,
    column_mm: 0.4,
};

/// An upright spine facing right in an 800 px image (the spine of the quality tests, 2.5 px to
/// the mm): C2 taller than C3–C7, the skull points above C2.
fn spine() -> [[f64; 2]; LANDMARK_COUNT] {
    let (left, top, width, height, c2_height, disc) = (330.0, 250.0, 40.0, 35.0, 55.0, 10.0);
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    let mut y = top;
    for v in 0..6 {
        let h = if v == 0 { c2_height } else { height };
        points[4 * v + AS] = [left + width, y];
        points[4 * v + PS] = [left, y];
        points[4 * v + PI] = [left, y + h];
        points[4 * v + AI] = [left + width, y + h];
        y += h + disc;
    }
    // The C7 and T1 superior endplates slope a little, as they do.
    points[20 + AS][1] += 3.0;
    points[T1_AS] = [left + width + 2.5, y + 5.0];
    points[T1_PS] = [left - 2.5, y];
    points[crate::measure::PNS] = [left + 100.0, top - 37.5];
    points[crate::measure::OCC] = [left - 100.0, top - 25.0];
    points[crate::measure::DENS] = [left + 20.0, top - 30.0];
    points
}

fn model(not_for_clinical_use: bool) -> ModelInfo {
    ModelInfo {
        name: "test-model".into(),
        weights: "test.safetensors".into(),
        sha256: "0".repeat(64),
        dtype: "f32".into(),
        input_size: 1024,
        precision: crate::engine::Precision::F32,
        not_for_clinical_use,
    }
}

fn radiograph(pixels: Vec<f32>) -> Radiograph {
    Radiograph {
        width: SIZE,
        height: SIZE,
        pixels,
        pixel_spacing: Some(SPACING),
        spacing_source: SpacingSource::PixelSpacing,
        format: "dicom",
        transfer_syntax: None,
        dicom: Some(DicomAttributes::default()),
    }
}

/// A grey ramp from left to right, 0..1000.
fn ramp() -> Vec<f32> {
    (0..SIZE * SIZE)
        .map(|i| (i % SIZE) as f32 * 1000.0 / SIZE as f32)
        .collect()
}

/// The record of `points` with every landmark at `confidence`.
fn record_of(
    points: &[[f64; 2]; LANDMARK_COUNT],
    confidence: f64,
    not_for_clinical_use: bool,
) -> ImageRecord {
    let landmarks = points
        .iter()
        .zip(LANDMARK_NAMES)
        .enumerate()
        .map(|(index, (point, name))| LandmarkRecord {
            name,
            x: point[0] as f32,
            y: point[1] as f32,
            sd_px: 1.0,
            confidence: Some(confidence),
            source: if [0, 1, 26, 27, 28].contains(&index) {
                LandmarkSource::Global
            } else {
                LandmarkSource::Refined
            },
            refinement_shift_px: 0.0,
        })
        .collect();
    let model = model(not_for_clinical_use);
    let context = RecordContext {
        image: Path::new("spine.dcm"),
        adapter: "test",
    };
    build_record(
        &context,
        &radiograph(ramp()),
        Some(LandmarkOutcome {
            model: &model,
            landmarks,
            measured: cervical(points, Some(SPACING)).map_err(|error| error.to_string()),
        }),
        None,
        None,
        None,
        TimingMs {
            load: 0.0,
            inference: 0.0,
            total: 0.0,
        },
    )
}

fn clean_record(not_for_clinical_use: bool) -> ImageRecord {
    let record = record_of(&spine(), 0.9, not_for_clinical_use);
    assert_eq!(record.parameters.len(), 9, "{:?}", record.warnings);
    assert!(
        record
            .parameters
            .iter()
            .all(|p| p.status == QualityStatus::Ok),
        "{:?}",
        record.findings
    );
    assert!(record.findings.is_empty());
    record
}

fn draw(record: &ImageRecord, window: Option<VoiWindow>) -> RgbImage {
    render(&ramp(), SIZE, SIZE, window, record).unwrap()
}

/// A window that maps every pixel of the ramp to black, so that anything drawn stands out.
const BLACK: VoiWindow = VoiWindow {
    center: 1e6,
    width: 2.0,
};

fn count(image: &RgbImage, colour: Colour) -> usize {
    image.pixels().filter(|p| p.0 == colour).count()
}

/// Pixels that are `colour` at 60 % to 100 % strength on black (within 3 per channel).
fn count_tinted(image: &RgbImage, colour: Colour) -> usize {
    let c = colour.map(f64::from);
    let cc: f64 = c.iter().map(|v| v * v).sum();
    image
        .pixels()
        .filter(|p| {
            let p = p.0.map(f64::from);
            let k = (p[0] * c[0] + p[1] * c[1] + p[2] * c[2]) / cc;
            (0.6..=1.0).contains(&k) && (0..3).all(|i| (p[i] - k * c[i]).abs() <= 3.0)
        })
        .count()
}

#[test]
fn window_ignores_outliers_and_survives_flat_and_non_finite_images() {
    let mut pixels: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32).collect();
    pixels[0] = 1e9;
    pixels[1] = -1e9;
    pixels[2] = f32::NAN;
    let (low, high) = grey_window(&pixels);
    assert!((0.0..=2.0).contains(&low) && (97.0..=99.0).contains(&high));
    assert_eq!(grey_window(&[5.0; 100]), (5.0, 5.0));
    let flat = windowed_grey(&[5.0; 16], 4, 4, None);
    assert!(flat.pixels().all(|p| p.0 == [128, 128, 128]));
    assert_eq!(grey_window(&[f32::NAN; 4]), (0.0, 0.0));
}

#[test]
fn the_dicom_window_maps_the_grey_values_when_given() {
    // No finite landmark: nothing is drawn but the panel, in a corner.
    let mut record = clean_record(false);
    for landmark in &mut record.landmarks {
        landmark.x = f32::NAN;
    }
    let window = VoiWindow {
        center: 300.0,
        width: 200.0,
    };
    let windowed = draw(&record, Some(window));
    let percentiles = draw(&record, None);
    let y = SIZE / 2;
    let mut compared = 0;
    for x in (0..SIZE).step_by(7) {
        // Pixels the panel covers are darker than any value maps to; skip them.
        let value = ramp()[(y * SIZE + x) as usize];
        let expected = (window.apply(f64::from(value)) * 255.0).round() as u8;
        let got = windowed.get_pixel(x, y).0;
        let plain = percentiles.get_pixel(x, y).0;
        if got == [expected; 3] {
            compared += 1;
            // Between 200 and 400 the window stretches what the percentiles keep flat-ish.
            if (210.0..390.0).contains(&value) {
                assert_ne!(plain, got, "x {x}: the window made no difference");
            }
        }
    }
    // The panel covers at most 62 % of the width.
    assert!(compared > (SIZE / 7) as usize / 3, "{compared}");
    // Below the window black, above it white, as VoiWindow says.
    assert_eq!(windowed.get_pixel(SIZE - 2, y).0, [255; 3]);
    assert!(windowed.pixels().any(|p| p.0 == [0; 3]));
    assert_eq!(
        windowed_grey(&[150.0, 300.0, 450.0], 3, 1, Some(window))
            .pixels()
            .map(|p| p.0[0])
            .collect::<Vec<_>>(),
        vec![0, 128, 255]
    );
}

#[test]
fn the_banner_appears_only_when_the_model_is_not_for_clinical_use() {
    let red_in_top_row = |image: &RgbImage| {
        (0..SIZE)
            .filter(|&x| {
                let [r, g, b] = image.get_pixel(x, 1).0;
                r > 150 && g < 60 && b < 60
            })
            .count()
    };
    let with = draw(&clean_record(true), None);
    let without = draw(&clean_record(false), None);
    assert!(red_in_top_row(&with) > (SIZE as usize * 9) / 10);
    assert_eq!(red_in_top_row(&without), 0);
    // White letters on the banner.
    let banner_rows = (0..40).flat_map(|y| (0..SIZE).map(move |x| (x, y)));
    let white = banner_rows
        .filter(|&(x, y)| with.get_pixel(x, y).0 == [255; 3])
        .count();
    assert!(white > 200, "{white}");
}

#[test]
fn a_flagged_value_carries_its_status_tag() {
    let clean = draw(&clean_record(false), Some(BLACK));
    let (implausible, _) = status_colours(QualityStatus::Implausible);
    let (low, _) = status_colours(QualityStatus::LowConfidence);
    assert_eq!(count(&clean, implausible), 0);
    assert_eq!(count(&clean, low), 0);

    let mut record = clean_record(false);
    record.parameters[0].status = QualityStatus::Implausible;
    record.parameters[0].reasons = vec![ReasonCode::OutsidePlausibleRange];
    record.parameters[7].status = QualityStatus::LowConfidence;
    record.parameters[7].reasons = vec![ReasonCode::LowLandmarkConfidence];
    let flagged = draw(&record, Some(BLACK));
    assert!(count(&flagged, implausible) > 100);
    assert!(count(&flagged, low) > 100);
    // One tag each: the implausible one is no taller than a text line.
    let rows: std::collections::BTreeSet<u32> = flagged
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0 == implausible)
        .map(|(_, y, _)| y)
        .collect();
    assert!(rows.len() < 30, "{}", rows.len());
}

#[test]
fn landmarks_are_coloured_by_confidence_and_findings_are_marked() {
    let points = spine();
    // C4_as, in the middle of the spine.
    let index = 8;
    let [x, y] = points[index].map(|v| v.round() as u32);
    for (confidence, colour) in [(0.9, CONFIDENT), (0.2, UNSURE), (0.05, DOUBTFUL)] {
        let mut record = clean_record(false);
        record.landmarks[index].confidence = Some(confidence);
        let image = draw(&record, None);
        assert_eq!(image.get_pixel(x, y).0, colour, "confidence {confidence}");
    }
    let mut record = clean_record(false);
    let plain = draw(&record, Some(BLACK));
    record.findings.push(Finding {
        code: ReasonCode::CornerOrder,
        landmarks: vec![LANDMARK_NAMES[index]],
        detail: "test".into(),
    });
    let marked = draw(&record, Some(BLACK));
    assert_eq!(plain.get_pixel(x, y).0, CONFIDENT);
    // The cross over the point, and a ring around it.
    assert_eq!(marked.get_pixel(x, y).0, FINDING_MARK);
    let ring = (2.2 * Style::for_image(SIZE, SIZE).point_radius).round() as u32;
    let near_ring = |image: &RgbImage| {
        (0..=2)
            .map(|d| image.get_pixel(x - ring - 1 + d, y).0)
            .filter(|p| p.iter().all(|&c| c > 150))
            .count()
    };
    assert!(near_ring(&marked) > 0);
    assert_eq!(near_ring(&plain), 0);
}

#[test]
fn every_construction_is_drawn_in_its_colour() {
    let mut points = Points(spine().iter().map(|&p| Some(p)).collect());
    let style = Style::for_image(SIZE, SIZE);
    let mut canvas = Canvas {
        image: RgbImage::new(SIZE, SIZE),
    };
    let tags = construction::draw(&mut canvas, &style, &points);
    for name in crate::measure::PARAMETER_NAMES {
        let colour = parameter_colour(name);
        assert!(count_tinted(&canvas.image, colour) > 20, "{name}");
    }
    assert_eq!(
        count_tinted(&canvas.image, REFERENCE),
        count_tinted(&canvas.image, REFERENCE).max(10)
    );
    let names: Vec<&str> = tags.iter().map(|tag| tag.text).collect();
    for name in [
        "C2-C7",
        "C2-C6",
        "McGregor (C0-C2)",
        "C7 slope",
        "T1 slope",
        "cSVA",
        "RJD",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    // Without DENS there is no CT ray.
    points.0[crate::measure::DENS] = None;
    let mut canvas = Canvas {
        image: RgbImage::new(SIZE, SIZE),
    };
    construction::draw(&mut canvas, &style, &points);
    assert_eq!(count_tinted(&canvas.image, parameter_colour("CT")), 0);
    assert!(count_tinted(&canvas.image, parameter_colour("CCA")) > 20);
}

#[test]
fn the_panel_text_is_set_in_the_font_with_anti_aliasing() {
    // No finite landmark: on black, the panel's text is all there is.
    let mut record = clean_record(false);
    for landmark in &mut record.landmarks {
        landmark.y = f32::NAN;
    }
    let image = draw(&record, Some(BLACK));
    let white = count(&image, [255; 3]);
    let greys: std::collections::BTreeSet<u8> = image
        .pixels()
        .filter(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2])
        .map(|p| p.0[0])
        .collect();
    assert!(white > 50, "{white}");
    // A bitmap font gives its colour and the background; outlines give every level between.
    assert!(greys.len() > 100, "{}", greys.len());
}

#[test]
fn values_have_their_units_and_sign() {
    let record = clean_record(false);
    let find = |name: &str| {
        record
            .parameters
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .clone()
    };
    let mut cobb = find("C2-C7");
    cobb.value = -12.34;
    assert_eq!(format_value(&cobb), "\u{2212}12.3°");
    cobb.value = 4.0;
    assert_eq!(format_value(&cobb), "+4.0°");
    let mut sva = find("cSVA");
    sva.value = 21.06;
    assert_eq!(format_value(&sva), "+21.1 mm");
    let mut cca = find("CCA");
    cca.value = 61.0;
    assert_eq!(format_value(&cca), "61.0°");
}

#[test]
fn every_whole_spine_construction_is_drawn_in_its_colour() {
    use crate::anatomy::wholespine::{self as spine, LANDMARK_COUNT as SPINE_LANDMARKS};
    // A spine leaning forward down the image (x grows downwards), facing right, the hips in
    // front of and below S1.
    let mut points = vec![None; SPINE_LANDMARKS];
    for (k, index) in (spine::FIRST_CENTRE..spine::FIRST_CENTRE + spine::CENTRE_COUNT).enumerate() {
        points[index] = Some([350.0 + 2.0 * k as f64, 60.0 + 24.0 * k as f64]);
    }
    let endplate = |points: &mut Vec<Option<[f64; 2]>>, posterior, anterior, y: f64| {
        points[posterior] = Some([330.0, y]);
        points[anterior] = Some([380.0, y + 4.0]);
    };
    endplate(&mut points, spine::T1_PS, spine::T1_AS, 200.0);
    endplate(&mut points, spine::T12_PI, spine::T12_AI, 420.0);
    endplate(&mut points, spine::L1_PS, spine::L1_AS, 440.0);
    endplate(&mut points, spine::S1_PS, spine::S1_AS, 620.0);
    points[spine::C7_PS] = Some([335.0, 170.0]);
    points[spine::FH1] = Some([440.0, 700.0]);
    points[spine::FH2] = Some([450.0, 705.0]);
    let points = Points(points);
    let style = Style::for_image(SIZE, SIZE);
    let mut canvas = Canvas {
        image: RgbImage::new(SIZE, SIZE),
    };
    let tags = spine_construction::draw(&mut canvas, &style, &points);
    for name in ["PI", "PT", "SS", "LL", "SVA", "cSVA", "GTK"] {
        assert!(
            count_tinted(&canvas.image, parameter_colour(name)) > 20,
            "{name}"
        );
        assert!(tags.iter().any(|tag| tag.text == name), "tag {name}");
    }
    assert!(
        count_tinted(&canvas.image, REFERENCE) > 100,
        "the spinal curve"
    );

    // Without the femoral heads there is no PI and no PT.
    let mut without_hips = points;
    without_hips.0[spine::FH1] = None;
    let mut canvas = Canvas {
        image: RgbImage::new(SIZE, SIZE),
    };
    let tags = spine_construction::draw(&mut canvas, &style, &without_hips);
    assert_eq!(count_tinted(&canvas.image, parameter_colour("PI")), 0);
    assert!(!tags.iter().any(|tag| tag.text == "PT"));
    assert!(tags.iter().any(|tag| tag.text == "SS"));
}
