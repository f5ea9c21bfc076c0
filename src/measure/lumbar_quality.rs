//! Quality control of the three lumbar parameters, by the rules of the cervical ones: a status
//! and reason codes for every value from (a) the confidence of the corners it is computed from,
//! (b) a plausible range per parameter, (c) the geometry of the present levels, and (d) the image
//! as a whole (the median confidence; the DICOM header, judged by the caller).
//!
//! The 2-step model refines each present level's four corners in one crop (SPEC-lumbar.md, steps
//! 5–8), so, as for the cervical discs, a corner counts with the lowest confidence of its level:
//! one bad box misplaces all four. The geometric rules are unit-free ratios in the canonical
//! frame, judged along each vertebra's own axis: corner order and shape of every present level,
//! sizes against the neighbouring levels, the disc gap between consecutive levels (overlap, order
//! reversed, a level skipped), and the sacral endplate running posterior to anterior across L5's
//! axis. A value whose level is absent is `not_measurable`.

use super::frame::PixelSpacing;
use super::lumbar::{
    canonical_levels, landmark, lumbar, parameter_landmarks, parameter_levels, Levels,
    LumbarMeasurements, AS, CORNERS_PER_LEVEL, L1, L5, LANDMARK_COUNT, LANDMARK_NAMES, LEVEL_COUNT,
    LEVEL_NAMES, PARAMETER_NAMES, PS, S1,
};
use super::quality::{
    confidence_findings, dot, judge, length, median, propagated_standard_errors, range, sub, Body,
    Finding, ParameterQuality, PlausibleRange, ReasonCode, ValueCheck, P,
};

/// Thresholds that depend on the model's confidence scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityThresholds {
    /// A corner below this confidence (its level's lowest) flags every value computed from it.
    pub min_landmark_confidence: f64,
    /// Below this median confidence of the present corners, every value is flagged.
    pub min_median_confidence: f64,
    /// A refined corner farther than this from the localisation network's point, as a fraction
    /// of its vertebra's width, flags the values computed from it.
    pub max_refinement_shift: f64,
    /// Per parameter (in the order of [`PARAMETER_NAMES`]), the largest standard error in
    /// degrees propagated from the corners' heatmap spreads.
    pub max_standard_error: [f64; PARAMETER_NAMES.len()],
}

impl Default for QualityThresholds {
    /// No lumbar model exists yet to calibrate these on (the cervical ones came from
    /// `tools/calibrate_quality.py --sweep` on held-back phantoms): the rules that depend on the
    /// model's confidence scale are off until then, and an unknown confidence still flags.
    fn default() -> Self {
        Self {
            min_landmark_confidence: 0.0,
            min_median_confidence: 0.0,
            max_refinement_shift: f64::INFINITY,
            max_standard_error: [f64::INFINITY; PARAMETER_NAMES.len()],
        }
    }
}

/// Plausible ranges of the signed values (degrees).
///
/// Deliberately wider than any published distribution, so that only values no standing spine
/// shows fall outside:
/// - the paper's data (SPEC-lumbar.md): unsigned means 36.3° (L1–L5), 49.9° (L1–S1), 35.8° (SS);
/// - L1–S1 lordosis about 60° ± 10° and SS about 41° ± 8° in asymptomatic adults (Vialle et al.,
///   J Bone Joint Surg Am 2005); L5–S1 carries a large share of it, so L1–L5 is smaller (Roussouly
///   et al., Spine 2005); flat-back and kyphotic deformity reach negative lordosis,
///   hyperlordosis beyond 90°;
/// - a retroverted sacrum can make SS slightly negative.
pub const PLAUSIBLE_RANGES: [(&str, PlausibleRange); 3] = [
    ("L1-L5", range(-45.0, 100.0)),
    ("L1-S1", range(-45.0, 120.0)),
    ("SS", range(-15.0, 85.0)),
];

/// Height over width of a vertebral body (a wedge fracture lowers it).
const ASPECT: PlausibleRange = range(0.3, 1.6);
/// A level's width over the median width of the present levels within three of it.
const WIDTH_VS_NEIGHBOURS: PlausibleRange = range(0.6, 1.6);
/// A level's height over the median height of the present levels within three of it.
const HEIGHT_VS_NEIGHBOURS: PlausibleRange = range(0.45, 1.7);
/// The gap from one level's inferior endplate to the next one's superior endplate, along the
/// upper body's axis, over the median height: a fused segment is 0, a disc a fraction of a body,
/// a whole body means a level skipped.
const DISC_GAP: PlausibleRange = range(-0.3, 1.0);
/// The turn at every corner, over width × height (as for the cervical vertebrae).
const MAX_CORNER_TURN: f64 = -0.15;
/// The sacral endplate must make at least this cosine with the perpendicular to L5's axis,
/// pointing anterior: a flipped endplate is negative.
const MIN_ENDPLATE_COSINE: f64 = 0.2;
/// How many levels either side count as neighbours for the size checks.
const NEIGHBOURHOOD: usize = 3;

/// What the checks read.
pub struct QualityInput<'a> {
    /// Original-image pixels per level; `None` for the absent levels.
    pub levels: &'a Levels,
    /// Per landmark (4v + c), in (0, 1]; `None` where unknown (absent levels are not read).
    pub confidences: &'a [Option<f64>; LANDMARK_COUNT],
    /// Per landmark, the distance in original pixels between the refined corner and the
    /// localisation network's; `None` when not known.
    pub refinement_shift_px: Option<&'a [f64; LANDMARK_COUNT]>,
    /// Per landmark, the heatmap's spread (one standard deviation) in original pixels; `None`
    /// when not known.
    pub spread_px: Option<&'a [f64; LANDMARK_COUNT]>,
    pub spacing: Option<PixelSpacing>,
    /// The parameters, when they could be computed.
    pub measurements: Option<&'a LumbarMeasurements>,
    /// Reasons found outside the landmarks (the DICOM header), applied to every value.
    pub image_reasons: &'a [ReasonCode],
}

/// The quality of the three parameters and everything found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct LumbarQuality {
    /// In the order of [`PARAMETER_NAMES`].
    pub parameters: Vec<(&'static str, ParameterQuality)>,
    pub findings: Vec<Finding>,
}

impl LumbarQuality {
    pub fn get(&self, name: &str) -> Option<&ParameterQuality> {
        self.parameters
            .iter()
            .find(|(parameter, _)| *parameter == name)
            .map(|(_, quality)| quality)
    }
}

/// The plausible range of a parameter.
pub fn plausible_range(name: &str) -> Option<PlausibleRange> {
    PLAUSIBLE_RANGES
        .iter()
        .find(|(parameter, _)| *parameter == name)
        .map(|(_, range)| *range)
}

/// The landmarks of the present levels, in model order.
fn present_landmarks(levels: &Levels) -> Vec<usize> {
    (0..LANDMARK_COUNT)
        .filter(|&i| levels[i / CORNERS_PER_LEVEL].is_some())
        .collect()
}

fn level_names(level: usize) -> Vec<&'static str> {
    (0..CORNERS_PER_LEVEL)
        .map(|corner| LANDMARK_NAMES[landmark(level, corner)])
        .collect()
}

/// The confidence each corner is judged by: the lowest of its level's four, refined from one
/// crop; `None` for absent levels and where any of the four is unknown.
pub fn effective_confidences(
    levels: &Levels,
    confidences: &[Option<f64>; LANDMARK_COUNT],
) -> [Option<f64>; LANDMARK_COUNT] {
    let mut effective = [None; LANDMARK_COUNT];
    for level in (0..LEVEL_COUNT).filter(|&v| levels[v].is_some()) {
        let members = landmark(level, 0)..landmark(level, CORNERS_PER_LEVEL);
        let lowest = members.clone().try_fold(f64::INFINITY, |lowest, i| {
            confidences[i].map(|c| lowest.min(c))
        });
        for i in members {
            effective[i] = lowest;
        }
    }
    effective
}

fn body(corners: &[P; 4]) -> Body {
    Body::from_corners(*corners)
}

/// Geometric findings about the present levels, in the canonical frame.
fn geometry_findings(levels: &Levels) -> Vec<Finding> {
    let mut findings = Vec::new();
    let present: Vec<usize> = (0..LEVEL_COUNT).filter(|&v| levels[v].is_some()).collect();
    let bodies: Vec<Option<Body>> = levels
        .iter()
        .map(|level| level.as_ref().map(body))
        .collect();
    // S1's inferior corners enter nothing and its body is no box: it is judged by its endplate.
    let boxes: Vec<usize> = present.iter().copied().filter(|&v| v != S1).collect();
    let size_of = |v: usize| bodies[v].as_ref().map(|b| (b.width, b.height)).unwrap();
    let neighbours = |v: usize| {
        boxes
            .iter()
            .copied()
            .filter(move |&u| u != v && u.abs_diff(v) <= NEIGHBOURHOOD)
    };
    let mut heights: Vec<f64> = boxes.iter().map(|&v| size_of(v).1).collect();
    let median_height = median(&mut heights);

    for &v in &boxes {
        let name = LEVEL_NAMES[v];
        let b = bodies[v].as_ref().unwrap();
        let turn = b.largest_turn();
        if turn.is_nan() || turn > MAX_CORNER_TURN {
            findings.push(Finding {
                code: ReasonCode::CornerOrder,
                landmarks: level_names(v),
                detail: format!(
                    "{name}'s corners do not form a convex quadrilateral in anatomical order \
                     (an endplate flipped or corners swapped)"
                ),
            });
        }
        let aspect = b.height / b.width;
        if !ASPECT.contains(aspect) {
            findings.push(Finding {
                code: ReasonCode::VertebraShape,
                landmarks: level_names(v),
                detail: format!(
                    "{name}'s height/width ratio {aspect:.2} is outside [{}, {}]",
                    ASPECT.low, ASPECT.high
                ),
            });
        }
        let mut widths: Vec<f64> = neighbours(v).map(|u| size_of(u).0).collect();
        let mut tall: Vec<f64> = neighbours(v).map(|u| size_of(u).1).collect();
        if widths.is_empty() {
            continue;
        }
        let width_ratio = b.width / median(&mut widths);
        if !WIDTH_VS_NEIGHBOURS.contains(width_ratio) {
            findings.push(Finding {
                code: ReasonCode::EndplateLength,
                landmarks: level_names(v),
                detail: format!(
                    "{name}'s endplates are {width_ratio:.2} × the median of its neighbours \
                     (outside [{}, {}])",
                    WIDTH_VS_NEIGHBOURS.low, WIDTH_VS_NEIGHBOURS.high
                ),
            });
        }
        let height_ratio = b.height / median(&mut tall);
        if !HEIGHT_VS_NEIGHBOURS.contains(height_ratio) {
            findings.push(Finding {
                code: ReasonCode::VertebraHeight,
                landmarks: level_names(v),
                detail: format!(
                    "{name} is {height_ratio:.2} × the median height of its neighbours \
                     (outside [{}, {}])",
                    HEIGHT_VS_NEIGHBOURS.low, HEIGHT_VS_NEIGHBOURS.high
                ),
            });
        }
    }

    for pair in present.windows(2) {
        let (upper, lower) = (pair[0], pair[1]);
        if upper == S1 {
            continue;
        }
        let above = bodies[upper].as_ref().unwrap();
        let below = bodies[lower].as_ref().unwrap();
        let axis = sub(above.inferior_mid, above.superior_mid);
        let axis_length = length(axis);
        let along = |point: P| dot(sub(point, above.inferior_mid), axis) / axis_length;
        let problem = if lower == upper + 1 {
            let gap = along(below.superior_mid) / median_height;
            (!DISC_GAP.contains(gap)).then(|| {
                format!(
                    "the gap between {} and {} is {gap:.2} × the median vertebral height \
                     (outside [{}, {}]: overlapping, out of order, or a level skipped)",
                    LEVEL_NAMES[upper], LEVEL_NAMES[lower], DISC_GAP.low, DISC_GAP.high
                )
            })
        } else {
            // Levels missing between them: only the order can be judged.
            let beyond = along(below.superior_mid);
            let in_order = beyond > 0.0;
            (!in_order)
                .then(|| format!("{} is not below {}", LEVEL_NAMES[lower], LEVEL_NAMES[upper]))
        };
        if let Some(detail) = problem {
            // Below a skipped or doubled level every label is suspect, not only the pair's.
            let landmarks = present
                .iter()
                .filter(|&&v| v >= upper)
                .flat_map(|&v| level_names(v))
                .collect();
            findings.push(Finding {
                code: ReasonCode::VertebralSpacing,
                landmarks,
                detail,
            });
        }
    }

    if let (Some(sacrum), Some(l5)) = (&bodies[S1], &bodies[L5]) {
        let axis = sub(l5.inferior_mid, l5.superior_mid);
        let forward = [axis[1], -axis[0]];
        let endplate = sub(sacrum.corners[0], sacrum.corners[1]);
        let cosine = dot(endplate, forward) / (length(endplate) * length(forward));
        let across = cosine >= MIN_ENDPLATE_COSINE;
        if !across {
            findings.push(Finding {
                code: ReasonCode::CornerOrder,
                landmarks: vec![
                    LANDMARK_NAMES[landmark(S1, PS)],
                    LANDMARK_NAMES[landmark(S1, AS)],
                ],
                detail: "S1_ps → S1_as does not run posterior to anterior across the spine (the \
                         sacral endplate flipped or its corners swapped)"
                    .to_string(),
            });
        }
    }
    findings
}

/// The standard error of each parameter in degrees, propagated from the corners' spreads to
/// first order; `None` where the parameters cannot be computed, and for a value without one.
pub fn standard_errors(
    levels: &Levels,
    spread_px: &[f64; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Option<[Option<f64>; PARAMETER_NAMES.len()]> {
    let present = present_landmarks(levels);
    let flat: Vec<[f64; 2]> = present
        .iter()
        .map(|&i| levels[i / CORNERS_PER_LEVEL].unwrap()[i % CORNERS_PER_LEVEL])
        .collect();
    let spread: Vec<f64> = present.iter().map(|&i| spread_px[i]).collect();
    let measure = |points: &[[f64; 2]]| {
        let mut moved = *levels;
        for (&i, &point) in present.iter().zip(points) {
            moved[i / CORNERS_PER_LEVEL].as_mut()?[i % CORNERS_PER_LEVEL] = point;
        }
        let measurements = lumbar(&moved, spacing).ok()?;
        Some(
            PARAMETER_NAMES
                .iter()
                .map(|name| measurements.get(name))
                .collect(),
        )
    };
    let errors =
        propagated_standard_errors(&flat, &spread, &[true; PARAMETER_NAMES.len()], measure)?;
    errors.try_into().ok()
}

/// Checks every parameter. Never fails: what cannot be judged is `not_measurable`.
pub fn assess(input: &QualityInput<'_>, thresholds: &QualityThresholds) -> LumbarQuality {
    let effective = effective_confidences(input.levels, input.confidences);
    let present = present_landmarks(input.levels);
    let present_names: Vec<&'static str> = present.iter().map(|&i| LANDMARK_NAMES[i]).collect();
    let present_confidences: Vec<Option<f64>> =
        present.iter().map(|&i| input.confidences[i]).collect();
    let present_effective: Vec<Option<f64>> = present.iter().map(|&i| effective[i]).collect();
    let (mut findings, image_low) = confidence_findings(
        &present_names,
        &present_confidences,
        &present_effective,
        thresholds.min_landmark_confidence,
        thresholds.min_median_confidence,
        "; a corner counts with the lowest confidence of its level",
        "a lateral lumbar radiograph",
    );

    if let Some(shifts) = input.refinement_shift_px {
        let far: Vec<&'static str> = present
            .iter()
            .filter(|&&i| {
                let corners = input.levels[i / CORNERS_PER_LEVEL].unwrap();
                let limit = thresholds.max_refinement_shift * body(&corners).width;
                !(shifts[i].is_finite() && shifts[i] <= limit)
            })
            .map(|&i| LANDMARK_NAMES[i])
            .collect();
        if !far.is_empty() {
            findings.push(Finding {
                code: ReasonCode::RefinementDisagreement,
                landmarks: far,
                detail: format!(
                    "the refined corner is more than {} × its vertebra's width from the \
                     localisation network's",
                    thresholds.max_refinement_shift
                ),
            });
        }
    }

    let facing = input.measurements.and_then(|m| m.facing);
    if let Some(facing) = facing {
        let canonical = canonical_levels(input.levels, input.spacing, facing);
        findings.extend(geometry_findings(&canonical));
    }
    for level in [L1, L5, S1] {
        if input.levels[level].is_none() {
            let reading: Vec<&str> = PARAMETER_NAMES
                .into_iter()
                .filter(|name| parameter_levels(name).contains(&level))
                .collect();
            findings.push(Finding {
                code: ReasonCode::NotComputed,
                landmarks: Vec::new(),
                detail: format!(
                    "{} was not found in the image: {} cannot be measured",
                    LEVEL_NAMES[level],
                    reading.join(", ")
                ),
            });
        }
    }

    let errors = input
        .spread_px
        .and_then(|spread| standard_errors(input.levels, spread, input.spacing));
    let mut parameters = Vec::with_capacity(PARAMETER_NAMES.len());
    for (k, name) in PARAMETER_NAMES.into_iter().enumerate() {
        let used = parameter_landmarks(name);
        let used_names: Vec<&'static str> = used.iter().map(|&i| LANDMARK_NAMES[i]).collect();
        let check = ValueCheck {
            name,
            landmarks: &used_names,
            value: input.measurements.and_then(|m| m.get(name)),
            range: plausible_range(name),
            standard_error: errors.and_then(|errors| errors[k]),
            max_standard_error: Some(thresholds.max_standard_error[k]),
            min_landmark_confidence: used
                .iter()
                .filter_map(|&i| effective[i])
                .min_by(f64::total_cmp),
        };
        let quality = judge(&check, input.image_reasons, image_low, &mut findings);
        parameters.push((name, quality));
    }
    LumbarQuality {
        parameters,
        findings,
    }
}

#[cfg(test)]
mod tests;
