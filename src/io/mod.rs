//! Loading a radiograph from disk: PNG, JPEG, TIFF or DICOM, into one grey channel.
//!
//! The format is recognised from the file's first bytes, never from its name: the NEMA test
//! files have no extension, and some DICOM files carry a TIFF header in their preamble.
//!
//! Pixel values are kept as raw intensities (after the DICOM modality rescale), not windowed
//! or normalised: the model standardises the image itself. DICOM `MONOCHROME1` is inverted so
//! that bone is bright in every image this module returns.
//!
//! Hostile or broken files fail with one line, without taking the process down:
//! - only regular files are read, and only up to [`LoadLimits::max_file_bytes`];
//! - a DICOM file's element stream is walked first (`bounds`): lengths past the end of the
//!   file or of their item, deep nesting and huge element counts are refused before dicom-rs
//!   parses it;
//! - sizes are checked from the header (and a compressed frame's own codestream header)
//!   before the pixels are decoded, against [`LoadLimits`];
//! - decoding runs on a thread with a large stack, where a decoder's panic becomes an error
//!   and prints nothing (`guard`);
//! - a JPEG cut short, and an image that decodes blank or constant (`sanity`), are errors.

mod bounds;
mod codestream;
mod dicom;
mod guard;
mod raster;
mod sanity;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use image::ImageFormat;
use serde::Serialize;

use crate::measure::PixelSpacing;
use crate::util::LUMA_WEIGHTS;

/// Images narrower or shorter than this cannot hold a cervical spine worth measuring.
pub const MIN_SIDE: u32 = 16;
/// The largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16384;
/// The default largest pixel count (50 megapixels: a 43×43 cm detector at 0.06 mm). Its
/// decoded grey values alone take 200 MB.
pub const MAX_PIXELS: u64 = 50_000_000;
/// The default largest input file (256 MiB: an uncompressed 16-bit image of 130 megapixels).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// The default largest decoder output for one image (256 MiB: 50 megapixels at 16-bit grey or
/// 8-bit RGB fit, 16-bit RGBA at that size does not).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Bytes needed to recognise every supported format: DICOM's magic sits after a 128-byte
/// preamble.
const SNIFF_LENGTH: usize = 132;
const DICOM_PREAMBLE_LENGTH: usize = 128;

/// How much memory one image may take while it is loaded. The defaults keep the peak
/// resident size of a load under 1 GiB: the file (DICOM is held in memory whole), the
/// decoder's output and the grey values (4 bytes a pixel) together stay under about 700 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest width × height; checked from the header before decoding.
    pub max_pixels: u64,
    /// Largest file; checked from its metadata before it is read.
    pub max_file_bytes: u64,
    /// Largest decoder output for one image or frame (pixels × samples × bytes per sample),
    /// computed from the header before decoding.
    pub max_decoded_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_pixels: MAX_PIXELS,
            max_file_bytes: MAX_FILE_BYTES,
            max_decoded_bytes: MAX_DECODED_BYTES,
        }
    }
}

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
    /// What the DICOM header says about the image; `None` for other formats.
    pub dicom: Option<DicomAttributes>,
}

/// The DICOM attributes a report needs: identity (to file results back to the PACS), what the
/// image shows (to refuse what is not a lateral cervical radiograph) and its display window.
/// Each is `None` when absent or empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DicomAttributes {
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// Modality (0008,0060): CR, DX, ...
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015): CSPINE, NECK, CHEST, ...
    pub body_part_examined: Option<String>,
    /// View Position (0018,5101): LL, RL, AP, PA, ...
    pub view_position: Option<String>,
    /// The first VOI window (Window Center/Width, 0028,1050/1051), in the units of
    /// [`Radiograph::pixels`] (after the rescale, and mirrored for `MONOCHROME1` so that it
    /// applies to the bone-bright values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<VoiWindow>,
    /// How [`Radiograph::pixels`] came from the stored values (one-sample images; `None` for
    /// colour): what a viewer that shows the stored values as a texture gives the model's
    /// texture input (`GreyTransform`) to get the same grey values.
    #[serde(skip)]
    pub stored_to_grey: Option<StoredToGrey>,
    /// What a DICOM result object (the SR) needs to file under the source's study. Never in
    /// the JSON record: it holds the patient's name, ID and birth date (PHI), which only the
    /// objects that go back to that patient's study may carry.
    #[serde(skip)]
    pub source: SourceIdentity,
    /// The patient's name, ID and birth date, only when the caller asks for them (the
    /// command line's `--include-phi`); absent from the record otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientIdentity>,
}

/// Protected health information a record carries only on request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PatientIdentity {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
}

impl DicomAttributes {
    /// Adds the patient's name, ID and birth date to what the record shows.
    pub fn reveal_patient(&mut self) {
        self.patient = Some(PatientIdentity {
            patient_name: self.source.patient_name.clone(),
            patient_id: self.source.patient_id.clone(),
            patient_birth_date: self.source.patient_birth_date.clone(),
        });
    }
}

/// The source instance's SOP Class, frame count, and its Patient and General Study module
/// attributes, verbatim (each `None` when absent or empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceIdentity {
    pub sop_class_uid: Option<String>,
    /// Number of Frames (0028,0008); `None` for single-frame objects without it.
    pub number_of_frames: Option<u64>,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_description: Option<String>,
    /// Laterality (0020,0060) of the source's series: the result images and presentation
    /// states describe the same side.
    pub laterality: Option<String>,
}

/// grey = slope × stored + intercept (the modality rescale, identity when absent or unusable),
/// then for `MONOCHROME1` grey = mirror_sum − grey, computed in f64 and rounded to f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredToGrey {
    pub slope: f64,
    pub intercept: f64,
    pub mirror_sum: Option<f64>,
}

/// A linear VOI window (DICOM PS3.3 C.11.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VoiWindow {
    pub center: f64,
    pub width: f64,
}

impl VoiWindow {
    /// The display value in [0, 1] of `value` (the standard's linear function, with the
    /// output range 0..1).
    pub fn apply(&self, value: f64) -> f64 {
        let (center, width) = (self.center - 0.5, self.width - 1.0);
        if width <= 0.0 {
            return if value <= center { 0.0 } else { 1.0 };
        }
        ((value - center) / width + 0.5).clamp(0.0, 1.0)
    }
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
    /// Also a path that is not a regular file (a directory, FIFO or device), refused by its
    /// type before anything is read.
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
        "{}: image is {width}×{height} px, over the limit of {MAX_SIDE} px a side and {max_pixels} pixels",
        .path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
        max_pixels: u64,
    },
    /// The file, or what decoding it would allocate, is over a [`LoadLimits`] ceiling.
    #[error("{}: over the memory limit: {what}", .path.display())]
    OverLimit { path: PathBuf, what: String },
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
    /// The image decoded, but holds nothing to analyse: blank, constant or nearly so.
    #[error("{}: image is blank, not analysed: {reason}", .path.display())]
    Blank { path: PathBuf, reason: String },
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
            | LoadError::OverLimit { path, .. }
            | LoadError::NoPixelData { path }
            | LoadError::UnsupportedTransferSyntax { path, .. }
            | LoadError::UnsupportedPhotometric { path, .. }
            | LoadError::Blank { path, .. } => path,
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

/// Loads a radiograph, recognising PNG, JPEG, TIFF and DICOM by content, within the default
/// [`LoadLimits`].
pub fn load_radiograph(path: &Path) -> Result<Radiograph, LoadError> {
    load_radiograph_with(path, &LoadLimits::default())
}

/// Loads a radiograph within the given memory limits.
pub fn load_radiograph_with(path: &Path, limits: &LoadLimits) -> Result<Radiograph, LoadError> {
    // By type first: opening a FIFO would block, reading a device would never end.
    let metadata = std::fs::metadata(path).map_err(|cause| io_error(path, cause))?;
    if !metadata.is_file() {
        return Err(LoadError::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a regular file ({})", file_kind(&metadata.file_type())),
            ),
        });
    }
    let length = metadata.len();
    if length == 0 {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    if length > limits.max_file_bytes {
        return Err(over_limit(
            path,
            format!(
                "file is {length} bytes, over the limit of {} bytes",
                limits.max_file_bytes
            ),
        ));
    }
    let mut file = open(path)?;
    let mut head = Vec::with_capacity(SNIFF_LENGTH);
    (&mut file)
        .take(SNIFF_LENGTH as u64)
        .read_to_end(&mut head)
        .map_err(|cause| io_error(path, cause))?;
    let format = Format::sniff(&head).ok_or_else(|| LoadError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let radiograph = guard::on_decoder_thread(path, format, || match format {
        Format::Dicom => dicom::load_dicom(path, file, length, limits),
        Format::Png | Format::Jpeg | Format::Tiff => {
            let image_format = match format {
                Format::Png => ImageFormat::Png,
                Format::Jpeg => ImageFormat::Jpeg,
                _ => ImageFormat::Tiff,
            };
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|file| file.take(limits.max_file_bytes).read_to_end(&mut bytes))
                .map_err(|cause| io_error(path, cause))?;
            raster::load_raster(path, format, image_format, &bytes, limits)
        }
    })?;
    if let Some(reason) = sanity::blank_reason(&radiograph.pixels) {
        return Err(LoadError::Blank {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(radiograph)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

fn over_limit(path: &Path, what: String) -> LoadError {
    LoadError::OverLimit {
        path: path.to_path_buf(),
        what,
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

fn check_dimensions(
    path: &Path,
    width: u64,
    height: u64,
    limits: &LoadLimits,
) -> Result<(), LoadError> {
    if width > u64::from(MAX_SIDE)
        || height > u64::from(MAX_SIDE)
        || width.saturating_mul(height) > limits.max_pixels
    {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels: limits.max_pixels,
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
