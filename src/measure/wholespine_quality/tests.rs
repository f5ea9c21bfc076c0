//! Every rule, shown on spines built by construction: a clean one passes everything in any pose,
//! and each damaged one is flagged exactly where the damage is.

use super::*;
use crate::measure::quality::QualityStatus;
use crate::measure::wholespine::tests::{build_spine, standard_spec};
use crate::measure::wholespine::{C2_C, C7_C, L1_C, T1_C};

type Landmarks = [[f64; 2]; LANDMARK_COUNT];

const SPACING: PixelSpacing = PixelSpacing {
    row_mm: 1.0,
    column_mm: 1.0,
};

/// Thresholds that switch every rule on (the defaults leave the confidence rules off until a
/// model exists to calibrate them on).
const RULE_THRESHOLDS: QualityThresholds = QualityThresholds {
    min_landmark_confidence: 0.1,
    min_median_confidence: 0.2,
    max_standard_error: [5.0; 18],
};

fn confident() -> [Option<f64>; LANDMARK_COUNT] {
    [Some(0.6); LANDMARK_COUNT]
}

fn assess_with(
    points: &Landmarks,
    confidences: &[Option<f64>; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
    image_reasons: &[ReasonCode],
) -> WholeSpineQuality {
    let measurements = wholespine(points, spacing).ok();
    assess(
        &QualityInput {
            landmarks: points,
            confidences,
            spread_px: None,
            spacing,
            measurements: measurements.as_ref(),
            image_reasons,
        },
        &RULE_THRESHOLDS,
    )
}

fn check(points: &Landmarks) -> WholeSpineQuality {
    assess_with(points, &confident(), Some(SPACING), &[])
}

fn flagged(quality: &WholeSpineQuality) -> Vec<&'static str> {
    quality
        .parameters
        .iter()
        .filter(|(_, q)| q.is_flagged())
        .map(|(name, _)| *name)
        .collect()
}

fn reasons_of(quality: &WholeSpineQuality, name: &str) -> Vec<ReasonCode> {
    quality.get(name).unwrap().reasons.clone()
}

fn has_finding(quality: &WholeSpineQuality, code: ReasonCode, text: &str) -> bool {
    quality
        .findings
        .iter()
        .any(|f| f.code == code && f.detail.contains(text))
}

/// Exactly the parameters `names` carry `reason`; the others are clean.
fn assert_flags_exactly(quality: &WholeSpineQuality, reason: ReasonCode, names: &[&str]) {
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

fn rotate(points: &Landmarks, degrees: f64, centre: [f64; 2]) -> Landmarks {
    let (sin, cos) = degrees.to_radians().sin_cos();
    points.map(|p| {
        let d = [p[0] - centre[0], p[1] - centre[1]];
        [
            centre[0] + d[0] * cos - d[1] * sin,
            centre[1] + d[0] * sin + d[1] * cos,
        ]
    })
}

fn moved(points: &Landmarks, indices: &[usize], by: [f64; 2]) -> Landmarks {
    let mut out = *points;
    for &i in indices {
        out[i] = [out[i][0] + by[0], out[i][1] + by[1]];
    }
    out
}

#[test]
fn a_clean_spine_passes_every_check_in_any_pose() {
    let spine = build_spine(&standard_spec());
    let quality = check(&spine);
    assert!(quality.findings.is_empty(), "{:#?}", quality.findings);
    assert!(flagged(&quality).is_empty());
    assert_eq!(quality.parameters.len(), 18);
    assert_eq!(
        quality.get("PI").unwrap().min_landmark_confidence,
        Some(0.6)
    );

    // The geometric rules follow the spine's own axis. (A tilted film moves the values measured
    // against the image axes, and the Barrey index may leave its range: a value, not geometry.)
    for degrees in [-20.0, 15.0] {
        let quality = check(&rotate(&spine, degrees, [0.0, -300.0]));
        let geometric: Vec<&Finding> = quality
            .findings
            .iter()
            .filter(|f| f.code != ReasonCode::OutsidePlausibleRange)
            .collect();
        assert!(geometric.is_empty(), "rotated {degrees}°: {geometric:#?}");
    }

    // Facing left, in anisotropic pixels, judged with the default thresholds.
    let spacing = PixelSpacing {
        row_mm: 0.2,
        column_mm: 0.125,
    };
    let pixels = spine.map(|p| [(600.0 - p[0]) / spacing.column_mm, p[1] / spacing.row_mm]);
    let measurements = wholespine(&pixels, Some(spacing)).unwrap();
    let quality = assess(
        &QualityInput {
            landmarks: &pixels,
            confidences: &confident(),
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
fn a_flipped_endplate_is_out_of_corner_order() {
    let mut spine = build_spine(&standard_spec());
    spine.swap(T12_AI, T12_PI);
    let quality = check(&spine);
    assert!(has_finding(
        &quality,
        ReasonCode::CornerOrder,
        "T12_pi → T12_ai"
    ));
    for name in ["GTK", "MTK"] {
        assert!(
            reasons_of(&quality, name).contains(&ReasonCode::CornerOrder),
            "{name}"
        );
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Implausible
        );
    }
    for name in ["PTK", "T1S", "SS", "LL", "PI"] {
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Ok,
            "{name}"
        );
    }
}

#[test]
fn swapped_t5_corners_break_its_quadrilateral() {
    let mut spine = build_spine(&standard_spec());
    spine.swap(T5_PI, T5_PS);
    let quality = check(&spine);
    assert!(has_finding(
        &quality,
        ReasonCode::CornerOrder,
        "T5's corners"
    ));
    for name in ["PTK", "MTK"] {
        assert!(reasons_of(&quality, name).contains(&ReasonCode::CornerOrder));
    }
    assert_eq!(quality.get("GTK").unwrap().status, QualityStatus::Ok);

    // C7's three corners in the wrong turn.
    let mut spine = build_spine(&standard_spec());
    spine.swap(C7_PS, C7_AI);
    let quality = check(&spine);
    assert!(has_finding(
        &quality,
        ReasonCode::CornerOrder,
        "C7's corners"
    ));
    assert!(reasons_of(&quality, "cSVA").contains(&ReasonCode::CornerOrder));
}

#[test]
fn body_centres_out_of_order_flag_the_values_that_read_them() {
    // L1_c and L2_c swapped: LPA reads L1_c.
    let mut spine = build_spine(&standard_spec());
    spine.swap(L1_C, L1_C + 1);
    let quality = check(&spine);
    assert!(
        has_finding(
            &quality,
            ReasonCode::VertebralSpacing,
            "L1_c is not below L2_c"
        ) || has_finding(
            &quality,
            ReasonCode::VertebralSpacing,
            "L2_c is not below L1_c"
        )
    );
    assert!(reasons_of(&quality, "LPA").contains(&ReasonCode::VertebralSpacing));
    assert_eq!(
        quality.get("LPA").unwrap().status,
        QualityStatus::Implausible
    );
    // The levels on either side of a bad gap are suspect (L1, and T12 above it); the rest is not.
    for name in ["PI", "SS", "PT", "CL", "T1S", "PTK", "TPA", "OD-HA"] {
        assert_eq!(
            quality.get(name).unwrap().status,
            QualityStatus::Ok,
            "{name}"
        );
    }
}

#[test]
fn a_doubled_centre_is_a_spacing_error() {
    // C7_c put on C6_c: the C6–C7 gap is 0 and the C7–T1 gap doubles.
    let mut spine = build_spine(&standard_spec());
    spine[C7_C] = spine[C7_C - 1];
    let quality = check(&spine);
    assert!(has_finding(&quality, ReasonCode::VertebralSpacing, "C6_c"));
    for name in ["SVA", "SSA", "GT", "Barrey"] {
        assert!(
            reasons_of(&quality, name).contains(&ReasonCode::VertebralSpacing),
            "{name}"
        );
    }
    assert_eq!(quality.get("PI").unwrap().status, QualityStatus::Ok);
    assert_eq!(quality.get("LL").unwrap().status, QualityStatus::Ok);
}

#[test]
fn an_endplate_on_the_wrong_vertebra_is_out_of_place() {
    // The L4 superior endplate marked on L3: one L3–L4 gap too high.
    let spine = build_spine(&standard_spec());
    let up = [
        spine[L1_C + 2][0] - spine[L1_C + 3][0],
        spine[L1_C + 2][1] - spine[L1_C + 3][1],
    ];
    let quality = check(&moved(&spine, &[L4_PS, L4_AS], up));
    assert!(has_finding(
        &quality,
        ReasonCode::LandmarkOrder,
        "L4's superior endplate is not between L4_c and L3_c"
    ));
    assert_flags_exactly(&quality, ReasonCode::LandmarkOrder, &["L4SL"]);
}

#[test]
fn femoral_heads_above_the_sacrum_are_out_of_order() {
    let spine = build_spine(&standard_spec());
    let quality = check(&moved(&spine, &[FH1, FH2], [0.0, -150.0]));
    assert!(has_finding(
        &quality,
        ReasonCode::LandmarkOrder,
        "femoral heads"
    ));
    let with_hips = ["PI", "PT", "LPA", "GT", "TPA", "Barrey", "OD-HA"];
    for name in with_hips {
        assert!(
            reasons_of(&quality, name).contains(&ReasonCode::LandmarkOrder),
            "{name}"
        );
    }
    assert_eq!(quality.get("CL").unwrap().status, QualityStatus::Ok);

    // One head far from the other.
    let quality = check(&moved(&spine, &[FH2], [160.0, 0.0]));
    assert!(has_finding(&quality, ReasonCode::LandmarkOrder, "apart"));
}

#[test]
fn a_dens_below_c2_is_out_of_order() {
    let spine = build_spine(&standard_spec());
    let mut points = spine;
    points[C2_DENS] = [spine[C2_C][0], spine[C2_C][1] + 30.0];
    let quality = check(&points);
    assert!(has_finding(&quality, ReasonCode::LandmarkOrder, "C2_dens"));
    assert_flags_exactly(&quality, ReasonCode::LandmarkOrder, &["OD-HA", "cSVA"]);
}

#[test]
fn implausible_values_are_flagged_in_millimetres_only_for_distances() {
    let spine = build_spine(&standard_spec());
    let mut measurements = wholespine(&spine, Some(SPACING)).unwrap();
    for parameter in &mut measurements.parameters {
        match parameter.name {
            "SVA" => parameter.value = 420.0,
            "PI" => parameter.value = 140.0,
            _ => {}
        }
    }
    let judge = |spacing: Option<PixelSpacing>| {
        assess(
            &QualityInput {
                landmarks: &spine,
                confidences: &confident(),
                spread_px: None,
                spacing,
                measurements: Some(&measurements),
                image_reasons: &[],
            },
            &RULE_THRESHOLDS,
        )
    };
    let quality = judge(Some(SPACING));
    assert_flags_exactly(&quality, ReasonCode::OutsidePlausibleRange, &["SVA", "PI"]);
    assert!(quality
        .findings
        .iter()
        .any(|f| f.detail.starts_with("PI = 140")));
    // Without a spacing the distance is in pixels and cannot be judged; the angle can.
    let quality = judge(None);
    assert_flags_exactly(&quality, ReasonCode::OutsidePlausibleRange, &["PI"]);
}

#[test]
fn every_range_holds_the_papers_ground_truth() {
    // Mean ± 2 SD of the paper's 400 radiographs (SPEC-wholespine.md) must be plausible.
    let truth = [
        ("PI", 51.6, 13.1),
        ("SS", 35.9, 12.1),
        ("PT", 15.6, 11.0),
        ("LL", 47.0, 17.4),
        ("SVA", 25.2, 47.3),
        ("CL", 9.4, 17.3),
        ("T1S", 24.4, 11.3),
        ("cSVA", 20.2, 13.4),
        ("GTK", 37.7, 14.4),
        ("PTK", 13.7, 9.7),
        ("MTK", 26.7, 13.5),
        ("L4SL", 31.3, 11.5),
        ("LPA", 8.3, 8.3),
        ("SSA", 124.4, 14.8),
        ("GT", 17.2, 15.0),
        ("TPA", 13.1, 12.0),
        ("Barrey", 0.4, 3.1),
        ("OD-HA", -0.4, 3.9),
    ];
    let names: Vec<&str> = PLAUSIBLE_RANGES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, PARAMETER_NAMES);
    for (name, mean, sd) in truth {
        let range = plausible_range(name).unwrap();
        assert!(
            range.contains(mean - 2.0 * sd) && range.contains(mean + 2.0 * sd),
            "{name}"
        );
    }
}

#[test]
fn an_unsure_landmark_flags_the_values_it_feeds() {
    let spine = build_spine(&standard_spec());
    let mut confidences = confident();
    confidences[L1_AS] = Some(0.02);
    let quality = assess_with(&spine, &confidences, Some(SPACING), &[]);
    assert_flags_exactly(&quality, ReasonCode::LowLandmarkConfidence, &["LL"]);
    assert_eq!(
        quality.get("LL").unwrap().status,
        QualityStatus::LowConfidence
    );
    assert_eq!(
        quality.get("LL").unwrap().min_landmark_confidence,
        Some(0.02)
    );

    // An unknown confidence counts as low.
    let mut confidences = confident();
    confidences[T1_C] = None;
    let quality = assess_with(&spine, &confidences, Some(SPACING), &[]);
    assert_flags_exactly(&quality, ReasonCode::LowLandmarkConfidence, &["TPA"]);
}

#[test]
fn a_vague_image_or_a_header_that_says_otherwise_flags_every_value() {
    let spine = build_spine(&standard_spec());
    let quality = assess_with(&spine, &[Some(0.15); LANDMARK_COUNT], Some(SPACING), &[]);
    for (name, parameter) in &quality.parameters {
        assert!(
            parameter.reasons.contains(&ReasonCode::ImageLowConfidence),
            "{name}"
        );
    }
    let quality = assess_with(
        &spine,
        &confident(),
        Some(SPACING),
        &[ReasonCode::NotCervicalLateral],
    );
    for (_, parameter) in &quality.parameters {
        assert_eq!(parameter.status, QualityStatus::NotMeasurable);
    }
}

#[test]
fn values_that_could_not_be_computed_are_not_measurable() {
    let spine = build_spine(&standard_spec());
    let quality = assess(
        &QualityInput {
            landmarks: &spine,
            confidences: &confident(),
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

    // A Barrey index without a sacro-femoral distance: that value alone.
    let mut spine = build_spine(&standard_spec());
    let shift = spine[S1_PS][0] - 0.5 * (spine[FH1][0] + spine[FH2][0]);
    spine[FH1][0] += shift;
    spine[FH2][0] += shift;
    let quality = check(&spine);
    assert_flags_exactly(&quality, ReasonCode::NotComputed, &["Barrey"]);

    // Non-finite landmarks: no geometry, still a verdict for every value.
    let mut broken = build_spine(&standard_spec());
    broken[C7_C][0] = f64::NAN;
    assert_eq!(check(&broken).parameters.len(), 18);
}

#[test]
fn the_standard_error_follows_the_spread_of_the_landmarks() {
    // Only S1_as is vague (2 mm each way): SS turns by 1/width radian per mm across the
    // endplate and not at all along it, so its standard error is 2/44 rad.
    let spine = build_spine(&standard_spec());
    let mut spread = [0.0; LANDMARK_COUNT];
    spread[S1_AS] = 2.0;
    let errors = standard_errors(&spine, &spread, Some(SPACING)).unwrap();
    let expected = (2.0f64 / 44.0).to_degrees();
    let ss = errors[1].unwrap();
    assert!(
        (ss - expected).abs() < 0.01 * expected,
        "{ss} vs {expected}"
    );
    assert_eq!(errors[6], Some(0.0), "T1S does not read S1_as");
    assert!(errors[0].unwrap() > 0.0);

    let measurements = wholespine(&spine, Some(SPACING)).unwrap();
    let quality = assess(
        &QualityInput {
            landmarks: &spine,
            confidences: &confident(),
            spread_px: Some(&spread),
            spacing: Some(SPACING),
            measurements: Some(&measurements),
            image_reasons: &[],
        },
        &QualityThresholds {
            max_standard_error: [2.0; 18],
            ..RULE_THRESHOLDS
        },
    );
    let ss = quality.get("SS").unwrap();
    assert_eq!(ss.reasons, vec![ReasonCode::UncertainValue]);
    assert!(ss.standard_error.is_some());
    assert_eq!(quality.get("T1S").unwrap().status, QualityStatus::Ok);
}

#[test]
fn the_landmark_lists_are_the_definitions() {
    assert_eq!(parameter_landmarks("SS"), [S1_PS, S1_AS]);
    assert!(parameter_landmarks("TPA").contains(&T1_C));
    assert!(parameter_landmarks("cSVA").contains(&C2_C));
    assert!(parameter_landmarks("nothing").is_empty());
}
