//! Every rule, shown on lumbar spines built by construction: a clean one passes everything in any
//! pose, and each damaged one is flagged exactly where the damage is.

use super::*;
use crate::measure::frame::Facing;
use crate::measure::lumbar::tests::{build_levels, lordotic_spec, DISC, FIRST, HEIGHT, WIDTH};
use crate::measure::lumbar::{AI, PI, T12};
use crate::measure::quality::QualityStatus;

const SPACING: PixelSpacing = PixelSpacing {
    row_mm: 1.0,
    column_mm: 1.0,
};

/// Thresholds that switch every rule on (the defaults leave the confidence rules off until a
/// model exists to calibrate them on).
const RULE_THRESHOLDS: QualityThresholds = QualityThresholds {
    min_landmark_confidence: 0.1,
    min_median_confidence: 0.2,
    max_refinement_shift: 0.5,
    max_standard_error: [2.0; 3],
};

fn confident() -> [Option<f64>; LANDMARK_COUNT] {
    [Some(0.6); LANDMARK_COUNT]
}

fn assess_with(
    levels: &Levels,
    confidences: &[Option<f64>; LANDMARK_COUNT],
    shifts: Option<&[f64; LANDMARK_COUNT]>,
    image_reasons: &[ReasonCode],
) -> LumbarQuality {
    let measurements = lumbar(levels, Some(SPACING)).ok();
    assess(
        &QualityInput {
            levels,
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

fn check(levels: &Levels) -> LumbarQuality {
    assess_with(levels, &confident(), None, &[])
}

fn has_finding(quality: &LumbarQuality, code: ReasonCode, text: &str) -> bool {
    quality
        .findings
        .iter()
        .any(|f| f.code == code && f.detail.contains(text))
}

/// Exactly the parameters `names` carry `reason`; the others are clean.
fn assert_flags_exactly(quality: &LumbarQuality, reason: ReasonCode, names: &[&str]) {
    for (name, parameter) in &quality.parameters {
        if names.contains(name) {
            assert!(
                parameter.reasons.contains(&reason),
                "{name} lacks {reason:?}: {:?}\n{:#?}",
                parameter.reasons,
                quality.findings
            );
        } else {
            assert_eq!(parameter.status, QualityStatus::Ok, "{name}: {parameter:?}");
        }
    }
}

fn map_levels(levels: &Levels, map: impl Fn([f64; 2]) -> [f64; 2]) -> Levels {
    levels.map(|level| level.map(|corners| corners.map(&map)))
}

fn shift_levels(levels: &mut Levels, which: impl IntoIterator<Item = usize>, by: [f64; 2]) {
    for level in which {
        if let Some(corners) = levels[level].as_mut() {
            for corner in corners.iter_mut() {
                *corner = [corner[0] + by[0], corner[1] + by[1]];
            }
        }
    }
}

/// Shrinks level `level` about its centroid by `factor`.
fn shrink(levels: &mut Levels, level: usize, factor: f64) {
    let corners = levels[level].as_mut().unwrap();
    let centre = corners.iter().fold([0.0, 0.0], |acc, c| {
        [acc[0] + c[0] / 4.0, acc[1] + c[1] / 4.0]
    });
    for corner in corners.iter_mut() {
        *corner = [
            centre[0] + (corner[0] - centre[0]) * factor,
            centre[1] + (corner[1] - centre[1]) * factor,
        ];
    }
}

#[test]
fn a_clean_spine_passes_every_check_in_any_pose() {
    let levels = build_levels(&lordotic_spec());
    let quality = check(&levels);
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);
    assert!(quality.parameters.iter().all(|(_, q)| !q.is_flagged()));
    assert_eq!(
        quality.get("SS").unwrap().min_landmark_confidence,
        Some(0.6)
    );

    let (sin, cos) = 25f64.to_radians().sin_cos();
    let rotated = map_levels(&levels, |[x, y]| [x * cos - y * sin, x * sin + y * cos]);
    assert!(check(&rotated).findings.is_empty());

    // Facing left, in anisotropic pixels, judged with the default thresholds.
    let spacing = PixelSpacing {
        row_mm: 0.18,
        column_mm: 0.11,
    };
    let pixels = map_levels(&levels, |p| {
        [(700.0 - p[0]) / spacing.column_mm, p[1] / spacing.row_mm]
    });
    let measurements = lumbar(&pixels, Some(spacing)).unwrap();
    assert_eq!(measurements.facing, Some(Facing::Left));
    let quality = assess(
        &QualityInput {
            levels: &pixels,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(spacing),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &QualityThresholds::default(),
    );
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);
}

#[test]
fn a_flipped_endplate_breaks_the_corner_order_of_its_level() {
    let mut levels = build_levels(&lordotic_spec());
    levels[L1].as_mut().unwrap().swap(AS, PS);
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::CornerOrder,
        "L1's corners"
    ));
    assert_flags_exactly(&quality, ReasonCode::CornerOrder, &["L1-L5", "L1-S1"]);

    let mut levels = build_levels(&lordotic_spec());
    levels[S1].as_mut().unwrap().swap(AS, PS);
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::CornerOrder,
        "sacral endplate"
    ));
    assert_flags_exactly(&quality, ReasonCode::CornerOrder, &["L1-S1", "SS"]);
}

#[test]
fn a_skipped_level_flags_everything_below_it() {
    // The labels jumped from L2 to what is really L4: L3, L4, L5 and S1 move down one level.
    let mut levels = build_levels(&lordotic_spec());
    shift_levels(&mut levels, L1 + 2..=S1, [0.0, HEIGHT + DISC]);
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::VertebralSpacing,
        "between L2 and L3"
    ));
    assert_flags_exactly(
        &quality,
        ReasonCode::VertebralSpacing,
        &["L1-L5", "L1-S1", "SS"],
    );

    // A skip above the levels read still reaches them: every label below it is suspect.
    let mut levels = build_levels(&lordotic_spec());
    shift_levels(&mut levels, FIRST + 1..=S1, [0.0, HEIGHT + DISC]);
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::VertebralSpacing,
        "between T10 and T11"
    ));
    assert_flags_exactly(
        &quality,
        ReasonCode::VertebralSpacing,
        &["L1-L5", "L1-S1", "SS"],
    );
}

#[test]
fn a_doubled_level_is_a_negative_gap() {
    let mut levels = build_levels(&lordotic_spec());
    levels[L1 + 2] = levels[L1 + 1];
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::VertebralSpacing,
        "between L2 and L3"
    ));
}

#[test]
fn across_a_gap_in_the_labels_only_the_order_is_judged() {
    let mut levels = build_levels(&lordotic_spec());
    levels[L1 + 1] = None;
    let quality = check(&levels);
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);

    // L3 drawn above L1, L2 absent: out of order.
    let l1 = levels[L1].unwrap();
    let up = [0.0, -(HEIGHT + DISC)];
    levels[L1 + 2] = Some(l1.map(|p| [p[0] + up[0], p[1] + up[1]]));
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::VertebralSpacing,
        "L3 is not below L1"
    ));
}

#[test]
fn a_level_out_of_proportion_is_flagged_where_it_is_read() {
    // L1 a third of its size: its endplates and height against L2–L4 and T10–T12.
    let mut levels = build_levels(&lordotic_spec());
    shrink(&mut levels, L1, 1.0 / 3.0);
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::EndplateLength,
        "L1's endplates"
    ));
    assert!(has_finding(&quality, ReasonCode::VertebraHeight, "L1 is"));
    for name in ["L1-L5", "L1-S1"] {
        let reasons = &quality.get(name).unwrap().reasons;
        assert!(reasons.contains(&ReasonCode::EndplateLength), "{name}");
        assert!(reasons.contains(&ReasonCode::VertebraHeight), "{name}");
    }
    assert_eq!(quality.get("SS").unwrap().status, QualityStatus::Ok);

    // A level the values do not read: found, but no value flagged.
    let mut levels = build_levels(&lordotic_spec());
    shrink(&mut levels, T12 - 1, 1.0 / 3.0);
    let quality = check(&levels);
    assert!(has_finding(&quality, ReasonCode::EndplateLength, "T11"));
    assert!(quality.parameters.iter().all(|(_, q)| !q.is_flagged()));

    // A body three times as tall as wide.
    let mut levels = build_levels(&lordotic_spec());
    let l5 = levels[L5].as_mut().unwrap();
    for corner in [AS, AI] {
        l5[corner][0] -= WIDTH * 0.75;
    }
    let quality = check(&levels);
    assert!(has_finding(
        &quality,
        ReasonCode::VertebraShape,
        "L5's height/width"
    ));
}

#[test]
fn an_implausible_value_is_flagged_alone() {
    let levels = build_levels(&lordotic_spec());
    let mut measurements = lumbar(&levels, Some(SPACING)).unwrap();
    measurements.parameters[1].value = Some(150.0);
    let quality = assess(
        &QualityInput {
            levels: &levels,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &RULE_THRESHOLDS,
    );
    assert_flags_exactly(&quality, ReasonCode::OutsidePlausibleRange, &["L1-S1"]);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.detail.starts_with("L1-S1 = 150")));
}

#[test]
fn an_unsure_corner_flags_every_value_its_level_feeds() {
    // L5_as enters no value, but its crop also placed L5_pi and L5_ai.
    let mut confidences = confident();
    confidences[landmark(L5, AS)] = Some(0.03);
    let levels = build_levels(&lordotic_spec());
    let quality = assess_with(&levels, &confidences, None, &[]);
    assert_flags_exactly(&quality, ReasonCode::LowLandmarkConfidence, &["L1-L5"]);
    assert_eq!(
        quality.get("L1-L5").unwrap().min_landmark_confidence,
        Some(0.03)
    );

    // Unknown counts as low; absent levels' confidences are not read.
    let mut confidences = confident();
    confidences[landmark(S1, PI)] = None;
    confidences[landmark(3, AS)] = None;
    let quality = assess_with(&levels, &confidences, None, &[]);
    assert_flags_exactly(
        &quality,
        ReasonCode::LowLandmarkConfidence,
        &["L1-S1", "SS"],
    );
}

#[test]
fn a_refiner_far_from_the_localiser_flags_its_values() {
    let levels = build_levels(&lordotic_spec());
    let mut shifts = [0.0; LANDMARK_COUNT];
    shifts[landmark(S1, AS)] = 0.6 * 44.0;
    let quality = assess_with(&levels, &confident(), Some(&shifts), &[]);
    assert_flags_exactly(
        &quality,
        ReasonCode::RefinementDisagreement,
        &["L1-S1", "SS"],
    );
}

#[test]
fn an_absent_level_makes_its_values_not_measurable() {
    let mut levels = build_levels(&lordotic_spec());
    levels[L1] = None;
    let quality = check(&levels);
    assert_flags_exactly(&quality, ReasonCode::NotComputed, &["L1-L5", "L1-S1"]);
    assert_eq!(
        quality.get("L1-L5").unwrap().status,
        QualityStatus::NotMeasurable
    );
    assert!(has_finding(
        &quality,
        ReasonCode::NotComputed,
        "L1 was not found in the image: L1-L5, L1-S1"
    ));

    let quality = assess(
        &QualityInput {
            levels: &build_levels(&lordotic_spec()),
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: None,
            spacing: Some(SPACING),
            measurements: None,
            image_reasons: &[],
        },
        &RULE_THRESHOLDS,
    );
    for (_, parameter) in &quality.parameters {
        assert_eq!(parameter.reasons, vec![ReasonCode::NotComputed]);
    }
}

#[test]
fn a_vague_image_or_a_header_that_says_otherwise_flags_every_value() {
    let levels = build_levels(&lordotic_spec());
    let quality = assess_with(&levels, &[Some(0.15); LANDMARK_COUNT], None, &[]);
    for (name, parameter) in &quality.parameters {
        assert!(
            parameter.reasons.contains(&ReasonCode::ImageLowConfidence),
            "{name}"
        );
    }
    let quality = assess_with(
        &levels,
        &confident(),
        None,
        &[ReasonCode::NotCervicalLateral],
    );
    for (_, parameter) in &quality.parameters {
        assert_eq!(parameter.status, QualityStatus::NotMeasurable);
    }
}

#[test]
fn the_standard_error_follows_the_spread_of_the_corners() {
    // Only S1_as is vague (2 mm each way): SS turns by 1/44 radian per mm across the endplate.
    let levels = build_levels(&lordotic_spec());
    let mut spread = [0.0; LANDMARK_COUNT];
    spread[landmark(S1, AS)] = 2.0;
    let errors = standard_errors(&levels, &spread, Some(SPACING)).unwrap();
    let expected = (2.0f64 / 44.0).to_degrees();
    assert!(
        (errors[2].unwrap() - expected).abs() < 0.01 * expected,
        "{errors:?}"
    );
    assert!(
        (errors[1].unwrap() - expected).abs() < 0.01 * expected,
        "{errors:?}"
    );
    assert_eq!(errors[0], Some(0.0));

    let measurements = lumbar(&levels, Some(SPACING)).unwrap();
    let quality = assess(
        &QualityInput {
            levels: &levels,
            confidences: &confident(),
            refinement_shift_px: None,
            spread_px: Some(&spread),
            spacing: Some(SPACING),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &RULE_THRESHOLDS,
    );
    assert_flags_exactly(&quality, ReasonCode::UncertainValue, &["L1-S1", "SS"]);
}

#[test]
fn every_range_holds_the_papers_means() {
    let names: Vec<&str> = PLAUSIBLE_RANGES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, PARAMETER_NAMES);
    for (name, mean) in [("L1-L5", 36.3), ("L1-S1", 49.9), ("SS", 35.8)] {
        assert!(plausible_range(name).unwrap().contains(mean), "{name}");
    }
}
