//! Loading a radiograph from disk: PNG, JPEG, TIFF or DICOM, into one grey channel.
//!
//! The format is recognised from the file's first bytes, never from its name: the NEMA test
//! files have no extension, and some DICOM files carry a TIFF header in their preamble.
//!
//! Pixel values are kept as raw intensities (after the DICOM modality rescale), not windowed
//! or normalised: the model standardises the image itself. DICOM `MONOCHROME1` is inverted so
//! that bone is bright in every image this module returns.
//!
//! Sizes are checked from the header before the pixels are decoded, so that a hostile or
//! broken file claiming 30000×30000 pixels fails at once instead of allocating gigabytes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTable, OpenFileOptions};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
    PlanarConfiguration,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde::Serialize;

use crate::measure::PixelSpacing;

/// Images narrower or shorter than this cannot hold a cervical spine worth measuring.
pub const MIN_SIDE: u32 = 16;
/// The largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16384;
/// The largest accepted pixel count (200 megapixels).
pub const MAX_PIXELS: u64 = 200_000_000;

/// Enough for the largest accepted image decoded as 16-bit RGBA, the widest layout the
/// `image` crate produces for the formats enabled here.
const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 8;

/// Bytes needed to recognise every supported format: DICOM's magic sits after a 128-byte
/// preamble.
const SNIFF_LENGTH: usize = 132;
const DICOM_PREAMBLE_LENGTH: usize = 128;

/// JPEG Extended (Process 2 & 4): lossy JPEG with 8-bit or 12-bit samples.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Rec. 709 luma weights, the same that the `image` crate uses for colour-to-grey.
const LUMA_WEIGHTS: [f64; 3] = [0.2126, 0.7152, 0.0722];

/// Where a radiograph's pixel spacing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpacingSource {
    /// DICOM Pixel Spacing (0028,0030): spacing in the patient.
    PixelSpacing,
    /// DICOM Imager Pixel Spacing (0018,1164): spacing at the detector, which includes the
    /// projection magnification.
    ImagerPixelSpacing,
    /// Given by the user.
    User,
    /// Unknown: distances can only be reported in pixels.
    None,
}

/// A decoded radiograph: one grey channel, row-major, top row first.
#[derive(Debug, Clone, PartialEq)]
pub struct Radiograph {
    pub width: u32,
    pub height: u32,
    /// `width * height` grey values: raw intensities after the DICOM rescale, colour images
    /// reduced to luma, `MONOCHROME1` inverted so that bone is bright.
    pub pixels: Vec<f32>,
    pub pixel_spacing: Option<PixelSpacing>,
    pub spacing_source: SpacingSource,
    /// `"png"`, `"jpeg"`, `"tiff"` or `"dicom"`.
    pub format: &'static str,
    /// The DICOM transfer syntax UID; `None` for other formats.
    pub transfer_syntax: Option<String>,
}

impl Radiograph {
    /// Replaces whatever spacing the file had with one the user gave.
    pub fn with_user_spacing(mut self, spacing: PixelSpacing) -> Self {
        self.pixel_spacing = Some(spacing);
        self.spacing_source = SpacingSource::User;
        self
    }
}

/// Why a radiograph could not be loaded. Every message names the file and fits on one line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: file not found", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot read: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: file is empty", .path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a PNG, JPEG, TIFF or DICOM file", .path.display())]
    UnknownFormat { path: PathBuf },
    /// Truncated or corrupt data, or a header that contradicts the data behind it.
    #[error("{}: cannot decode {format}: {reason}", .path.display())]
    Decode {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error(
        "{}: image is {width}×{height} px, smaller than the minimum {MIN_SIDE}×{MIN_SIDE}",
        .path.display()
    )]
    TooSmall {
        path: PathBuf,
        width: u64,
        height: u64,
    },
    /// Decided from the header, before any pixel is decoded.
    #[error(
        "{}: image is {width}×{height} px, over the limit of {MAX_SIDE} px a side and {MAX_PIXELS} pixels",
        .path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
    },
    #[error("{}: DICOM file has no Pixel Data (7FE0,0010)", .path.display())]
    NoPixelData { path: PathBuf },
    /// A DICOM encoding this build cannot decode; `name` says which, and why when the
    /// encoding is only partly supported.
    #[error("{}: unsupported transfer syntax {uid} ({name})", .path.display())]
    UnsupportedTransferSyntax {
        path: PathBuf,
        uid: String,
        name: String,
    },
    /// Only MONOCHROME1, MONOCHROME2, RGB and YBR_FULL (after decoding) are read.
    #[error(
        "{}: unsupported photometric interpretation {photometric} with {samples_per_pixel} sample(s) per pixel",
        .path.display()
    )]
    UnsupportedPhotometric {
        path: PathBuf,
        photometric: String,
        samples_per_pixel: u16,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotFound { path }
            | LoadError::Io { path, .. }
            | LoadError::Empty { path }
            | LoadError::UnknownFormat { path }
            | LoadError::Decode { path, .. }
            | LoadError::TooSmall { path, .. }
            | LoadError::TooLarge { path, .. }
            | LoadError::NoPixelData { path }
            | LoadError::UnsupportedTransferSyntax { path, .. }
            | LoadError::UnsupportedPhotometric { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Jpeg,
    Tiff,
    Dicom,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Tiff => "tiff",
            Format::Dicom => "dicom",
        }
    }

    /// Recognises the format from the first bytes of a file.
    fn sniff(head: &[u8]) -> Option<Format> {
        // DICOM first: the preamble is free-form and may itself hold a TIFF header.
        if head.len() >= SNIFF_LENGTH && &head[DICOM_PREAMBLE_LENGTH..SNIFF_LENGTH] == b"DICM" {
            return Some(Format::Dicom);
        }
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(Format::Png);
        }
        if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(Format::Jpeg);
        }
        let tiff_signatures: [&[u8]; 4] = [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"];
        if tiff_signatures
            .iter()
            .any(|signature| head.starts_with(signature))
        {
            return Some(Format::Tiff);
        }
        None
    }
}

/// Loads a radiograph, recognising PNG, JPEG, TIFF and DICOM by content.
pub fn load_radiograph(path: &Path) -> Result<Radiograph, LoadError> {
    let mut file = open(path)?;
    let length = file
        .metadata()
        .map_err(|cause| io_error(path, cause))?
        .len();
    if length == 0 {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut head = Vec::with_capacity(SNIFF_LENGTH);
    (&mut file)
        .take(SNIFF_LENGTH as u64)
        .read_to_end(&mut head)
        .map_err(|cause| io_error(path, cause))?;
    let format = Format::sniff(&head).ok_or_else(|| LoadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    match format {
        Format::Dicom => {
            file.seek(SeekFrom::Start(DICOM_PREAMBLE_LENGTH as u64))
                .map_err(|cause| io_error(path, cause))?;
            load_dicom(path, BufReader::new(file))
        }
        Format::Png => load_raster(path, format, ImageFormat::Png),
        Format::Jpeg => load_raster(path, format, ImageFormat::Jpeg),
        Format::Tiff => load_raster(path, format, ImageFormat::Tiff),
    }
}

fn open(path: &Path) -> Result<File, LoadError> {
    File::open(path).map_err(|cause| io_error(path, cause))
}

fn io_error(path: &Path, cause: std::io::Error) -> LoadError {
    if cause.kind() == std::io::ErrorKind::NotFound {
        LoadError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        LoadError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

fn decode_error(path: &Path, format: Format, reason: impl ToString) -> LoadError {
    LoadError::Decode {
        path: path.to_path_buf(),
        format: format.name(),
        reason: reason.to_string(),
    }
}

/// An error and its causes on one line: the decoders' top-level messages alone ("Could not
/// decode pixel data") do not say what went wrong.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}

fn check_dimensions(path: &Path, width: u64, height: u64) -> Result<(), LoadError> {
    if width > u64::from(MAX_SIDE)
        || height > u64::from(MAX_SIDE)
        || width.saturating_mul(height) > MAX_PIXELS
    {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if width < u64::from(MIN_SIDE) || height < u64::from(MIN_SIDE) {
        return Err(LoadError::TooSmall {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    Ok(())
}

/// Runs a third-party decoder so that a panic on malformed input becomes a decode error
/// instead of taking the caller down. (It cannot help a build with `panic = "abort"`.)
fn without_panics<T>(
    path: &Path,
    format: Format,
    decode: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|message| message.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(decode_error(
            path,
            format,
            format!("decoder failed on malformed data: {message}"),
        ))
    })
}

fn load_raster(
    path: &Path,
    format: Format,
    image_format: ImageFormat,
) -> Result<Radiograph, LoadError> {
    let reader = |limits: Limits| -> Result<ImageReader<BufReader<File>>, LoadError> {
        let mut reader = ImageReader::with_format(BufReader::new(open(path)?), image_format);
        reader.limits(limits);
        Ok(reader)
    };
    let image_error = |error: image::ImageError| match error {
        image::ImageError::IoError(cause) => decode_error(path, format, with_causes(&cause)),
        other => decode_error(path, format, with_causes(&other)),
    };

    // The header is read without size limits so that an oversized image is reported with
    // its size; the decoders allocate nothing for the pixels at this stage.
    let (width, height) = without_panics(path, format, || {
        reader(Limits::default())?
            .into_dimensions()
            .map_err(image_error)
    })?;
    check_dimensions(path, width.into(), height.into())?;

    let image = without_panics(path, format, || {
        reader(raster_limits())?
            .decode()
            .map_err(|error| match error {
                image::ImageError::Limits(_) => LoadError::TooLarge {
                    path: path.to_path_buf(),
                    width: width.into(),
                    height: height.into(),
                },
                other => image_error(other),
            })
    })?;
    if (image.width(), image.height()) != (width, height) {
        return Err(decode_error(
            path,
            format,
            format!(
                "header says {width}×{height} px but the decoded image is {}×{} px",
                image.width(),
                image.height()
            ),
        ));
    }
    Ok(Radiograph {
        width,
        height,
        pixels: grey_from_image(&image),
        pixel_spacing: None,
        spacing_source: SpacingSource::None,
        format: format.name(),
        transfer_syntax: None,
    })
}

fn raster_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// One grey value per pixel at the image's own bit depth (0..255 or 0..65535), luma for
/// colour, alpha ignored.
fn grey_from_image(image: &DynamicImage) -> Vec<f32> {
    fn luma(rgb: [f64; 3]) -> f32 {
        (LUMA_WEIGHTS[0] * rgb[0] + LUMA_WEIGHTS[1] * rgb[1] + LUMA_WEIGHTS[2] * rgb[2]) as f32
    }
    match image {
        DynamicImage::ImageLuma8(grey) => grey.as_raw().iter().map(|&v| f32::from(v)).collect(),
        DynamicImage::ImageLuma16(grey) => grey.as_raw().iter().map(|&v| f32::from(v)).collect(),
        DynamicImage::ImageLumaA8(grey) => grey.pixels().map(|p| f32::from(p.0[0])).collect(),
        DynamicImage::ImageLumaA16(grey) => grey.pixels().map(|p| f32::from(p.0[0])).collect(),
        DynamicImage::ImageRgb8(rgb) => rgb.pixels().map(|p| luma(p.0.map(f64::from))).collect(),
        DynamicImage::ImageRgba8(rgba) => rgba
            .pixels()
            .map(|p| luma([p.0[0], p.0[1], p.0[2]].map(f64::from)))
            .collect(),
        DynamicImage::ImageRgb16(rgb) => rgb.pixels().map(|p| luma(p.0.map(f64::from))).collect(),
        DynamicImage::ImageRgba16(rgba) => rgba
            .pixels()
            .map(|p| luma([p.0[0], p.0[1], p.0[2]].map(f64::from)))
            .collect(),
        DynamicImage::ImageRgb32F(rgb) => rgb.pixels().map(|p| luma(p.0.map(f64::from))).collect(),
        DynamicImage::ImageRgba32F(rgba) => rgba
            .pixels()
            .map(|p| luma([p.0[0], p.0[1], p.0[2]].map(f64::from)))
            .collect(),
        // Layouts added to the `image` crate later: its own conversion, in 0..1.
        other => other.to_luma32f().into_raw(),
    }
}

fn load_dicom(path: &Path, after_preamble: BufReader<File>) -> Result<Radiograph, LoadError> {
    let format = Format::Dicom;
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
    if let (Some(rows), Some(columns)) = (rows, columns) {
        check_dimensions(path, columns, rows)?;
    }
    drop(header);

    let object = without_panics(path, format, || {
        open_options()
            .open_file(path)
            .map_err(|error| decode_error(path, format, with_causes(&error)))
    })?;
    if object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .is_none()
    {
        return Err(LoadError::NoPixelData {
            path: path.to_path_buf(),
        });
    }
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

    let (pixels, width, height) = without_panics(path, format, || {
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
        let pixels = grey_from_dicom(path, &decoded)?;
        Ok((pixels, decoded.columns(), decoded.rows()))
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
    })
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

fn grey_from_dicom(path: &Path, decoded: &DecodedPixelData<'_>) -> Result<Vec<f32>, LoadError> {
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
            Ok((0..pixel_count)
                .map(|index| {
                    let value = rescaled(samples.get(index));
                    (if invert { mirror_sum - value } else { value }) as f32
                })
                .collect())
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
            Ok((0..pixel_count)
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
                .collect())
        }
        _ => Err(unsupported_photometric()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use dicom_core::value::{PixelFragmentSequence, C};
    use dicom_core::{dicom_value, DataElement, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
    use std::time::{Duration, Instant};

    const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
    const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
    const COMPUTED_RADIOGRAPHY_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";

    fn scratch_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("sagitta-io-test")
            .tempdir()
            .expect("a temporary directory")
    }

    fn gradient(width: u32, height: u32, x: u32, y: u32) -> u8 {
        ((x * 255 / (width - 1) + y * 64 / (height - 1)) % 256) as u8
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    }

    /// A PNG signature and IHDR (8-bit grey) claiming the given size, then whatever follows.
    fn png_with_header(width: u32, height: u32, rest: &[u8]) -> Vec<u8> {
        let mut header = width.to_be_bytes().to_vec();
        header.extend_from_slice(&height.to_be_bytes());
        header.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &header));
        png.extend_from_slice(rest);
        png
    }

    /// An IDAT holding an empty zlib stream, then IEND: enough for a decoder to get past the
    /// header, far too little for any real image.
    fn tiny_png_body() -> Vec<u8> {
        let mut body = png_chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        body.extend(png_chunk(b"IEND", &[]));
        body
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    #[test]
    fn png_8_bit_grey_round_trips() {
        let dir = scratch_dir();
        let (width, height) = (40, 30);
        let image = GrayImage::from_fn(width, height, |x, y| Luma([gradient(width, height, x, y)]));
        let path = dir.path().join("grey8.png");
        image.save(&path).unwrap();

        let radiograph = load_radiograph(&path).unwrap();
        assert_eq!((radiograph.width, radiograph.height), (width, height));
        assert_eq!(radiograph.format, "png");
        assert_eq!(radiograph.pixel_spacing, None);
        assert_eq!(radiograph.spacing_source, SpacingSource::None);
        assert_eq!(radiograph.transfer_syntax, None);
        let expected: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
        assert_eq!(radiograph.pixels, expected);
    }

    #[test]
    fn png_16_bit_grey_keeps_the_full_range() {
        let dir = scratch_dir();
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(20, 18, |x, y| Luma([(x * 3000 + y * 137) as u16]));
        let path = dir.path().join("grey16.png");
        image.save(&path).unwrap();

        let radiograph = load_radiograph(&path).unwrap();
        let expected: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
        assert_eq!(radiograph.pixels, expected);
        assert_eq!(
            radiograph.pixels.iter().cloned().fold(0.0, f32::max),
            57000.0 + 17.0 * 137.0
        );
    }

    #[test]
    fn rgb_png_becomes_luma() {
        let dir = scratch_dir();
        let image = RgbImage::from_fn(16, 16, |x, y| match (x + y) % 3 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([100, 100, 100]),
        });
        let path = dir.path().join("colour.png");
        image.save(&path).unwrap();

        let radiograph = load_radiograph(&path).unwrap();
        for (index, &value) in radiograph.pixels.iter().enumerate() {
            let (x, y) = (index % 16, index / 16);
            let expected = match (x + y) % 3 {
                0 => 0.2126 * 255.0,
                1 => 0.7152 * 255.0,
                _ => 100.0,
            };
            assert!((value - expected).abs() < 1e-3, "pixel {index}: {value}");
        }
    }

    #[test]
    fn jpeg_round_trips_within_compression_error() {
        let dir = scratch_dir();
        let (width, height) = (64, 48);
        let image = GrayImage::from_fn(width, height, |x, y| Luma([gradient(width, height, x, y)]));
        let path = dir.path().join("grey.jpg");
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 100)
            .encode_image(&image)
            .unwrap();
        std::fs::write(&path, encoded).unwrap();

        let radiograph = load_radiograph(&path).unwrap();
        assert_eq!(radiograph.format, "jpeg");
        assert_eq!((radiograph.width, radiograph.height), (width, height));
        for (&decoded, &original) in radiograph.pixels.iter().zip(image.as_raw()) {
            assert!((decoded - f32::from(original)).abs() <= 4.0);
        }
    }

    #[test]
    fn tiff_16_bit_grey_round_trips() {
        let dir = scratch_dir();
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(24, 17, |x, y| Luma([(x * 2500 + y * 11) as u16]));
        let path = dir.path().join("grey16.tif");
        image.save(&path).unwrap();

        let radiograph = load_radiograph(&path).unwrap();
        assert_eq!(radiograph.format, "tiff");
        let expected: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
        assert_eq!(radiograph.pixels, expected);
    }

    #[test]
    fn format_is_recognised_by_content_not_name() {
        let dir = scratch_dir();
        let image = GrayImage::from_fn(20, 20, |x, y| Luma([(x * 10 + y) as u8]));
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let path = write(dir.path(), "looks_like.dcm", &png);
        assert_eq!(load_radiograph(&path).unwrap().format, "png");

        assert_eq!(Format::sniff(b"II*\0rest"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"MM\0*rest"), Some(Format::Tiff));
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        let mut dicom_with_tiff_preamble = b"II*\0".to_vec();
        dicom_with_tiff_preamble.resize(128, 0);
        dicom_with_tiff_preamble.extend_from_slice(b"DICM");
        assert_eq!(
            Format::sniff(&dicom_with_tiff_preamble),
            Some(Format::Dicom)
        );
        assert_eq!(Format::sniff(b"DICM"), None);
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = scratch_dir();
        let missing = dir.path().join("absent.png");
        let error = load_radiograph(&missing).unwrap_err();
        assert!(matches!(error, LoadError::NotFound { .. }), "{error}");
        assert!(error.to_string().contains("absent.png"));

        let empty = write(dir.path(), "empty.png", b"");
        let error = load_radiograph(&empty).unwrap_err();
        assert!(matches!(error, LoadError::Empty { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            format!("{}: file is empty", empty.display())
        );

        let error = load_radiograph(dir.path()).unwrap_err();
        assert!(matches!(error, LoadError::Io { .. }), "{error}");
    }

    #[test]
    fn unknown_content_is_refused() {
        let dir = scratch_dir();
        // A fixed pseudo-random sequence: reproducible, and no magic number by accident.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        for (name, bytes) in [
            ("noise.png", noise.as_slice()),
            (
                "notes.txt",
                b"just some text, long enough to sniff".as_slice(),
            ),
            ("short", b"P".as_slice()),
        ] {
            let path = write(dir.path(), name, bytes);
            let error = load_radiograph(&path).unwrap_err();
            assert!(matches!(error, LoadError::UnknownFormat { .. }), "{error}");
            assert!(error
                .to_string()
                .ends_with("not a PNG, JPEG, TIFF or DICOM file"));
        }
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let dir = scratch_dir();
        let (width, height) = (64, 64);
        let image = GrayImage::from_fn(width, height, |x, y| Luma([(x ^ y) as u8]));
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        for keep in [png.len() / 2, 40, 20] {
            let path = write(dir.path(), "truncated.png", &png[..keep]);
            let error = load_radiograph(&path).unwrap_err();
            assert!(
                matches!(error, LoadError::Decode { format: "png", .. }),
                "kept {keep} bytes: {error}"
            );
        }
    }

    #[test]
    fn png_header_that_lies_about_its_size_is_refused() {
        let dir = scratch_dir();
        let path = write(
            dir.path(),
            "huge_claim.png",
            &png_with_header(100_000, 100_000, &tiny_png_body()),
        );
        let error = load_radiograph(&path).unwrap_err();
        assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");

        // A plausible size with far too little data behind it.
        let small = GrayImage::from_fn(20, 20, |x, y| Luma([(x + y) as u8]));
        let mut png = Vec::new();
        small
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let after_ihdr = 8 + 25;
        let lying = png_with_header(2000, 1500, &png[after_ihdr..]);
        let path = write(dir.path(), "short_data.png", &lying);
        let error = load_radiograph(&path).unwrap_err();
        assert!(matches!(error, LoadError::Decode { .. }), "{error}");
    }

    #[test]
    fn tiny_image_is_too_small() {
        let dir = scratch_dir();
        let path = dir.path().join("one.png");
        GrayImage::from_pixel(1, 1, Luma([7])).save(&path).unwrap();
        let error = load_radiograph(&path).unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::TooSmall {
                    width: 1,
                    height: 1,
                    ..
                }
            ),
            "{error}"
        );
        let path = dir.path().join("narrow.png");
        GrayImage::from_pixel(15, 200, Luma([7]))
            .save(&path)
            .unwrap();
        assert!(matches!(
            load_radiograph(&path).unwrap_err(),
            LoadError::TooSmall { .. }
        ));
    }

    #[test]
    fn enormous_header_fails_fast_without_allocating() {
        let dir = scratch_dir();
        let path = write(
            dir.path(),
            "enormous.png",
            &png_with_header(30_000, 30_000, &tiny_png_body()),
        );
        let started = Instant::now();
        let error = load_radiograph(&path).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(
                error,
                LoadError::TooLarge {
                    width: 30_000,
                    height: 30_000,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("30000×30000"), "{error}");

        // Under the side limit but over the pixel count.
        let path = write(
            dir.path(),
            "many_pixels.png",
            &png_with_header(16_000, 15_000, &tiny_png_body()),
        );
        assert!(matches!(
            load_radiograph(&path).unwrap_err(),
            LoadError::TooLarge { .. }
        ));

        let path = dir.path().join("enormous.dcm");
        let mut object = mono_object(30_000, 30_000, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(vec![0; 16])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        let started = Instant::now();
        let error = load_radiograph(&path).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
    }

    fn mono_object(
        rows: u16,
        columns: u16,
        bits_allocated: u16,
        bits_stored: u16,
        photometric: &str,
    ) -> InMemDicomObject {
        let mut object = InMemDicomObject::new_empty();
        object.put(DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(COMPUTED_RADIOGRAPHY_STORAGE),
        ));
        object.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.826.0.1.3680043.2.1125.1.1"),
        ));
        object.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(rows),
        ));
        object.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(columns),
        ));
        object.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        object.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(photometric),
        ));
        object.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(bits_allocated),
        ));
        object.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(bits_stored),
        ));
        object.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(bits_stored - 1),
        ));
        object.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
        object
    }

    fn put_decimal_pair(object: &mut InMemDicomObject, tag: Tag, first: &str, second: &str) {
        object.put(DataElement::new(
            tag,
            VR::DS,
            dicom_value!(Strs, [first, second]),
        ));
    }

    fn write_dicom(object: InMemDicomObject, transfer_syntax: &str, path: &Path) {
        object
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(transfer_syntax))
            .expect("a complete file meta group")
            .write_to_file(path)
            .expect("write DICOM file");
    }

    fn ramp_u16(rows: u16, columns: u16, maximum: u16) -> Vec<u16> {
        let count = usize::from(rows) * usize::from(columns);
        (0..count)
            .map(|index| (index * usize::from(maximum) / (count - 1)) as u16)
            .collect()
    }

    #[test]
    fn dicom_monochrome1_with_rescale_and_spacing_round_trips() {
        let dir = scratch_dir();
        let path = dir.path().join("mono1");
        let (rows, columns) = (20u16, 24u16);
        let stored = ramp_u16(rows, columns, 4095);
        let mut object = mono_object(rows, columns, 16, 12, "MONOCHROME1");
        object.put(DataElement::new(
            tags::RESCALE_SLOPE,
            VR::DS,
            PrimitiveValue::from("2"),
        ));
        object.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            PrimitiveValue::from("-100"),
        ));
        put_decimal_pair(&mut object, tags::PIXEL_SPACING, "0.2", "0.1");
        put_decimal_pair(&mut object, tags::IMAGER_PIXEL_SPACING, "0.25", "0.125");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(stored.clone())),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);

        let radiograph = load_radiograph(&path).unwrap();
        assert_eq!(radiograph.format, "dicom");
        assert_eq!((radiograph.width, radiograph.height), (24, 20));
        assert_eq!(
            radiograph.transfer_syntax.as_deref(),
            Some(EXPLICIT_VR_LITTLE_ENDIAN)
        );
        assert_eq!(
            radiograph.pixel_spacing,
            Some(PixelSpacing {
                row_mm: 0.2,
                column_mm: 0.1
            })
        );
        assert_eq!(radiograph.spacing_source, SpacingSource::PixelSpacing);
        // Rescaled range is [-100, 8090]; MONOCHROME1 maps v to -100 + 8090 - v.
        for (&loaded, &raw) in radiograph.pixels.iter().zip(&stored) {
            let rescaled = 2.0 * f64::from(raw) - 100.0;
            let expected = (-100.0 + 8090.0 - rescaled) as f32;
            assert_eq!(loaded, expected);
        }
        // Stored 0 (white in MONOCHROME1) is now the brightest value.
        assert_eq!(radiograph.pixels[0], 8090.0);
    }

    #[test]
    fn dicom_signed_monochrome2_keeps_negative_values() {
        let dir = scratch_dir();
        let path = dir.path().join("signed.dcm");
        let (rows, columns) = (16u16, 16u16);
        let values: Vec<i16> = (0..256).map(|i| (i as i16 - 128) * 16).collect();
        let mut object = mono_object(rows, columns, 16, 16, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::I16(C::from_vec(values.clone())),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);

        let radiograph = load_radiograph(&path).unwrap();
        let expected: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(radiograph.pixels, expected);
        assert_eq!(radiograph.spacing_source, SpacingSource::None);
    }

    #[test]
    fn dicom_without_pixel_data_is_reported_as_such() {
        let dir = scratch_dir();
        let path = dir.path().join("no_pixels.dcm");
        write_dicom(
            mono_object(64, 64, 16, 12, "MONOCHROME2"),
            EXPLICIT_VR_LITTLE_ENDIAN,
            &path,
        );
        let error = load_radiograph(&path).unwrap_err();
        assert!(matches!(error, LoadError::NoPixelData { .. }), "{error}");
        assert!(error.to_string().contains("no_pixels.dcm"));
    }

    #[test]
    fn invalid_pixel_spacing_falls_back_to_imager_pixel_spacing() {
        let dir = scratch_dir();
        let (rows, columns) = (16u16, 20u16);
        let with_spacing =
            |pixel_spacing: Option<(&str, &str)>, imager: Option<(&str, &str)>, name: &str| {
                let mut object = mono_object(rows, columns, 16, 12, "MONOCHROME2");
                if let Some((row, column)) = pixel_spacing {
                    put_decimal_pair(&mut object, tags::PIXEL_SPACING, row, column);
                }
                if let Some((row, column)) = imager {
                    put_decimal_pair(&mut object, tags::IMAGER_PIXEL_SPACING, row, column);
                }
                object.put(DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OW,
                    PrimitiveValue::U16(C::from_vec(ramp_u16(rows, columns, 4000))),
                ));
                let path = dir.path().join(name);
                write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
                let radiograph = load_radiograph(&path).unwrap();
                (radiograph.pixel_spacing, radiograph.spacing_source)
            };

        let imager = Some(PixelSpacing {
            row_mm: 0.15,
            column_mm: 0.16,
        });
        for (index, bad) in [("0", "0"), ("-0.1", "0.1"), ("abc", "0.1"), ("NaN", "0.2")]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                with_spacing(
                    Some(bad),
                    Some(("0.15", "0.16")),
                    &format!("bad{index}.dcm")
                ),
                (imager, SpacingSource::ImagerPixelSpacing),
                "PixelSpacing {bad:?}"
            );
        }
        assert_eq!(
            with_spacing(None, Some(("0.15", "0.16")), "imager_only.dcm"),
            (imager, SpacingSource::ImagerPixelSpacing)
        );
        assert_eq!(
            with_spacing(Some(("0", "0")), Some(("0", "0")), "neither.dcm"),
            (None, SpacingSource::None)
        );
        assert_eq!(
            with_spacing(None, None, "absent.dcm"),
            (None, SpacingSource::None)
        );
    }

    #[test]
    fn undecodable_transfer_syntax_is_named() {
        let dir = scratch_dir();
        let path = dir.path().join("jpeg_ls.dcm");
        let mut object = mono_object(32, 32, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PixelFragmentSequence::new_fragments(vec![vec![0xFFu8, 0xD8, 0xFF, 0xF7, 0, 0]]),
        ));
        write_dicom(object, JPEG_LS_LOSSLESS, &path);

        let error = load_radiograph(&path).unwrap_err();
        match &error {
            LoadError::UnsupportedTransferSyntax { uid, name, .. } => {
                assert_eq!(uid, JPEG_LS_LOSSLESS);
                assert!(name.contains("JPEG-LS"), "{name}");
            }
            other => panic!("expected UnsupportedTransferSyntax, got {other}"),
        }
        assert!(error
            .to_string()
            .contains("unsupported transfer syntax 1.2.840.10008.1.2.4.80 (JPEG-LS"));
    }

    #[test]
    fn unknown_transfer_syntax_is_named() {
        let dir = scratch_dir();
        let path = dir.path().join("unknown_ts.dcm");
        let mut object = mono_object(16, 16, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(vec![0; 256])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        // Swap the UID for an unregistered one of the same length, so every length field
        // stays right.
        let mut bytes = std::fs::read(&path).unwrap();
        let known = b"1.2.840.10008.1.2.1\0";
        let unknown = b"1.2.840.99999.1.2.1\0";
        let at = bytes
            .windows(known.len())
            .position(|window| window == known)
            .expect("transfer syntax UID in the meta group");
        bytes[at..at + unknown.len()].copy_from_slice(unknown);
        std::fs::write(&path, bytes).unwrap();

        let error = load_radiograph(&path).unwrap_err();
        match &error {
            LoadError::UnsupportedTransferSyntax { uid, name, .. } => {
                assert_eq!(uid, "1.2.840.99999.1.2.1");
                assert_eq!(name, "unknown transfer syntax");
            }
            other => panic!("expected UnsupportedTransferSyntax, got {other}"),
        }
        assert_eq!(error.path(), path);
    }

    #[test]
    fn multi_frame_dicom_yields_the_first_frame() {
        let dir = scratch_dir();
        let path = dir.path().join("two_frames.dcm");
        let (rows, columns) = (16u16, 18u16);
        let first = ramp_u16(rows, columns, 1000);
        let second = vec![4000u16; first.len()];
        let mut object = mono_object(rows, columns, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("2"),
        ));
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec([first.clone(), second].concat())),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);

        let radiograph = load_radiograph(&path).unwrap();
        let expected: Vec<f32> = first.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(radiograph.pixels, expected);
    }

    #[test]
    fn rgb_dicom_becomes_luma_in_either_planar_configuration() {
        let dir = scratch_dir();
        let (rows, columns) = (16u16, 16u16);
        let pixel_count = usize::from(rows) * usize::from(columns);
        let colour = |index: usize| -> [u8; 3] {
            [
                (index % 256) as u8,
                (index * 7 % 256) as u8,
                (255 - index % 256) as u8,
            ]
        };
        for planar in [0u16, 1] {
            let data: Vec<u8> = if planar == 0 {
                (0..pixel_count).flat_map(colour).collect()
            } else {
                (0..3)
                    .flat_map(|channel| (0..pixel_count).map(move |index| colour(index)[channel]))
                    .collect()
            };
            let mut object = mono_object(rows, columns, 8, 8, "RGB");
            object.put(DataElement::new(
                tags::SAMPLES_PER_PIXEL,
                VR::US,
                PrimitiveValue::from(3u16),
            ));
            object.put(DataElement::new(
                tags::PLANAR_CONFIGURATION,
                VR::US,
                PrimitiveValue::from(planar),
            ));
            object.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::U8(C::from_vec(data)),
            ));
            let path = dir.path().join(format!("rgb{planar}.dcm"));
            write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);

            let radiograph = load_radiograph(&path).unwrap();
            for (index, &value) in radiograph.pixels.iter().enumerate() {
                let [r, g, b] = colour(index).map(f64::from);
                let expected = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                assert!(
                    (f64::from(value) - expected).abs() < 1e-3,
                    "planar {planar}, pixel {index}: {value} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn tiny_dicom_is_too_small() {
        let dir = scratch_dir();
        let path = dir.path().join("tiny.dcm");
        let mut object = mono_object(4, 4, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(vec![0; 16])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        assert!(matches!(
            load_radiograph(&path).unwrap_err(),
            LoadError::TooSmall {
                width: 4,
                height: 4,
                ..
            }
        ));
    }

    #[test]
    fn corrupt_dicom_is_a_decode_error() {
        let dir = scratch_dir();
        let path = dir.path().join("good.dcm");
        let mut object = mono_object(32, 32, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(ramp_u16(32, 32, 4095))),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        let bytes = std::fs::read(&path).unwrap();

        // Cut inside the pixel data, inside the data set header, inside the meta group.
        for keep in [bytes.len() - 100, 300, 140] {
            let path = write(dir.path(), "cut.dcm", &bytes[..keep]);
            let error = load_radiograph(&path).unwrap_err();
            assert!(
                matches!(
                    error,
                    LoadError::Decode {
                        format: "dicom",
                        ..
                    }
                ),
                "kept {keep} bytes: {error}"
            );
        }

        // Pixel data shorter than Rows × Columns promise.
        let path = dir.path().join("short_pixels.dcm");
        let mut object = mono_object(32, 32, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(vec![1; 100])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        let error = load_radiograph(&path).unwrap_err();
        assert!(matches!(error, LoadError::Decode { .. }), "{error}");

        // Bits Stored larger than Bits Allocated.
        let path = dir.path().join("lying_bits.dcm");
        let mut object = mono_object(16, 16, 16, 12, "MONOCHROME2");
        object.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(20u16),
        ));
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(C::from_vec(vec![1; 256])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        let error = load_radiograph(&path).unwrap_err();
        assert!(matches!(error, LoadError::Decode { .. }), "{error}");
    }

    #[test]
    fn palette_colour_is_unsupported() {
        let dir = scratch_dir();
        let path = dir.path().join("palette.dcm");
        let mut object = mono_object(16, 16, 8, 8, "PALETTE COLOR");
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::U8(C::from_vec(vec![3; 256])),
        ));
        write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
        let error = load_radiograph(&path).unwrap_err();
        assert!(
            matches!(error, LoadError::UnsupportedPhotometric { .. }),
            "{error}"
        );
    }

    #[test]
    fn user_spacing_replaces_the_file_spacing() {
        let radiograph = Radiograph {
            width: 16,
            height: 16,
            pixels: vec![0.0; 256],
            pixel_spacing: None,
            spacing_source: SpacingSource::None,
            format: "png",
            transfer_syntax: None,
        };
        let spacing = PixelSpacing {
            row_mm: 0.3,
            column_mm: 0.3,
        };
        let radiograph = radiograph.with_user_spacing(spacing);
        assert_eq!(radiograph.pixel_spacing, Some(spacing));
        assert_eq!(radiograph.spacing_source, SpacingSource::User);
        assert_eq!(
            serde_json::to_value(SpacingSource::ImagerPixelSpacing).unwrap(),
            "imager_pixel_spacing"
        );
        assert_eq!(serde_json::to_value(SpacingSource::None).unwrap(), "none");
    }

    /// The shared NEMA radiographs: each must decode to a plausible image or be refused as an
    /// unsupported transfer syntax; any other error, or a panic, fails.
    #[test]
    fn shared_dicom_files_decode_or_are_cleanly_unsupported() {
        let folder = std::env::var_os("SAGITTA_SHARED_DICOM")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom"))
            });
        let Ok(entries) = std::fs::read_dir(&folder) else {
            println!(
                "note: {} not found, shared DICOM test skipped",
                folder.display()
            );
            return;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.is_file() && path.extension().is_none_or(|ext| ext == "dcm"))
            .collect();
        paths.sort();
        for path in &paths {
            let started = Instant::now();
            match load_radiograph(path) {
                Ok(radiograph) => {
                    let (low, high) = radiograph
                        .pixels
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                            (lo.min(v), hi.max(v))
                        });
                    println!(
                        "{}: {}×{} {:?} spacing {:?} ({:?}), values {low}..{high}, {:.2} s",
                        path.display(),
                        radiograph.width,
                        radiograph.height,
                        radiograph.transfer_syntax,
                        radiograph.pixel_spacing,
                        radiograph.spacing_source,
                        started.elapsed().as_secs_f64()
                    );
                    assert!(radiograph.width > MIN_SIDE && radiograph.height > MIN_SIDE);
                    assert_eq!(
                        radiograph.pixels.len(),
                        radiograph.width as usize * radiograph.height as usize
                    );
                    assert!(radiograph.pixels.iter().all(|v| v.is_finite()));
                    assert!(high > low, "{}: constant image", path.display());
                }
                Err(error @ LoadError::UnsupportedTransferSyntax { .. }) => {
                    println!("{error}");
                }
                Err(error) => panic!("{error}"),
            }
        }
    }
}
