//! The rendered overlay as a Secondary Capture image (PS3.3 A.8.1): for viewers and archives
//! that show images but not presentation states. The pixels carry burnt-in annotation, so the
//! object says so, and it references the analysed instance as its source.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::FileDicomObject;
use image::RgbImage;

use super::super::ImageRecord;
use super::{common_modules, sequence, text, unsigned_short, with_meta};
use super::{DicomOutError, Kind, ObjectIdentity, Source};

/// Secondary Capture Image Storage.
pub const SECONDARY_CAPTURE_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
/// The Series Number of the captures' new series (after the SRs' and presentation states').
pub const SERIES_NUMBER: i32 = 9903;

/// The overlay `image` (rendered for `record`) as an RGB Secondary Capture in the source's
/// study.
pub fn secondary_capture(
    record: &ImageRecord,
    image: &RgbImage,
    identity: &ObjectIdentity,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<FileDicomObject<InMemDicomObject>, DicomOutError> {
    let source = Source::of(record)?;
    let (Ok(rows), Ok(columns)) = (u16::try_from(image.height()), u16::try_from(image.width()))
    else {
        return Err(DicomOutError::Encode(format!(
            "the overlay is {}×{} pixels; a Secondary Capture holds at most 65535 per side",
            image.width(),
            image.height()
        )));
    };
    let mut object = common_modules(
        &source,
        record,
        identity,
        &Kind {
            sop_class_uid: SECONDARY_CAPTURE_IMAGE_STORAGE,
            modality: "OT",
            series_number: SERIES_NUMBER,
            series_description: "sagitta overlay (burnt in)",
        },
        now,
        &[],
    );
    let mut put = |tag, vr, value: &str| object.put(text(tag, vr, value));
    // SC Equipment: made on a workstation.
    put(tags::CONVERSION_TYPE, VR::CS, "WSD");
    // General Image.
    put(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    put(tags::PATIENT_ORIENTATION, VR::CS, "");
    put(
        tags::CONTENT_DATE,
        VR::DA,
        &now.format("%Y%m%d").to_string(),
    );
    put(
        tags::CONTENT_TIME,
        VR::TM,
        &now.format("%H%M%S%.6f").to_string(),
    );
    put(tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put(
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        "sagitta overlay: landmarks, constructions and values drawn on the windowed image",
    );
    object.put(sequence(
        tags::SOURCE_IMAGE_SEQUENCE,
        vec![source.image.referenced_sop()],
    ));
    // Image Pixel: 8-bit RGB, pixel-interleaved.
    object.put(unsigned_short(tags::SAMPLES_PER_PIXEL, &[3]));
    object.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
    object.put(unsigned_short(tags::PLANAR_CONFIGURATION, &[0]));
    object.put(unsigned_short(tags::ROWS, &[rows]));
    object.put(unsigned_short(tags::COLUMNS, &[columns]));
    object.put(unsigned_short(tags::BITS_ALLOCATED, &[8]));
    object.put(unsigned_short(tags::BITS_STORED, &[8]));
    object.put(unsigned_short(tags::HIGH_BIT, &[7]));
    object.put(unsigned_short(tags::PIXEL_REPRESENTATION, &[0]));
    let mut pixels = image.as_raw().clone();
    // Values of odd length are padded to even (PS3.5 7.1.1).
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixels.into()),
    ));
    with_meta(object)
}
