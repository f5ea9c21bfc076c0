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
//! Identity: as every result object ([`super`]), a new instance in a new series of the
//! source's study.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::FileDicomObject;

use super::super::lumbar::LumbarRecord;
use super::super::{rounded, significant_digits, CsmRecord, ImageRecord, LandmarkRecord};
use super::super::{ModelInfo, ParameterRecord, QualityStatus, ReasonCode, ENGINE};
use super::{code_sequence, common_modules, dcm, decimal_string, new_uid, private, sequence};
use super::{text, with_meta};
use super::{Code, DicomOutError, Kind, ObjectIdentity, Source, SourceImage, DEVICE_OBSERVER_UID};

/// Comprehensive SR Storage.
pub const COMPREHENSIVE_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.33";
/// The Series Number of the SRs' new series: high, so that it sorts after the acquisition's.
pub const SERIES_NUMBER: i32 = 9901;

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

impl SourceImage<'_> {
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

/// The TID 1500 Measurement Report of an analysed DICOM image, as a Comprehensive SR.
pub fn measurement_report(
    record: &ImageRecord,
    identity: &ObjectIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<FileDicomObject<InMemDicomObject>, DicomOutError> {
    let source_reference = Source::of(record)?;
    let source = &source_reference.image;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M%S%.6f").to_string();
    let mut object = common_modules(
        &source_reference,
        record,
        identity,
        &Kind {
            sop_class_uid: COMPREHENSIVE_SR_STORAGE,
            modality: "SR",
            series_number: SERIES_NUMBER,
            series_description: "sagitta measurements",
        },
        now,
        &[],
    );
    let mut put = |tag, vr, value: &str| object.put(text(tag, vr, value));
    put(tags::CONTENT_DATE, VR::DA, &date);
    put(tags::CONTENT_TIME, VR::TM, &time);
    put(tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put(tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
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
        vec![InMemDicomObject::from_element_iter([
            text(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                source_reference.study_instance_uid,
            ),
            sequence(
                tags::REFERENCED_SERIES_SEQUENCE,
                vec![source_reference.referenced_series(tags::REFERENCED_SOP_SEQUENCE)],
            ),
        ])],
    ));

    let mut measurements = Vec::new();
    if let Some(model) = &record.model {
        measurements.push(landmark_group(
            source,
            "cervical",
            model,
            &record.landmarks,
            &record.parameters,
        ));
    }
    if let Some(spine) = &record.wholespine {
        measurements.push(landmark_group(
            source,
            "wholespine",
            &spine.model,
            &spine.landmarks,
            &spine.parameters,
        ));
    }
    if let Some(lumbar) = &record.lumbar {
        measurements.push(lumbar_group(source, lumbar));
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

    with_meta(object)
}

#[cfg(test)]
mod tests {
    use super::*;

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
