//! The quality vocabulary every model family's parameters share: a status per value and the
//! machine-readable reasons behind it.
//!
//! A flagged value is still reported; the status says how far to trust it. Statuses are ordered
//! by severity, so the status of a value is the most severe of its reasons'.

use serde::Serialize;

/// How far a reported value can be trusted, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityStatus {
    /// Every check passed.
    Ok,
    /// The model was unsure of a landmark the value depends on.
    LowConfidence,
    /// The value or the geometry behind it is anatomically implausible: most likely wrong.
    Implausible,
    /// The value could not be computed, or the image is not one the model measures.
    NotMeasurable,
}

impl QualityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QualityStatus::Ok => "ok",
            QualityStatus::LowConfidence => "low_confidence",
            QualityStatus::Implausible => "implausible",
            QualityStatus::NotMeasurable => "not_measurable",
        }
    }
}

/// Why a value was flagged. Serialised in snake_case; the set only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// A landmark the value is computed from has a confidence below the threshold.
    LowLandmarkConfidence,
    /// A refined corner lies far from where the global model put it: one of the two is wrong.
    RefinementDisagreement,
    /// The value's standard error, propagated from the spreads of its landmarks' heatmaps, is
    /// too large: the model is unsure where the lines behind it lie.
    UncertainValue,
    /// The median confidence of all landmarks is low: the image may not show the spine the
    /// model measures (a lateral cervical spine, a whole spine, a lumbar spine), or not all of it.
    ImageLowConfidence,
    /// The value lies outside the range any adult spine shows.
    OutsidePlausibleRange,
    /// A vertebra's four corners do not form a convex quadrilateral in anatomical order (an
    /// endplate flipped, corners swapped).
    CornerOrder,
    /// A vertebra's height-to-width ratio is outside the anatomical range.
    VertebraShape,
    /// An endplate is much longer or shorter than those of the neighbouring vertebrae.
    EndplateLength,
    /// A vertebra is much taller or shorter than its neighbours.
    VertebraHeight,
    /// The gap between two consecutive vertebrae is negative (overlap, order reversed) or far
    /// larger than a disc (a vertebra skipped).
    VertebralSpacing,
    /// A landmark is on the wrong side of its anatomical neighbours: a skull or dens landmark
    /// (PNS, OCC or DENS below C2, OCC in front of PNS), an endplate outside the body centres
    /// around it, the femoral heads not below the sacrum.
    LandmarkOrder,
    /// The DICOM header says the image is not a lateral cervical radiograph.
    NotCervicalLateral,
    /// The value could not be computed (degenerate or missing landmarks).
    NotComputed,
}

impl ReasonCode {
    /// The status a value gets for this reason alone.
    pub fn status(self) -> QualityStatus {
        match self {
            ReasonCode::LowLandmarkConfidence
            | ReasonCode::RefinementDisagreement
            | ReasonCode::UncertainValue
            | ReasonCode::ImageLowConfidence => QualityStatus::LowConfidence,
            ReasonCode::OutsidePlausibleRange
            | ReasonCode::CornerOrder
            | ReasonCode::VertebraShape
            | ReasonCode::EndplateLength
            | ReasonCode::VertebraHeight
            | ReasonCode::VertebralSpacing
            | ReasonCode::LandmarkOrder => QualityStatus::Implausible,
            ReasonCode::NotCervicalLateral | ReasonCode::NotComputed => {
                QualityStatus::NotMeasurable
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::LowLandmarkConfidence => "low_landmark_confidence",
            ReasonCode::RefinementDisagreement => "refinement_disagreement",
            ReasonCode::UncertainValue => "uncertain_value",
            ReasonCode::ImageLowConfidence => "image_low_confidence",
            ReasonCode::OutsidePlausibleRange => "outside_plausible_range",
            ReasonCode::CornerOrder => "corner_order",
            ReasonCode::VertebraShape => "vertebra_shape",
            ReasonCode::EndplateLength => "endplate_length",
            ReasonCode::VertebraHeight => "vertebra_height",
            ReasonCode::VertebralSpacing => "vertebral_spacing",
            ReasonCode::LandmarkOrder => "landmark_order",
            ReasonCode::NotCervicalLateral => "not_cervical_lateral",
            ReasonCode::NotComputed => "not_computed",
        }
    }
}

/// The most severe status of `reasons` (`Ok` when there are none).
pub fn status_of(reasons: &[ReasonCode]) -> QualityStatus {
    reasons
        .iter()
        .map(|reason| reason.status())
        .max()
        .unwrap_or(QualityStatus::Ok)
}

/// One problem found in the landmarks or the image, with the landmarks it concerns and a
/// sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: ReasonCode,
    pub landmarks: Vec<&'static str>,
    pub detail: String,
}

/// The quality of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParameterQuality {
    pub status: QualityStatus,
    /// Sorted, without repeats.
    pub reasons: Vec<ReasonCode>,
    /// The lowest confidence among the landmarks the parameter is computed from (a refined
    /// corner counting with the lowest confidence of the crop it was refined in).
    pub min_landmark_confidence: Option<f64>,
    /// The value's standard error in its unit, propagated from the landmarks' heatmap spreads
    /// (first order); `None` when not known.
    pub standard_error: Option<f64>,
}

impl ParameterQuality {
    /// The quality of a value with these reasons (sorted and deduplicated here).
    pub fn from_reasons(
        mut reasons: Vec<ReasonCode>,
        min_landmark_confidence: Option<f64>,
    ) -> Self {
        reasons.sort();
        reasons.dedup();
        Self {
            status: status_of(&reasons),
            reasons,
            min_landmark_confidence,
            standard_error: None,
        }
    }

    pub fn is_flagged(&self) -> bool {
        self.status != QualityStatus::Ok
    }
}

/// A closed interval of plausible values, with the source it comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlausibleRange {
    pub low: f64,
    pub high: f64,
}

impl PlausibleRange {
    pub fn contains(&self, value: f64) -> bool {
        value.is_finite() && (self.low..=self.high).contains(&value)
    }
}

/// A closed interval of plausible values.
pub const fn range(low: f64, high: f64) -> PlausibleRange {
    PlausibleRange { low, high }
}

/// A point or vector in a canonical frame (anterior +x, inferior +y).
pub(super) type P = [f64; 2];

pub(super) fn sub(a: P, b: P) -> P {
    [a[0] - b[0], a[1] - b[1]]
}
pub(super) fn length(a: P) -> f64 {
    a[0].hypot(a[1])
}
pub(super) fn mid(a: P, b: P) -> P {
    [0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1])]
}
pub(super) fn dot(a: P, b: P) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}
pub(super) fn cross(a: P, b: P) -> f64 {
    a[0] * b[1] - a[1] * b[0]
}

/// The median of `values` (reordered); NaN for none.
pub(super) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        0.5 * (values[middle - 1] + values[middle])
    }
}

/// One vertebral body's measurements in a canonical frame, from its corners as, ps, pi, ai.
pub(super) struct Body {
    pub corners: [P; 4],
    pub width: f64,
    pub height: f64,
    pub superior_mid: P,
    pub inferior_mid: P,
}

impl Body {
    pub fn from_corners(corners: [P; 4]) -> Self {
        let [a_s, p_s, p_i, a_i] = corners;
        Self {
            corners,
            width: 0.5 * (length(sub(a_s, p_s)) + length(sub(a_i, p_i))),
            height: 0.5 * (length(sub(a_s, a_i)) + length(sub(p_s, p_i))),
            superior_mid: mid(a_s, p_s),
            inferior_mid: mid(a_i, p_i),
        }
    }

    pub fn centroid(&self) -> P {
        let sum = self
            .corners
            .iter()
            .fold([0.0, 0.0], |acc, c| [acc[0] + c[0], acc[1] + c[1]]);
        [0.25 * sum[0], 0.25 * sum[1]]
    }

    /// The largest turn at a corner, normalised by width × height: negative everywhere for a
    /// convex quadrilateral in the order as → ps → pi → ai (anterior +x, inferior +y).
    pub fn largest_turn(&self) -> f64 {
        let scale = (self.width * self.height).max(f64::MIN_POSITIVE);
        (0..4)
            .map(|i| {
                let edge = sub(self.corners[(i + 1) % 4], self.corners[i]);
                let next = sub(self.corners[(i + 2) % 4], self.corners[(i + 1) % 4]);
                cross(edge, next) / scale
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The findings about confidence: the landmarks below `min_landmark` by their `effective`
/// confidence (`note` says how that is derived), and whether the median of the known raw
/// `confidences` is below `min_median` (then the image may not be `what_image`).
pub(super) fn confidence_findings(
    names: &[&'static str],
    confidences: &[Option<f64>],
    effective: &[Option<f64>],
    min_landmark: f64,
    min_median: f64,
    note: &str,
    what_image: &str,
) -> (Vec<Finding>, bool) {
    let mut findings = Vec::new();
    let low: Vec<&'static str> = names
        .iter()
        .zip(effective)
        .filter(|(_, confidence)| !confidence.is_some_and(|c| c >= min_landmark))
        .map(|(name, _)| *name)
        .collect();
    if !low.is_empty() {
        findings.push(Finding {
            code: ReasonCode::LowLandmarkConfidence,
            landmarks: low,
            detail: format!("confidence below {min_landmark} (or unknown{note})"),
        });
    }
    let mut known: Vec<f64> = confidences.iter().flatten().copied().collect();
    let median_confidence = (!known.is_empty()).then(|| median(&mut known));
    let image_low = !median_confidence.is_some_and(|m| m >= min_median);
    if image_low {
        findings.push(Finding {
            code: ReasonCode::ImageLowConfidence,
            landmarks: Vec::new(),
            detail: format!(
                "median landmark confidence {} is below {min_median}: the image may not be \
                 {what_image}, or the spine is not fully in view",
                median_confidence.map_or("unknown".to_string(), |m| format!("{m:.3}")),
            ),
        });
    }
    (findings, image_low)
}

/// What one value is judged on.
pub(super) struct ValueCheck<'a> {
    pub name: &'static str,
    /// The names of the landmarks the value is computed from.
    pub landmarks: &'a [&'static str],
    /// `None` when the value could not be computed.
    pub value: Option<f64>,
    /// `None` when the range is not checked (a distance in pixels).
    pub range: Option<PlausibleRange>,
    pub standard_error: Option<f64>,
    /// `None` when the standard error is not checked.
    pub max_standard_error: Option<f64>,
    pub min_landmark_confidence: Option<f64>,
}

/// The quality of one value: the image's reasons, the findings that name a landmark it uses, and
/// its own checks (computed at all, standard error, plausible range; a value out of range adds
/// a finding).
pub(super) fn judge(
    check: &ValueCheck<'_>,
    image_reasons: &[ReasonCode],
    image_low: bool,
    findings: &mut Vec<Finding>,
) -> ParameterQuality {
    let mut reasons: Vec<ReasonCode> = image_reasons.to_vec();
    if image_low {
        reasons.push(ReasonCode::ImageLowConfidence);
    }
    for finding in findings.iter() {
        if finding
            .landmarks
            .iter()
            .any(|l| check.landmarks.contains(l))
        {
            reasons.push(finding.code);
        }
    }
    match check.value {
        None => reasons.push(ReasonCode::NotComputed),
        Some(value) => {
            if let Some(limit) = check.max_standard_error {
                if check
                    .standard_error
                    .is_some_and(|error| error.is_nan() || error > limit)
                {
                    reasons.push(ReasonCode::UncertainValue);
                }
            }
            if let Some(range) = check.range {
                if !range.contains(value) {
                    reasons.push(ReasonCode::OutsidePlausibleRange);
                    findings.push(Finding {
                        code: ReasonCode::OutsidePlausibleRange,
                        landmarks: Vec::new(),
                        detail: format!(
                            "{} = {value:.1} is outside the plausible range [{}, {}]",
                            check.name, range.low, range.high
                        ),
                    });
                }
            }
        }
    }
    let mut quality = ParameterQuality::from_reasons(reasons, check.min_landmark_confidence);
    quality.standard_error = check.standard_error;
    quality
}

/// The standard error of each value (in its unit), propagated from the landmarks' spreads to
/// first order: each coordinate moved by a small step, the change of every value scaled by that
/// landmark's spread, summed in quadrature over landmarks and axes. `angle[k]` says whether value
/// k wraps at ±180°. `None` when the values cannot be computed or a spread is not finite; a value
/// missing at any step has no standard error.
pub(super) fn propagated_standard_errors(
    landmarks: &[[f64; 2]],
    spread: &[f64],
    angle: &[bool],
    measure: impl Fn(&[[f64; 2]]) -> Option<Vec<Option<f64>>>,
) -> Option<Vec<Option<f64>>> {
    let base = measure(landmarks)?;
    // A tenth of a pixel: small against any landmark spread, large against rounding.
    const STEP_PX: f64 = 0.1;
    let mut variance: Vec<Option<f64>> = base.iter().map(|value| value.map(|_| 0.0)).collect();
    let mut moved = landmarks.to_vec();
    for index in 0..landmarks.len() {
        let spread = spread[index];
        if !spread.is_finite() {
            return None;
        }
        for axis in 0..2 {
            moved[index][axis] += STEP_PX;
            let shifted = measure(&moved)?;
            moved[index][axis] = landmarks[index][axis];
            for (k, sum) in variance.iter_mut().enumerate() {
                let (Some(total), Some(after), Some(before)) = (*sum, shifted[k], base[k]) else {
                    *sum = None;
                    continue;
                };
                let mut change = after - before;
                if angle[k] {
                    change = (change + 180.0).rem_euclid(360.0) - 180.0;
                }
                let per_sd = change / STEP_PX * spread;
                *sum = Some(total + per_sd * per_sd);
            }
        }
    }
    Some(variance.into_iter().map(|sum| sum.map(f64::sqrt)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_reason_decides_the_status() {
        assert_eq!(status_of(&[]), QualityStatus::Ok);
        assert_eq!(
            status_of(&[ReasonCode::LowLandmarkConfidence]),
            QualityStatus::LowConfidence
        );
        assert_eq!(
            status_of(&[ReasonCode::LowLandmarkConfidence, ReasonCode::CornerOrder]),
            QualityStatus::Implausible
        );
        assert_eq!(
            status_of(&[ReasonCode::CornerOrder, ReasonCode::NotComputed]),
            QualityStatus::NotMeasurable
        );
    }

    #[test]
    fn codes_serialise_as_their_names() {
        for code in [
            ReasonCode::LowLandmarkConfidence,
            ReasonCode::RefinementDisagreement,
            ReasonCode::UncertainValue,
            ReasonCode::ImageLowConfidence,
            ReasonCode::OutsidePlausibleRange,
            ReasonCode::CornerOrder,
            ReasonCode::VertebraShape,
            ReasonCode::EndplateLength,
            ReasonCode::VertebraHeight,
            ReasonCode::VertebralSpacing,
            ReasonCode::LandmarkOrder,
            ReasonCode::NotCervicalLateral,
            ReasonCode::NotComputed,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let json = serde_json::to_string(&QualityStatus::LowConfidence).unwrap();
        assert_eq!(json, "\"low_confidence\"");
    }

    #[test]
    fn a_range_refuses_non_finite_values() {
        let range = PlausibleRange {
            low: -10.0,
            high: 10.0,
        };
        assert!(range.contains(10.0));
        assert!(!range.contains(10.5));
        assert!(!range.contains(f64::NAN));
    }
}
