//! A record as a DICOM Comprehensive SR following TID 1500 (Measurement Report), so that the
//! results file back under the source image's study in a PACS and open in SR-aware viewers.
//!
//! Content tree (relationship, value type, concept):
//!
//! ```text
//! CONTAINER  Imaging Measurement Report (126000, DCM)            template 1500 (DCMR)
//!   HAS CONCEPT MOD  CODE    Language of Content Item and Descendants (121049, DCM) = en-US
//!   HAS OBS CONTEXT  CODE    Observer Type (121005, DCM) = Device (121007, DCM)
//!   HAS OBS CONTEXT  UIDREF  Device Observer UID (121012, DCM)       = DEVICE_OBSERVER_UID
//!   HAS OBS CONTEXT  TEXT    Device Observer Name (121013, DCM)      = sagitta
//!   HAS OBS CONTEXT  TEXT    Device Observer Manufacturer (121014, DCM)
//!   HAS CONCEPT MOD  CODE    Procedure reported (121058, DCM) = (SPINE_XR, 99SAGITTA)
//!   CONTAINS CONTAINER Image Library (111028, DCM)
//!     CONTAINS CONTAINER Image Library Group (126200, DCM)
//!       CONTAINS IMAGE Source (260753009, SCT): the analysed instance (and frame 1 if multi-frame)
//!   CONTAINS CONTAINER Imaging Measurements (126010, DCM)
//!     CONTAINS CONTAINER Measurement Group (125007, DCM)   one per model family that ran
//!       HAS OBS CONTEXT TEXT   Tracking Identifier (112039, DCM) = cervical | wholespine | csm
//!       HAS OBS CONTEXT UIDREF Tracking Unique Identifier (112040, DCM) = a new UID
//!       CONTAINS SCOORD POINT  (<landmark name>, 99SAGITTA)       one per landmark
//!         SELECTED FROM IMAGE  the source instance
//!       CONTAINS NUM  (<parameter name>, 99SAGITTA), UCUM unit   one per parameter
//!         HAS CONCEPT MOD TEXT Algorithm Name (111001) / Version (111003) / Parameters (111002)
//!         HAS PROPERTIES  CODE (quality, 99SAGITTA) = (<status>, 99SAGITTA)
//!         HAS PROPERTIES  CODE (reason, 99SAGITTA)  = (<reason code>, 99SAGITTA)   per reason
//!       CONTAINS CODE (csm_label, 99SAGITTA) = (CSM | no_CSM, 99SAGITTA)          csm only
//! ```
//!
//! The parameters and landmarks have no standard codes, so they use the private coding scheme
//! [`PRIVATE_SCHEME`] with the record's name as code value and meaning. TID 1501 has no row
//! for image coordinates inside a measurement group; the landmarks are put there as the
//! evidence the family's values are computed from, named so that a reader can pair them with
//! the record's. Distances in pixels (no pixel spacing known) are left out: a pixel is not a
//! UCUM unit and such a value is not a measurement of the patient; so are values and points
//! that are not finite numbers (none are expected). SCOORD points follow DICOM's
//! convention, where (0, 0) is the top-left corner of the top-left pixel: the record's
//! coordinates (pixel centres at integers) plus one half.
//!
//! Identity: the Patient and General Study modules are copied from the source so that the SR
//! files under the same study; the Series and SOP Instance UIDs are new, `2.25.` followed by a
//! random (version 4) UUID as a decimal integer (ITU-T X.667, which needs no registered root).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::FileDicomObject;
use sha2::{Digest, Sha256};

use super::lumbar::LumbarRecord;
use super::{rounded, significant_digits, CsmRecord, ImageRecord, LandmarkRecord, ModelInfo};
use super::{ParameterRecord, QualityStatus, ReasonCode, ENGINE};

/// Comprehensive SR Storage.
pub const COMPREHENSIVE_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.33";
/// Explicit VR Little Endian.
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// The coding scheme of the codes that have no standard counterpart (parameters, landmarks,
/// quality statuses and reasons); a `99` prefix marks a private scheme (PS3.16 8.2).
pub const PRIVATE_SCHEME: &str = "99SAGITTA";
/// Identifies sagitta as the device observer of every SR it writes (a fixed `2.25.` UUID).
pub const DEVICE_OBSERVER_UID: &str = "2.25.33318715618302139763066236169021451393";
/// The Series Number of the SRs' new series: high, so that it sorts after the acquisition's.
pub const SERIES_NUMBER: i32 = 9901;

/// Why an SR could not be made for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrError {
    /// The image is not DICOM (nothing to file the SR under).
    NotDicom,
    /// The source lacks an attribute the SR must reference (named).
    MissingSource(&'static str),
    /// dicom-rs refused the object.
    Encode(String),
}

impl fmt::Display for SrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrError::NotDicom => write!(f, "not a DICOM image"),
            SrError::MissingSource(name) => {
                write!(f, "the source DICOM has no {name} to reference")
            }
            SrError::Encode(error) => write!(f, "cannot encode the SR: {error}"),
        }
    }
}

impl std::error::Error for SrError {}

/// A new UID `2.25.<UUID>`: 122 random bits from the operating system, set as a version 4
/// UUID. Without an entropy source, the hash of the time, process and a counter.
pub fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom_bytes(&mut bytes).is_err() {
        let mut hasher = Sha256::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        hasher.update(now.to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes.copy_from_slice(&hasher.finalize()[..16]);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

fn getrandom_bytes(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(bytes)
}

/// A coded concept.
struct Code<'a> {
    value: &'a str,
    scheme: &'a str,
    meaning: &'a str,
}

const fn dcm<'a>(value: &'a str, meaning: &'a str) -> Code<'a> {
    Code {
        value,
        scheme: "DCM",
        meaning,
    }
}

const fn private<'a>(value: &'a str, meaning: &'a str) -> Code<'a> {
    Code {
        value,
        scheme: PRIVATE_SCHEME,
        meaning,
    }
}

fn text(tag: Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

/// A Code Sequence item; values over 16 characters go to Long Code Value (PS3.3 8.8).
fn code_item(code: &Code<'_>) -> InMemDicomObject {
    let value_tag = if code.value.len() > 16 {
        text(tags::LONG_CODE_VALUE, VR::UC, code.value)
    } else {
        text(tags::CODE_VALUE, VR::SH, code.value)
    };
    InMemDicomObject::from_element_iter([
        value_tag,
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, code.scheme),
        text(tags::CODE_MEANING, VR::LO, code.meaning),
    ])
}

fn code_sequence(tag: Tag, code: &Code<'_>) -> DataElement<InMemDicomObject> {
    sequence(tag, vec![code_item(code)])
}

/// A content item with its relationship, value type and concept name.
fn content_item(relationship: &str, value_type: &str, concept: &Code<'_>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, value_type),
        code_sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, concept),
    ])
}

fn container(
    relationship: &str,
    concept: &Code<'_>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut item = content_item(relationship, "CONTAINER", concept);
    item.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    item.put(sequence(tags::CONTENT_SEQUENCE, children));
    item
}

fn text_item(relationship: &str, concept: &Code<'_>, value: &str) -> InMemDicomObject {
    let mut item = content_item(relationship, "TEXT", concept);
    item.put(text(tags::TEXT_VALUE, VR::UT, value));
    item
}

fn uid_item(relationship: &str, concept: &Code<'_>, uid: &str) -> InMemDicomObject {
    let mut item = content_item(relationship, "UIDREF", concept);
    item.put(text(tags::UID, VR::UI, uid));
    item
}

fn code_value_item(relationship: &str, concept: &Code<'_>, value: &Code<'_>) -> InMemDicomObject {
    let mut item = content_item(relationship, "CODE", concept);
    item.put(code_sequence(tags::CONCEPT_CODE_SEQUENCE, value));
    item
}

/// The source instance as an SR reference (and its first frame when it has several: the one
/// that was analysed).
struct SourceImage<'a> {
    sop_class_uid: &'a str,
    sop_instance_uid: &'a str,
    multi_frame: bool,
}

impl SourceImage<'_> {
    fn referenced_sop(&self) -> InMemDicomObject {
        let mut item = InMemDicomObject::from_element_iter([
            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, self.sop_class_uid),
            text(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                self.sop_instance_uid,
            ),
        ]);
        if self.multi_frame {
            item.put(DataElement::new(
                tags::REFERENCED_FRAME_NUMBER,
                VR::IS,
                PrimitiveValue::from("1"),
            ));
        }
        item
    }

    fn image_item(&self, relationship: &str, concept: &Code<'_>) -> InMemDicomObject {
        let mut item = InMemDicomObject::from_element_iter([
            text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
            text(tags::VALUE_TYPE, VR::CS, "IMAGE"),
        ]);
        item.put(code_sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, concept));
        item.put(sequence(
            tags::REFERENCED_SOP_SEQUENCE,
            vec![self.referenced_sop()],
        ));
        item
    }

    /// A landmark as a SCOORD POINT in DICOM image coordinates.
    fn point(&self, landmark: &LandmarkRecord) -> InMemDicomObject {
        let mut item = content_item("CONTAINS", "SCOORD", &private(landmark.name, landmark.name));
        let column = rounded(f64::from(landmark.x), 2) + 0.5;
        let row = rounded(f64::from(landmark.y), 2) + 0.5;
        item.put(text(tags::GRAPHIC_TYPE, VR::CS, "POINT"));
        item.put(DataElement::new(
            tags::GRAPHIC_DATA,
            VR::FL,
            PrimitiveValue::F32([column as f32, row as f32].as_slice().into()),
        ));
        let mut selected_from = InMemDicomObject::from_element_iter([
            text(tags::RELATIONSHIP_TYPE, VR::CS, "SELECTED FROM"),
            text(tags::VALUE_TYPE, VR::CS, "IMAGE"),
        ]);
        selected_from.put(sequence(
            tags::REFERENCED_SOP_SEQUENCE,
            vec![self.referenced_sop()],
        ));
        item.put(sequence(tags::CONTENT_SEQUENCE, vec![selected_from]));
        item
    }
}

/// The UCUM code of a record unit; `None` for pixels, which are left out.
fn ucum(unit: &str) -> Option<Code<'static>> {
    let (value, meaning) = match unit {
        "deg" => ("deg", "degree"),
        "mm" => ("mm", "millimeter"),
        "ratio" => ("{ratio}", "ratio"),
        "1" => ("1", "no units"),
        _ => return None,
    };
    Some(Code {
        value,
        scheme: "UCUM",
        meaning,
    })
}

/// The snake_case name a quality status or reason has in the record.
fn serde_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("unknown"),
    }
}

/// TID 4019 for one model: its name, sagitta's version and the weights' SHA-256.
fn algorithm_items(family: &str, model: &ModelInfo) -> Vec<InMemDicomObject> {
    vec![
        text_item(
            "HAS CONCEPT MOD",
            &dcm("111001", "Algorithm Name"),
            &format!("sagitta {family}: {}", model.name),
        ),
        text_item(
            "HAS CONCEPT MOD",
            &dcm("111003", "Algorithm Version"),
            ENGINE.version,
        ),
        text_item(
            "HAS CONCEPT MOD",
            &dcm("111002", "Algorithm Parameters"),
            &format!("weights SHA-256 {}", model.sha256),
        ),
    ]
}

fn quality_items(
    status: &impl serde::Serialize,
    reasons: &[impl serde::Serialize],
) -> Vec<InMemDicomObject> {
    let status = serde_name(status);
    let mut items = vec![code_value_item(
        "HAS PROPERTIES",
        &private("quality", "Quality status"),
        &private(&status, &status),
    )];
    for reason in reasons {
        let reason = serde_name(reason);
        items.push(code_value_item(
            "HAS PROPERTIES",
            &private("reason", "Quality reason"),
            &private(&reason, &reason),
        ));
    }
    items
}

/// A NUM item: `value` as written (DS, and FD for the exact number).
fn num_item(
    concept: &Code<'_>,
    value: f64,
    unit: &Code<'_>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut item = content_item("CONTAINS", "NUM", concept);
    let measured = InMemDicomObject::from_element_iter([
        code_sequence(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, unit),
        text(tags::NUMERIC_VALUE, VR::DS, &decimal_string(value)),
        DataElement::new(
            tags::FLOATING_POINT_VALUE,
            VR::FD,
            PrimitiveValue::from(value),
        ),
    ]);
    item.put(sequence(tags::MEASURED_VALUE_SEQUENCE, vec![measured]));
    item.put(sequence(tags::CONTENT_SEQUENCE, children));
    item
}

/// A value as a Decimal String (at most 16 characters: plain when it fits, else in exponent
/// form with as many digits as fit).
fn decimal_string(value: f64) -> String {
    let plain = value.to_string();
    if plain.len() <= 16 {
        return plain;
    }
    (0..=15usize)
        .rev()
        .map(|digits| format!("{value:.digits$e}"))
        .find(|text| text.len() <= 16)
        .unwrap_or(plain)
}

/// The NUM of a parameter; `None` for a value in pixels or one that is not a number.
/// A measured value with its unit, algorithm and quality; `None` without a finite value or
/// for a distance in pixels (no UCUM unit).
fn parameter_item(
    family: &str,
    model: &ModelInfo,
    (name, value, unit): (&str, Option<f64>, &str),
    (status, reasons): (&QualityStatus, &[ReasonCode]),
) -> Option<InMemDicomObject> {
    let value = value.filter(|v| v.is_finite())?;
    let unit = ucum(unit)?;
    let mut children = algorithm_items(family, model);
    children.extend(quality_items(status, reasons));
    Some(num_item(
        &private(name, name),
        rounded(value, 2),
        &unit,
        children,
    ))
}

/// A TID 1501 group: tracking identity, then the landmarks and the parameters.
fn landmark_group(
    source: &SourceImage<'_>,
    family: &str,
    model: &ModelInfo,
    landmarks: &[LandmarkRecord],
    parameters: &[ParameterRecord],
) -> InMemDicomObject {
    let items = parameters.iter().filter_map(|p| {
        parameter_item(
            family,
            model,
            (p.name, Some(p.value), p.unit),
            (&p.status, &p.reasons),
        )
    });
    measurement_group(source, family, landmarks, items.collect())
}

/// The lumbar group: the present levels' corners and the three angles that were measured (an
/// angle with an absent level has no value and is left out).
fn lumbar_group(source: &SourceImage<'_>, lumbar: &LumbarRecord) -> InMemDicomObject {
    let items = lumbar.parameters.iter().filter_map(|p| {
        parameter_item(
            "lumbar",
            &lumbar.model,
            (p.name, p.value, p.unit),
            (&p.status, &p.reasons),
        )
    });
    measurement_group(source, "lumbar", &lumbar.landmarks, items.collect())
}

fn measurement_group(
    source: &SourceImage<'_>,
    family: &str,
    landmarks: &[LandmarkRecord],
    parameter_items: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut children = tracking_items(family);
    children.extend(
        landmarks
            .iter()
            .filter(|landmark| landmark.x.is_finite() && landmark.y.is_finite())
            .map(|landmark| source.point(landmark)),
    );
    children.extend(parameter_items);
    container("CONTAINS", &dcm("125007", "Measurement Group"), children)
}

fn tracking_items(family: &str) -> Vec<InMemDicomObject> {
    vec![
        text_item(
            "HAS OBS CONTEXT",
            &dcm("112039", "Tracking Identifier"),
            family,
        ),
        uid_item(
            "HAS OBS CONTEXT",
            &dcm("112040", "Tracking Unique Identifier"),
            &new_uid(),
        ),
    ]
}

fn csm_group(csm: &CsmRecord) -> InMemDicomObject {
    let mut children = tracking_items("csm");
    let mut measurement_children = algorithm_items("csm", &csm.model);
    measurement_children.extend(quality_items(&csm.status, &csm.reasons));
    children.push(num_item(
        &private("p_csm", "p_csm"),
        significant_digits(csm.p_csm, 6),
        &ucum("1").expect("the unit of a probability"),
        measurement_children,
    ));
    let label = if csm.label == "CSM" {
        private("CSM", "CSM")
    } else {
        private("no_CSM", "no CSM")
    };
    children.push(code_value_item(
        "CONTAINS",
        &private("csm_label", "CSM screen label"),
        &label,
    ));
    container("CONTAINS", &dcm("125007", "Measurement Group"), children)
}

/// The new object's identity; [`SrIdentity::new`] gives fresh UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrIdentity {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
}

impl SrIdentity {
    pub fn new() -> Self {
        Self {
            series_instance_uid: new_uid(),
            sop_instance_uid: new_uid(),
        }
    }
}

impl Default for SrIdentity {
    fn default() -> Self {
        Self::new()
    }
}

/// The TID 1500 Measurement Report of an analysed DICOM image, as a Comprehensive SR.
pub fn measurement_report(
    record: &ImageRecord,
    identity: &SrIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<FileDicomObject<InMemDicomObject>, SrError> {
    let dicom = record.dicom.as_ref().ok_or(SrError::NotDicom)?;
    let study_instance_uid = dicom
        .study_instance_uid
        .as_deref()
        .ok_or(SrError::MissingSource("Study Instance UID"))?;
    let source = SourceImage {
        sop_class_uid: dicom
            .source
            .sop_class_uid
            .as_deref()
            .ok_or(SrError::MissingSource("SOP Class UID"))?,
        sop_instance_uid: dicom
            .sop_instance_uid
            .as_deref()
            .ok_or(SrError::MissingSource("SOP Instance UID"))?,
        multi_frame: dicom
            .source
            .number_of_frames
            .is_some_and(|frames| frames > 1),
    };
    let patient = &dicom.source;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M%S%.6f").to_string();

    let mut object = InMemDicomObject::new_empty();
    // Type 2 attributes are present, empty when the source has no value.
    let mut put = |tag: Tag, vr: VR, value: Option<&str>| {
        object.put(text(tag, vr, value.unwrap_or("")));
    };
    // The default repertoire (ASCII) when every text is ASCII, as most readers handle it
    // best; else UTF-8 (the copied attributes are decoded from the source's character set).
    if !texts_are_ascii(record) {
        put(tags::SPECIFIC_CHARACTER_SET, VR::CS, Some("ISO_IR 192"));
    }
    put(tags::INSTANCE_CREATION_DATE, VR::DA, Some(&date));
    put(tags::INSTANCE_CREATION_TIME, VR::TM, Some(&time));
    put(tags::SOP_CLASS_UID, VR::UI, Some(COMPREHENSIVE_SR_STORAGE));
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        Some(&identity.sop_instance_uid),
    );
    put(tags::STUDY_DATE, VR::DA, patient.study_date.as_deref());
    put(tags::CONTENT_DATE, VR::DA, Some(&date));
    put(tags::STUDY_TIME, VR::TM, patient.study_time.as_deref());
    put(tags::CONTENT_TIME, VR::TM, Some(&time));
    put(
        tags::ACCESSION_NUMBER,
        VR::SH,
        patient.accession_number.as_deref(),
    );
    put(tags::MODALITY, VR::CS, Some("SR"));
    put(tags::MANUFACTURER, VR::LO, Some("sagitta"));
    put(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, Some("+0000"));
    put(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        patient.referring_physician_name.as_deref(),
    );
    put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        patient.study_description.as_deref(),
    );
    put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        Some("sagitta measurements"),
    );
    put(tags::MANUFACTURER_MODEL_NAME, VR::LO, Some("sagitta"));
    put(tags::PATIENT_NAME, VR::PN, patient.patient_name.as_deref());
    put(tags::PATIENT_ID, VR::LO, patient.patient_id.as_deref());
    put(
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        patient.patient_birth_date.as_deref(),
    );
    put(tags::PATIENT_SEX, VR::CS, patient.patient_sex.as_deref());
    put(tags::SOFTWARE_VERSIONS, VR::LO, Some(ENGINE.version));
    put(tags::STUDY_INSTANCE_UID, VR::UI, Some(study_instance_uid));
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        Some(&identity.series_instance_uid),
    );
    put(tags::STUDY_ID, VR::SH, patient.study_id.as_deref());
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        Some(&SERIES_NUMBER.to_string()),
    );
    put(tags::INSTANCE_NUMBER, VR::IS, Some("1"));
    put(tags::VALUE_TYPE, VR::CS, Some("CONTAINER"));
    put(tags::CONTINUITY_OF_CONTENT, VR::CS, Some("SEPARATE"));
    put(tags::COMPLETION_FLAG, VR::CS, Some("COMPLETE"));
    put(tags::VERIFICATION_FLAG, VR::CS, Some("UNVERIFIED"));
    object.put(code_sequence(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        &dcm("126000", "Imaging Measurement Report"),
    ));
    object.put(sequence(
        tags::CONTENT_TEMPLATE_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            text(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
            text(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500"),
        ])],
    ));
    object.put(sequence(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    object.put(sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    object.put(sequence(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(
            study_instance_uid,
            dicom.series_instance_uid.as_deref(),
            &source,
        )?],
    ));

    let mut measurements = Vec::new();
    if let Some(model) = &record.model {
        measurements.push(landmark_group(
            &source,
            "cervical",
            model,
            &record.landmarks,
            &record.parameters,
        ));
    }
    if let Some(spine) = &record.wholespine {
        measurements.push(landmark_group(
            &source,
            "wholespine",
            &spine.model,
            &spine.landmarks,
            &spine.parameters,
        ));
    }
    if let Some(lumbar) = &record.lumbar {
        measurements.push(lumbar_group(&source, lumbar));
    }
    if let Some(csm) = &record.csm {
        measurements.push(csm_group(csm));
    }
    let content = vec![
        code_value_item(
            "HAS CONCEPT MOD",
            &dcm("121049", "Language of Content Item and Descendants"),
            &Code {
                value: "en-US",
                scheme: "RFC5646",
                meaning: "English (United States)",
            },
        ),
        code_value_item(
            "HAS OBS CONTEXT",
            &dcm("121005", "Observer Type"),
            &dcm("121007", "Device"),
        ),
        uid_item(
            "HAS OBS CONTEXT",
            &dcm("121012", "Device Observer UID"),
            DEVICE_OBSERVER_UID,
        ),
        text_item(
            "HAS OBS CONTEXT",
            &dcm("121013", "Device Observer Name"),
            "sagitta",
        ),
        text_item(
            "HAS OBS CONTEXT",
            &dcm("121014", "Device Observer Manufacturer"),
            "sagitta",
        ),
        code_value_item(
            "HAS CONCEPT MOD",
            &dcm("121058", "Procedure reported"),
            &private("SPINE_XR", "Spine radiograph"),
        ),
        container(
            "CONTAINS",
            &dcm("111028", "Image Library"),
            vec![container(
                "CONTAINS",
                &dcm("126200", "Image Library Group"),
                vec![source.image_item(
                    "CONTAINS",
                    &Code {
                        value: "260753009",
                        scheme: "SCT",
                        meaning: "Source",
                    },
                )],
            )],
        ),
        container(
            "CONTAINS",
            &dcm("126010", "Imaging Measurements"),
            measurements,
        ),
    ];
    object.put(sequence(tags::CONTENT_SEQUENCE, content));

    object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|error| SrError::Encode(error.to_string()))
}

/// Whether every text the SR takes from the record (the source's patient and study attributes,
/// the models' names) is ASCII.
fn texts_are_ascii(record: &ImageRecord) -> bool {
    let source = record.dicom.as_ref().map(|dicom| &dicom.source);
    let copied = source.into_iter().flat_map(|source| {
        [
            &source.patient_name,
            &source.patient_id,
            &source.patient_birth_date,
            &source.patient_sex,
            &source.study_date,
            &source.study_time,
            &source.study_id,
            &source.accession_number,
            &source.referring_physician_name,
            &source.study_description,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
    });
    let models = record
        .model
        .iter()
        .chain(record.wholespine.as_ref().map(|spine| &spine.model))
        .chain(record.csm.as_ref().map(|csm| &csm.model))
        .map(|model| model.name.as_str());
    copied
        .chain(models)
        .chain([ENGINE.version])
        .all(|text| text.is_ascii())
}

/// The Current Requested Procedure Evidence item: the analysed instance, by study and series.
fn evidence(
    study_instance_uid: &str,
    series_instance_uid: Option<&str>,
    source: &SourceImage<'_>,
) -> Result<InMemDicomObject, SrError> {
    let series_instance_uid =
        series_instance_uid.ok_or(SrError::MissingSource("Series Instance UID"))?;
    let series = InMemDicomObject::from_element_iter([
        text(tags::SERIES_INSTANCE_UID, VR::UI, series_instance_uid),
        sequence(tags::REFERENCED_SOP_SEQUENCE, vec![source.referenced_sop()]),
    ]);
    Ok(InMemDicomObject::from_element_iter([
        text(tags::STUDY_INSTANCE_UID, VR::UI, study_instance_uid),
        sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![series]),
    ]))
}

/// The SR as a DICOM file (preamble, meta group, data set).
pub fn encode(object: &FileDicomObject<InMemDicomObject>) -> Result<Vec<u8>, SrError> {
    let mut bytes = Vec::new();
    object
        .write_all(&mut bytes)
        .map_err(|error| SrError::Encode(error.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uids_are_version_4_uuids_under_2_25_and_differ() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        for uid in [&a, &b] {
            assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
            let number: u128 = uid["2.25.".len()..].parse().expect("a decimal integer");
            assert_eq!((number >> 76) & 0xf, 4, "{uid}: version");
            assert_eq!((number >> 62) & 0x3, 2, "{uid}: variant");
        }
    }

    #[test]
    fn long_code_values_use_long_code_value() {
        let item = code_item(&private("low_landmark_confidence", "x"));
        assert!(item.element_opt(tags::CODE_VALUE).unwrap().is_none());
        assert_eq!(
            item.element(tags::LONG_CODE_VALUE)
                .unwrap()
                .to_str()
                .unwrap(),
            "low_landmark_confidence"
        );
    }

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(decimal_string(12.34), "12.34");
        assert_eq!(decimal_string(-0.5), "-0.5");
        let tiny = decimal_string(1.234_567_891_234e-12);
        assert!(tiny.len() <= 16, "{tiny}");
        assert!((tiny.parse::<f64>().unwrap() - 1.234_567_891_234e-12).abs() < 1e-20);
        assert!(decimal_string(f64::MAX).len() <= 16);
    }

    #[test]
    fn pixel_distances_have_no_unit_and_are_left_out() {
        assert!(ucum("px").is_none());
        assert_eq!(ucum("ratio").unwrap().value, "{ratio}");
    }
}
