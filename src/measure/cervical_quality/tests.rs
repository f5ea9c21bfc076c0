//! Every rule, shown on spines built by construction: a clean one passes everything, and each
//! damaged one is flagged exactly where the damage is.

use super::*;
use crate::measure::cervical::cervical;
use crate::measure::quality::QualityStatus;

const WIDTH: f64 = 16.0;
const HEIGHT: f64 = 14.0;
const C2_HEIGHT: f64 = 22.0;
const DISC: f64 = 4.0;
const LEFT: f64 = 100.0;
const TOP: f64 = 100.0;

/// A straight, upright spine facing right (mm, spacing 1 mm): C2 taller than C3–C7, discs of
/// 4 mm, the skull points above C2.
fn spine() -> [[f64; 2]; LANDMARK_COUNT] {
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    let mut top = TOP;
    for v in 0..CORNERED_VERTEBRAE {
        let height = if v == 0 { C2_HEIGHT } else { HEIGHT };
        points[4 * v + AS] = [LEFT + WIDTH, top];
        points[4 * v + PS] = [LEFT, top];
        points[4 * v + PI] = [LEFT, top + height];
        points[4 * v + AI] = [LEFT + WIDTH, top + height];
        top += height + DISC;
    }
    points[T1_AS] = [LEFT + WIDTH + 1.0, top];
    points[T1_PS] = [LEFT - 1.0, top];
    points[PNS] = [LEFT + 40.0, TOP - 15.0];
    points[OCC] = [LEFT - 40.0, TOP - 10.0];
    points[DENS] = [LEFT + 8.0, TOP - 12.0];
    points
}

const SPACING: PixelSpacing = PixelSpacing {
    row_mm: 1.0,
    column_mm: 1.0,
};

fn assess_with(
    points: &[[f64; 2]; LANDMARK_COUNT],
    confidences: &[Option<f64>; LANDMARK_COUNT],
    shifts: Option<&[f64; LANDMARK_COUNT]>,
    image_reasons: &[ReasonCode],
) -> CervicalQuality {
    let measurements = cervical(points, Some(SPACING)).ok();
    assess(
        &QualityInput {
            landmarks: points,
            confidences,
            refinement_shift_px: shifts,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: measurements.as_ref(),
            image_reasons,
        },
        &RULE_THRESHOLDS,
    )
}

/// Thresholds that switch every rule on: the calibrated defaults leave the confidence floor
/// and the refiner distance off, but the rules themselves must work for anyone who sets them.
const RULE_THRESHOLDS: QualityThresholds = QualityThresholds {
    min_landmark_confidence: 0.1,
    min_median_confidence: 0.2,
    max_refinement_shift: 0.5,
    max_standard_error: [10.0; 9],
};

fn confident() -> [Option<f64>; LANDMARK_COUNT] {
    [Some(0.6); LANDMARK_COUNT]
}

fn check(points: &[[f64; 2]; LANDMARK_COUNT]) -> CervicalQuality {
    assess_with(points, &confident(), Some(&[0.0; LANDMARK_COUNT]), &[])
}

fn flagged(quality: &CervicalQuality) -> Vec<&'static str> {
    quality
        .parameters
        .iter()
        .filter(|(_, q)| q.is_flagged())
        .map(|(name, _)| *name)
        .collect()
}

fn reasons_of(quality: &CervicalQuality, name: &str) -> Vec<ReasonCode> {
    quality.get(name).unwrap().reasons.clone()
}

#[test]
fn a_clean_spine_passes_every_check() {
    let quality = check(&spine());
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);
    assert!(flagged(&quality).is_empty());
    let c2_c7 = quality.get("C2-C7").unwrap();
    assert_eq!(c2_c7.status, QualityStatus::Ok);
    assert_eq!(c2_c7.min_landmark_confidence, Some(0.6));
}

#[test]
fn a_left_facing_spine_in_pixels_passes_too() {
    let mut points = spine();
    for point in &mut points {
        point[0] = 1000.0 - 3.0 * point[0];
        point[1] *= 3.0;
    }
    let quality = assess(
        &QualityInput {
            landmarks: &points,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: None,
            measurements: cervical(&points, None).ok().as_ref(),
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);
}

#[test]
fn a_flipped_endplate_breaks_the_corner_order_of_its_vertebra() {
    let mut points = spine();
    points.swap(C7 + AS, C7 + PS);
    let quality = check(&points);
    for name in ["C2-C7", "C7 slope", "CCA"] {
        assert!(
            reasons_of(&quality, name).contains(&ReasonCode::CornerOrder),
            "{name}"
        );
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Implausible
        );
    }
    // Values that do not use C7 stay clean.
    for name in ["C2-C6", "C0-C2", "RJD"] {
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Ok,
            "{name}"
        );
    }
}

#[test]
fn a_skipped_vertebra_flags_everything_below_it() {
    // The model jumped from C4 to what is really C6: C5, C6 and C7 and T1 move down by one
    // vertebra, so the C4–C5 gap is a disc plus a whole body.
    let mut points = spine();
    for index in (12..24).chain([T1_AS, T1_PS]) {
        points[index][1] += HEIGHT + DISC;
    }
    let quality = check(&points);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.code == ReasonCode::VertebralSpacing && f.detail.contains("C4 and C5")));
    for name in [
        "C2-C7", "C2-C6", "C7 slope", "T1 slope", "CT", "CCA", "cSVA",
    ] {
        assert!(
            reasons_of(&quality, name).contains(&ReasonCode::VertebralSpacing),
            "{name}"
        );
    }
    for name in ["C0-C2", "RJD"] {
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Ok,
            "{name}"
        );
    }
}

#[test]
fn a_doubled_vertebra_is_a_negative_gap() {
    // C5 put on top of C4.
    let mut points = spine();
    for offset in 0..4 {
        points[12 + offset] = points[8 + offset];
    }
    let quality = check(&points);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.code == ReasonCode::VertebralSpacing && f.detail.contains("C4 and C5")));
    assert_eq!(
        quality.get("C2-C6").unwrap().status,
        QualityStatus::Implausible
    );
}

#[test]
fn a_tiny_vertebra_is_out_of_proportion_with_its_neighbours() {
    // The refiner's box around C6/C7 was tiny: C7's corners came out at a third of its size.
    let mut points = spine();
    let centre = [LEFT + WIDTH / 2.0, points[C7 + AS][1] + HEIGHT / 2.0];
    for point in &mut points[C7..C7 + 4] {
        for axis in 0..2 {
            point[axis] = centre[axis] + (point[axis] - centre[axis]) / 3.0;
        }
    }
    let quality = check(&points);
    let reasons = reasons_of(&quality, "C7 slope");
    assert!(reasons.contains(&ReasonCode::EndplateLength), "{reasons:?}");
    assert!(reasons.contains(&ReasonCode::VertebraHeight), "{reasons:?}");
    assert_eq!(quality.get("C0-C2").unwrap().status, QualityStatus::Ok);
}

#[test]
fn a_vertebra_of_the_wrong_shape_is_flagged() {
    // C4 three times as tall as wide, squeezed in place: a shape no vertebra has.
    let mut points = spine();
    for index in [8 + AS, 8 + AI] {
        points[index][0] = LEFT + WIDTH / 4.0;
    }
    let quality = check(&points);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.code == ReasonCode::VertebraShape && f.landmarks.contains(&"C4_as")));
}

#[test]
fn an_angle_of_180_degrees_is_outside_the_plausible_range() {
    // T1's endplate drawn back to front: T1 slope ≈ 180°.
    let mut points = spine();
    points.swap(T1_AS, T1_PS);
    let quality = check(&points);
    let t1 = quality.get("T1 slope").unwrap();
    assert_eq!(t1.status, QualityStatus::Implausible);
    assert_eq!(t1.reasons, vec![ReasonCode::OutsidePlausibleRange]);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.detail.starts_with("T1 slope = 180")));
}

#[test]
fn distances_in_pixels_are_not_range_checked() {
    // 1000 px of cSVA is implausible in mm, unknowable in px.
    let points = spine();
    let measurements = cervical(&points, None).unwrap();
    let mut shifted = measurements.clone();
    shifted.parameters[5].value = 1000.0;
    let quality = assess(
        &QualityInput {
            landmarks: &points,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: None,
            measurements: Some(&shifted),
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    assert_eq!(quality.get("cSVA").unwrap().status, QualityStatus::Ok);
    let in_mm = assess(
        &QualityInput {
            spacing: Some(SPACING),
            ..QualityInput {
                landmarks: &points,
                confidences: &confident(),
                refinement_shift_px: None,
                spread_px: None,
                spacing: None,
                measurements: Some(&shifted),
                image_reasons: &[],
            }
        },
        &QualityThresholds::default(),
    );
    assert_eq!(
        in_mm.get("cSVA").unwrap().reasons,
        vec![ReasonCode::OutsidePlausibleRange]
    );
}

#[test]
fn an_unsure_landmark_flags_the_values_it_feeds() {
    let mut confidences = confident();
    confidences[C7 + PI] = Some(0.02);
    let quality = assess_with(&spine(), &confidences, None, &[]);
    for name in ["C2-C7", "CCA"] {
        let parameter = quality.get(name).unwrap();
        assert_eq!(parameter.status, QualityStatus::LowConfidence, "{name}");
        assert_eq!(parameter.min_landmark_confidence, Some(0.02));
    }
    for name in ["C7 slope", "cSVA", "C2-C6"] {
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Ok,
            "{name}"
        );
    }
    // An unknown confidence counts as low.
    confidences[C7 + PI] = None;
    let quality = assess_with(&spine(), &confidences, None, &[]);
    assert_eq!(
        quality.get("C2-C7").unwrap().status,
        QualityStatus::LowConfidence
    );
}

#[test]
fn a_refiner_far_from_the_global_model_flags_its_values() {
    let mut shifts = [0.0; LANDMARK_COUNT];
    shifts[T1_AS] = WIDTH;
    let quality = assess_with(&spine(), &confident(), Some(&shifts), &[]);
    assert_eq!(
        reasons_of(&quality, "T1 slope"),
        vec![ReasonCode::RefinementDisagreement]
    );
    assert_eq!(quality.get("C7 slope").unwrap().status, QualityStatus::Ok);
}

#[test]
fn skull_points_on_the_wrong_side_are_out_of_order() {
    let mut points = spine();
    points[DENS] = [LEFT + 8.0, points[C7 + AS][1]];
    let quality = check(&points);
    assert!(reasons_of(&quality, "CT").contains(&ReasonCode::LandmarkOrder));
    let mut points = spine();
    points[OCC] = [LEFT + 60.0, TOP - 10.0];
    let quality = check(&points);
    assert!(reasons_of(&quality, "RJD").contains(&ReasonCode::LandmarkOrder));
    assert_eq!(quality.get("C2-C7").unwrap().status, QualityStatus::Ok);
}

#[test]
fn a_vague_image_flags_every_value() {
    let confidences = [Some(0.05); LANDMARK_COUNT];
    let thresholds = QualityThresholds {
        min_landmark_confidence: 0.01,
        ..QualityThresholds::default()
    };
    let points = spine();
    let measurements = cervical(&points, Some(SPACING)).unwrap();
    let quality = assess(
        &QualityInput {
            landmarks: &points,
            confidences: &confidences,
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &thresholds,
    );
    for (name, parameter) in &quality.parameters {
        assert_eq!(
            parameter.reasons,
            vec![ReasonCode::ImageLowConfidence],
            "{name}"
        );
    }
}

#[test]
fn a_header_that_says_otherwise_makes_every_value_not_measurable() {
    let quality = assess_with(
        &spine(),
        &confident(),
        None,
        &[ReasonCode::NotCervicalLateral],
    );
    for (_, parameter) in &quality.parameters {
        assert_eq!(parameter.status, QualityStatus::NotMeasurable);
    }
}

#[test]
fn values_that_could_not_be_computed_are_not_measurable() {
    let points = spine();
    let quality = assess(
        &QualityInput {
            landmarks: &points,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: None,
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    for (_, parameter) in &quality.parameters {
        assert_eq!(parameter.reasons, vec![ReasonCode::NotComputed]);
    }
    // Non-finite landmarks: no geometry, still a verdict for every value.
    let mut broken = spine();
    broken[C7][0] = f64::NAN;
    let quality = assess(
        &QualityInput {
            landmarks: &broken,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: None,
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    assert_eq!(quality.parameters.len(), 9);
}

#[test]
fn the_standard_error_follows_the_spread_of_the_landmarks() {
    // Only C7_ai is vague (5 mm): C2–C7 moves by atan(1/16) per mm of its height, so its
    // standard error is 5 × 3.58° ≈ 17.9°; values that do not use C7_ai stay exact.
    let points = spine();
    let mut spread = [0.0; LANDMARK_COUNT];
    spread[C7 + AI] = 5.0;
    let errors = standard_errors(&points, &spread, Some(SPACING)).unwrap();
    let expected = 5.0 * (1.0f64 / WIDTH).atan().to_degrees();
    assert!((errors[0] - expected).abs() < 0.01 * expected, "{errors:?}");
    assert_eq!(errors[1], 0.0, "C2-C6 does not use C7_ai");
    let measurements = cervical(&points, Some(SPACING)).unwrap();
    let quality = assess(
        &QualityInput {
            landmarks: &points,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: Some(&spread),
            spacing: Some(SPACING),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    let c2_c7 = quality.get("C2-C7").unwrap();
    assert_eq!(c2_c7.reasons, vec![ReasonCode::UncertainValue]);
    assert!((c2_c7.standard_error.unwrap() - expected).abs() < 0.01 * expected);
    assert_eq!(quality.get("C2-C6").unwrap().status, QualityStatus::Ok);
}
