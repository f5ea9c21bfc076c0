//! DICOM objects that carry an analysed DICOM image's results back to its study in the PACS:
//!
//! - [`sr`]: the measurements as a TID 1500 Measurement Report (Comprehensive SR);
//! - [`gsps`]: the overlay's constructions, landmarks and values as a Grayscale Softcopy
//!   Presentation State, drawn by the viewer over the original pixels;
//! - [`capture`]: the rendered overlay itself as a Secondary Capture image.
//!
//! What they share is here: each is a new instance in a new series of the source's study, with
//! the Patient and General Study modules copied from the source (these objects go back to that
//! patient's study, so they carry its identity; the JSON records do not). New UIDs are `2.25.`
//! followed by a random (version 4) UUID as a decimal integer (ITU-T X.667, which needs no
//! registered root).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::FileDicomObject;
use sha2::{Digest, Sha256};

use super::{ImageRecord, ENGINE};
use crate::io::SourceIdentity;

pub mod capture;
pub mod gsps;
pub mod sr;

/// Explicit VR Little Endian, the transfer syntax of every object written here.
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// The coding scheme of the codes that have no standard counterpart (parameters, landmarks,
/// quality statuses and reasons); a `99` prefix marks a private scheme (PS3.16 8.2).
pub const PRIVATE_SCHEME: &str = "99SAGITTA";
/// Identifies sagitta as the device observer of every SR it writes (a fixed `2.25.` UUID).
pub const DEVICE_OBSERVER_UID: &str = "2.25.33318715618302139763066236169021451393";

/// Why a result object could not be made for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DicomOutError {
    /// The image is not DICOM (nothing to file the object under).
    NotDicom,
    /// The source lacks an attribute the object must reference (named).
    MissingSource(&'static str),
    /// dicom-rs refused the object.
    Encode(String),
}

impl fmt::Display for DicomOutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DicomOutError::NotDicom => write!(f, "not a DICOM image"),
            DicomOutError::MissingSource(name) => {
                write!(f, "the source DICOM has no {name} to reference")
            }
            DicomOutError::Encode(error) => write!(f, "cannot encode the DICOM object: {error}"),
        }
    }
}

impl std::error::Error for DicomOutError {}

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

/// A new object's identity; [`ObjectIdentity::new`] gives fresh UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIdentity {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
}

impl ObjectIdentity {
    pub fn new() -> Self {
        Self {
            series_instance_uid: new_uid(),
            sop_instance_uid: new_uid(),
        }
    }
}

impl Default for ObjectIdentity {
    fn default() -> Self {
        Self::new()
    }
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

fn floats(tag: Tag, values: &[f32]) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::FL, PrimitiveValue::F32(values.into()))
}

fn unsigned_short(tag: Tag, values: &[u16]) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::U16(values.into()))
}

/// A value as a Decimal String (at most 16 characters: plain when it fits, else in exponent
/// form with as many digits as fit).
pub(crate) fn decimal_string(value: f64) -> String {
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

/// The analysed instance as the result objects reference it.
struct Source<'a> {
    study_instance_uid: &'a str,
    series_instance_uid: &'a str,
    image: SourceImage<'a>,
    identity: &'a SourceIdentity,
    body_part_examined: Option<&'a str>,
}

/// The source instance as a reference (and its first frame when it has several: the one that
/// was analysed).
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
}

impl<'a> Source<'a> {
    fn of(record: &'a ImageRecord) -> Result<Self, DicomOutError> {
        let dicom = record.dicom.as_ref().ok_or(DicomOutError::NotDicom)?;
        let missing = DicomOutError::MissingSource;
        Ok(Self {
            study_instance_uid: dicom
                .study_instance_uid
                .as_deref()
                .ok_or(missing("Study Instance UID"))?,
            series_instance_uid: dicom
                .series_instance_uid
                .as_deref()
                .ok_or(missing("Series Instance UID"))?,
            image: SourceImage {
                sop_class_uid: dicom
                    .source
                    .sop_class_uid
                    .as_deref()
                    .ok_or(missing("SOP Class UID"))?,
                sop_instance_uid: dicom
                    .sop_instance_uid
                    .as_deref()
                    .ok_or(missing("SOP Instance UID"))?,
                multi_frame: dicom
                    .source
                    .number_of_frames
                    .is_some_and(|frames| frames > 1),
            },
            identity: &dicom.source,
            body_part_examined: dicom.body_part_examined.as_deref(),
        })
    }

    /// The source's series with the analysed instance, as the Referenced Series Sequence of
    /// an evidence or presentation-state reference.
    fn referenced_series(&self, sop_tag: Tag) -> InMemDicomObject {
        InMemDicomObject::from_element_iter([
            text(tags::SERIES_INSTANCE_UID, VR::UI, self.series_instance_uid),
            sequence(sop_tag, vec![self.image.referenced_sop()]),
        ])
    }
}

/// Body Part Examined values of paired parts (PS3.16 Annex L), whose images have a side.
const PAIRED_BODY_PARTS: [&str; 30] = [
    "ACJOINT",
    "ANKLE",
    "ARM",
    "BREAST",
    "CLAVICLE",
    "EAR",
    "ELBOW",
    "EXTREMITY",
    "EYE",
    "FEMUR",
    "FIBULA",
    "FINGER",
    "FOOT",
    "FOREARM",
    "HAND",
    "HEEL",
    "HIP",
    "HUMERUS",
    "KIDNEY",
    "KNEE",
    "LEG",
    "LUNG",
    "ORBIT",
    "PATELLA",
    "RADIUS",
    "SCAPULA",
    "SHOULDER",
    "THIGH",
    "TIBIA",
    "WRIST",
];

/// What differs between the result objects in the modules they share.
struct Kind<'a> {
    sop_class_uid: &'a str,
    modality: &'a str,
    series_number: i32,
    series_description: &'a str,
}

/// The SOP Common, Patient, General Study, General Series and General Equipment modules of a
/// new object in the source's study. Type 2 attributes are present, empty when the source has
/// no value. `texts` are the object's own texts, to choose the character set.
fn common_modules(
    source: &Source<'_>,
    record: &ImageRecord,
    identity: &ObjectIdentity,
    kind: &Kind<'_>,
    now: chrono::DateTime<chrono::Utc>,
    texts: &[&str],
) -> InMemDicomObject {
    let patient = source.identity;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M%S%.6f").to_string();
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: Option<&str>| {
        object.put(text(tag, vr, value.unwrap_or("")));
    };
    // The default repertoire (ASCII) when every text is ASCII, as most readers handle it
    // best; else UTF-8 (the copied attributes are decoded from the source's character set).
    if !(texts_are_ascii(record) && texts.iter().all(|text| text.is_ascii())) {
        put(tags::SPECIFIC_CHARACTER_SET, VR::CS, Some("ISO_IR 192"));
    }
    put(tags::INSTANCE_CREATION_DATE, VR::DA, Some(&date));
    put(tags::INSTANCE_CREATION_TIME, VR::TM, Some(&time));
    put(tags::SOP_CLASS_UID, VR::UI, Some(kind.sop_class_uid));
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        Some(&identity.sop_instance_uid),
    );
    put(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, Some("+0000"));
    put(tags::PATIENT_NAME, VR::PN, patient.patient_name.as_deref());
    put(tags::PATIENT_ID, VR::LO, patient.patient_id.as_deref());
    put(
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        patient.patient_birth_date.as_deref(),
    );
    put(tags::PATIENT_SEX, VR::CS, patient.patient_sex.as_deref());
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        Some(source.study_instance_uid),
    );
    put(tags::STUDY_DATE, VR::DA, patient.study_date.as_deref());
    put(tags::STUDY_TIME, VR::TM, patient.study_time.as_deref());
    put(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        patient.referring_physician_name.as_deref(),
    );
    put(tags::STUDY_ID, VR::SH, patient.study_id.as_deref());
    put(
        tags::ACCESSION_NUMBER,
        VR::SH,
        patient.accession_number.as_deref(),
    );
    put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        patient.study_description.as_deref(),
    );
    put(tags::MODALITY, VR::CS, Some(kind.modality));
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        Some(&identity.series_instance_uid),
    );
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        Some(&kind.series_number.to_string()),
    );
    put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        Some(kind.series_description),
    );
    put(tags::INSTANCE_NUMBER, VR::IS, Some("1"));
    // The General Series module of image and presentation-state objects: the source's body
    // part and side. Laterality (type 2C) is required, empty when unknown, unless the body
    // part is known to be unpaired. The SR Document Series module has neither.
    if kind.modality != "SR" {
        let part = source.body_part_examined;
        if let Some(part) = part {
            put(tags::BODY_PART_EXAMINED, VR::CS, Some(part));
        }
        match (&patient.laterality, part) {
            (Some(side), _) => put(tags::LATERALITY, VR::CS, Some(side)),
            (None, Some(part)) if !PAIRED_BODY_PARTS.contains(&part) => {}
            (None, _) => put(tags::LATERALITY, VR::CS, None),
        }
    }
    put(tags::MANUFACTURER, VR::LO, Some("sagitta"));
    put(tags::MANUFACTURER_MODEL_NAME, VR::LO, Some("sagitta"));
    put(tags::SOFTWARE_VERSIONS, VR::LO, Some(ENGINE.version));
    object
}

/// Whether every text an object takes from the record (the source's patient and study
/// attributes, the models' names) is ASCII.
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
        .chain(record.lumbar.as_ref().map(|lumbar| &lumbar.model))
        .chain(record.csm.as_ref().map(|csm| &csm.model))
        .map(|model| model.name.as_str());
    copied
        .chain(models)
        .chain([ENGINE.version])
        .all(|text| text.is_ascii())
}

/// The data set with its file meta group (Explicit VR Little Endian).
fn with_meta(object: InMemDicomObject) -> Result<FileDicomObject<InMemDicomObject>, DicomOutError> {
    object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|error| DicomOutError::Encode(error.to_string()))
}

/// An object as a DICOM file (preamble, meta group, data set).
pub fn encode(object: &FileDicomObject<InMemDicomObject>) -> Result<Vec<u8>, DicomOutError> {
    let mut bytes = Vec::new();
    object
        .write_all(&mut bytes)
        .map_err(|error| DicomOutError::Encode(error.to_string()))?;
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
}
