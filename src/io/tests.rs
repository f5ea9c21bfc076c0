use super::*;

use dicom_core::Tag;
use dicom_dictionary_std::tags;

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
        dicom: None,
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
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom")));
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

// Hostile inputs (issue 14): each must fail fast with one line, never abort, never allocate
// what the file does not hold.

/// A small valid DICOM (a 32×32 ramp) in the given transfer syntax, as bytes.
fn ramp_dicom(dir: &Path, transfer_syntax: &str) -> Vec<u8> {
    let path = dir.join("ramp.dcm");
    let mut object = mono_object(32, 32, 16, 12, "MONOCHROME2");
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_vec(ramp_u16(32, 32, 4095))),
    ));
    write_dicom(object, transfer_syntax, &path);
    std::fs::read(&path).unwrap()
}

/// Where the file meta group ends, from its group length (0002,0000).
fn meta_end(bytes: &[u8]) -> usize {
    assert_eq!(&bytes[132..136], &[2, 0, 0, 0], "group length first");
    144 + u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize
}

fn insert_after_meta(bytes: &[u8], inserted: &[u8]) -> Vec<u8> {
    let at = meta_end(bytes);
    [&bytes[..at], inserted, &bytes[at..]].concat()
}

fn element_header(group: u16, element: u16, vr: Option<&[u8; 2]>, length: u32) -> Vec<u8> {
    let mut header = group.to_le_bytes().to_vec();
    header.extend_from_slice(&element.to_le_bytes());
    if let Some(vr) = vr {
        header.extend_from_slice(vr);
        header.extend_from_slice(&[0, 0]);
    }
    header.extend_from_slice(&length.to_le_bytes());
    header
}

/// `depth` sequences (0008,1115), each holding one item that holds the next; undefined
/// lengths when `undefined`, else defined ones; explicit or implicit VR.
fn nested_sequences(depth: usize, undefined: bool, explicit: bool) -> Vec<u8> {
    let vr = explicit.then_some(b"SQ");
    if undefined {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend(element_header(0x0008, 0x1115, vr, u32::MAX));
            bytes.extend(element_header(0xFFFE, 0xE000, None, u32::MAX));
        }
        for _ in 0..depth {
            bytes.extend(element_header(0xFFFE, 0xE00D, None, 0));
            bytes.extend(element_header(0xFFFE, 0xE0DD, None, 0));
        }
        bytes
    } else {
        // Innermost first: an item holding one short string, then wrap it.
        let mut content = element_header(0x0008, 0x0100, None, 0);
        if explicit {
            content = [0x08, 0x00, 0x00, 0x01, b'S', b'H', 2, 0].to_vec();
        } else {
            content[4..8].copy_from_slice(&2u32.to_le_bytes());
        }
        content.extend_from_slice(b"AB");
        for _ in 0..depth {
            let mut item = element_header(0xFFFE, 0xE000, None, content.len() as u32);
            item.extend_from_slice(&content);
            let mut sequence = element_header(0x0008, 0x1115, vr, item.len() as u32);
            sequence.extend_from_slice(&item);
            content = sequence;
        }
        content
    }
}

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

#[test]
fn thousands_of_nested_sequences_fail_fast_without_overflowing_the_stack() {
    let dir = scratch_dir();
    for (explicit, syntax) in [
        (true, EXPLICIT_VR_LITTLE_ENDIAN),
        (false, IMPLICIT_VR_LITTLE_ENDIAN),
    ] {
        let good = ramp_dicom(dir.path(), syntax);
        for undefined in [true, false] {
            let hostile = insert_after_meta(&good, &nested_sequences(2000, undefined, explicit));
            let path = write(dir.path(), "nested.dcm", &hostile);
            let started = Instant::now();
            let error = load_radiograph(&path).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(
                error
                    .to_string()
                    .contains("sequences nested deeper than 16 levels"),
                "explicit {explicit}, undefined {undefined}: {error}"
            );
        }
    }
}

#[test]
fn shallow_nested_sequences_still_load() {
    let dir = scratch_dir();
    for (explicit, syntax) in [
        (true, EXPLICIT_VR_LITTLE_ENDIAN),
        (false, IMPLICIT_VR_LITTLE_ENDIAN),
    ] {
        let good = ramp_dicom(dir.path(), syntax);
        for undefined in [true, false] {
            let nested = insert_after_meta(&good, &nested_sequences(5, undefined, explicit));
            let path = write(dir.path(), "nested5.dcm", &nested);
            let radiograph = load_radiograph(&path).unwrap_or_else(|error| {
                panic!("explicit {explicit}, undefined {undefined}: {error}")
            });
            assert_eq!((radiograph.width, radiograph.height), (32, 32));
        }
    }
}

#[test]
fn huge_pixel_data_length_is_refused_before_any_allocation() {
    let dir = scratch_dir();
    let mut bytes = ramp_dicom(dir.path(), EXPLICIT_VR_LITTLE_ENDIAN);
    let header = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = bytes
        .windows(header.len())
        .rposition(|window| window == header)
        .expect("Pixel Data header");
    bytes[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let path = write(dir.path(), "huge_length.dcm", &bytes);
    let started = Instant::now();
    let error = load_radiograph(&path).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        error.to_string().contains("element (7FE0,0010) at byte ")
            && error.to_string().contains("claims 4294967280 bytes"),
        "{error}"
    );
}

#[test]
fn private_element_with_a_huge_length_is_refused() {
    let dir = scratch_dir();
    let good = ramp_dicom(dir.path(), EXPLICIT_VR_LITTLE_ENDIAN);
    let mut private = element_header(0x0009, 0x1001, Some(b"OB"), 0xFFFF_FFF0);
    private.extend_from_slice(&[7; 64]);
    let path = write(
        dir.path(),
        "private.dcm",
        &insert_after_meta(&good, &private),
    );
    let started = Instant::now();
    let error = load_radiograph(&path).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(error, LoadError::Decode { .. }), "{error}");
    assert!(error.to_string().contains("(0009,1001)"), "{error}");

    // An item longer than its sequence.
    let mut item_in_sequence = element_header(0x0008, 0x1115, Some(b"SQ"), 16);
    item_in_sequence.extend(element_header(0xFFFE, 0xE000, None, 1000));
    item_in_sequence.extend_from_slice(&[0; 8]);
    let path = write(
        dir.path(),
        "long_item.dcm",
        &insert_after_meta(&good, &item_in_sequence),
    );
    let error = load_radiograph(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("remain in the enclosing item or sequence"),
        "{error}"
    );
}

#[test]
fn too_many_elements_are_refused() {
    let dir = scratch_dir();
    let good = ramp_dicom(dir.path(), EXPLICIT_VR_LITTLE_ENDIAN);
    // 150,000 empty private elements: 1.2 MB.
    let many: Vec<u8> = (0..150_000)
        .flat_map(|_| [0x09, 0x00, 0x00, 0x10, b'L', b'O', 0, 0])
        .collect();
    let path = write(dir.path(), "many.dcm", &insert_after_meta(&good, &many));
    let error = load_radiograph(&path).unwrap_err();
    assert!(
        error.to_string().contains("more than 100000 elements"),
        "{error}"
    );
}

#[test]
fn limits_are_the_callers() {
    let dir = scratch_dir();
    let bytes = ramp_dicom(dir.path(), EXPLICIT_VR_LITTLE_ENDIAN);
    let path = write(dir.path(), "ramp.dcm", &bytes);
    let loads = |limits: LoadLimits| load_radiograph_with(&path, &limits);
    assert!(loads(LoadLimits::default()).is_ok());
    let error = loads(LoadLimits {
        max_file_bytes: 1000,
        ..LoadLimits::default()
    })
    .unwrap_err();
    assert!(matches!(error, LoadError::OverLimit { .. }), "{error}");
    assert!(error.to_string().contains("over the limit of 1000 bytes"));
    let error = loads(LoadLimits {
        max_pixels: 1000,
        ..LoadLimits::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::TooLarge {
                max_pixels: 1000,
                ..
            }
        ),
        "{error}"
    );
    let error = loads(LoadLimits {
        max_decoded_bytes: 2047,
        ..LoadLimits::default()
    })
    .unwrap_err();
    assert!(matches!(error, LoadError::OverLimit { .. }), "{error}");
    assert!(error.to_string().contains("2048 bytes"), "{error}");

    let png = dir.path().join("ramp.png");
    GrayImage::from_fn(40, 30, |x, y| Luma([gradient(40, 30, x, y)]))
        .save(&png)
        .unwrap();
    let error = load_radiograph_with(
        &png,
        &LoadLimits {
            max_decoded_bytes: 1000,
            ..LoadLimits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(error, LoadError::OverLimit { .. }), "{error}");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_by_its_type_without_blocking() {
    let dir = scratch_dir();
    let fifo = dir.path().join("fifo.png");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        println!("note: mkfifo not available, FIFO test skipped");
        return;
    }
    let error = load_radiograph(&fifo).unwrap_err();
    assert!(
        error.to_string().contains("not a regular file (a FIFO)"),
        "{error}"
    );
    let error = load_radiograph(dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not a regular file (a directory)"),
        "{error}"
    );
}

#[test]
fn jpeg_cut_in_half_is_a_decode_error() {
    let dir = scratch_dir();
    let (width, height) = (128, 96);
    let image = GrayImage::from_fn(width, height, |x, y| Luma([((x * x + y * 3) % 251) as u8]));
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 90)
        .encode_image(&image)
        .unwrap();
    let path = write(dir.path(), "whole.jpg", &encoded);
    load_radiograph(&path).unwrap();
    let path = write(dir.path(), "half.jpg", &encoded[..encoded.len() / 2]);
    let error = load_radiograph(&path).unwrap_err();
    assert!(
        matches!(error, LoadError::Decode { format: "jpeg", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn blank_and_constant_images_are_not_analysed() {
    let dir = scratch_dir();
    let path = dir.path().join("grey.png");
    GrayImage::from_pixel(64, 64, Luma([128]))
        .save(&path)
        .unwrap();
    let error = load_radiograph(&path).unwrap_err();
    assert!(matches!(error, LoadError::Blank { .. }), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("image is blank, not analysed: every pixel has the value 128"),
        "{error}"
    );

    let path = dir.path().join("black.dcm");
    let mut object = mono_object(64, 64, 16, 12, "MONOCHROME2");
    let mut pixels = vec![0u16; 64 * 64];
    pixels[100] = 4000;
    pixels[2000] = 3000;
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_vec(pixels)),
    ));
    write_dicom(object, EXPLICIT_VR_LITTLE_ENDIAN, &path);
    let error = load_radiograph(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("99.95% of the pixels have the value 0"),
        "{error}"
    );
}

fn shared_dicom(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom")).join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            println!("note: {} not found, test skipped", path.display());
            None
        }
    }
}

/// Rows doubled in the header of a compressed DICOM: the decoders would fill the bottom half
/// with zeros, the codestream's own header says otherwise.
#[test]
fn doubled_rows_in_a_compressed_dicom_contradict_the_codestream() {
    let dir = scratch_dir();
    for name in ["RG2_JPLL", "RG3_J2KR", "RG1_J2KI.dcm"] {
        let Some(mut bytes) = shared_dicom(name) else {
            continue;
        };
        let rows_header = [0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0];
        let at = bytes
            .windows(rows_header.len())
            .position(|window| window == rows_header)
            .expect("Rows in explicit VR little endian")
            + rows_header.len();
        let rows = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        bytes[at..at + 2].copy_from_slice(&(rows * 2).to_le_bytes());
        let path = write(dir.path(), name, &bytes);
        let error = load_radiograph(&path).unwrap_err();
        println!("{error}");
        assert!(
            matches!(error, LoadError::Decode { .. })
                && error
                    .to_string()
                    .contains(&format!("×{} px but the JPEG", rows * 2))
                && error.to_string().contains("codestream is"),
            "{name}: {error}"
        );
    }
}

/// Issue 10, item 5: the hand decoding against dicom-pixeldata's own pipeline on the NEMA films.
/// Grey values: its modality LUT (`to_vec_frame`, photometric ignored) must give ours, mirrored
/// for MONOCHROME1 (its own MONOCHROME1 inversion exists only for windowed 8/16-bit images, not
/// for raw values, which is what the model needs). Window: its VOI LUT on an 8-bit image must
/// match [`VoiWindow::apply`] on our values within one 8-bit grey level.
#[test]
fn decoding_and_windowing_agree_with_dicom_pixeldata_on_the_nema_films() {
    use dicom_pixeldata::{BitDepthOption, ConvertOptions, PixelDecoder, VoiLutOption};
    let folder = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom"));
    let mut compared = 0;
    for name in ["RG1_J2KI.dcm", "RG2_UNC", "RG2_RLE", "RG3_J2KR"] {
        let path = folder.join(name);
        if !path.is_file() {
            println!("note: {} not found, skipped", path.display());
            continue;
        }
        let ours = load_radiograph(&path).unwrap();
        let object = dicom_object::open_file(&path).unwrap();
        let decoded = object.decode_pixel_data().unwrap();
        let theirs: Vec<f32> = decoded.to_vec_frame(0).unwrap();
        assert_eq!(theirs.len(), ours.pixels.len(), "{name}");
        let monochrome1 = decoded.photometric_interpretation().to_string() == "MONOCHROME1";
        // MONOCHROME1: ours = S − theirs for one constant S.
        let offset = if monochrome1 {
            f64::from(ours.pixels[0]) + f64::from(theirs[0])
        } else {
            0.0
        };
        let worst = ours
            .pixels
            .iter()
            .zip(&theirs)
            .map(|(&o, &t)| {
                let expected = if monochrome1 {
                    offset - f64::from(t)
                } else {
                    f64::from(t)
                };
                (f64::from(o) - expected).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst <= 1e-3, "{name}: grey values differ by {worst}");

        let window = ours.dicom.as_ref().and_then(|d| d.window).unwrap();
        let windowed: Vec<u16> = match decoded.to_vec_frame_with_options(
            0,
            &ConvertOptions::new()
                .with_voi_lut(VoiLutOption::First)
                .with_bit_depth(BitDepthOption::Force8Bit),
        ) {
            Ok(windowed) => windowed,
            Err(error) => {
                // dicom-pixeldata 0.10 refuses some windows its 8-bit LUT cannot hold
                // (RG1_J2KI: a LUT value above 255); ours has no such limit.
                let error = error.to_string();
                println!("{name}: grey values agree; dicom-pixeldata's VOI LUT fails: {error}");
                continue;
            }
        };
        let (low, high) = windowed
            .iter()
            .fold((u16::MAX, 0u16), |(l, h), &v| (l.min(v), h.max(v)));
        let bits = decoded.bits_stored();
        println!("{name}: their windowed values {low}..{high} ({bits} bits stored)");
        let mut largest = 0i32;
        for (index, &value) in ours.pixels.iter().enumerate().step_by(97) {
            let display = window.apply(f64::from(value));
            // Their VOI output is not inverted for MONOCHROME1 (photometric ignored).
            let display = if monochrome1 { 1.0 - display } else { display };
            let mine = (display * 65535.0).round() as i32;
            let theirs = i32::from(windowed[index]);
            largest = largest.max((mine - theirs).abs());
        }
        // One 8-bit grey level is 257 of these 16-bit ones.
        assert!(
            largest <= 257,
            "{name}: windowed grey differs by {largest} of 65535"
        );
        println!("{name}: largest windowed difference {largest} of 65535");
        println!("{name}: MONOCHROME1 {monochrome1}, window {window:?}: agrees");
        compared += 1;
    }
    let present = ["RG2_UNC", "RG3_J2KR"]
        .iter()
        .filter(|name| folder.join(name).is_file())
        .count();
    assert!(compared >= present, "{compared} windows compared");
}
