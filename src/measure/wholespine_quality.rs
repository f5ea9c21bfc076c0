//! Quality control of the eighteen whole-spine parameters, by the rules of the cervical ones: a
//! status and reason codes for every value from (a) the confidence of the landmarks it is computed
//! from, (b) a plausible range per parameter, (c) the geometry of the landmarks behind it, and
//! (d) the image as a whole (the median confidence; the DICOM header, judged by the caller).
//!
//! The geometric rules are unit-free (ratios of lengths in the canonical frame, so they hold in mm
//! and px) and each is judged against the spine's own local axis, the line through the body
//! centres around a level, so that a lordotic neck or a kyphotic back is not mistaken for
//! disorder: the body centres must run cranial to caudal at even spacing, every endplate must lie
//! between the centres around it and run posterior to anterior, T5 and C7 must keep their corner
//! order, the dens must be above C2 and the femoral heads below the sacrum. Their limits sit well
//! outside what spines show. All 45 landmarks come from one network stage (no refiner), so a
//! landmark is judged by its own confidence.

use super::frame::Unit;
use super::frame::{Measurements, PixelSpacing};
use super::quality::{
    confidence_findings, cross, dot, judge, length, median, mid, propagated_standard_errors, range,
    sub, Body, Finding, ParameterQuality, PlausibleRange, ReasonCode, ValueCheck, P,
};
use super::wholespine::{
    canonical_points, definition_of, wholespine, C2_AI, C2_DENS, C2_PI, C7_AI, C7_PI, C7_PS,
    CENTRE_COUNT, FACING_PAIRS, FH1, FH2, FIRST_CENTRE, L1_AS, L1_PS, L4_AS, L4_PS, LANDMARK_COUNT,
    LANDMARK_NAMES, PARAMETERS, PARAMETER_NAMES, S1_AS, S1_PS, T12_AI, T12_PI, T1_AS, T1_PS, T5_AI,
    T5_AS, T5_PI, T5_PS,
};

/// Thresholds that depend on the model's confidence scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityThresholds {
    /// A landmark below this confidence flags every value computed from it.
    pub min_landmark_confidence: f64,
    /// Below this median confidence of all landmarks, every value is flagged.
    pub min_median_confidence: f64,
    /// Per parameter (in the order of [`PARAMETER_NAMES`]), the largest standard error
    /// propagated from the landmarks' heatmap spreads (degrees, mm for SVA and cSVA, which are not
    /// checked without a pixel spacing, a plain number for the Barrey index).
    pub max_standard_error: [f64; PARAMETER_NAMES.len()],
}

impl Default for QualityThresholds {
    /// No whole-spine model exists yet to calibrate these on (the cervical ones came from
    /// `tools/calibrate_quality.py --sweep` on held-back phantoms): the rules that depend on the
    /// model's confidence scale are off until then, and an unknown confidence still flags.
    fn default() -> Self {
        Self {
            min_landmark_confidence: 0.0,
            min_median_confidence: 0.0,
            max_standard_error: [f64::INFINITY; PARAMETER_NAMES.len()],
        }
    }
}

/// Plausible ranges per parameter, in the signs of [`super::wholespine`]; distances in mm
/// (checked only when a pixel spacing is known).
///
/// Deliberately wider than any published distribution, adult deformity series included, so that
/// only values no standing spine shows fall outside. Each holds at least the paper's ground-truth
/// mean ± 4 SD (SPEC-wholespine.md, 400 radiographs) and:
/// - PI: 33°–85° in 300 asymptomatic adults (Vialle et al., J Bone Joint Surg Am 2005); rarely
///   below 20° or above 100° in any series (Legaye et al., Eur Spine J 1998).
/// - SS, PT: asymptomatic SS about 41° ± 8°, PT 13° ± 6° (Vialle 2005); PT beyond 30° is severe
///   pelvic retroversion (Schwab et al., SRS-Schwab classification, Spine 2012), deformity series
///   reach about 50°; a retroverted sacrum can make SS slightly negative.
/// - LL (L1–S1): about 60° ± 10° asymptomatic (Vialle 2005); flat-back and kyphotic deformity
///   reach negative values, hyperlordosis above 90°.
/// - SVA: above 40 mm is malalignment, above 95 mm severe (Schwab 2012); deformity series reach
///   300 mm; negative values (C7 behind S1) to about −100 mm.
/// - CL, T1S, cSVA: as for the cervical model ([`super::cervical_quality::PLAUSIBLE_RANGES`]).
/// - GTK, PTK, MTK: thoracic kyphosis about 20°–50° (Bernhardt & Bridwell, Spine 1989), above 70°
///   in Scheuermann's disease; hypokyphosis and lordotic thoracic segments go below 0°.
/// - L4SL: about two thirds of L1–S1 lordosis (Roussouly et al., Spine 2005).
/// - LPA, TPA: TPA about 10° ± 8° in adults, above 20°–30° in deformity (Protopsaltis et al., J
///   Bone Joint Surg Am 2014); LPA close to TPA minus the thoracic contribution (Protopsaltis et
///   al., Spine 2018).
/// - SSA: about 130° ± 8° (Roussouly et al., Eur Spine J 2006); it falls with sagittal imbalance.
/// - GT: about 10°–20° normal, above 25° severe (Obeid et al., Eur Spine J 2016).
/// - Barrey index C7/SFD: about −1 to 1 in balanced spines (Barrey et al., Eur Spine J 2007);
///   the ratio grows without bound as the sacro-femoral distance shrinks.
/// - OD-HA: a few degrees about 0 in asymptomatic adults (Amabile et al., Eur Spine J 2016).
pub const PLAUSIBLE_RANGES: [(&str, PlausibleRange); 18] = [
    ("PI", range(15.0, 110.0)),
    ("SS", range(-15.0, 85.0)),
    ("PT", range(-30.0, 65.0)),
    ("LL", range(-45.0, 120.0)),
    ("SVA", range(-200.0, 350.0)),
    ("CL", range(-60.0, 75.0)),
    ("T1S", range(-15.0, 75.0)),
    ("cSVA", range(-60.0, 130.0)),
    ("GTK", range(-35.0, 110.0)),
    ("PTK", range(-35.0, 65.0)),
    ("MTK", range(-40.0, 95.0)),
    ("L4SL", range(-30.0, 90.0)),
    ("LPA", range(-35.0, 50.0)),
    ("SSA", range(60.0, 180.0)),
    ("GT", range(-40.0, 90.0)),
    ("TPA", range(-35.0, 75.0)),
    ("Barrey", range(-15.0, 15.0)),
    ("OD-HA", range(-25.0, 25.0)),
];

/// A centre's gap to the next one over the median of the gaps around it: a doubled centre is
/// near 0, a skipped vertebra near 2.
const CENTRE_GAP_VS_NEIGHBOURS: PlausibleRange = range(0.4, 1.9);
/// An endplate's length over the gap between the body centres around it (about 1 all along the
/// spine).
const ENDPLATE_VS_CENTRE_GAP: PlausibleRange = range(0.35, 2.8);
/// An endplate must make at least this cosine with the perpendicular to the local axis, pointing
/// anterior: a flipped endplate is negative.
const MIN_ENDPLATE_COSINE: f64 = 0.2;
/// The turn at every corner of a vertebra, over width × height (as for the cervical vertebrae).
const MAX_CORNER_TURN: f64 = -0.15;
/// Height over width of T5 (a wedge fracture lowers it).
const ASPECT_THORACIC: PlausibleRange = range(0.35, 1.6);
/// From the sacral endplate's midpoint: L5_c up to this many L4–L5 gaps above; the hip axis
/// between these many below (along the local axis).
const S1_BELOW_L5: f64 = 3.0;
const HIPS_FROM_SACRUM: PlausibleRange = range(0.5, 8.0);
/// The femoral heads at most this many L4–L5 gaps apart: in a lateral film they nearly overlap.
const MAX_HEAD_SEPARATION: f64 = 3.0;

/// What the checks read.
pub struct QualityInput<'a> {
    /// Original-image pixels, in the order of [`LANDMARK_NAMES`].
    pub landmarks: &'a [[f64; 2]; LANDMARK_COUNT],
    /// Per landmark, in (0, 1]; `None` where unknown.
    pub confidences: &'a [Option<f64>; LANDMARK_COUNT],
    /// Per landmark, the heatmap's spread (one standard deviation) in original pixels; `None`
    /// when not known.
    pub spread_px: Option<&'a [f64; LANDMARK_COUNT]>,
    pub spacing: Option<PixelSpacing>,
    /// The parameters, when they could be computed.
    pub measurements: Option<&'a Measurements>,
    /// Reasons found outside the landmarks (the DICOM header), applied to every value.
    pub image_reasons: &'a [ReasonCode],
}

/// The quality of the eighteen parameters and everything found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct WholeSpineQuality {
    /// In the order of [`PARAMETER_NAMES`].
    pub parameters: Vec<(&'static str, ParameterQuality)>,
    pub findings: Vec<Finding>,
}

impl WholeSpineQuality {
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

/// The landmarks each parameter is computed from.
pub fn parameter_landmarks(name: &str) -> &'static [usize] {
    definition_of(name).map_or(&[], |definition| definition.landmarks)
}

fn names(indices: impl IntoIterator<Item = usize>) -> Vec<&'static str> {
    indices.into_iter().map(|i| LANDMARK_NAMES[i]).collect()
}

/// The level a landmark belongs to: its name up to the underscore (`FH1` and `FH2` are the hips).
fn level_of(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

/// Every landmark of the level `level` (its centre, corners, the dens for C2).
fn level_landmarks(level: &str) -> Vec<&'static str> {
    LANDMARK_NAMES
        .iter()
        .copied()
        .filter(|name| level_of(name) == level)
        .collect()
}

/// Which end of its body an endplate closes.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Superior,
    Inferior,
}

/// The endplates the model marks, with the centre (0 = C2_c … 22 = L5_c) of their body. C7's
/// superior endplate is its posterior corner alone.
const ENDPLATES: [(usize, Side, &[usize]); 9] = [
    (0, Side::Inferior, &[C2_PI, C2_AI]),
    (5, Side::Superior, &[C7_PS]),
    (5, Side::Inferior, &[C7_PI, C7_AI]),
    (6, Side::Superior, &[T1_PS, T1_AS]),
    (10, Side::Superior, &[T5_PS, T5_AS]),
    (10, Side::Inferior, &[T5_PI, T5_AI]),
    (17, Side::Inferior, &[T12_PI, T12_AI]),
    (18, Side::Superior, &[L1_PS, L1_AS]),
    (21, Side::Superior, &[L4_PS, L4_AS]),
];

/// The centre of the body each facing pair belongs to; S1 has none and borrows L5's axis.
fn centre_of_pair(anterior: usize) -> usize {
    let level = level_of(LANDMARK_NAMES[anterior]);
    if level == "S1" {
        return CENTRE_COUNT - 1;
    }
    (0..CENTRE_COUNT)
        .find(|&k| level_of(LANDMARK_NAMES[FIRST_CENTRE + k]) == level)
        .expect("every endplate pair but S1's has a body centre")
}

/// Geometric findings in the canonical frame.
fn geometry_findings(points: &[P; LANDMARK_COUNT]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let centre = |k: usize| points[FIRST_CENTRE + k];
    let last = CENTRE_COUNT - 1;
    let gaps: Vec<f64> = (0..last)
        .map(|k| length(sub(centre(k + 1), centre(k))))
        .collect();
    // The local axis at centre k, from the centre above to the one below, pointing caudally.
    let axis = |k: usize| {
        let along = sub(centre((k + 1).min(last)), centre(k.saturating_sub(1)));
        let norm = length(along);
        [along[0] / norm, along[1] / norm]
    };
    let centre_name = |k: usize| LANDMARK_NAMES[FIRST_CENTRE + k];
    let level = |k: usize| level_of(centre_name(k));

    for k in 0..last {
        let wide = sub(centre((k + 2).min(last)), centre(k.saturating_sub(1)));
        let down = dot(sub(centre(k + 1), centre(k)), wide);
        let mut around: Vec<f64> = (k.saturating_sub(2)..=(k + 2).min(last - 1))
            .filter(|&j| j != k)
            .map(|j| gaps[j])
            .collect();
        let ratio = gaps[k] / median(&mut around);
        let mut concerned = level_landmarks(level(k));
        concerned.extend(level_landmarks(level(k + 1)));
        let in_order = down > 0.0;
        if !in_order {
            findings.push(Finding {
                code: ReasonCode::VertebralSpacing,
                landmarks: concerned,
                detail: format!(
                    "{} is not below {}: body centres out of order",
                    centre_name(k + 1),
                    centre_name(k)
                ),
            });
        } else if !CENTRE_GAP_VS_NEIGHBOURS.contains(ratio) {
            findings.push(Finding {
                code: ReasonCode::VertebralSpacing,
                landmarks: concerned,
                detail: format!(
                    "the gap from {} to {} is {ratio:.2} × the gaps around it (outside [{}, {}]: \
                     a centre doubled or a vertebra skipped)",
                    centre_name(k),
                    centre_name(k + 1),
                    CENTRE_GAP_VS_NEIGHBOURS.low,
                    CENTRE_GAP_VS_NEIGHBOURS.high
                ),
            });
        }
    }

    for (k, side, members) in ENDPLATES {
        let middle = members.iter().fold([0.0, 0.0], |acc, &i| {
            [acc[0] + points[i][0], acc[1] + points[i][1]]
        });
        let middle = [
            middle[0] / members.len() as f64,
            middle[1] / members.len() as f64,
        ];
        let along = dot(sub(middle, centre(k)), axis(k));
        let (inside, neighbour) = match side {
            Side::Superior => (along < 0.0 && along > -gaps[k - 1], k - 1),
            Side::Inferior => (along > 0.0 && along < gaps[k], k + 1),
        };
        if !inside {
            let mut concerned = names(members.iter().copied());
            concerned.extend([centre_name(k), centre_name(neighbour)]);
            let which = if side == Side::Superior {
                "superior"
            } else {
                "inferior"
            };
            findings.push(Finding {
                code: ReasonCode::LandmarkOrder,
                landmarks: concerned,
                detail: format!(
                    "{}'s {which} endplate is not between {} and {}",
                    level(k),
                    centre_name(k),
                    centre_name(neighbour)
                ),
            });
        }
    }

    let s1m = mid(points[S1_PS], points[S1_AS]);
    let l5_gap = gaps[last - 1];
    let below_l5 = dot(sub(s1m, centre(last)), axis(last)) / l5_gap;
    let just_below = below_l5 > 0.0 && below_l5 < S1_BELOW_L5;
    if !just_below {
        let mut concerned = names([S1_PS, S1_AS]);
        concerned.push(centre_name(last));
        findings.push(Finding {
            code: ReasonCode::LandmarkOrder,
            landmarks: concerned,
            detail: format!(
                "the sacral endplate is not just below L5_c ({below_l5:.2} × the L4–L5 gap)"
            ),
        });
    }
    let dens_above = dot(sub(points[C2_DENS], centre(0)), axis(0));
    let dens_on_top = dens_above < 0.0;
    if !dens_on_top {
        findings.push(Finding {
            code: ReasonCode::LandmarkOrder,
            landmarks: names([C2_DENS, FIRST_CENTRE]),
            detail: "C2_dens is not above C2_c".to_string(),
        });
    }
    let hips = mid(points[FH1], points[FH2]);
    let hips_below = dot(sub(hips, s1m), axis(last));
    let hips_distance = length(sub(hips, s1m)) / l5_gap;
    let hips_in_place = hips_below > 0.0 && HIPS_FROM_SACRUM.contains(hips_distance);
    if !hips_in_place {
        findings.push(Finding {
            code: ReasonCode::LandmarkOrder,
            landmarks: names([FH1, FH2, S1_PS, S1_AS]),
            detail: format!(
                "the femoral heads are not below the sacrum at a pelvic distance \
                 ({hips_distance:.2} × the L4–L5 gap from the sacral endplate)"
            ),
        });
    }
    let separation = length(sub(points[FH1], points[FH2])) / l5_gap;
    let heads_together = separation <= MAX_HEAD_SEPARATION;
    if !heads_together {
        findings.push(Finding {
            code: ReasonCode::LandmarkOrder,
            landmarks: names([FH1, FH2]),
            detail: format!(
                "the femoral heads are {separation:.2} × the L4–L5 gap apart: one is misplaced"
            ),
        });
    }

    for (anterior, posterior) in FACING_PAIRS {
        let k = centre_of_pair(anterior);
        let local = axis(k);
        let forward = [local[1], -local[0]];
        let endplate = sub(points[anterior], points[posterior]);
        let width = length(endplate);
        let cosine = dot(endplate, forward) / width;
        let level = level_of(LANDMARK_NAMES[anterior]);
        let across = cosine >= MIN_ENDPLATE_COSINE;
        if !across {
            findings.push(Finding {
                code: ReasonCode::CornerOrder,
                landmarks: names([posterior, anterior]),
                detail: format!(
                    "{} → {} does not run posterior to anterior across the spine (an endplate \
                     flipped or its corners swapped)",
                    LANDMARK_NAMES[posterior], LANDMARK_NAMES[anterior]
                ),
            });
        }
        let mut around = vec![gaps[k.min(last - 1)]];
        if k > 0 {
            around.push(gaps[k - 1]);
        }
        let ratio = width / (around.iter().sum::<f64>() / around.len() as f64);
        if !ENDPLATE_VS_CENTRE_GAP.contains(ratio) {
            findings.push(Finding {
                code: ReasonCode::EndplateLength,
                landmarks: names([posterior, anterior]),
                detail: format!(
                    "{level}'s endplate is {ratio:.2} × the gap between the body centres around \
                     it (outside [{}, {}])",
                    ENDPLATE_VS_CENTRE_GAP.low, ENDPLATE_VS_CENTRE_GAP.high
                ),
            });
        }
    }

    let t5 = Body::from_corners([points[T5_AS], points[T5_PS], points[T5_PI], points[T5_AI]]);
    let turn = t5.largest_turn();
    if turn.is_nan() || turn > MAX_CORNER_TURN {
        findings.push(Finding {
            code: ReasonCode::CornerOrder,
            landmarks: names([T5_AS, T5_PS, T5_PI, T5_AI]),
            detail: "T5's corners do not form a convex quadrilateral in anatomical order (an \
                     endplate flipped or corners swapped)"
                .to_string(),
        });
    }
    let aspect = t5.height / t5.width;
    if !ASPECT_THORACIC.contains(aspect) {
        findings.push(Finding {
            code: ReasonCode::VertebraShape,
            landmarks: names([T5_AS, T5_PS, T5_PI, T5_AI]),
            detail: format!(
                "T5's height/width ratio {aspect:.2} is outside [{}, {}]",
                ASPECT_THORACIC.low, ASPECT_THORACIC.high
            ),
        });
    }
    let wall = sub(points[C7_PI], points[C7_PS]);
    let floor = sub(points[C7_AI], points[C7_PI]);
    let c7_turn = cross(wall, floor) / (length(wall) * length(floor));
    let c7_in_order = c7_turn <= MAX_CORNER_TURN;
    if !c7_in_order {
        findings.push(Finding {
            code: ReasonCode::CornerOrder,
            landmarks: names([C7_PS, C7_PI, C7_AI]),
            detail: "C7's corners ps → pi → ai do not turn anteriorly at pi (corners swapped)"
                .to_string(),
        });
    }
    findings
}

/// The standard error of each parameter (in its unit), propagated from the landmarks' spreads
/// to first order; `None` where the parameters cannot be computed, and for the Barrey index
/// where it has no value.
pub fn standard_errors(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spread_px: &[f64; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Option<[Option<f64>; PARAMETER_NAMES.len()]> {
    let measure = |points: &[[f64; 2]]| {
        let points: &[[f64; 2]; LANDMARK_COUNT] = points.try_into().ok()?;
        let measurements = wholespine(points, spacing).ok()?;
        Some(
            PARAMETER_NAMES
                .iter()
                .map(|name| measurements.get(name))
                .collect(),
        )
    };
    let angle = PARAMETERS.map(|definition| definition.unit == Unit::Degrees);
    let errors = propagated_standard_errors(landmarks, spread_px, &angle, measure)?;
    errors.try_into().ok()
}

/// Checks every parameter. Never fails: what cannot be judged is `not_measurable`.
pub fn assess(input: &QualityInput<'_>, thresholds: &QualityThresholds) -> WholeSpineQuality {
    let (mut findings, image_low) = confidence_findings(
        &LANDMARK_NAMES,
        input.confidences,
        input.confidences,
        thresholds.min_landmark_confidence,
        thresholds.min_median_confidence,
        "",
        "a lateral whole-spine radiograph",
    );
    if let Ok((points, _)) = canonical_points(input.landmarks, input.spacing) {
        findings.extend(geometry_findings(&points));
    }

    let errors = input
        .spread_px
        .and_then(|spread| standard_errors(input.landmarks, spread, input.spacing));
    let mut parameters = Vec::with_capacity(PARAMETER_NAMES.len());
    for (k, definition) in PARAMETERS.iter().enumerate() {
        let used = definition.landmarks;
        let used_names = names(used.iter().copied());
        let checkable = definition.unit != Unit::Distance || input.spacing.is_some();
        let check = ValueCheck {
            name: definition.name,
            landmarks: &used_names,
            value: input.measurements.and_then(|m| m.get(definition.name)),
            range: plausible_range(definition.name).filter(|_| checkable),
            standard_error: errors.and_then(|errors| errors[k]),
            max_standard_error: checkable.then_some(thresholds.max_standard_error[k]),
            min_landmark_confidence: used
                .iter()
                .filter_map(|&i| input.confidences[i])
                .min_by(f64::total_cmp),
        };
        let quality = judge(&check, input.image_reasons, image_low, &mut findings);
        parameters.push((definition.name, quality));
    }
    WholeSpineQuality {
        parameters,
        findings,
    }
}

#[cfg(test)]
mod tests;
