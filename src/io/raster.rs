//! PNG, JPEG and TIFF through the `image` crate, from the file's bytes read once.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::codestream::jpeg_is_complete;
use super::guard::without_panics;
use super::{
    check_dimensions, decode_error, over_limit, with_causes, Format, LoadError, LoadLimits,
    Radiograph, SpacingSource, LUMA_WEIGHTS, MAX_SIDE,
};

pub(super) fn load_raster(
    path: &Path,
    format: Format,
    image_format: ImageFormat,
    bytes: &[u8],
    limits: &LoadLimits,
) -> Result<Radiograph, LoadError> {
    let reader = |image_limits: Limits| {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
        reader.limits(image_limits);
        reader
    };
    let image_error = |error: image::ImageError| match error {
        image::ImageError::IoError(cause) => decode_error(path, format, with_causes(&cause)),
        other => decode_error(path, format, with_causes(&other)),
    };

    // The header is read without size limits so that an oversized image is reported with
    // its size; the decoders allocate nothing for the pixels at this stage.
    let (width, height, decoded_bytes) = without_panics(path, format, || {
        let decoder = reader(Limits::default())
            .into_decoder()
            .map_err(image_error)?;
        let (width, height) = decoder.dimensions();
        Ok((width, height, decoder.total_bytes()))
    })?;
    check_dimensions(path, width.into(), height.into(), limits)?;
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(over_limit(
            path,
            format!(
                "decoding takes {decoded_bytes} bytes, over the limit of {} bytes",
                limits.max_decoded_bytes
            ),
        ));
    }
    if format == Format::Jpeg {
        jpeg_is_complete(bytes).map_err(|reason| decode_error(path, format, reason))?;
    }

    let image = without_panics(path, format, || {
        reader(raster_limits(limits))
            .decode()
            .map_err(|error| match error {
                image::ImageError::Limits(_) => over_limit(
                    path,
                    format!(
                        "the decoder needs more than the limit of {} bytes",
                        limits.max_decoded_bytes
                    ),
                ),
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
        dicom: None,
    })
}

fn raster_limits(limits: &LoadLimits) -> Limits {
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(MAX_SIDE);
    image_limits.max_image_height = Some(MAX_SIDE);
    image_limits.max_alloc = Some(limits.max_decoded_bytes);
    image_limits
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
