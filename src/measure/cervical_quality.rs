//! Quality control of the nine cervical parameters: a status and reason codes for every value,
//! from (a) the confidence of the landmarks it is computed from, (b) a plausible range per
//! parameter, (c) the geometry of the vertebrae behind it, and (d) what is known about the
//! image as a whole (the median confidence; the DICOM header, judged by the caller).
//!
//! The geometric rules are anatomical and unit-free (ratios of lengths in the canonical frame),
//! so they hold in mm and in px. Their limits sit well outside what real spines show: the
//! synthetic phantoms' ground truth spans a small part of each (see `tools/calibrate_quality.py`,
//! which prints the ground truth's spread of every ratio); a real wedge fracture, a fused
//! segment or a tall C2 must not be flagged. The confidence thresholds are calibrated on
//! phantoms that no model was trained on ([`QualityThresholds::default`]).

use super::cervical::{
    canonical_points, Measurements, PixelSpacing, AI, AS, C2, C7, DENS, LANDMARK_COUNT,
    LANDMARK_NAMES, OCC, PARAMETER_NAMES, PI, PNS, PS, T1_AS, T1_PS,
};
use super::quality::{
    confidence_findings, dot, judge, length, median, mid, propagated_standard_errors, range, sub,
    Body, Finding, ParameterQuality, PlausibleRange, ReasonCode, ValueCheck, P,
};
use crate::anatomy::cervical::DISC_COUNT;

/// The first landmark of the first disc group (C2_pi): disc k holds 4k+2 .. 4k+5.
const DISC_FIRST: usize = C2 + PI;
/// Vertebrae with four corners: C2 to C7.
const CORNERED_VERTEBRAE: usize = 6;
const VERTEBRA_NAMES: [&str; CORNERED_VERTEBRAE + 1] = ["C2", "C3", "C4", "C5", "C6", "C7", "T1"];

/// Thresholds that depend on the model's confidence scale, calibrated on held-back phantoms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityThresholds {
    /// A landmark below this confidence flags every value computed from it.
    pub min_landmark_confidence: f64,
    /// Below this median confidence of all landmarks, every value is flagged: the image may not
    /// be a lateral cervical radiograph.
    pub min_median_confidence: f64,
    /// A refined corner farther than this from the global model's point, as a fraction of the
    /// median vertebral width, flags the values computed from it.
    pub max_refinement_shift: f64,
    /// Per parameter (in the order of [`PARAMETER_NAMES`]), the largest standard error
    /// (propagated from the landmarks' heatmap spreads; degrees, or mm for the distances, which
    /// are not checked without a pixel spacing) a value may have before it is flagged. The
    /// spreads of the heatmaps are wider than the errors of their centres, so these are in the
    /// model's own scale, not the accuracy wanted.
    pub max_standard_error: [f64; PARAMETER_NAMES.len()],
}

impl Default for QualityThresholds {
    /// Calibrated with `tools/calibrate_quality.py --sweep` on the calibration phantoms (seeds
    /// 600 000+, DICOM, used by no training): the highest share of wrong values flagged while at
    /// most a tenth of the right ones are (README.md gives the rates, on the calibration and the
    /// held-out phantoms), recalibrated whenever the default weights change (their confidence
    /// scale changes with them). The standard errors do most of the work, with a low
    /// landmark-confidence floor; the refiner/global distance only added false flags, so it is
    /// not used. The cSVA and CT limits are caps, not from the data (the calibration set had no
    /// wrong cSVA or CT to choose them by).
    fn default() -> Self {
        Self {
            min_landmark_confidence: 0.05,
            min_median_confidence: 0.2,
            max_refinement_shift: f64::INFINITY,
            max_standard_error: [8.0, 8.0, 8.0, 8.0, 5.0, 6.0, 4.0, 10.0, 6.0],
        }
    }
}

/// Plausible ranges per parameter, in the canonical signs of [`super::cervical`]; distances in
/// mm (checked only when a pixel spacing is known).
///
/// Deliberately wider than any published distribution, adult deformity series included, so
/// that only values no spine shows fall outside:
/// - C2–C7 / C2–C6 lordosis: asymptomatic adults about −10° to +45° (Hardacker et al., Spine
///   1997;22:1472–80; Le Huec et al., Eur Spine J 2015;24:63–71); cervical kyphotic deformity
///   series rarely beyond −50° (Ames et al., Spine 2013;38:S149–60).
/// - C0–C2: about 15° ± 7° in asymptomatic adults (Iizuka et al., Eur Spine J 2009); head
///   flexion/extension shifts it by a few tens of degrees.
/// - T1 slope: 13°–43° in asymptomatic adults (Knott et al., Spine J 2010;10:994–8); C7 slope
///   some degrees less.
/// - cSVA (C2–C7 SVA): normal about 15–20 mm; above 40 mm is severe malalignment, deformity
///   series reach about 100 mm (Tang et al., Neurosurgery 2012;71:662–9).
/// - RJD (Redlund-Johnell distance): lower limit of normal 34 mm in men, 29 mm in women;
///   cranial settling lowers it (Redlund-Johnell & Pettersson, Acta Radiol Diagn 1984;25:23–8).
/// - CT (cranial tilt): a few degrees about 0 (Le Huec et al. 2015).
/// - CCA (PNS-based craniocervical angle): tens of degrees, never near 0° or 180° in a lateral
///   radiograph with the head on the neck.
pub const PLAUSIBLE_RANGES: [(&str, PlausibleRange); 9] = [
    ("C2-C7", range(-60.0, 75.0)),
    ("C2-C6", range(-55.0, 70.0)),
    ("C0-C2", range(-35.0, 65.0)),
    ("C7 slope", range(-20.0, 70.0)),
    ("T1 slope", range(-15.0, 75.0)),
    ("cSVA", range(-60.0, 130.0)),
    ("RJD", range(5.0, 65.0)),
    ("CT", range(-45.0, 50.0)),
    ("CCA", range(15.0, 130.0)),
];

/// Anatomical limits of the vertebral geometry (ratios; the phantoms' ground truth lies well
/// inside each, see the module documentation).
/// Height over width of C3–C7 (a wedge fracture lowers it, a tall narrow body raises it).
const ASPECT_SUBAXIAL: PlausibleRange = range(0.35, 1.6);
/// Height over width of the C2 body (taller than the others).
const ASPECT_C2: PlausibleRange = range(0.5, 2.4);
/// A vertebra's width over the median width of C3–C7.
const WIDTH_VS_NEIGHBOURS: PlausibleRange = range(0.6, 1.6);
/// A vertebra's height over the median height of C3–C7 (a compression fracture halves it).
const HEIGHT_VS_NEIGHBOURS: PlausibleRange = range(0.45, 1.7);
/// The T1 superior endplate over the C7 inferior endplate.
const T1_VS_C7_WIDTH: PlausibleRange = range(0.6, 1.9);
/// The gap from one vertebra's inferior endplate to the next one's superior endplate, along
/// the upper vertebra's axis, over the median height: a fused segment is 0, a disc a fraction
/// of a body; a gap of a whole body means a vertebra was skipped.
const DISC_GAP: PlausibleRange = range(-0.3, 1.0);
/// The turn at every corner of a vertebra (cross product of consecutive edges over width ×
/// height) must be at most this: convex, in anatomical order, with no corner angle below
/// about ten degrees.
const MAX_CORNER_TURN: f64 = -0.15;
/// PNS, DENS and OCC above the C2 centroid along the spine's axis, in median heights (OCC may
/// come down to the level of C2 in flexion), and OCC behind PNS.
const PNS_ABOVE_C2: f64 = 0.5;
const DENS_ABOVE_C2: f64 = 0.3;
const OCC_ABOVE_C2: f64 = -1.0;
const OCC_BEHIND_PNS: f64 = 1.0;

/// What the checks read.
pub struct QualityInput<'a> {
    /// Original-image pixels, in the order of [`LANDMARK_NAMES`].
    pub landmarks: &'a [[f64; 2]; LANDMARK_COUNT],
    /// Per landmark, in (0, 1]; `None` where unknown.
    pub confidences: &'a [Option<f64>; LANDMARK_COUNT],
    /// Per landmark, the distance in original pixels between the refined point and the global
    /// model's point (0 for points that are not refined); `None` when not known.
    pub refinement_shift_px: Option<&'a [f64; LANDMARK_COUNT]>,
    /// Per landmark, the heatmap's spread (one standard deviation) in original pixels; `None`
    /// when not known.
    pub spread_px: Option<&'a [f64; LANDMARK_COUNT]>,
    pub spacing: Option<PixelSpacing>,
    /// The parameters, when they could be computed.
    pub measurements: Option<&'a Measurements>,
    /// Reasons found outside the landmarks (the DICOM header), applied to every value.
    pub image_reasons: &'a [ReasonCode],
}

/// The quality of the nine parameters and everything found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct CervicalQuality {
    /// In the order of [`PARAMETER_NAMES`].
    pub parameters: Vec<(&'static str, ParameterQuality)>,
    pub findings: Vec<Finding>,
}

impl CervicalQuality {
    pub fn get(&self, name: &str) -> Option<&ParameterQuality> {
        self.parameters
            .iter()
            .find(|(parameter, _)| *parameter == name)
            .map(|(_, quality)| quality)
    }
}

/// The landmarks each parameter is computed from.
pub fn parameter_landmarks(name: &str) -> &'static [usize] {
    const C2_INFERIOR: [usize; 2] = [C2 + PI, C2 + AI];
    match name {
        "C2-C7" => &[C2_INFERIOR[0], C2_INFERIOR[1], C7 + PI, C7 + AI],
        "C2-C6" => &[C2_INFERIOR[0], C2_INFERIOR[1], 16 + PI, 16 + AI],
        "C0-C2" => &[C2_INFERIOR[0], C2_INFERIOR[1], OCC, PNS],
        "C7 slope" => &[C7 + PS, C7 + AS],
        "T1 slope" => &[T1_PS, T1_AS],
        "cSVA" => &[C2 + AS, C2 + PS, C2 + PI, C2 + AI, C7 + PS],
        "RJD" => &[C2_INFERIOR[0], C2_INFERIOR[1], OCC, PNS],
        "CT" => &[DENS, T1_PS, T1_AS],
        "CCA" => &[PNS, OCC, C7 + AS, C7 + PS, C7 + PI, C7 + AI],
        _ => &[],
    }
}

/// The plausible range of a parameter.
pub fn plausible_range(name: &str) -> Option<PlausibleRange> {
    PLAUSIBLE_RANGES
        .iter()
        .find(|(parameter, _)| *parameter == name)
        .map(|(_, range)| *range)
}

fn names(indices: impl IntoIterator<Item = usize>) -> Vec<&'static str> {
    indices.into_iter().map(|i| LANDMARK_NAMES[i]).collect()
}

/// One vertebra's corners in the canonical frame.
fn body(points: &[P; LANDMARK_COUNT], vertebra: usize) -> Body {
    let first = 4 * vertebra;
    Body::from_corners([
        points[first + AS],
        points[first + PS],
        points[first + PI],
        points[first + AI],
    ])
}

fn corners_of(vertebra: usize) -> Vec<&'static str> {
    if vertebra == CORNERED_VERTEBRAE {
        names([T1_AS, T1_PS])
    } else {
        names(4 * vertebra..4 * vertebra + 4)
    }
}

/// Geometric findings: vertebral shape, size against the neighbours, spacing and order.
fn geometry_findings(points: &[P; LANDMARK_COUNT]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let bodies: Vec<Body> = (0..CORNERED_VERTEBRAE).map(|v| body(points, v)).collect();
    let median_width = median(&mut bodies[1..].iter().map(|b| b.width).collect::<Vec<_>>());
    let median_height = median(&mut bodies[1..].iter().map(|b| b.height).collect::<Vec<_>>());
    if !(median_width > 0.0 && median_height > 0.0) {
        findings.push(Finding {
            code: ReasonCode::VertebraShape,
            landmarks: names(0..4 * CORNERED_VERTEBRAE),
            detail: "the vertebrae C3–C7 have no size: their corners coincide".to_string(),
        });
        return findings;
    }

    for (v, body) in bodies.iter().enumerate() {
        let name = VERTEBRA_NAMES[v];
        let turn = body.largest_turn();
        if turn.is_nan() || turn > MAX_CORNER_TURN {
            findings.push(Finding {
                code: ReasonCode::CornerOrder,
                landmarks: corners_of(v),
                detail: format!(
                    "{name}'s corners do not form a convex quadrilateral in anatomical order \
                     (an endplate flipped or corners swapped)"
                ),
            });
        }
        let aspect = body.height / body.width;
        let aspect_range = if v == 0 { ASPECT_C2 } else { ASPECT_SUBAXIAL };
        if !aspect_range.contains(aspect) {
            findings.push(Finding {
                code: ReasonCode::VertebraShape,
                landmarks: corners_of(v),
                detail: format!(
                    "{name}'s height/width ratio {aspect:.2} is outside [{}, {}]",
                    aspect_range.low, aspect_range.high
                ),
            });
        }
        let width_ratio = body.width / median_width;
        if !WIDTH_VS_NEIGHBOURS.contains(width_ratio) {
            findings.push(Finding {
                code: ReasonCode::EndplateLength,
                landmarks: corners_of(v),
                detail: format!(
                    "{name}'s endplates are {width_ratio:.2} × the median of C3–C7 (outside [{}, {}])",
                    WIDTH_VS_NEIGHBOURS.low, WIDTH_VS_NEIGHBOURS.high
                ),
            });
        }
        // C2's body is taller than the others by nature; its height is judged by its shape.
        let height_ratio = body.height / median_height;
        if v > 0 && !HEIGHT_VS_NEIGHBOURS.contains(height_ratio) {
            findings.push(Finding {
                code: ReasonCode::VertebraHeight,
                landmarks: corners_of(v),
                detail: format!(
                    "{name} is {height_ratio:.2} × the median height of C3–C7 (outside [{}, {}])",
                    HEIGHT_VS_NEIGHBOURS.low, HEIGHT_VS_NEIGHBOURS.high
                ),
            });
        }
    }

    let t1_superior = (points[T1_AS], points[T1_PS]);
    let t1_width = length(sub(t1_superior.0, t1_superior.1));
    let c7_inferior = length(sub(points[C7 + AI], points[C7 + PI]));
    let t1_ratio = t1_width / c7_inferior;
    if !T1_VS_C7_WIDTH.contains(t1_ratio) {
        let mut landmarks = corners_of(CORNERED_VERTEBRAE);
        landmarks.extend(names([C7 + PI, C7 + AI]));
        findings.push(Finding {
            code: ReasonCode::EndplateLength,
            landmarks,
            detail: format!(
                "T1's superior endplate is {t1_ratio:.2} × C7's inferior one (outside [{}, {}])",
                T1_VS_C7_WIDTH.low, T1_VS_C7_WIDTH.high
            ),
        });
    }

    let superior_mids: Vec<P> = bodies
        .iter()
        .map(|b| b.superior_mid)
        .chain([mid(t1_superior.0, t1_superior.1)])
        .collect();
    for (upper, body) in bodies.iter().enumerate() {
        let axis = sub(body.inferior_mid, body.superior_mid);
        let axis_length = length(axis);
        let gap = if axis_length > 0.0 {
            dot(sub(superior_mids[upper + 1], body.inferior_mid), axis)
                / axis_length
                / median_height
        } else {
            f64::NAN
        };
        if !DISC_GAP.contains(gap) {
            // Below a skipped or doubled vertebra every label is suspect, not only the pair's.
            let mut landmarks = corners_of(upper);
            for lower in upper + 1..=CORNERED_VERTEBRAE {
                landmarks.extend(corners_of(lower));
            }
            findings.push(Finding {
                code: ReasonCode::VertebralSpacing,
                landmarks,
                detail: format!(
                    "the gap between {} and {} is {gap:.2} × the median vertebral height \
                     (outside [{}, {}]: overlapping, out of order, or a vertebra skipped)",
                    VERTEBRA_NAMES[upper],
                    VERTEBRA_NAMES[upper + 1],
                    DISC_GAP.low,
                    DISC_GAP.high
                ),
            });
        }
    }

    let c2_centroid = bodies[0].centroid();
    let up = sub(c2_centroid, bodies[CORNERED_VERTEBRAE - 1].centroid());
    let up_length = length(up);
    let above_c2 =
        |index: usize| dot(sub(points[index], c2_centroid), up) / up_length / median_height;
    for (index, minimum, what) in [
        (PNS, PNS_ABOVE_C2, "PNS is not above C2"),
        (DENS, DENS_ABOVE_C2, "DENS is not above the C2 body"),
        (OCC, OCC_ABOVE_C2, "OCC is below C2"),
    ] {
        let height = if up_length > 0.0 {
            above_c2(index)
        } else {
            f64::NAN
        };
        if height.is_nan() || height < minimum {
            findings.push(Finding {
                code: ReasonCode::LandmarkOrder,
                landmarks: names([index]),
                detail: what.to_string(),
            });
        }
    }
    let occ_behind = (points[PNS][0] - points[OCC][0]) / median_height;
    if occ_behind.is_nan() || occ_behind < OCC_BEHIND_PNS {
        findings.push(Finding {
            code: ReasonCode::LandmarkOrder,
            landmarks: names([OCC, PNS]),
            detail: "OCC is not behind PNS".to_string(),
        });
    }
    findings
}

/// The confidence each landmark is judged by: its own for the global points; for a refined
/// corner the lowest of the four corners refined from the same disc crop, since one wrong box
/// misplaces them all while some of them can still look sharp.
pub fn effective_confidences(
    confidences: &[Option<f64>; LANDMARK_COUNT],
) -> [Option<f64>; LANDMARK_COUNT] {
    let mut effective = *confidences;
    for disc in 0..DISC_COUNT {
        let members = DISC_FIRST + 4 * disc..DISC_FIRST + 4 * disc + 4;
        let lowest = members.clone().try_fold(f64::INFINITY, |lowest, i| {
            confidences[i].map(|c| lowest.min(c))
        });
        for i in members {
            effective[i] = lowest;
        }
    }
    effective
}

/// The standard error of each parameter (in its unit), propagated from the landmarks' spreads
/// to first order: each coordinate moved by a small step, the change of every parameter scaled
/// by that landmark's spread, summed in quadrature over landmarks and axes. `None` where the
/// parameters cannot be computed.
pub fn standard_errors(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spread_px: &[f64; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Option<[f64; PARAMETER_NAMES.len()]> {
    let measure = |points: &[[f64; 2]]| {
        let points: &[[f64; 2]; LANDMARK_COUNT] = points.try_into().ok()?;
        let measurements = super::cervical::cervical(points, spacing).ok()?;
        Some(
            measurements
                .parameters
                .iter()
                .map(|parameter| Some(parameter.value))
                .collect(),
        )
    };
    let angle = PARAMETER_NAMES.map(|name| !matches!(name, "cSVA" | "RJD"));
    let errors = propagated_standard_errors(landmarks, spread_px, &angle, measure)?;
    let mut out = [0.0; PARAMETER_NAMES.len()];
    for (out, error) in out.iter_mut().zip(errors) {
        *out = error?;
    }
    Some(out)
}

/// Checks every parameter. Never fails: what cannot be judged is `not_measurable`.
pub fn assess(input: &QualityInput<'_>, thresholds: &QualityThresholds) -> CervicalQuality {
    let effective = effective_confidences(input.confidences);
    let (mut findings, image_low) = confidence_findings(
        &LANDMARK_NAMES,
        input.confidences,
        &effective,
        thresholds.min_landmark_confidence,
        thresholds.min_median_confidence,
        "; a refined corner counts with the lowest confidence of its disc",
        "a lateral cervical radiograph",
    );

    let canonical = canonical_points(input.landmarks, input.spacing).ok();
    if let Some((points, _)) = &canonical {
        if let Some(shifts) = input.refinement_shift_px {
            // Shifts are in original pixels; compare with the width in original pixels.
            let mut pixel_bodies: Vec<f64> = (1..CORNERED_VERTEBRAE)
                .map(|v| body(input.landmarks, v).width)
                .collect();
            let width_px = median(&mut pixel_bodies);
            let far: Vec<usize> = (0..LANDMARK_COUNT)
                .filter(|&i| {
                    let limit = thresholds.max_refinement_shift * width_px;
                    !(shifts[i].is_finite() && shifts[i] <= limit)
                })
                .collect();
            if !far.is_empty() && width_px > 0.0 {
                findings.push(Finding {
                    code: ReasonCode::RefinementDisagreement,
                    landmarks: names(far),
                    detail: format!(
                        "the refined point is more than {} × the median vertebral width from the \
                         global model's",
                        thresholds.max_refinement_shift
                    ),
                });
            }
        }
        findings.extend(geometry_findings(points));
    }

    let errors = input
        .spread_px
        .and_then(|spread| standard_errors(input.landmarks, spread, input.spacing));
    let mut parameters = Vec::with_capacity(PARAMETER_NAMES.len());
    for (k, name) in PARAMETER_NAMES.into_iter().enumerate() {
        let standard_error = errors.map(|errors| errors[k]);
        let used = parameter_landmarks(name);
        let used_names = names(used.iter().copied());
        let is_distance = matches!(name, "cSVA" | "RJD");
        let checkable = !is_distance || input.spacing.is_some();
        let min_confidence = used
            .iter()
            .filter_map(|&i| effective[i])
            .min_by(f64::total_cmp);
        let check = ValueCheck {
            name,
            landmarks: &used_names,
            value: input.measurements.and_then(|m| m.get(name)),
            range: plausible_range(name).filter(|_| checkable),
            standard_error,
            max_standard_error: checkable.then_some(thresholds.max_standard_error[k]),
            min_landmark_confidence: min_confidence,
        };
        let quality = judge(&check, input.image_reasons, image_low, &mut findings);
        parameters.push((name, quality));
    }
    CervicalQuality {
        parameters,
        findings,
    }
}

#[cfg(test)]
mod tests;
