//! DICOM through dicom-rs, after a bounded walk over the file's elements (`bounds`), with
//! sizes checked from the header and the codestream before any pixel is decoded.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTable, OpenFileOptions};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
    PlanarConfiguration,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::bounds::{Encoding, Walker};
use super::codestream::{j2k_frame_size, jpeg_frame_size, jpeg_is_complete, FrameSize};
use super::guard::without_panics;
use super::{
    check_dimensions, decode_error, io_error, open, over_limit, with_causes, DicomAttributes,
    Format, LoadError, LoadLimits, Radiograph, SourceIdentity, SpacingSource, StoredToGrey,
    VoiWindow, DICOM_PREAMBLE_LENGTH, LUMA_WEIGHTS,
};
use crate::measure::PixelSpacing;

/// JPEG Extended (Process 2 & 4): lossy JPEG with 8-bit or 12-bit samples.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Transfer syntaxes whose frames are JPEG or JPEG-LS codestreams (SOF marker).
const JPEG_FAMILY: [&str; 6] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
];
/// Transfer syntaxes whose frames are JPEG 2000 codestreams (SIZ marker), HTJ2K included.
const J2K_FAMILY: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];
/// The codestream header is looked for in the first fragments of a frame, this far.
const CODESTREAM_HEAD_BYTES: usize = 64 << 10;

pub(super) fn load_dicom(
    path: &Path,
    file: File,
    length: u64,
    limits: &LoadLimits,
) -> Result<Radiograph, LoadError> {
    let format = Format::Dicom;
    // Every length and nesting level checked before dicom-rs reads anything.
    // A handle of its own: a clone would share the file position with `file`.
    let mut walker = Walker::new(open(path)?, length);
    let walked_uid = walker
        .meta()
        .map_err(|reason| decode_error(path, format, format!("file meta group: {reason}")))?;

    let mut after_preamble = BufReader::new(file);
    after_preamble
        .seek(SeekFrom::Start(DICOM_PREAMBLE_LENGTH as u64))
        .map_err(|cause| io_error(path, cause))?;
    let meta = FileMetaTable::from_reader(after_preamble).map_err(|error| {
        decode_error(
            path,
            format,
            format!("file meta group: {}", with_causes(&error)),
        )
    })?;
    let uid = meta.transfer_syntax().to_string();
    let unsupported = |name: &str| LoadError::UnsupportedTransferSyntax {
        path: path.to_path_buf(),
        uid: uid.clone(),
        name: name.to_string(),
    };
    let transfer_syntax = TransferSyntaxRegistry
        .get(&uid)
        .ok_or_else(|| unsupported("unknown transfer syntax"))?;
    if !transfer_syntax.can_decode_dataset() {
        return Err(unsupported(transfer_syntax.name()));
    }
    let encoding = Encoding::of(&walked_uid);
    if encoding == Encoding::Deflated {
        return Err(unsupported(&format!(
            "{}: a deflated data set cannot be checked before it is parsed",
            transfer_syntax.name()
        )));
    }
    walker
        .data_set(encoding)
        .map_err(|reason| decode_error(path, format, reason))?;
    drop(walker);

    let open_options = || OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    // The header alone first, so that an absurd size is refused before the pixels are read.
    let header = without_panics(path, format, || {
        open_options()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|error| decode_error(path, format, with_causes(&error)))
    })?;
    let bits_stored = unsigned_attribute(path, &header, tags::BITS_STORED, "Bits Stored")?;
    if uid == JPEG_EXTENDED && bits_stored.is_some_and(|bits| bits > 8) {
        // The pure-Rust JPEG decoder stops at 8-bit lossy samples (process 4 allows 12).
        return Err(unsupported(&format!(
            "{}, 12-bit samples: not supported by the pure-Rust JPEG decoder",
            transfer_syntax.name()
        )));
    }
    let rows = unsigned_attribute(path, &header, tags::ROWS, "Rows")?;
    let columns = unsigned_attribute(path, &header, tags::COLUMNS, "Columns")?;
    let samples_per_pixel =
        unsigned_attribute(path, &header, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?
            .unwrap_or(1);
    let bits_allocated =
        unsigned_attribute(path, &header, tags::BITS_ALLOCATED, "Bits Allocated")?.unwrap_or(16);
    if let (Some(rows), Some(columns)) = (rows, columns) {
        check_dimensions(path, columns, rows, limits)?;
        // What the decoder allocates for one frame.
        let frame_bytes = (rows * columns)
            .saturating_mul(samples_per_pixel)
            .saturating_mul(bits_allocated.div_ceil(8).max(1));
        if frame_bytes > limits.max_decoded_bytes {
            return Err(over_limit(
                path,
                format!(
                    "a decoded frame of {columns}×{rows} px × {samples_per_pixel} sample(s) × {bits_allocated} bits takes {frame_bytes} bytes, over the limit of {} bytes",
                    limits.max_decoded_bytes
                ),
            ));
        }
    }
    drop(header);

    let object = without_panics(path, format, || {
        open_options()
            .open_file(path)
            .map_err(|error| decode_error(path, format, with_causes(&error)))
    })?;
    let Some(pixel_data) = object.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        return Err(LoadError::NoPixelData {
            path: path.to_path_buf(),
        });
    };
    if !transfer_syntax.can_decode_all() {
        return Err(unsupported(transfer_syntax.name()));
    }
    let (Some(rows), Some(columns)) = (rows, columns) else {
        return Err(decode_error(
            path,
            format,
            "Rows (0028,0010) or Columns (0028,0011) missing",
        ));
    };
    if let Some(fragments) = pixel_data.fragments() {
        let frames = unsigned_attribute(path, &object, tags::NUMBER_OF_FRAMES, "Number of Frames")
            .ok()
            .flatten()
            .unwrap_or(1);
        check_codestream(
            path,
            &uid,
            fragments,
            frames,
            (columns, rows, samples_per_pixel),
        )?;
    }

    let (pixels, width, height, stored_to_grey) = without_panics(path, format, || {
        let decoded = object
            .decode_pixel_data_frame(0)
            .map_err(|error| decode_error(path, format, with_causes(&error)))?;
        if (u64::from(decoded.columns()), u64::from(decoded.rows())) != (columns, rows) {
            return Err(decode_error(
                path,
                format,
                format!(
                    "header says {columns}×{rows} px but the pixel data is {}×{} px",
                    decoded.columns(),
                    decoded.rows()
                ),
            ));
        }
        let (pixels, stored_to_grey) = grey_from_dicom(path, &decoded)?;
        Ok((pixels, decoded.columns(), decoded.rows(), stored_to_grey))
    })?;
    let (pixel_spacing, spacing_source) =
        if let Some(spacing) = spacing_attribute(&object, tags::PIXEL_SPACING) {
            (Some(spacing), SpacingSource::PixelSpacing)
        } else if let Some(spacing) = spacing_attribute(&object, tags::IMAGER_PIXEL_SPACING) {
            (Some(spacing), SpacingSource::ImagerPixelSpacing)
        } else {
            (None, SpacingSource::None)
        };

    Ok(Radiograph {
        width,
        height,
        pixels,
        pixel_spacing,
        spacing_source,
        format: format.name(),
        transfer_syntax: Some(uid),
        dicom: Some(dicom_attributes(&object, stored_to_grey)),
    })
}

/// A text attribute, trimmed; `None` when absent, empty or not text.
fn text_attribute(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = object.element_opt(tag).ok().flatten()?.to_str().ok()?;
    let value = value
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string();
    (!value.is_empty()).then_some(value)
}

/// The first value of a decimal attribute, when finite.
fn first_float(object: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    let values = object
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?;
    values.first().copied().filter(|value| value.is_finite())
}

/// `stored_to_grey` says what `MONOCHROME1` values were mirrored about, so that the window
/// applies to the values as returned.
fn dicom_attributes(
    object: &DefaultDicomObject,
    stored_to_grey: Option<StoredToGrey>,
) -> DicomAttributes {
    let mirror_sum = stored_to_grey.and_then(|s| s.mirror_sum);
    let window = match (
        first_float(object, tags::WINDOW_CENTER),
        first_float(object, tags::WINDOW_WIDTH),
    ) {
        (Some(center), Some(width)) if width >= 1.0 => Some(VoiWindow {
            center: mirror_sum.map_or(center, |sum| sum - center),
            width,
        }),
        _ => None,
    };
    DicomAttributes {
        study_instance_uid: text_attribute(object, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text_attribute(object, tags::SERIES_INSTANCE_UID),
        sop_instance_uid: text_attribute(object, tags::SOP_INSTANCE_UID),
        modality: text_attribute(object, tags::MODALITY),
        body_part_examined: text_attribute(object, tags::BODY_PART_EXAMINED),
        view_position: text_attribute(object, tags::VIEW_POSITION),
        window,
        stored_to_grey,
        source: SourceIdentity {
            sop_class_uid: text_attribute(object, tags::SOP_CLASS_UID),
            number_of_frames: text_attribute(object, tags::NUMBER_OF_FRAMES)
                .and_then(|frames| frames.parse().ok()),
            patient_name: text_attribute(object, tags::PATIENT_NAME),
            patient_id: text_attribute(object, tags::PATIENT_ID),
            patient_birth_date: text_attribute(object, tags::PATIENT_BIRTH_DATE),
            patient_sex: text_attribute(object, tags::PATIENT_SEX),
            study_date: text_attribute(object, tags::STUDY_DATE),
            study_time: text_attribute(object, tags::STUDY_TIME),
            study_id: text_attribute(object, tags::STUDY_ID),
            accession_number: text_attribute(object, tags::ACCESSION_NUMBER),
            referring_physician_name: text_attribute(object, tags::REFERRING_PHYSICIAN_NAME),
            study_description: text_attribute(object, tags::STUDY_DESCRIPTION),
            laterality: text_attribute(object, tags::LATERALITY),
        },
        patient: None,
    }
}

/// An unsigned integer attribute: `None` when absent, an error when present but not a number.
fn unsigned_attribute(
    path: &Path,
    object: &DefaultDicomObject,
    tag: Tag,
    name: &str,
) -> Result<Option<u64>, LoadError> {
    let Some(element) = object.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    element.to_int::<u64>().map(Some).map_err(|error| {
        decode_error(
            path,
            Format::Dicom,
            format!("{name} {tag} is not an unsigned integer: {error}"),
        )
    })
}

/// A row\column spacing pair; anything but two finite positive numbers counts as absent.
fn spacing_attribute(object: &DefaultDicomObject, tag: Tag) -> Option<PixelSpacing> {
    let values = object
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?;
    let [row_mm, column_mm] = values.as_slice() else {
        return None;
    };
    let plausible = |value: f64| value.is_finite() && value > 0.0;
    (plausible(*row_mm) && plausible(*column_mm)).then_some(PixelSpacing {
        row_mm: *row_mm,
        column_mm: *column_mm,
    })
}

/// Reads integer samples of any width the decoders produce, keeping only the stored bits.
struct SampleReader<'a> {
    data: &'a [u8],
    bytes_per_sample: usize,
    shift: u32,
    mask: u32,
    sign_bit: Option<u32>,
}

impl<'a> SampleReader<'a> {
    fn new(decoded: &'a DecodedPixelData<'_>, data: &'a [u8]) -> Result<Self, String> {
        let bits_allocated = decoded.bits_allocated();
        let bits_stored = decoded.bits_stored();
        let high_bit = decoded.high_bit();
        // Bits Allocated 1 arrives from the decoder already expanded to one byte per sample.
        let bytes_per_sample = match bits_allocated {
            1 | 8 => 1,
            16 => 2,
            32 => 4,
            other => return Err(format!("unsupported Bits Allocated {other}")),
        };
        let lying_header = bits_stored == 0
            || bits_stored > bits_allocated
            || high_bit >= bits_allocated
            || high_bit + 1 < bits_stored;
        if lying_header {
            return Err(format!(
                "inconsistent Bits Allocated {bits_allocated}, Bits Stored {bits_stored}, High Bit {high_bit}"
            ));
        }
        let mask = if bits_stored >= 32 {
            u32::MAX
        } else {
            (1u32 << bits_stored) - 1
        };
        let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
        Ok(SampleReader {
            data,
            bytes_per_sample,
            shift: u32::from(high_bit + 1 - bits_stored),
            mask,
            sign_bit: signed.then(|| 1u32 << (bits_stored - 1)),
        })
    }

    fn len(&self) -> usize {
        self.data.len() / self.bytes_per_sample
    }

    fn get(&self, index: usize) -> f64 {
        let start = index * self.bytes_per_sample;
        let bytes = &self.data[start..start + self.bytes_per_sample];
        // Decoded pixel data is in native byte order.
        let raw = match bytes {
            [byte] => u32::from(*byte),
            [a, b] => u32::from(u16::from_ne_bytes([*a, *b])),
            [a, b, c, d] => u32::from_ne_bytes([*a, *b, *c, *d]),
            _ => 0,
        };
        let value = (raw >> self.shift) & self.mask;
        match self.sign_bit {
            Some(sign_bit) if value & sign_bit != 0 => f64::from(value) - 2.0 * f64::from(sign_bit),
            _ => f64::from(value),
        }
    }

    /// The smallest and largest value the stored bits can hold.
    fn stored_range(&self) -> (f64, f64) {
        match self.sign_bit {
            Some(sign_bit) => (-f64::from(sign_bit), f64::from(sign_bit) - 1.0),
            None => (0.0, f64::from(self.mask)),
        }
    }
}

/// The grey values, and for one-sample images how they came from the stored ones.
fn grey_from_dicom(
    path: &Path,
    decoded: &DecodedPixelData<'_>,
) -> Result<(Vec<f32>, Option<StoredToGrey>), LoadError> {
    let format = Format::Dicom;
    let photometric = decoded.photometric_interpretation();
    let samples_per_pixel = decoded.samples_per_pixel();
    let unsupported_photometric = || LoadError::UnsupportedPhotometric {
        path: path.to_path_buf(),
        photometric: photometric.to_string(),
        samples_per_pixel,
    };
    let data = decoded
        .frame_data(0)
        .map_err(|error| decode_error(path, format, with_causes(&error)))?;
    let samples =
        SampleReader::new(decoded, data).map_err(|reason| decode_error(path, format, reason))?;
    let pixel_count = decoded.rows() as usize * decoded.columns() as usize;
    if samples.len() < pixel_count * usize::from(samples_per_pixel) {
        return Err(decode_error(
            path,
            format,
            format!(
                "pixel data holds {} samples, fewer than the {} that {}×{} px × {samples_per_pixel} need",
                samples.len(),
                pixel_count * usize::from(samples_per_pixel),
                decoded.columns(),
                decoded.rows()
            ),
        ));
    }

    match (photometric, samples_per_pixel) {
        (PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2, 1) => {
            let rescale = decoded.rescale().ok().and_then(|all| all.first().copied());
            // A zero or missing slope would flatten the image; identity is the only safe guess.
            let (slope, intercept) = match rescale {
                Some(rescale) if rescale.slope != 0.0 && rescale.slope.is_finite() => {
                    (rescale.slope, rescale.intercept)
                }
                _ => (1.0, 0.0),
            };
            let intercept = if intercept.is_finite() {
                intercept
            } else {
                0.0
            };
            let rescaled = |value: f64| slope * value + intercept;
            let invert = *photometric == PhotometricInterpretation::Monochrome1;
            // Inverting over the whole stored range (not the image's own min and max) keeps
            // the same raw value mapping to the same output in every image of a series.
            let (low, high) = samples.stored_range();
            let mirror_sum = rescaled(low) + rescaled(high);
            let pixels = (0..pixel_count)
                .map(|index| {
                    let value = rescaled(samples.get(index));
                    (if invert { mirror_sum - value } else { value }) as f32
                })
                .collect();
            let stored_to_grey = StoredToGrey {
                slope,
                intercept,
                mirror_sum: invert.then_some(mirror_sum),
            };
            Ok((pixels, Some(stored_to_grey)))
        }
        (PhotometricInterpretation::Rgb | PhotometricInterpretation::YbrFull, 3) => {
            let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
            let channel = |index: usize, channel: usize| {
                if planar {
                    samples.get(channel * pixel_count + index)
                } else {
                    samples.get(index * 3 + channel)
                }
            };
            let is_rgb = *photometric == PhotometricInterpretation::Rgb;
            let pixels = (0..pixel_count)
                .map(|index| {
                    if is_rgb {
                        (LUMA_WEIGHTS[0] * channel(index, 0)
                            + LUMA_WEIGHTS[1] * channel(index, 1)
                            + LUMA_WEIGHTS[2] * channel(index, 2)) as f32
                    } else {
                        // Y of YCbCr already is the luma.
                        channel(index, 0) as f32
                    }
                })
                .collect::<Vec<f32>>();
            Ok((pixels, None))
        }
        _ => Err(unsupported_photometric()),
    }
}

/// The first frame's codestream header against Rows, Columns and Samples per Pixel: the
/// decoders size their output from the attributes and leave what the codestream lacks
/// blank, so a header that lies would otherwise decode "successfully".
fn check_codestream(
    path: &Path,
    uid: &str,
    fragments: &[Vec<u8>],
    frames: u64,
    (columns, rows, samples_per_pixel): (u64, u64, u64),
) -> Result<(), LoadError> {
    let format = Format::Dicom;
    let is_jpeg = JPEG_FAMILY.contains(&uid);
    if !is_jpeg && !J2K_FAMILY.contains(&uid) {
        return Ok(());
    }
    // With one frame every fragment is part of it; with several, frame 0 starts at the
    // first fragment either way.
    let single_frame = frames <= 1;
    let mut head = Vec::new();
    for fragment in fragments {
        if !single_frame && head.len() >= CODESTREAM_HEAD_BYTES {
            break;
        }
        if single_frame && is_jpeg {
            head.extend_from_slice(fragment);
        } else {
            let room = CODESTREAM_HEAD_BYTES.saturating_sub(head.len());
            head.extend_from_slice(&fragment[..fragment.len().min(room)]);
        }
        if !single_frame {
            break;
        }
    }
    let (kind, size) = if is_jpeg {
        ("JPEG", jpeg_frame_size(&head))
    } else {
        ("JPEG 2000", j2k_frame_size(&head))
    };
    let FrameSize {
        width,
        height,
        components,
    } = size.map_err(|reason| decode_error(path, format, reason))?;
    if (u64::from(width), u64::from(height)) != (columns, rows) {
        return Err(decode_error(
            path,
            format,
            format!(
                "header says {columns}×{rows} px but the {kind} codestream is {width}×{height} px"
            ),
        ));
    }
    if u64::from(components) != samples_per_pixel {
        return Err(decode_error(
            path,
            format,
            format!(
                "header says {samples_per_pixel} sample(s) per pixel but the {kind} codestream has {components} component(s)"
            ),
        ));
    }
    if single_frame && is_jpeg {
        jpeg_is_complete(&head).map_err(|reason| decode_error(path, format, reason))?;
    }
    Ok(())
}
