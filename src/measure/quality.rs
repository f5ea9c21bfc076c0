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
    /// The median confidence of all landmarks is low: the image may not show a lateral
    /// cervical spine, or not all of it.
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
    /// A skull or dens landmark is on the wrong side of the spine (PNS, OCC or DENS below C2,
    /// OCC in front of PNS).
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
