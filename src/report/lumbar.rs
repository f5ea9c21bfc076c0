//! The lumbar model's part of a record (SPEC-lumbar.md): every level with its presence
//! probability, the corners of the present ones, the three angles with the paper's unsigned
//! value beside each and their quality, and its CSV columns.

use serde::Serialize;

use super::{
    landmark_confidence, serialize_confidence, serialize_optional_hundredths,
    serialize_probability, LandmarkRecord, LandmarkSource, ModelInfo,
};
use crate::anatomy::lumbar::{CORNERS_PER_LEVEL, LANDMARK_COUNT, LEVEL_COUNT, LEVEL_NAMES};
use crate::io::Radiograph;
use crate::measure::lumbar::{self, Levels, PARAMETER_NAMES};
use crate::measure::lumbar_quality;
use crate::measure::{Facing, Finding, QualityStatus, ReasonCode};
use crate::models::lumbar::LumbarPrediction;

/// What the lumbar model gave for one image.
pub struct LumbarOutcome<'a> {
    pub model: &'a ModelInfo,
    pub prediction: LumbarPrediction,
}

/// One level as the labeller saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRecord {
    pub name: &'static str,
    /// The labeller's probability that the level is in the image.
    #[serde(serialize_with = "serialize_probability")]
    pub probability: f64,
    /// `probability >= threshold`: only present levels have corners in the record.
    pub present: bool,
    /// The crop the corners were refined in, (x0, y0, x1, y1) in original pixels; `null` for
    /// an absent level.
    pub crop_box: Option<[f32; 4]>,
}

/// One lumbar angle as reported: signed as the SPEC says, the paper's unsigned value beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LumbarParameterRecord {
    pub name: &'static str,
    /// Degrees; `null` when a level it reads is absent (`absent_levels` names them).
    #[serde(serialize_with = "serialize_optional_hundredths")]
    pub value: Option<f64>,
    /// The paper's angle between the two lines, in [0°, 90°].
    #[serde(serialize_with = "serialize_optional_hundredths")]
    pub unsigned_value: Option<f64>,
    pub unit: &'static str,
    pub status: QualityStatus,
    pub reasons: Vec<ReasonCode>,
    #[serde(serialize_with = "serialize_confidence")]
    pub min_landmark_confidence: Option<f64>,
    #[serde(serialize_with = "serialize_optional_hundredths")]
    pub standard_error: Option<f64>,
    pub convention: &'static str,
    pub absent_levels: Vec<&'static str>,
}

/// The lumbar model's analysis of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LumbarRecord {
    pub model: ModelInfo,
    /// The direction the patient faces; `null` when neither L1–L5 nor S1 was found.
    pub facing: Option<Facing>,
    /// All 24 levels, C2 to S1.
    pub levels: Vec<LevelRecord>,
    /// The 4 corners (as, ps, pi, ai) of each present level, refined on the level's crop.
    pub landmarks: Vec<LandmarkRecord>,
    pub parameters: Vec<LumbarParameterRecord>,
    pub findings: Vec<Finding>,
}

impl LumbarRecord {
    /// Whether every angle was measured and passed every check.
    pub fn all_ok(&self) -> bool {
        self.parameters.len() == PARAMETER_NAMES.len()
            && self
                .parameters
                .iter()
                .all(|p| p.status == QualityStatus::Ok)
    }
}

/// The lumbar block of a record: the present levels' corners with their confidences, the angles
/// and their quality.
pub fn lumbar_record(
    outcome: LumbarOutcome<'_>,
    radiograph: &Radiograph,
    image_reasons: &[ReasonCode],
    warnings: &mut Vec<String>,
) -> LumbarRecord {
    let (width, height) = (radiograph.width, radiograph.height);
    let prediction = &outcome.prediction;
    let levels_reported: Vec<LevelRecord> = (0..LEVEL_COUNT)
        .map(|v| LevelRecord {
            name: LEVEL_NAMES[v],
            probability: f64::from(prediction.presence[v]),
            present: prediction.present[v],
            crop_box: prediction.present[v].then_some(prediction.boxes[v]),
        })
        .collect();
    let mut levels: Levels = [None; LEVEL_COUNT];
    let mut confidences = [None; LANDMARK_COUNT];
    let mut spreads = [0.0; LANDMARK_COUNT];
    let mut shifts = [0.0; LANDMARK_COUNT];
    let mut landmarks = Vec::new();
    for v in (0..LEVEL_COUNT).filter(|&v| prediction.present[v]) {
        let mut corners = [[0.0; 2]; CORNERS_PER_LEVEL];
        for (c, corner) in corners.iter_mut().enumerate() {
            let i = CORNERS_PER_LEVEL * v + c;
            let point = &prediction.corners[i];
            let coarse = prediction.coarse[i];
            let sd_px = ((point.sd_x.powi(2) + point.sd_y.powi(2)) / 2.0).sqrt();
            let shift = f64::from(point.x - coarse[0]).hypot(f64::from(point.y - coarse[1]));
            let confidence = landmark_confidence(f64::from(sd_px), width, height);
            *corner = [f64::from(point.x), f64::from(point.y)];
            confidences[i] = confidence;
            spreads[i] = f64::from(sd_px);
            shifts[i] = shift;
            landmarks.push(LandmarkRecord {
                name: point.name,
                x: point.x,
                y: point.y,
                sd_px,
                confidence,
                source: LandmarkSource::Refined,
                refinement_shift_px: shift,
            });
        }
        levels[v] = Some(corners);
    }
    let measurements = match lumbar::lumbar(&levels, radiograph.pixel_spacing) {
        Ok(measurements) => Some(measurements),
        Err(error) => {
            warnings.push(format!("lumbar parameters not computed: {error}"));
            None
        }
    };
    let quality = lumbar_quality::assess(
        &lumbar_quality::QualityInput {
            levels: &levels,
            confidences: &confidences,
            refinement_shift_px: Some(&shifts),
            spread_px: Some(&spreads),
            spacing: radiograph.pixel_spacing,
            measurements: measurements.as_ref(),
            image_reasons,
        },
        &lumbar_quality::QualityThresholds::default(),
    );
    let parameters = quality
        .parameters
        .iter()
        .map(|(name, judged)| {
            let measured = measurements.as_ref().and_then(|m| m.parameter(name));
            LumbarParameterRecord {
                name,
                value: measured.and_then(|p| p.value),
                unsigned_value: measured.and_then(|p| p.unsigned_value),
                unit: "deg",
                status: judged.status,
                reasons: judged.reasons.clone(),
                min_landmark_confidence: judged.min_landmark_confidence,
                standard_error: judged.standard_error,
                convention: measured.map_or("", |p| p.convention),
                absent_levels: measured.map_or_else(Vec::new, |p| p.absent_levels.clone()),
            }
        })
        .collect();
    LumbarRecord {
        model: outcome.model.clone(),
        facing: measurements.as_ref().and_then(|m| m.facing),
        levels: levels_reported,
        landmarks,
        parameters,
        findings: quality.findings,
    }
}

/// The lumbar columns of the CSV header: the present levels, then each angle with its status.
pub fn csv_columns(columns: &mut Vec<String>) {
    columns.push("lumbar levels".into());
    for name in PARAMETER_NAMES {
        columns.push(format!("lumbar {name} (deg)"));
        columns.push(format!("lumbar {name} status"));
    }
}

/// The lumbar cells of one record: empty when the model did not run.
pub fn csv_cells(cells: &mut Vec<String>, record: Option<&LumbarRecord>) {
    let Some(record) = record else {
        cells.extend(std::iter::repeat_n(
            String::new(),
            1 + 2 * PARAMETER_NAMES.len(),
        ));
        return;
    };
    let present: Vec<&str> = record
        .levels
        .iter()
        .filter(|level| level.present)
        .map(|level| level.name)
        .collect();
    cells.push(present.join(" "));
    for name in PARAMETER_NAMES {
        let parameter = record.parameters.iter().find(|p| p.name == name);
        cells.push(
            parameter
                .and_then(|p| p.value)
                .map_or_else(String::new, |v| format!("{v:.2}")),
        );
        cells.push(
            parameter
                .map_or(QualityStatus::NotMeasurable, |p| p.status)
                .as_str()
                .to_string(),
        );
    }
}
