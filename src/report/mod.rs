//! What `sagitta analyze` reports for each radiograph: the record (serialised to JSON), the
//! per-landmark confidence, the warnings, and the CSV table of a batch.
//!
//! A record is either an analysis ([`ImageRecord`]) or a failure ([`ErrorRecord`]: the file
//! and a one-line reason); a batch mixes both and never stops on a failure. Both serialise to
//! the same JSON shape (schema [`RECORD_SCHEMA`]): every key is always there, `null` or empty
//! where a failure has nothing to say, and `status` is `ok`, `flagged` or `error`.
//!
//! Every parameter carries a quality status with reason codes (`measure::cervical_quality`);
//! a flagged value is still reported. A record holds what each model that ran on the image
//! said: the landmark model's landmarks and parameters (`model`, `null` when it did not run)
//! and the myelopathy screen (`csm`, `null` when it did not run).

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

pub mod dicom;
pub mod lumbar;
pub mod overlay;

pub use lumbar::{LumbarOutcome, LumbarRecord};

use crate::io::{DicomAttributes, Radiograph, SpacingSource};
use crate::measure;
use crate::measure::cervical_quality::{self, QualityInput, QualityThresholds};
use crate::measure::frame::Unit;
use crate::measure::quality::status_of;
use crate::measure::{
    Facing, Finding, Measurements, PixelSpacing, QualityStatus, ReasonCode, LANDMARK_COUNT,
    PARAMETER_NAMES,
};
use crate::models::cervical::{Landmark, Prediction};
use crate::models::csm::CsmPrediction;
use crate::models::wholespine::SpinePrediction;

/// The name and version of the record's JSON shape; it changes when a key changes meaning or
/// goes away.
pub const RECORD_SCHEMA: &str = "sagitta-record/3";

/// The engine that wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    pub version: &'static str,
    /// The git commit sagitta was built from (`unknown` when built outside a git checkout).
    pub git_commit: &'static str,
}

/// This build of sagitta.
pub const ENGINE: EngineInfo = EngineInfo {
    version: env!("CARGO_PKG_VERSION"),
    git_commit: match option_env!("SAGITTA_GIT_COMMIT") {
        Some(commit) => commit,
        None => "unknown",
    },
};

/// The current time as RFC 3339 UTC with milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `value` rounded to `decimals` places: records carry what the measurement supports, not
/// seventeen digits of floating-point noise.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let result = (value * scale).round() / scale;
    if result.is_finite() {
        result
    } else {
        value
    }
}

/// `value` with `digits` significant digits.
fn significant_digits(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let magnitude = value.abs().log10().floor() as i32;
    rounded(value, digits - 1 - magnitude)
}

fn serialize_hundredths<S: serde::Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(rounded(*value, 2))
}

fn serialize_hundredths_f32<S: serde::Serializer>(
    value: &f32,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f32(rounded(f64::from(*value), 2) as f32)
}

fn serialize_optional_hundredths<S: serde::Serializer>(
    value: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.serialize_some(&rounded(*value, 2)),
        None => serializer.serialize_none(),
    }
}

fn serialize_confidence<S: serde::Serializer>(
    value: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.serialize_some(&significant_digits(*value, 3)),
        None => serializer.serialize_none(),
    }
}

/// The coordinate convention of every landmark, stated in each record so that a record read
/// on its own cannot be misread.
pub const PIXEL_CONVENTION: &str =
    "x right, y down, in original-image pixels; the centre of the top-left pixel is (0, 0)";

/// The spread that lowers a landmark's confidence to 1/e, as a fraction of the image's longer
/// side: a heatmap whose spread is 1 % of the image (about 10 px on a 1000 px radiograph,
/// roughly the size of a vertebral corner) is a vague answer.
pub const CONFIDENCE_SPREAD_FRACTION: f64 = 0.01;

/// The parameters measured in the record's distance unit (mm or px); all others are in
/// degrees.
pub const DISTANCE_PARAMETERS: [&str; 2] = ["cSVA", "RJD"];

/// Corners on the anterior wall (`*_as`, `*_ai`, `T1_as`) and on the posterior wall, by index.
const ANTERIOR_CORNERS: [usize; 13] = [0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23, 24];
const POSTERIOR_CORNERS: [usize; 13] = [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22, 25];

/// The unit of the angle parameters.
pub const ANGLE_UNIT: &str = "deg";

/// The model that produced a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The name in the weights file's metadata.
    pub name: String,
    /// The weights file as it was given or found.
    pub weights: String,
    /// SHA-256 of the weights file, so that a result can be traced to the exact checkpoint.
    pub sha256: String,
    /// Storage dtype of the weights (`f32`, `f16`, `bf16`).
    pub dtype: String,
    /// Side of the square image the model sees.
    pub input_size: u32,
    /// How activations were stored on the GPU (`f32`, `f16`).
    pub precision: crate::engine::Precision,
    /// The weights' metadata says the model is not for clinical use (the shipped defaults,
    /// trained on phantoms); the overlay says so on the image.
    pub not_for_clinical_use: bool,
}

/// What the CSM classifier's output means, stated in every record that carries one.
pub const CSM_CAVEAT: &str = "p_csm screens a lateral cervical radiograph for cervical \
    spondylotic myelopathy; it is not a diagnosis (the paper's reference standard is MRI and \
    surgery) and says nothing about an image that is not a lateral cervical radiograph";

/// The myelopathy screen of one image (SPEC-csm.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CsmRecord {
    /// sigmoid(logit) of the classifier, in [0, 1].
    #[serde(serialize_with = "serialize_probability")]
    pub p_csm: f64,
    /// `CSM` when `p_csm >= threshold`, else `no CSM`.
    pub label: &'static str,
    /// The threshold of the weights file's metadata.
    pub threshold: f64,
    /// `ok`, or why the number should not be read (the DICOM header says the image is not a
    /// lateral cervical radiograph).
    pub status: QualityStatus,
    pub reasons: Vec<ReasonCode>,
    pub caveat: &'static str,
    pub model: ModelInfo,
}

impl CsmRecord {
    fn new(outcome: CsmOutcome<'_>, image_reasons: &[ReasonCode]) -> Self {
        let prediction = outcome.prediction;
        let reasons = image_reasons.to_vec();
        Self {
            p_csm: f64::from(prediction.p_csm),
            label: prediction.label_text(),
            threshold: f64::from(prediction.threshold),
            status: status_of(&reasons),
            reasons,
            caveat: CSM_CAVEAT,
            model: outcome.model.clone(),
        }
    }
}

fn serialize_probability<S: serde::Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Six significant digits: below the f32 parity tolerance against PyTorch, without the
    // float noise of the last digits.
    serializer.serialize_f64(significant_digits(*value, 6))
}

/// The whole-spine model's analysis of one image (SPEC-wholespine.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpineRecord {
    pub model: ModelInfo,
    /// The direction the patient faces; `null` when the landmarks cannot tell.
    pub facing: Option<Facing>,
    /// `mm` with a pixel spacing, `px` without.
    pub distance_unit: &'static str,
    /// The 45 landmarks by name in original-image pixels (all from the network's stage 2).
    pub landmarks: Vec<LandmarkRecord>,
    /// The 18 values with their quality; empty when they could not be computed (a warning says
    /// why). Barrey's index is left out when the sacro-femoral distance is 0.
    pub parameters: Vec<ParameterRecord>,
    pub findings: Vec<Finding>,
}

/// Where a landmark's position comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LandmarkSource {
    /// The global model (C2_as, C2_ps, PNS, OCC, DENS).
    Global,
    /// One of the six disc refiners (the 24 disc corners).
    Refined,
}

/// One landmark as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LandmarkRecord {
    pub name: &'static str,
    #[serde(serialize_with = "serialize_hundredths_f32")]
    pub x: f32,
    #[serde(serialize_with = "serialize_hundredths_f32")]
    pub y: f32,
    /// The heatmap's spread in original pixels: sqrt((sd_x² + sd_y²) / 2).
    #[serde(serialize_with = "serialize_hundredths_f32")]
    pub sd_px: f32,
    /// exp(−sd_px / (0.01 × max(width, height))), in (0, 1]; `null` when the spread is not a
    /// finite number.
    #[serde(serialize_with = "serialize_confidence")]
    pub confidence: Option<f64>,
    pub source: LandmarkSource,
    /// How far the refiner moved the point from the global model's, in original pixels (0 for
    /// global points).
    #[serde(serialize_with = "serialize_hundredths")]
    pub refinement_shift_px: f64,
}

/// One parameter as reported: its value and how far to trust it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParameterRecord {
    pub name: &'static str,
    #[serde(serialize_with = "serialize_hundredths")]
    pub value: f64,
    /// `"deg"`, `"mm"`, or `"px"` when no pixel spacing was known.
    pub unit: &'static str,
    pub status: QualityStatus,
    /// Machine-readable reasons for the status; empty when `ok`.
    pub reasons: Vec<ReasonCode>,
    /// The lowest confidence of the landmarks the value is computed from.
    #[serde(serialize_with = "serialize_confidence")]
    pub min_landmark_confidence: Option<f64>,
    /// The value's standard error in its unit, propagated from the landmarks' heatmap spreads.
    #[serde(serialize_with = "serialize_optional_hundredths")]
    pub standard_error: Option<f64>,
    /// How the value is defined and which sign means what.
    pub convention: &'static str,
}

/// Whether an analysis is clean, has flagged values, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Every parameter was computed and passed every check.
    Ok,
    /// At least one parameter is flagged (or missing); see each parameter's `status`.
    Flagged,
    /// The image could not be analysed; `error` says why.
    Error,
}

/// Where the time for one image went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimingMs {
    /// Reading and decoding the file.
    #[serde(serialize_with = "serialize_hundredths")]
    pub load: f64,
    /// The GPU pipeline, upload to readback.
    #[serde(serialize_with = "serialize_hundredths")]
    pub inference: f64,
    /// Load, inference, measurement and building the record.
    #[serde(serialize_with = "serialize_hundredths")]
    pub total: f64,
}

/// The analysis of one radiograph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRecord {
    pub schema: &'static str,
    pub status: RecordStatus,
    pub image: String,
    /// Always `null` here; the key is there so that every record has the same shape.
    pub error: Option<String>,
    /// When the record was made (RFC 3339, UTC).
    pub timestamp: String,
    pub engine: EngineInfo,
    /// The DICOM header's identity and description of the image; `null` for other formats.
    pub dicom: Option<DicomAttributes>,
    pub width: u32,
    pub height: u32,
    /// `png`, `jpeg`, `tiff` or `dicom`.
    pub format: &'static str,
    /// The DICOM transfer syntax UID; `null` for other formats.
    pub transfer_syntax: Option<String>,
    pub pixel_spacing: Option<PixelSpacing>,
    pub spacing_source: SpacingSource,
    /// `mm` with a pixel spacing, `px` without.
    pub distance_unit: &'static str,
    /// The landmark model; `null` when only the CSM classifier ran.
    pub model: Option<ModelInfo>,
    /// The myelopathy screen; `null` when the CSM classifier did not run.
    pub csm: Option<CsmRecord>,
    /// The whole-spine landmarks and 18 parameters; `null` when that model did not run.
    pub wholespine: Option<SpineRecord>,
    /// The lumbar levels, their corners and 3 angles; `null` when that model did not run.
    pub lumbar: Option<LumbarRecord>,
    /// The GPU adapter that ran the models.
    pub adapter: String,
    /// The direction the patient faces; `null` only when the landmarks cannot tell.
    pub facing: Option<Facing>,
    pub pixel_convention: &'static str,
    pub landmarks: Vec<LandmarkRecord>,
    /// The nine parameters with their quality; empty when they could not be computed (a
    /// warning says why).
    pub parameters: Vec<ParameterRecord>,
    /// Every problem the quality checks found, with the landmarks concerned.
    pub findings: Vec<Finding>,
    /// The DICOM SR written for this image (`--dicom-out`); `null` when none was.
    pub dicom_sr: Option<DicomObjectReference>,
    /// The Grayscale Softcopy Presentation State of the overlay (`--dicom-out`).
    pub dicom_presentation_state: Option<DicomObjectReference>,
    /// The Secondary Capture of the overlay (`--secondary-capture`).
    pub dicom_secondary_capture: Option<DicomObjectReference>,
    pub warnings: Vec<String>,
    pub timing_ms: TimingMs,
}

/// Where one of a record's DICOM objects (SR, presentation state, secondary capture) went and
/// the identity it got, so that the object found in a PACS can be paired with its record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DicomObjectReference {
    pub path: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    /// The DICOMweb service it was sent to (`--store`); `null` when it was not sent.
    pub stored_to: Option<String>,
}

/// A file that could not be analysed.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    pub image: String,
    /// One line naming the file and the reason.
    pub error: String,
    pub timestamp: String,
}

/// What a batch reports for one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Analyzed(Box<ImageRecord>),
    Failed(ErrorRecord),
}

/// An error record in the shape of an [`ImageRecord`]: the same keys, `null` or empty where a
/// failure has nothing to say.
#[derive(Serialize)]
struct ErrorRecordShape<'a> {
    schema: &'static str,
    status: RecordStatus,
    image: &'a str,
    error: &'a str,
    timestamp: &'a str,
    engine: EngineInfo,
    dicom: Option<()>,
    width: Option<()>,
    height: Option<()>,
    format: Option<()>,
    transfer_syntax: Option<()>,
    pixel_spacing: Option<()>,
    spacing_source: Option<()>,
    distance_unit: Option<()>,
    model: Option<()>,
    csm: Option<()>,
    wholespine: Option<()>,
    lumbar: Option<()>,
    adapter: Option<()>,
    facing: Option<()>,
    pixel_convention: &'static str,
    landmarks: [(); 0],
    parameters: [(); 0],
    findings: [(); 0],
    dicom_sr: Option<()>,
    dicom_presentation_state: Option<()>,
    dicom_secondary_capture: Option<()>,
    warnings: [(); 0],
    timing_ms: Option<()>,
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Analyzed(record) => record.serialize(serializer),
            Record::Failed(failure) => ErrorRecordShape {
                schema: RECORD_SCHEMA,
                status: RecordStatus::Error,
                image: &failure.image,
                error: &failure.error,
                timestamp: &failure.timestamp,
                engine: ENGINE,
                dicom: None,
                width: None,
                height: None,
                format: None,
                transfer_syntax: None,
                pixel_spacing: None,
                spacing_source: None,
                distance_unit: None,
                model: None,
                csm: None,
                wholespine: None,
                lumbar: None,
                adapter: None,
                facing: None,
                pixel_convention: PIXEL_CONVENTION,
                landmarks: [],
                parameters: [],
                findings: [],
                dicom_sr: None,
                dicom_presentation_state: None,
                dicom_secondary_capture: None,
                warnings: [],
                timing_ms: None,
            }
            .serialize(serializer),
        }
    }
}

impl Record {
    pub fn failed(image: &Path, error: impl Into<String>) -> Self {
        Record::Failed(ErrorRecord {
            image: image.display().to_string(),
            error: error.into(),
            timestamp: timestamp_now(),
        })
    }

    /// `ok`, `flagged` or `error`.
    pub fn status(&self) -> RecordStatus {
        match self {
            Record::Analyzed(record) => record.status,
            Record::Failed(_) => RecordStatus::Error,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Record::Analyzed(_))
    }

    pub fn image(&self) -> &str {
        match self {
            Record::Analyzed(record) => &record.image,
            Record::Failed(record) => &record.image,
        }
    }

    /// Pretty JSON, as printed and written to files.
    /// The record on one line (JSON lines: `--jsonl`).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(
                "{{\"image\": {}, \"error\": \"cannot serialise the record: {error}\"}}",
                serde_json::Value::String(self.image().to_string())
            )
        })
    }

    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or null (non-finite numbers become
        // null), so serialisation cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|error| {
            format!(
                "{{\"image\": {}, \"error\": \"cannot serialise the record: {error}\"}}",
                serde_json::Value::String(self.image().to_string())
            )
        })
    }
}

/// The confidence of a landmark whose heatmap spread is `sd_px` original pixels.
///
/// exp(−sd_px / (0.01 × max(width, height))): 1 for a perfectly sharp heatmap, 1/e when the
/// spread is 1 % of the image's longer side. Relative to the image so that the same heatmap
/// gives the same confidence at any resolution. A softmax over the image cannot spread more
/// than half the longer side, so the value stays above e^−50 (never 0); `None` for a non-finite
/// spread.
pub fn landmark_confidence(sd_px: f64, width: u32, height: u32) -> Option<f64> {
    let scale = CONFIDENCE_SPREAD_FRACTION * f64::from(width.max(height).max(1));
    (sd_px.is_finite() && sd_px >= 0.0).then(|| (-sd_px / scale).exp())
}

/// sqrt((sd_x² + sd_y²) / 2): the root-mean-square spread of the two axes.
pub fn combined_spread(landmark: &Landmark) -> f32 {
    let (sd_x, sd_y) = (landmark.sd_x, landmark.sd_y);
    ((sd_x * sd_x + sd_y * sd_y) / 2.0).sqrt()
}

/// The median of the finite confidences (`None` when there are none).
pub fn median_confidence(landmarks: &[LandmarkRecord]) -> Option<f64> {
    let mut values: Vec<f64> = landmarks
        .iter()
        .filter_map(|landmark| landmark.confidence)
        .filter(|value| value.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        0.5 * (values[middle - 1] + values[middle])
    })
}

/// A confidence with three significant digits: a median of 2e-7 must not read as "0.000".
fn significant(value: f64) -> String {
    if value >= 0.001 {
        format!("{value:.3}")
    } else {
        format!("{value:.2e}")
    }
}

/// The landmarks of a prediction as reported, with their confidences. `input_size` is the
/// side of the model's input, in which the global model's points are given.
pub fn landmark_records(
    prediction: &Prediction,
    width: u32,
    height: u32,
    input_size: u32,
) -> Vec<LandmarkRecord> {
    let to_original = |q: f32, original: u32| {
        (f64::from(q) + 0.5) * f64::from(original) / f64::from(input_size.max(1)) - 0.5
    };
    prediction
        .landmarks
        .iter()
        .enumerate()
        .map(|(index, landmark)| {
            let sd_px = combined_spread(landmark);
            let refinement_shift_px = match prediction.coarse_input.get(index) {
                Some(coarse) if landmark.refined => {
                    let dx = f64::from(landmark.x) - to_original(coarse[0], width);
                    let dy = f64::from(landmark.y) - to_original(coarse[1], height);
                    dx.hypot(dy)
                }
                Some(_) => 0.0,
                None => f64::NAN,
            };
            LandmarkRecord {
                name: landmark.name,
                x: landmark.x,
                y: landmark.y,
                sd_px,
                confidence: landmark_confidence(f64::from(sd_px), width, height),
                source: if landmark.refined {
                    LandmarkSource::Refined
                } else {
                    LandmarkSource::Global
                },
                refinement_shift_px,
            }
        })
        .collect()
}

/// Modalities of projection radiographs: CR, DX, RG (radiographic imaging), RF
/// (fluoroscopy), and the generic OT/SC of converted films. Anything else (CT, MR, US, MG,
/// ...) is not a lateral radiograph.
const RADIOGRAPH_MODALITIES: [&str; 6] = ["CR", "DX", "RG", "RF", "OT", "SC"];
/// Body Part Examined values (DICOM PS3.16 CID 4031 and common vendor spellings) that cover
/// the cervical spine; matched as substrings of the upper-cased value, spaces and dashes
/// removed.
const CERVICAL_BODY_PARTS: [&str; 6] =
    ["CSPINE", "CERVICAL", "NECK", "WHOLESPINE", "SPINE", "HEAD"];
/// Body parts that contain "SPINE" but not the cervical spine.
const OTHER_SPINE_PARTS: [&str; 4] = ["TSPINE", "LSPINE", "SSPINE", "TLSPINE"];
/// View Position values of a lateral projection (PS3.3 C.8.11.5: LL, RL; LAT/LATERAL from
/// some vendors).
const LATERAL_VIEWS: [&str; 4] = ["LL", "RL", "LAT", "LATERAL"];

/// Why the DICOM header says the image is not a lateral cervical radiograph (empty when it
/// says nothing against it; absent attributes say nothing).
pub fn header_findings(dicom: &DicomAttributes) -> Vec<Finding> {
    let normalized = |value: &str| value.to_uppercase().replace([' ', '-', '_'], "");
    let mut findings = Vec::new();
    let mut refuse = |detail: String| {
        findings.push(Finding {
            code: ReasonCode::NotCervicalLateral,
            landmarks: Vec::new(),
            detail,
        })
    };
    if let Some(modality) = &dicom.modality {
        if !RADIOGRAPH_MODALITIES.contains(&normalized(modality).as_str()) {
            refuse(format!(
                "DICOM Modality is {modality}, not a projection radiograph"
            ));
        }
    }
    if let Some(part) = &dicom.body_part_examined {
        let part_key = normalized(part);
        let other_spine = OTHER_SPINE_PARTS.iter().any(|other| part_key == *other);
        let cervical = CERVICAL_BODY_PARTS.iter().any(|c| part_key.contains(c));
        if other_spine || !cervical {
            refuse(format!(
                "DICOM Body Part Examined is {part}, not the cervical spine"
            ));
        }
    }
    if let Some(view) = &dicom.view_position {
        if !LATERAL_VIEWS.contains(&normalized(view).as_str()) {
            refuse(format!("DICOM View Position is {view}, not lateral"));
        }
    }
    findings
}

/// The landmarks in the form [`crate::measure::cervical`] takes; `None` unless there are
/// exactly 29.
pub fn landmark_array(landmarks: &[LandmarkRecord]) -> Option<[[f64; 2]; LANDMARK_COUNT]> {
    if landmarks.len() != LANDMARK_COUNT {
        return None;
    }
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    for (point, landmark) in points.iter_mut().zip(landmarks) {
        *point = [f64::from(landmark.x), f64::from(landmark.y)];
    }
    Some(points)
}

/// The facing by the rule `measure` uses (anterior corners' mean x against the posterior
/// corners'), for records whose parameters could not be computed.
pub fn facing_from_corners(points: &[[f64; 2]; LANDMARK_COUNT]) -> Option<Facing> {
    let mean_x = |indices: &[usize]| {
        indices.iter().map(|&index| points[index][0]).sum::<f64>() / indices.len() as f64
    };
    let difference = mean_x(&ANTERIOR_CORNERS) - mean_x(&POSTERIOR_CORNERS);
    if !difference.is_finite() || difference == 0.0 {
        None
    } else if difference > 0.0 {
        Some(Facing::Right)
    } else {
        Some(Facing::Left)
    }
}

/// The inputs of [`build_record`] beyond the radiograph and the models' outputs.
pub struct RecordContext<'a> {
    pub image: &'a Path,
    pub adapter: &'a str,
}

/// What the landmark model gave for one image: its landmarks and the parameters measured from
/// them (or why they could not be).
pub struct LandmarkOutcome<'a> {
    pub model: &'a ModelInfo,
    pub landmarks: Vec<LandmarkRecord>,
    pub measured: Result<Measurements, String>,
}

/// What the whole-spine model gave for one image.
pub struct SpineOutcome<'a> {
    pub model: &'a ModelInfo,
    pub prediction: SpinePrediction,
}

/// What the CSM classifier gave for one image.
pub struct CsmOutcome<'a> {
    pub model: &'a ModelInfo,
    pub prediction: CsmPrediction,
}

/// Assembles the record of one analysed radiograph from what each model that ran gave: the
/// quality of every parameter, the findings behind it, the screen, and the warnings.
pub fn build_record(
    context: &RecordContext<'_>,
    radiograph: &Radiograph,
    landmark_model: Option<LandmarkOutcome<'_>>,
    csm: Option<CsmOutcome<'_>>,
    wholespine: Option<SpineOutcome<'_>>,
    lumbar: Option<LumbarOutcome<'_>>,
    timing_ms: TimingMs,
) -> ImageRecord {
    let mut warnings = Vec::new();
    let header = radiograph
        .dicom
        .as_ref()
        .map(header_findings)
        .unwrap_or_default();
    let image_reasons: Vec<ReasonCode> = header.iter().map(|finding| finding.code).collect();
    let fallback_unit = if radiograph.pixel_spacing.is_some() {
        "mm"
    } else {
        "px"
    };
    let mut facing = None;
    let mut distance_unit = fallback_unit;
    let mut landmarks = Vec::new();
    let mut parameters = Vec::new();
    let mut findings = header;
    let mut model = None;
    let mut all_ok = true;
    if let Some(outcome) = landmark_model {
        spacing_warnings(radiograph, &mut warnings);
        let measurements = match outcome.measured {
            Ok(measurements) => {
                facing = Some(measurements.facing);
                distance_unit = measurements.distance_unit;
                Some(measurements)
            }
            Err(error) => {
                warnings.push(format!("parameters not computed: {error}"));
                facing = landmark_array(&outcome.landmarks)
                    .as_ref()
                    .and_then(facing_from_corners);
                None
            }
        };
        if let Some(points) = landmark_array(&outcome.landmarks) {
            let (assessed, quality_findings) = assess_parameters(
                &points,
                &outcome.landmarks,
                radiograph.pixel_spacing,
                measurements.as_ref(),
                &image_reasons,
            );
            parameters = assessed;
            findings.extend(quality_findings);
        }
        all_ok = parameters.len() == PARAMETER_NAMES.len()
            && parameters.iter().all(|p| p.status == QualityStatus::Ok);
        landmarks = outcome.landmarks;
        model = Some(outcome.model.clone());
    }
    let csm = csm.map(|outcome| CsmRecord::new(outcome, &image_reasons));
    if let Some(screen) = &csm {
        all_ok &= screen.status == QualityStatus::Ok;
    }
    let wholespine = wholespine.map(|outcome| {
        if model.is_none() {
            spacing_warnings(radiograph, &mut warnings);
        }
        let spine = spine_record(outcome, radiograph, &image_reasons, &mut warnings);
        findings.extend(spine.findings.iter().cloned());
        spine
    });
    if let Some(spine) = &wholespine {
        all_ok &= spine.parameters.len() == measure::wholespine::PARAMETER_NAMES.len()
            && spine
                .parameters
                .iter()
                .all(|p| p.status == QualityStatus::Ok);
    }
    let lumbar = lumbar.map(|outcome| {
        let record = lumbar::lumbar_record(outcome, radiograph, &image_reasons, &mut warnings);
        findings.extend(record.findings.iter().cloned());
        record
    });
    if let Some(record) = &lumbar {
        all_ok &= record.all_ok();
    }
    for finding in &findings {
        if matches!(
            finding.code,
            ReasonCode::NotCervicalLateral | ReasonCode::ImageLowConfidence
        ) {
            warnings.push(format!("{}: {}", finding.code.as_str(), finding.detail));
        }
    }
    ImageRecord {
        schema: RECORD_SCHEMA,
        status: if all_ok {
            RecordStatus::Ok
        } else {
            RecordStatus::Flagged
        },
        image: context.image.display().to_string(),
        error: None,
        timestamp: timestamp_now(),
        engine: ENGINE,
        dicom: radiograph.dicom.clone(),
        width: radiograph.width,
        height: radiograph.height,
        format: radiograph.format,
        transfer_syntax: radiograph.transfer_syntax.clone(),
        pixel_spacing: radiograph.pixel_spacing,
        spacing_source: radiograph.spacing_source,
        distance_unit,
        model,
        csm,
        wholespine,
        lumbar,
        adapter: context.adapter.to_string(),
        facing,
        pixel_convention: PIXEL_CONVENTION,
        landmarks,
        parameters,
        findings,
        dicom_sr: None,
        dicom_presentation_state: None,
        dicom_secondary_capture: None,
        warnings,
        timing_ms,
    }
}

/// The whole-spine part of a record: landmarks with their confidences, the 18 parameters and
/// their quality.
fn spine_record(
    outcome: SpineOutcome<'_>,
    radiograph: &Radiograph,
    image_reasons: &[ReasonCode],
    warnings: &mut Vec<String>,
) -> SpineRecord {
    use crate::anatomy::wholespine::LANDMARK_COUNT as SPINE_LANDMARKS;
    use crate::measure::wholespine_quality;
    let (width, height) = (radiograph.width, radiograph.height);
    let landmarks: Vec<LandmarkRecord> = outcome
        .prediction
        .landmarks
        .iter()
        .map(|landmark| {
            let sd_px = ((landmark.sd_x.powi(2) + landmark.sd_y.powi(2)) / 2.0).sqrt();
            LandmarkRecord {
                name: landmark.name,
                x: landmark.x,
                y: landmark.y,
                sd_px,
                confidence: landmark_confidence(f64::from(sd_px), width, height),
                source: LandmarkSource::Global,
                refinement_shift_px: 0.0,
            }
        })
        .collect();
    let mut points = [[0.0; 2]; SPINE_LANDMARKS];
    let mut confidences = [None; SPINE_LANDMARKS];
    let mut spreads = [0.0; SPINE_LANDMARKS];
    for (index, landmark) in landmarks.iter().enumerate().take(SPINE_LANDMARKS) {
        points[index] = [f64::from(landmark.x), f64::from(landmark.y)];
        confidences[index] = landmark.confidence;
        spreads[index] = f64::from(landmark.sd_px);
    }
    let measured = measure::wholespine::wholespine(&points, radiograph.pixel_spacing);
    let measurements = match measured {
        Ok(measurements) => Some(measurements),
        Err(error) => {
            warnings.push(format!("whole-spine parameters not computed: {error}"));
            None
        }
    };
    let quality = wholespine_quality::assess(
        &wholespine_quality::QualityInput {
            landmarks: &points,
            confidences: &confidences,
            spread_px: Some(&spreads),
            spacing: radiograph.pixel_spacing,
            measurements: measurements.as_ref(),
            image_reasons,
        },
        &wholespine_quality::QualityThresholds::default(),
    );
    let parameters = measurements
        .as_ref()
        .map(|measured| parameter_records(&measured.parameters, |name| quality.get(name)))
        .unwrap_or_default();
    SpineRecord {
        model: outcome.model.clone(),
        facing: measurements.as_ref().map(|m| m.facing),
        distance_unit: measurements.as_ref().map_or(
            if radiograph.pixel_spacing.is_some() {
                "mm"
            } else {
                "px"
            },
            |m| m.distance_unit,
        ),
        landmarks,
        parameters,
        findings: quality.findings,
    }
}

/// Each measured parameter with its quality (parameters without a verdict are left out).
fn parameter_records<'q>(
    parameters: &[crate::measure::Parameter],
    quality_of: impl Fn(&str) -> Option<&'q crate::measure::ParameterQuality>,
) -> Vec<ParameterRecord> {
    parameters
        .iter()
        .filter_map(|parameter| {
            let quality = quality_of(parameter.name)?;
            Some(ParameterRecord {
                name: parameter.name,
                value: parameter.value,
                unit: parameter.unit,
                status: quality.status,
                reasons: quality.reasons.clone(),
                min_landmark_confidence: quality.min_landmark_confidence,
                standard_error: quality.standard_error,
                convention: parameter.convention,
            })
        })
        .collect()
}

/// What the pixel spacing's source means for the distances.
fn spacing_warnings(radiograph: &Radiograph, warnings: &mut Vec<String>) {
    match radiograph.spacing_source {
        SpacingSource::None => warnings.push(
            "no pixel spacing in the file and none given (--pixel-spacing MM): distances are in \
             pixels"
                .to_string(),
        ),
        SpacingSource::ImagerPixelSpacing => warnings.push(
            "pixel spacing is the detector's (ImagerPixelSpacing), not corrected for the \
             projection magnification: distances are slightly overstated"
                .to_string(),
        ),
        SpacingSource::PixelSpacing | SpacingSource::User => {}
    }
}

/// The nine parameters with their quality, and the quality checks' findings.
fn assess_parameters(
    points: &[[f64; 2]; LANDMARK_COUNT],
    landmarks: &[LandmarkRecord],
    spacing: Option<PixelSpacing>,
    measurements: Option<&Measurements>,
    image_reasons: &[ReasonCode],
) -> (Vec<ParameterRecord>, Vec<Finding>) {
    let mut confidences = [None; LANDMARK_COUNT];
    let mut shifts = [0.0; LANDMARK_COUNT];
    let mut spreads = [0.0; LANDMARK_COUNT];
    for (index, landmark) in landmarks.iter().enumerate() {
        confidences[index] = landmark.confidence;
        shifts[index] = landmark.refinement_shift_px;
        spreads[index] = f64::from(landmark.sd_px);
    }
    let quality = cervical_quality::assess(
        &QualityInput {
            landmarks: points,
            confidences: &confidences,
            refinement_shift_px: Some(&shifts),
            spread_px: Some(&spreads),
            spacing,
            measurements,
            image_reasons,
        },
        &QualityThresholds::default(),
    );
    let parameters = measurements
        .map(|measured| parameter_records(&measured.parameters, |name| quality.get(name)))
        .unwrap_or_default();
    (parameters, quality.findings)
}

/// The reason codes of a record, each once, in a stable order.
pub fn reason_codes(record: &ImageRecord) -> Vec<ReasonCode> {
    let mut codes: Vec<ReasonCode> = record
        .findings
        .iter()
        .map(|finding| finding.code)
        .chain(
            record
                .parameters
                .iter()
                .flat_map(|p| p.reasons.iter().copied()),
        )
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// Whether a parameter is a distance (reported in the record's distance unit).
pub fn is_distance_parameter(name: &str) -> bool {
    DISTANCE_PARAMETERS.contains(&name)
}

/// The CSV header: `image, status, facing, distance_unit`, then per parameter either
/// `NAME (deg)` for angles or `NAME (mm)` and `NAME (px)` for distances (one of which is filled,
/// as the image has a pixel spacing or not: a column never mixes units), each followed by
/// `NAME status`; then the whole-spine values (`wholespine NAME (deg)`,
/// `(mm)` and `(px)`, or `(ratio)`, and `wholespine NAME status`) and the lumbar ones (`lumbar
/// levels`: the present levels, space-separated; `lumbar NAME (deg)`, `lumbar NAME status`), each
/// empty when its model did not run; then the myelopathy screen (`p_csm`, `csm_label`,
/// `csm_threshold`, `csm_status`; empty when it did not run); then `median_confidence`,
/// `warning_codes` (the record's reason codes, `;`-separated), `warnings`, `error`.
pub fn csv_header() -> Vec<String> {
    let mut columns: Vec<String> = ["image", "status", "facing", "distance_unit"]
        .iter()
        .map(|column| column.to_string())
        .collect();
    for name in PARAMETER_NAMES {
        if is_distance_parameter(name) {
            columns.push(format!("{name} (mm)"));
            columns.push(format!("{name} (px)"));
        } else {
            columns.push(format!("{name} ({ANGLE_UNIT})"));
        }
        columns.push(format!("{name} status"));
    }
    // The whole-spine values: one unit per column, so distances get a mm and a px column of
    // which one is filled (a table mixing both in one column cannot be averaged).
    for definition in &measure::wholespine::PARAMETERS {
        let name = definition.name;
        match definition.unit {
            Unit::Degrees => columns.push(format!("wholespine {name} (deg)")),
            Unit::Distance => {
                columns.push(format!("wholespine {name} (mm)"));
                columns.push(format!("wholespine {name} (px)"));
            }
            Unit::Ratio => columns.push(format!("wholespine {name} (ratio)")),
        }
        columns.push(format!("wholespine {name} status"));
    }
    lumbar::csv_columns(&mut columns);
    columns.extend(
        [
            "p_csm",
            "csm_label",
            "csm_threshold",
            "csm_status",
            "median_confidence",
            "warning_codes",
            "warnings",
            "error",
        ]
        .map(String::from),
    );
    columns
}

/// `ok`, `flagged` or `error`.
pub fn status_name(status: RecordStatus) -> &'static str {
    match status {
        RecordStatus::Ok => "ok",
        RecordStatus::Flagged => "flagged",
        RecordStatus::Error => "error",
    }
}

/// The CSV cells of one record, in the order of [`csv_header`].
pub fn csv_row(record: &Record) -> Vec<String> {
    let mut cells = Vec::with_capacity(csv_header().len());
    match record {
        Record::Analyzed(analysis) => {
            cells.push(analysis.image.clone());
            cells.push(status_name(analysis.status).to_string());
            cells.push(match analysis.facing {
                Some(Facing::Left) => "left".to_string(),
                Some(Facing::Right) => "right".to_string(),
                None => String::new(),
            });
            cells.push(analysis.distance_unit.to_string());
            // Without the landmark model the parameters were not asked for: empty, not
            // `not_measurable`.
            let missing_status = match analysis.model {
                Some(_) => QualityStatus::NotMeasurable.as_str(),
                None => "",
            };
            for name in PARAMETER_NAMES {
                let parameter = analysis.parameters.iter().find(|p| p.name == name);
                let value = parameter.map_or_else(String::new, |p| format!("{:.2}", p.value));
                if is_distance_parameter(name) {
                    cells.extend(unit_columns(
                        value,
                        parameter.is_some_and(|p| p.unit == "mm"),
                    ));
                } else {
                    cells.push(value);
                }
                cells.push(
                    parameter
                        .map_or(missing_status, |p| p.status.as_str())
                        .to_string(),
                );
            }
            spine_cells(&mut cells, analysis.wholespine.as_ref());
            lumbar::csv_cells(&mut cells, analysis.lumbar.as_ref());
            match &analysis.csm {
                Some(screen) => cells.extend([
                    significant_digits(screen.p_csm, 6).to_string(),
                    screen.label.to_string(),
                    screen.threshold.to_string(),
                    screen.status.as_str().to_string(),
                ]),
                None => cells.extend(std::iter::repeat_n(String::new(), 4)),
            }
            cells
                .push(median_confidence(&analysis.landmarks).map_or_else(String::new, significant));
            let codes: Vec<&str> = reason_codes(analysis).iter().map(|c| c.as_str()).collect();
            cells.push(codes.join(";"));
            cells.push(analysis.warnings.join("; "));
            cells.push(String::new());
        }
        Record::Failed(failure) => {
            cells.push(failure.image.clone());
            cells.push("error".to_string());
            // Facing, unit, the parameters, confidence and warnings stay empty.
            let empty = csv_header().len() - 3;
            cells.extend(std::iter::repeat_n(String::new(), empty));
            cells.push(failure.error.clone());
        }
    }
    cells
}

/// A distance's `(mm)` and `(px)` cells: the value in the one of its unit.
fn unit_columns(value: String, in_mm: bool) -> [String; 2] {
    if in_mm {
        [value, String::new()]
    } else {
        [String::new(), value]
    }
}

/// The whole-spine columns of one record ([`csv_header`]): empty when the model did not run;
/// a value missing from a record that has the block is `not_measurable`.
fn spine_cells(cells: &mut Vec<String>, spine: Option<&SpineRecord>) {
    for definition in &measure::wholespine::PARAMETERS {
        let parameter =
            spine.and_then(|spine| spine.parameters.iter().find(|p| p.name == definition.name));
        let value = parameter.map_or_else(String::new, |p| format!("{:.2}", p.value));
        match definition.unit {
            Unit::Distance => {
                cells.extend(unit_columns(
                    value,
                    parameter.is_some_and(|p| p.unit == "mm"),
                ));
            }
            Unit::Degrees | Unit::Ratio => cells.push(value),
        }
        cells.push(match (spine, parameter) {
            (_, Some(p)) => p.status.as_str().to_string(),
            (Some(_), None) => QualityStatus::NotMeasurable.as_str().to_string(),
            (None, None) => String::new(),
        });
    }
}

/// The header of the long-format landmarks table (`--landmarks-csv`): one row per landmark.
pub fn landmarks_csv_header() -> Vec<String> {
    [
        "image",
        "landmark",
        "x_px",
        "y_px",
        "sd_px",
        "confidence",
        "source",
        "flagged_by",
    ]
    .map(String::from)
    .to_vec()
}

/// The rows of one record in the long-format landmarks table (none for a failed image): the
/// cervical landmarks by name, then the whole-spine and lumbar ones prefixed with their model
/// (`wholespine:C7_c`, `lumbar:L1_as`: the families share some names). `flagged_by` lists the
/// reason codes of the findings of the landmark's own model that name it.
pub fn landmarks_csv_rows(record: &Record) -> Vec<Vec<String>> {
    let Record::Analyzed(analysis) = record else {
        return Vec::new();
    };
    let spine = analysis.wholespine.as_ref();
    let lumbar = analysis.lumbar.as_ref();
    // The record's findings hold every model's: the cervical landmarks' are the others.
    let other: Vec<&Finding> = spine
        .map(|s| s.findings.as_slice())
        .into_iter()
        .chain(lumbar.map(|l| l.findings.as_slice()))
        .flatten()
        .collect();
    let cervical: Vec<&Finding> = analysis
        .findings
        .iter()
        .filter(|finding| !other.contains(finding))
        .collect();
    let mut rows: Vec<Vec<String>> = analysis
        .landmarks
        .iter()
        .map(|landmark| landmark_row(&analysis.image, "", landmark, &cervical))
        .collect();
    if let Some(spine) = spine {
        let findings: Vec<&Finding> = spine.findings.iter().collect();
        rows.extend(
            spine
                .landmarks
                .iter()
                .map(|l| landmark_row(&analysis.image, "wholespine:", l, &findings)),
        );
    }
    if let Some(lumbar) = lumbar {
        let findings: Vec<&Finding> = lumbar.findings.iter().collect();
        rows.extend(
            lumbar
                .landmarks
                .iter()
                .map(|l| landmark_row(&analysis.image, "lumbar:", l, &findings)),
        );
    }
    rows
}

/// One landmark's row of the long-format table, its name after `prefix`.
fn landmark_row(
    image: &str,
    prefix: &str,
    landmark: &LandmarkRecord,
    findings: &[&Finding],
) -> Vec<String> {
    let mut codes: Vec<&str> = findings
        .iter()
        .filter(|finding| finding.landmarks.contains(&landmark.name))
        .map(|finding| finding.code.as_str())
        .collect();
    codes.sort();
    codes.dedup();
    vec![
        image.to_string(),
        format!("{prefix}{}", landmark.name),
        format!("{:.2}", landmark.x),
        format!("{:.2}", landmark.y),
        format!("{:.2}", landmark.sd_px),
        landmark
            .confidence
            .map_or_else(String::new, |c| format!("{}", significant_digits(c, 3))),
        match landmark.source {
            LandmarkSource::Global => "global",
            LandmarkSource::Refined => "refined",
        }
        .to_string(),
        codes.join(";"),
    ]
}

/// One CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Writes the CSV of a batch one row at a time, so that an interrupted batch keeps the rows
/// written so far.
pub struct CsvWriter<W: Write> {
    out: W,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> io::Result<Self> {
        write_csv_line(&mut out, &csv_header())?;
        out.flush()?;
        Ok(Self { out })
    }

    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        write_csv_line(&mut self.out, &csv_row(record))?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_csv_line(out: &mut impl Write, cells: &[String]) -> io::Result<()> {
    let line: Vec<String> = cells.iter().map(|cell| csv_field(cell)).collect();
    // CRLF as RFC 4180 asks; spreadsheets and CSV readers take it everywhere.
    write!(out, "{}\r\n", line.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_one_for_a_sharp_heatmap_and_one_over_e_at_one_percent() {
        assert_eq!(landmark_confidence(0.0, 800, 1000), Some(1.0));
        let at_one_percent = landmark_confidence(10.0, 800, 1000).unwrap();
        assert!((at_one_percent - (-1.0f64).exp()).abs() < 1e-12);
        let widest = landmark_confidence(500.0, 800, 1000).unwrap();
        assert!(widest > 0.0 && widest < 1e-20);
        assert_eq!(landmark_confidence(f64::NAN, 800, 1000), None);
        assert_eq!(landmark_confidence(f64::INFINITY, 800, 1000), None);
    }

    #[test]
    fn median_handles_odd_even_and_missing() {
        let landmark = |confidence| LandmarkRecord {
            name: "C2_as",
            x: 0.0,
            y: 0.0,
            sd_px: 1.0,
            confidence,
            source: LandmarkSource::Global,
            refinement_shift_px: 0.0,
        };
        assert_eq!(median_confidence(&[]), None);
        assert_eq!(median_confidence(&[landmark(None)]), None);
        assert_eq!(
            median_confidence(&[landmark(Some(0.9)), landmark(Some(0.1)), landmark(None)]),
            Some(0.5)
        );
        assert_eq!(
            median_confidence(&[
                landmark(Some(0.9)),
                landmark(Some(0.1)),
                landmark(Some(0.2))
            ]),
            Some(0.2)
        );
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn csv_rows_match_the_header() {
        let header = csv_header();
        assert_eq!(
            &header[..6],
            &[
                "image",
                "status",
                "facing",
                "distance_unit",
                "C2-C7 (deg)",
                "C2-C7 status"
            ]
        );
        assert!(header.contains(&"cSVA status".to_string()));
        assert!(header.contains(&"warning_codes".to_string()));
        for distance in ["cSVA", "RJD"] {
            assert!(header.contains(&format!("{distance} (mm)")));
            assert!(header.contains(&format!("{distance} (px)")));
        }
        assert_eq!(header.last().map(String::as_str), Some("error"));
        let failed = Record::failed(Path::new("x.png"), "x.png: file is empty");
        let row = csv_row(&failed);
        assert_eq!(row.len(), header.len());
        assert_eq!(row[1], "error");
        assert_eq!(row.last().map(String::as_str), Some("x.png: file is empty"));
    }

    #[test]
    fn facing_follows_the_anterior_corners() {
        let mut points = [[0.0; 2]; LANDMARK_COUNT];
        for vertebra in 0..6 {
            points[4 * vertebra] = [10.0, 0.0];
            points[4 * vertebra + 3] = [10.0, 0.0];
        }
        points[24] = [10.0, 0.0];
        assert_eq!(facing_from_corners(&points), Some(Facing::Right));
        for point in &mut points {
            point[0] = -point[0];
        }
        assert_eq!(facing_from_corners(&points), Some(Facing::Left));
        assert_eq!(
            facing_from_corners(&[[0.0; 2]; LANDMARK_COUNT]),
            None,
            "all corners at the same x"
        );
    }
}
