//! `sagitta analyze` end to end: the built binary on small generated radiographs with the tiny
//! random-weights fixture model (its numbers mean nothing; the formats, files, errors and exit
//! codes are what is tested), plus the library API on the same inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dicom_core::value::PixelFragmentSequence;
use dicom_core::{dicom_value, DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use image::{GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};
use serde_json::Value;

use sagitta::api::Analyzer;
use sagitta::io::load_radiograph;
use sagitta::measure::{LANDMARK_NAMES, PARAMETER_NAMES};
use sagitta::models::cervical::CERVICAL_ARCH;
use sagitta::models::csm::{CsmModel, CSM_ARCH};
use sagitta::report::{csv_header, Record};
use sagitta::GreyImage;
use sagitta::WeightFile;

const FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cervical_small_f32.safetensors"
);
const CSM_FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/csm_small_f32.safetensors"
);
const WHOLESPINE_FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/wholespine_small_f32.safetensors"
);
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const COMPUTED_RADIOGRAPHY_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sagitta-analyze-test")
        .tempdir()
        .expect("a temporary directory")
}

/// The binary, with the weights chosen by each test alone (no inherited SAGITTA_WEIGHTS).
fn sagitta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .arg("analyze")
        .args(args)
        .env_remove("SAGITTA_WEIGHTS")
        .env_remove("SAGITTA_CSM_WEIGHTS")
        .output()
        .expect("run the sagitta binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}):\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

/// The one record of a one-image run: stdout is always an array, here of one element.
fn single_record(output: &Output) -> Value {
    let records = json(output);
    let array = records
        .as_array()
        .unwrap_or_else(|| panic!("stdout is not a JSON array: {records}"));
    assert_eq!(array.len(), 1, "{records}");
    array[0].clone()
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// A lateral-radiograph-like picture: dark background, a bright column of "vertebrae".
fn phantom(width: u32, height: u32) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| {
        let column = (x as i64 - width as i64 / 2).abs() < width as i64 / 8;
        let body = (y * 8 / height).is_multiple_of(2);
        let base = 30 + (x * 40 / width) as u8;
        Luma([if column && body { 220 } else { base }])
    })
}

fn write_png(path: &Path, width: u32, height: u32) {
    phantom(width, height)
        .save_with_format(path, ImageFormat::Png)
        .expect("write PNG");
}

/// Standard CRC-32 (the one PNG chunks carry), so that edited headers stay well-formed.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG whose IHDR then claims `width`×`height` (with a correct CRC): the data behind
/// it no longer matches.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = Vec::new();
    phantom(20, 20)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .expect("encode PNG");
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn mono_dicom(rows: u16, columns: u16) -> InMemDicomObject {
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(COMPUTED_RADIOGRAPHY_STORAGE),
    );
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("1.2.826.0.1.3680043.2.1125.7.7"),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns));
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    object
}

fn with_phantom_pixels(mut object: InMemDicomObject, rows: u16, columns: u16) -> InMemDicomObject {
    let picture = phantom(u32::from(columns), u32::from(rows));
    let samples: Vec<u16> = picture.pixels().map(|p| u16::from(p.0[0]) * 16).collect();
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(samples.into()),
    ));
    object
}

fn write_dicom(object: InMemDicomObject, transfer_syntax: &str, path: &Path) {
    object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(transfer_syntax))
        .expect("a complete file meta group")
        .write_to_file(path)
        .expect("write DICOM");
}

fn assert_valid_record(record: &Value) {
    let landmarks = record["landmarks"].as_array().expect("landmarks");
    assert_eq!(landmarks.len(), 29);
    for (landmark, name) in landmarks.iter().zip(LANDMARK_NAMES) {
        assert_eq!(landmark["name"], name);
        assert!(
            landmark["x"].is_f64() && landmark["y"].is_f64(),
            "{landmark}"
        );
        assert!(landmark["sd_px"].as_f64().unwrap() >= 0.0);
        let confidence = landmark["confidence"].as_f64().expect("confidence");
        assert!(confidence > 0.0 && confidence <= 1.0, "{confidence}");
    }
    let refined = landmarks
        .iter()
        .filter(|landmark| landmark["source"] == "refined")
        .count();
    let global = landmarks
        .iter()
        .filter(|landmark| landmark["source"] == "global")
        .count();
    assert_eq!((refined, global), (24, 5));
    let parameters = record["parameters"].as_array().expect("parameters");
    assert_eq!(parameters.len(), 9, "{record}");
    let distance_unit = record["distance_unit"].as_str().unwrap();
    for (parameter, name) in parameters.iter().zip(PARAMETER_NAMES) {
        assert_eq!(parameter["name"], name);
        assert!(parameter["value"].as_f64().unwrap().is_finite());
        let expected_unit = if name == "cSVA" || name == "RJD" {
            distance_unit
        } else {
            "deg"
        };
        assert_eq!(parameter["unit"], expected_unit, "{name}");
        assert!(!parameter["convention"].as_str().unwrap().is_empty());
    }
    assert!(["left", "right"].contains(&record["facing"].as_str().unwrap()));
    assert!(record["pixel_convention"]
        .as_str()
        .unwrap()
        .contains("top-left pixel is (0, 0)"));
    let model = &record["model"];
    assert_eq!(model["input_size"], 128);
    assert_eq!(model["dtype"], "f32");
    assert_eq!(model["sha256"].as_str().unwrap().len(), 64);
    assert!(model["weights"]
        .as_str()
        .unwrap()
        .ends_with("cervical_small_f32.safetensors"));
    assert!(!record["adapter"].as_str().unwrap().is_empty());
    let timing = &record["timing_ms"];
    for key in ["load", "inference", "total"] {
        assert!(timing[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    assert!(timing["total"].as_f64() >= timing["inference"].as_f64());
}

fn warnings(record: &Value) -> Vec<String> {
    record["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|warning| warning.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn single_png_prints_one_json_record() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 160, 200);
    let output = sagitta(&[path_str(&image), "--weights", FIXTURE_WEIGHTS]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_valid_record(&record);
    assert_eq!(record["image"], path_str(&image));
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(160), Some(200))
    );
    assert_eq!(record["format"], "png");
    assert!(record["transfer_syntax"].is_null());
    assert!(record["pixel_spacing"].is_null());
    assert_eq!(record["spacing_source"], "none");
    assert_eq!(record["distance_unit"], "px");
    let warnings = warnings(&record);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("distances are in pixels")),
        "{warnings:?}"
    );
    // Random weights give diffuse heatmaps: the record must say the numbers are unreliable.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("may not be a lateral cervical radiograph")),
        "{warnings:?}"
    );
    // One image: no progress bar and no batch summary.
    assert!(!text(&output.stderr).contains("image(s) in"));
}

#[test]
fn pixel_spacing_option_gives_millimetres_from_the_user() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    let overlay = dir.path().join("drawn/neck_overlay.png");
    std::fs::create_dir_all(overlay.parent().unwrap()).unwrap();
    write_png(&image, 150, 130);
    let output = sagitta(&[
        path_str(&image),
        "--weights",
        FIXTURE_WEIGHTS,
        "--pixel-spacing",
        "0.15",
        "--overlay",
        path_str(&overlay),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_valid_record(&record);
    assert_eq!(record["spacing_source"], "user");
    assert_eq!(record["distance_unit"], "mm");
    assert_eq!(record["pixel_spacing"]["row_mm"], 0.15);
    assert_eq!(record["pixel_spacing"]["column_mm"], 0.15);
    assert!(!warnings(&record).iter().any(|w| w.contains("pixels")));
    let drawn = image::open(&overlay).expect("the overlay decodes");
    assert_eq!((drawn.width(), drawn.height()), (150, 130));

    let refused = sagitta(&[path_str(&image), "--pixel-spacing", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("pixel spacing"));
}

#[test]
fn folder_batch_writes_json_csv_and_overlays() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(inputs.join("a")).unwrap();
    std::fs::create_dir_all(inputs.join("b/deeper")).unwrap();
    std::fs::create_dir_all(inputs.join(".cache")).unwrap();
    write_png(&inputs.join("a/same.png"), 140, 170);
    write_png(&inputs.join("b/same.png"), 170, 140);
    // 16-bit grey TIFF and an RGB JPEG, both reduced to grey.
    let wide: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(180, 150, |x, y| Luma([((x * 300 + y * 20) % 65536) as u16]));
    wide.save_with_format(inputs.join("b/deeper/wide.tif"), ImageFormat::Tiff)
        .unwrap();
    let colour = RgbImage::from_fn(150, 150, |x, y| Rgb([x as u8, y as u8, 90]));
    colour
        .save_with_format(inputs.join("colour.jpg"), ImageFormat::Jpeg)
        .unwrap();
    // Passed over: hidden files and folders, and files that are not images.
    write_png(&inputs.join(".cache/hidden.png"), 64, 64);
    std::fs::write(inputs.join("notes.txt"), "not an image").unwrap();

    let out = dir.path().join("out");
    let csv = out.join("all.csv");
    let output = sagitta(&[
        path_str(&inputs),
        "--weights",
        FIXTURE_WEIGHTS,
        "--out",
        path_str(&out),
        "--csv",
        path_str(&csv),
        "--overlay",
        path_str(&out),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(output.stdout.is_empty(), "records go to --out, not stdout");
    assert!(
        stderr.contains("4 image(s) in") && stderr.contains("1 non-image file(s) passed over"),
        "{stderr}"
    );

    // Name order: a/same.png, b/deeper/wide.tif, b/same.png, colour.jpg; the second "same"
    // gets a unique name.
    let expected = [
        ("same", "a/same.png", (140, 170)),
        ("wide", "b/deeper/wide.tif", (180, 150)),
        ("same-2", "b/same.png", (170, 140)),
        ("colour", "colour.jpg", (150, 150)),
    ];
    for (stem, source, (width, height)) in expected {
        let record = read_json(&out.join(format!("{stem}.json")));
        assert_valid_record(&record);
        assert_eq!(record["image"], path_str(&inputs.join(source)));
        let overlay = image::open(out.join(format!("{stem}.png"))).expect("overlay decodes");
        assert_eq!(
            (overlay.width(), overlay.height()),
            (width, height),
            "{stem}"
        );
    }
    assert!(!out.join("hidden.json").exists());

    let table = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert_eq!(lines[0], csv_header().join(","));
    assert!(lines[0].starts_with("image,status,facing,distance_unit,C2-C7 (deg),C2-C7 status"));
    assert!(lines[0].contains(",cSVA (mm),cSVA (px),cSVA status,RJD (mm),RJD (px),RJD status,"));
    assert!(lines[0].ends_with(",median_confidence,warning_codes,warnings,error"));
    for line in &lines[1..] {
        // Analysed (the test images are not spines, so their values are flagged).
        assert!(
            line.contains(",flagged,") || line.contains(",ok,"),
            "{line}"
        );
        assert!(line.contains(",px,"), "{line}");
    }
    assert!(lines[1].starts_with(path_str(&inputs.join("a/same.png"))));
}

#[test]
fn bad_inputs_get_one_line_errors_and_the_batch_goes_on() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    write_png(&inputs.join("good.png"), 150, 150);
    std::fs::write(inputs.join("empty.png"), b"").unwrap();
    let mut whole = Vec::new();
    phantom(200, 200)
        .write_to(&mut std::io::Cursor::new(&mut whole), ImageFormat::Png)
        .unwrap();
    std::fs::write(inputs.join("truncated.png"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(
        inputs.join("words.png"),
        b"this is a text file, not a picture",
    )
    .unwrap();
    std::fs::write(inputs.join("lying.png"), png_claiming(2000, 1500)).unwrap();
    std::fs::write(inputs.join("huge.png"), png_claiming(30_000, 30_000)).unwrap();
    GrayImage::from_pixel(1, 1, Luma([7]))
        .save_with_format(inputs.join("dot.png"), ImageFormat::Png)
        .unwrap();
    write_dicom(
        mono_dicom(64, 64),
        EXPLICIT_VR_LITTLE_ENDIAN,
        &inputs.join("no_pixels.dcm"),
    );
    let mut jpeg_ls = mono_dicom(32, 32);
    jpeg_ls.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new_fragments(vec![vec![0xFFu8, 0xD8, 0xFF, 0xF7, 0, 0]]),
    ));
    write_dicom(jpeg_ls, JPEG_LS_LOSSLESS, &inputs.join("jpeg_ls.dcm"));
    let missing = dir.path().join("missing.png");

    let mut args = vec![
        path_str(&inputs).to_string(),
        path_str(&missing).to_string(),
    ];
    // The shared JPEG lossy radiograph when it is there (12-bit JPEG is not decodable here).
    let lossy = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/dicom/RG2_JPLY"
    ));
    if lossy.is_file() {
        args.push(lossy.to_string_lossy().into_owned());
    }
    let out = dir.path().join("out");
    let csv = dir.path().join("table.csv");
    args.extend(
        [
            "--weights",
            FIXTURE_WEIGHTS,
            "--out",
            path_str(&out),
            "--csv",
            path_str(&csv),
            "--quiet",
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .arg("analyze")
        .args(&args)
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let good = read_json(&out.join("good.json"));
    assert_valid_record(&good);
    let reasons = [
        ("empty", "file is empty"),
        ("truncated", "cannot decode png"),
        ("words", "not a PNG, JPEG, TIFF or DICOM file"),
        ("lying", "cannot decode png"),
        ("huge", "30000×30000"),
        ("dot", "smaller than the minimum"),
        ("no_pixels", "no Pixel Data"),
        (
            "jpeg_ls",
            "unsupported transfer syntax 1.2.840.10008.1.2.4.80",
        ),
        ("missing", "file not found"),
    ];
    for (stem, reason) in reasons {
        let record = read_json(&out.join(format!("{stem}.json")));
        let object = record.as_object().unwrap();
        // The same keys as an analysis, in the same order, with status "error".
        let keys: Vec<&String> = object.keys().collect();
        let analysed_keys: Vec<&String> = good.as_object().unwrap().keys().collect();
        assert_eq!(keys, analysed_keys, "{record}");
        assert_eq!(record["status"], "error", "{record}");
        assert_eq!(record["schema"], "sagitta-record/3");
        assert!(record["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert!(record["landmarks"].as_array().unwrap().is_empty());
        let error = record["error"].as_str().unwrap();
        assert!(error.contains(reason), "{stem}: {error}");
        assert!(
            error.contains(&format!("{stem}.")),
            "names the file: {error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        // Each failure is also on stderr, on one line.
        assert!(
            stderr.lines().any(|line| line.contains(error)),
            "{stem} not on stderr:\n{stderr}"
        );
    }
    if lossy.is_file() {
        let record = read_json(&out.join("RG2_JPLY.json"));
        let error = record["error"].as_str().unwrap();
        assert!(
            error.contains("RG2_JPLY: unsupported transfer syntax"),
            "{error}"
        );
    }
    // --quiet: errors but no summary.
    assert!(!stderr.contains("image(s) in"), "{stderr}");

    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), reasons.len() + 1 + usize::from(lossy.is_file()));
    let status = |row: &&str| row.split(',').nth(1).unwrap_or_default().to_string();
    let analysed = rows
        .iter()
        .filter(|row| ["ok", "flagged"].contains(&status(row).as_str()))
        .count();
    assert_eq!(analysed, 1);
    let errors = rows.iter().filter(|row| status(row) == "error").count();
    assert_eq!(errors, rows.len() - 1);
}

#[test]
fn wrong_weights_file_exits_2_with_a_clear_message() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 128, 128);
    let not_weights = dir.path().join("weights.safetensors");
    std::fs::write(&not_weights, b"definitely not safetensors").unwrap();
    // A real safetensors file without the cervical model's metadata.
    let other_model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/conv2d.safetensors"
    );
    let missing = dir.path().join("nowhere.safetensors");
    for weights in [path_str(&not_weights), other_model, path_str(&missing)] {
        let output = sagitta(&[path_str(&image), "--weights", weights]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{weights}: {stderr}");
        assert!(output.stdout.is_empty());
        let line = stderr
            .lines()
            .find(|line| line.starts_with("sagitta:"))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        assert!(line.contains(weights), "names the file: {line}");
        assert!(line.contains("--weights"), "says what to do: {line}");
    }

    // The same through the environment variable.
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", path_str(&image)])
        .env("SAGITTA_WEIGHTS", &not_weights)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains(path_str(&not_weights)));

    // No weights anywhere (only checkable while the default weights are not yet trained).
    let default = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/weights/cervical_default.safetensors"
    ));
    if !default.exists() {
        let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args(["analyze", path_str(&image)])
            .env_remove("SAGITTA_WEIGHTS")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("no weights file"), "{stderr}");
        assert!(stderr.contains("SAGITTA_WEIGHTS"), "{stderr}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch();
    for name in ["a.png", "b.png"] {
        write_png(&dir.path().join(name), 128, 128);
    }
    // One .png overlay file cannot hold two images.
    let output = sagitta(&[
        path_str(dir.path()),
        "--weights",
        FIXTURE_WEIGHTS,
        "--overlay",
        path_str(&dir.path().join("one.png")),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("give a folder"));

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let output = sagitta(&[path_str(&empty), "--weights", FIXTURE_WEIGHTS]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no images found"));

    let output = sagitta(&["--weights", FIXTURE_WEIGHTS]);
    assert_eq!(output.status.code(), Some(2), "no inputs at all");
}

#[test]
fn overlay_that_cannot_be_written_keeps_the_record_and_exits_1() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 128, 140);
    let overlays = dir.path().join("overlays");
    // A folder where the overlay file should go.
    std::fs::create_dir_all(overlays.join("neck.png")).unwrap();
    let output = sagitta(&[
        path_str(&image),
        "--weights",
        FIXTURE_WEIGHTS,
        "--overlay",
        path_str(&overlays),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_valid_record(&record);
    assert!(
        warnings(&record)
            .iter()
            .any(|w| w.starts_with("overlay not written:")),
        "{record}"
    );
    assert!(text(&output.stderr).contains("cannot write the overlay"));
}

#[test]
fn list_file_and_several_images_on_stdout_make_a_json_array() {
    let dir = scratch();
    let first = dir.path().join("first.png");
    let second = dir.path().join("second.png");
    write_png(&first, 130, 150);
    write_png(&second, 150, 130);
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# two images\n{}\n\n{}\n",
            path_str(&first),
            path_str(&second)
        ),
    )
    .unwrap();
    let output = sagitta(&["--list", path_str(&list), "--weights", FIXTURE_WEIGHTS]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = json(&output);
    let records = records.as_array().expect("an array of records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["image"], path_str(&first));
    assert_eq!(records[1]["image"], path_str(&second));
    records.iter().for_each(assert_valid_record);
}

#[test]
fn dicom_pixel_spacing_is_reported() {
    let dir = scratch();
    let path = dir.path().join("spine.dcm");
    let (rows, columns) = (160u16, 128u16);
    let mut object = mono_dicom(rows, columns);
    object.put(DataElement::new(
        tags::PIXEL_SPACING,
        VR::DS,
        dicom_value!(Strs, ["0.2", "0.1"]),
    ));
    write_dicom(
        with_phantom_pixels(object, rows, columns),
        EXPLICIT_VR_LITTLE_ENDIAN,
        &path,
    );
    let output = sagitta(&[path_str(&path), "--weights", FIXTURE_WEIGHTS]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_valid_record(&record);
    assert_eq!(record["format"], "dicom");
    assert_eq!(record["transfer_syntax"], EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(record["spacing_source"], "pixel_spacing");
    assert_eq!(record["pixel_spacing"]["row_mm"], 0.2);
    assert_eq!(record["pixel_spacing"]["column_mm"], 0.1);
    assert_eq!(record["distance_unit"], "mm");
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(128), Some(160))
    );

    // --pixel-spacing replaces the file's spacing.
    let output = sagitta(&[
        path_str(&path),
        "--weights",
        FIXTURE_WEIGHTS,
        "--pixel-spacing",
        "0.3",
    ]);
    let record = single_record(&output);
    assert_eq!(record["spacing_source"], "user");
    assert_eq!(record["pixel_spacing"]["row_mm"], 0.3);
}

/// The NEMA radiographs in ../shared/dicom: each gives a record with its spacing or a clean
/// unsupported-transfer-syntax error record.
#[test]
fn shared_dicom_files_run_or_fail_cleanly() {
    let folder = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom"));
    if !folder.is_dir() {
        println!(
            "note: {} not found, shared DICOM test skipped",
            folder.display()
        );
        return;
    }
    let dir = scratch();
    let out = dir.path().join("out");
    let output = sagitta(&[
        path_str(&folder),
        "--weights",
        FIXTURE_WEIGHTS,
        "--out",
        path_str(&out),
        "--quiet",
    ]);
    let stderr = text(&output.stderr);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{stderr}");
    let mut records = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let record = read_json(&entry.unwrap().path());
        records += 1;
        if let Some(error) = record["error"].as_str() {
            println!("{error}");
            assert!(error.contains("unsupported transfer syntax"), "{error}");
            continue;
        }
        assert_valid_record(&record);
        assert_eq!(record["format"], "dicom");
        println!(
            "{}: {}x{} spacing {} ({}), {}",
            record["image"],
            record["width"],
            record["height"],
            record["pixel_spacing"],
            record["spacing_source"],
            record["transfer_syntax"]
        );
        match record["spacing_source"].as_str().unwrap() {
            "pixel_spacing" | "imager_pixel_spacing" => {
                assert!(record["pixel_spacing"]["row_mm"].as_f64().unwrap() > 0.0);
                assert_eq!(record["distance_unit"], "mm");
            }
            "none" => {
                assert!(record["pixel_spacing"].is_null());
                assert_eq!(record["distance_unit"], "px");
            }
            other => panic!("unexpected spacing source {other}"),
        }
        // Not cervical spines: the record must warn instead of reporting silently.
        assert!(warnings(&record)
            .iter()
            .any(|w| w.contains("may not be a lateral cervical radiograph")));
    }
    assert!(records >= 1, "no record written");
}

/// The same pieces through the library: one model for several images, records and overlay.
#[test]
fn library_analyzer_builds_records_and_overlays() {
    let dir = scratch();
    let weights = WeightFile::open(FIXTURE_WEIGHTS).unwrap();
    let mut analyzer = Analyzer::with_context(common::gpu(), &weights).unwrap();
    assert_eq!(analyzer.models()[0].input_size, 128);
    for (name, (width, height)) in [("tall.png", (120, 180)), ("wide.png", (200, 120))] {
        let path = dir.path().join(name);
        write_png(&path, width, height);
        let analysis = analyzer.analyze_file(&path, Some(0.25));
        let Record::Analyzed(record) = &analysis.record else {
            panic!("{:?}", analysis.record);
        };
        assert_eq!((record.width, record.height), (width, height));
        assert_eq!(record.distance_unit, "mm");
        assert_eq!(record.parameters.len(), 9);
        let value: Value = serde_json::from_str(&analysis.record.to_json()).unwrap();
        assert_valid_record(&value);
        let radiograph = analysis.radiograph.expect("the loaded radiograph");
        let window = radiograph.dicom.as_ref().and_then(|dicom| dicom.window);
        let picture =
            sagitta::report::overlay::render(&radiograph.pixels, width, height, window, record)
                .unwrap();
        assert_eq!(picture.dimensions(), (width, height));
        // Something was drawn in colour on the grey radiograph.
        assert!(picture
            .pixels()
            .any(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2]));
    }
    let failed = analyzer.analyze_file(&dir.path().join("absent.png"), None);
    assert!(!failed.record.is_ok());
    assert!(failed.radiograph.is_none());
}

/// README's first command: the shipped default weights on a shipped sample, run from the
/// repository root, find the phantom's landmarks (its true positions are in the JSON beside it).
#[test]
fn default_weights_find_the_landmarks_of_the_shipped_samples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sample in ["samples/phantom_right.png", "samples/phantom_dicom.dcm"] {
        let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .current_dir(root)
            .env_remove("SAGITTA_WEIGHTS")
            .args(["analyze", sample])
            .output()
            .expect("sagitta runs");
        assert!(
            output.status.success(),
            "{sample}: {}",
            text(&output.stderr)
        );
        let record = single_record(&output);
        assert_eq!(record["model"]["name"], "sagitta-default-synthetic-v3");
        let truth = read_json(&root.join(sample).with_extension("json"));
        let mut errors: Vec<f64> = record["landmarks"]
            .as_array()
            .expect("landmarks")
            .iter()
            .map(|l| {
                let t = &truth["landmarks"][l["name"].as_str().unwrap()];
                let dx = l["x"].as_f64().unwrap() - t[0].as_f64().unwrap();
                let dy = l["y"].as_f64().unwrap() - t[1].as_f64().unwrap();
                dx.hypot(dy)
            })
            .collect();
        errors.sort_by(f64::total_cmp);
        let spacing = truth["pixel_spacing_mm"][0].as_f64().unwrap();
        let median_mm = errors[errors.len() / 2] * spacing;
        // The model card reports a 0.57 mm median over 200 held-out phantoms.
        assert!(
            median_mm < 2.0,
            "{sample}: median landmark error {median_mm:.2} mm"
        );
        assert_eq!(
            record["parameters"].as_array().unwrap().len(),
            9,
            "{sample}"
        );
        assert_eq!(record["facing"], truth["facing"], "{sample}");
    }
}

/// `--precision f16` stores activations in f16: the record says so and the landmarks stay within
/// a pixel of the f32 run (skipped with a note on adapters without shader-f16).
#[test]
fn f16_precision_gives_the_same_landmarks_within_a_pixel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |precision: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .current_dir(root)
            .env_remove("SAGITTA_WEIGHTS")
            .args([
                "analyze",
                "samples/phantom_left.png",
                "--precision",
                precision,
            ])
            .output()
            .expect("sagitta runs");
        (output.status.success(), output)
    };
    let (ok, f16) = run("f16");
    if !ok && text(&f16.stderr).contains("shader-f16") {
        eprintln!("adapter has no shader-f16: {}", text(&f16.stderr));
        return;
    }
    assert!(ok, "{}", text(&f16.stderr));
    let (ok, f32) = run("f32");
    assert!(ok, "{}", text(&f32.stderr));
    let (f16, f32) = (single_record(&f16), single_record(&f32));
    assert_eq!(f16["model"]["precision"], "f16");
    assert_eq!(f32["model"]["precision"], "f32");
    let points = |r: &Value| -> Vec<(f64, f64)> {
        r["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["x"].as_f64().unwrap(), l["y"].as_f64().unwrap()))
            .collect()
    };
    let worst = points(&f16)
        .iter()
        .zip(points(&f32))
        .map(|(a, b)| (a.0 - b.0).hypot(a.1 - b.1))
        .fold(0.0, f64::max);
    eprintln!("f16 vs f32 activations: largest landmark difference {worst:.3} px");
    assert!(worst < 1.0, "{worst} px");
}

/// The CSM classifier's part of a record: the probability the library's model gives on the
/// same decoded image, the label by the threshold, the caveat, the model's identity.
fn assert_csm_screen(screen: &Value, image: &Path) {
    let weights = WeightFile::open(CSM_FIXTURE_WEIGHTS).unwrap();
    let mut model = CsmModel::new(common::gpu(), &weights).unwrap();
    let radiograph = load_radiograph(image).unwrap();
    let expected = model
        .run(GreyImage {
            width: radiograph.width,
            height: radiograph.height,
            pixels: &radiograph.pixels,
        })
        .unwrap();
    let p_csm = screen["p_csm"].as_f64().expect("p_csm");
    assert!(
        (p_csm - f64::from(expected.p_csm)).abs() < 1e-5,
        "record {p_csm} vs library {}",
        expected.p_csm
    );
    assert_eq!(screen["threshold"], 0.5);
    let label = if p_csm >= 0.5 { "CSM" } else { "no CSM" };
    assert_eq!(screen["label"], label);
    assert_eq!(screen["status"], "ok");
    assert!(screen["caveat"]
        .as_str()
        .unwrap()
        .contains("not a diagnosis"));
    assert_eq!(screen["model"]["sha256"], weights.sha256.as_str());
    assert_eq!(screen["model"]["name"], "csm-small-test");
}

#[test]
fn csm_weights_pick_the_classifier_without_being_told() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 150, 120);
    let csv = dir.path().join("table.csv");
    let output = sagitta(&[
        path_str(&image),
        "--weights",
        CSM_FIXTURE_WEIGHTS,
        "--csv",
        path_str(&csv),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_eq!(record["schema"], "sagitta-record/3");
    assert_eq!(record["status"], "ok", "{record}");
    // Only the classifier ran: no landmark model, no landmarks, no parameters.
    assert!(record["model"].is_null(), "{record}");
    assert_eq!(record["landmarks"].as_array().unwrap().len(), 0);
    assert_eq!(record["parameters"].as_array().unwrap().len(), 0);
    assert!(record["facing"].is_null());
    assert_csm_screen(&record["csm"], &image);

    let table = std::fs::read_to_string(&csv).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell = |name: &str| row[header.iter().position(|c| *c == name).unwrap()];
    assert_eq!(
        cell("p_csm").parse::<f64>().unwrap(),
        record["csm"]["p_csm"]
    );
    assert_eq!(cell("csm_label"), record["csm"]["label"]);
    assert_eq!(cell("csm_status"), "ok");
    // The parameters were not asked for: empty, not "not_measurable".
    assert_eq!(cell("C2-C7 status"), "");
}

#[test]
fn model_all_runs_every_model_and_fills_every_column() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 140, 160);
    let csv = dir.path().join("table.csv");
    let overlays = dir.path().join("overlays");
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", "--model", "all", path_str(&image)])
        .args(["--csv", path_str(&csv), "--overlay", path_str(&overlays)])
        .env("SAGITTA_WEIGHTS", FIXTURE_WEIGHTS)
        .env("SAGITTA_CSM_WEIGHTS", CSM_FIXTURE_WEIGHTS)
        .env("SAGITTA_WHOLESPINE_WEIGHTS", WHOLESPINE_FIXTURE_WEIGHTS)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert_valid_record(&record);
    assert_csm_screen(&record["csm"], &image);
    // The whole-spine model has shipped weights too, so "all" runs it.
    assert_eq!(
        record["wholespine"]["model"]["name"],
        "wholespine-small-test"
    );
    assert_eq!(
        record["wholespine"]["landmarks"].as_array().unwrap().len(),
        45
    );
    assert!(overlays.join("neck.png").is_file());
    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(',').collect()).collect();
    let column = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    assert!(!rows[1][column("p_csm")].is_empty());
    assert!(!rows[1][column("C2-C7 (deg)")].is_empty());

    // Two --weights files, the classifier's first, give the same record: each file's
    // architecture picks its model.
    let output = sagitta(&[
        path_str(&image),
        "--weights",
        CSM_FIXTURE_WEIGHTS,
        "--weights",
        FIXTURE_WEIGHTS,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let again = single_record(&output);
    assert_eq!(again["csm"]["p_csm"], record["csm"]["p_csm"]);
    assert_eq!(again["landmarks"], record["landmarks"]);
    assert_eq!(again["model"]["sha256"], record["model"]["sha256"]);
}

#[test]
fn a_weights_file_of_another_model_is_refused_naming_both_architectures() {
    let dir = scratch();
    let image = dir.path().join("neck.png");
    write_png(&image, 128, 128);
    let one_line_error = |output: &Output| -> String {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert!(output.stdout.is_empty());
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        lines[0].to_string()
    };
    for (model, weights, found, expected) in [
        ("csm", FIXTURE_WEIGHTS, CERVICAL_ARCH, CSM_ARCH),
        ("cervical", CSM_FIXTURE_WEIGHTS, CSM_ARCH, CERVICAL_ARCH),
    ] {
        let line = one_line_error(&sagitta(&[
            path_str(&image),
            "--model",
            model,
            "--weights",
            weights,
        ]));
        assert!(line.contains(weights), "names the file: {line}");
        assert!(
            line.contains(&format!("'{found}'")) && line.contains(&format!("'{expected}'")),
            "names both architectures: {line}"
        );
        assert!(line.contains(&format!("--model {model}")), "{line}");
    }

    let line = one_line_error(&sagitta(&[
        path_str(&image),
        "--weights",
        CSM_FIXTURE_WEIGHTS,
        "--weights",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/csm_small_f16.safetensors"
        ),
    ]));
    assert!(line.contains("one file per model"), "{line}");

    // A default named by the environment is checked like a flag.
    let missing = dir.path().join("nowhere.safetensors");
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", "--model", "csm", path_str(&image)])
        .env("SAGITTA_CSM_WEIGHTS", &missing)
        .output()
        .unwrap();
    assert!(one_line_error(&output).contains(path_str(&missing)));
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", "--model", "csm", path_str(&image)])
        .env("SAGITTA_CSM_WEIGHTS", FIXTURE_WEIGHTS)
        .output()
        .unwrap();
    let line = one_line_error(&output);
    assert!(
        line.contains("$SAGITTA_CSM_WEIGHTS") && line.contains(CSM_ARCH),
        "{line}"
    );
}

#[test]
fn wholespine_weights_give_45_landmarks_and_18_parameters_with_their_quality() {
    let dir = scratch();
    let image = dir.path().join("spine.png");
    write_png(&image, 110, 180);
    let overlay = dir.path().join("spine_overlay.png");
    let weights_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/wholespine_small_f32.safetensors"
    );
    let output = sagitta(&[
        path_str(&image),
        "--weights",
        weights_path,
        "--pixel-spacing",
        "0.5",
        "--overlay",
        path_str(&overlay),
        "--csv",
        path_str(&dir.path().join("spine.csv")),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = single_record(&output);
    assert!(
        record["model"].is_null() && record["csm"].is_null(),
        "{record}"
    );
    let spine = &record["wholespine"];
    assert_eq!(spine["model"]["name"], "wholespine-small-test");
    let landmarks = spine["landmarks"].as_array().unwrap();
    assert_eq!(landmarks.len(), 45);
    assert_eq!(landmarks[20]["name"], "FH1");

    // The same points as the library's model on the same decoded image.
    let weights = WeightFile::open(weights_path).unwrap();
    let mut model =
        sagitta::models::wholespine::WholeSpineModel::new(common::gpu(), &weights).unwrap();
    let radiograph = load_radiograph(&image).unwrap();
    let expected = model
        .run(GreyImage {
            width: radiograph.width,
            height: radiograph.height,
            pixels: &radiograph.pixels,
        })
        .unwrap();
    for (got, want) in landmarks.iter().zip(&expected.landmarks) {
        assert_eq!(got["name"], want.name);
        let x = got["x"].as_f64().unwrap();
        assert!((x - f64::from(want.x)).abs() <= 0.006, "{got} vs {want:?}");
    }
    // Random weights put the points anywhere: the parameters are computed or refused, and
    // every computed one has a status; a spine this wrong cannot pass every check.
    let parameters = spine["parameters"].as_array().unwrap();
    let warnings = warnings(&record);
    assert!(
        !parameters.is_empty() || warnings.iter().any(|w| w.contains("whole-spine")),
        "{record}"
    );
    for parameter in parameters {
        assert!(parameter["status"].is_string() && parameter["value"].is_f64());
    }
    assert_eq!(record["status"], "flagged");
    assert!(overlay.is_file());

    // The table has every value in a column of its unit, and its status.
    let table = std::fs::read_to_string(dir.path().join("spine.csv")).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(',').collect()).collect();
    let cell = |name: &str| {
        let column = rows[0].iter().position(|c| *c == name);
        rows[1][column.unwrap_or_else(|| panic!("no column '{name}'"))]
    };
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap();
        let unit = parameter["unit"].as_str().unwrap();
        let value = parameter["value"].as_f64().unwrap();
        let written: f64 = cell(&format!("wholespine {name} ({unit})"))
            .parse()
            .unwrap();
        assert!(
            (written - value).abs() <= 0.0051,
            "{name}: {written} vs {value}"
        );
        assert_eq!(
            cell(&format!("wholespine {name} status")),
            parameter["status"]
        );
        if unit == "mm" {
            assert_eq!(cell(&format!("wholespine {name} (px)")), "", "{name}");
        }
    }
    assert_eq!(cell("C2-C7 status"), "", "the cervical model did not run");

    // A cervical file named as the whole-spine model is refused naming both.
    let output = sagitta(&[
        path_str(&image),
        "--model",
        "wholespine",
        "--weights",
        FIXTURE_WEIGHTS,
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("'wholespine-cpn-dsnt'"));
}

/// Every file name below `folder`, sorted.
fn json_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The distinct images the records `names` in `out` are of.
fn distinct_images(out: &Path, names: &[String]) -> Vec<String> {
    let mut images: Vec<String> = names
        .iter()
        .map(|name| {
            read_json(&out.join(name))["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    images.sort();
    images.dedup();
    images
}

#[test]
fn shards_into_one_folder_analyse_every_image_once_and_a_resumed_run_skips_what_is_done() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(inputs.join("a")).unwrap();
    std::fs::create_dir_all(inputs.join("b")).unwrap();
    for (index, name) in [
        "a/same.png",
        "b/same.png",
        "c.png",
        "d.png",
        "e.png",
        "f.png",
    ]
    .iter()
    .enumerate()
    {
        write_png(&inputs.join(name), 120 + 10 * index as u32, 150);
    }
    let out = dir.path().join("out");
    // Both shards at once, into the same folder.
    let shard = |which: &str| {
        Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args(["analyze", path_str(&inputs), "--weights", FIXTURE_WEIGHTS])
            .args(["--out", path_str(&out), "--shard", which])
            .env_remove("SAGITTA_WEIGHTS")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .spawn()
            .expect("run the sagitta binary")
    };
    let (mut first, mut second) = (shard("1/2"), shard("2/2"));
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let names = json_names(&out);
    assert_eq!(
        names,
        [
            "c.json",
            "d.json",
            "e.json",
            "f.json",
            "same-2.json",
            "same.json"
        ],
        "every image once, the two same.png apart"
    );
    let images = distinct_images(&out, &names);
    assert_eq!(images.len(), 6, "six different images: {images:?}");

    // A rerun with --skip-existing analyses only what is missing: one record lost, one error
    // record (retried), the rest kept untouched.
    std::fs::remove_file(out.join("d.json")).unwrap();
    let error_record = serde_json::json!({"image": inputs.join("e.png").display().to_string(),
                                          "status": "error"});
    std::fs::write(out.join("e.json"), error_record.to_string()).unwrap();
    let kept = std::fs::read(out.join("c.json")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", path_str(&inputs), "--weights", FIXTURE_WEIGHTS])
        .args(["--out", path_str(&out), "--skip-existing"])
        .env_remove("SAGITTA_WEIGHTS")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 of 6 image(s) to analyse; 4 already analysed"),
        "{stderr}"
    );
    // stderr is not a terminal here: progress comes as log lines.
    assert!(
        stderr.contains("2/2 images (100.0 %), 0 failed"),
        "{stderr}"
    );
    assert_eq!(json_names(&out).len(), 6);
    let retried = read_json(&out.join("e.json"));
    assert!(
        matches!(retried["status"].as_str(), Some("ok" | "flagged")),
        "the error record was retried: {retried}"
    );
    assert_eq!(std::fs::read(out.join("c.json")).unwrap(), kept);
    assert!(
        sagitta(&[path_str(&inputs), "--skip-existing"])
            .status
            .code()
            == Some(2),
        "--skip-existing without --out is a usage error"
    );
}

#[test]
fn a_shard_is_k_of_n_from_one() {
    for bad in ["0/2", "3/2", "1/0", "2", "a/b", ""] {
        let output = sagitta(&["x.png", "--weights", FIXTURE_WEIGHTS, "--shard", bad]);
        assert_eq!(output.status.code(), Some(2), "--shard {bad}");
    }
}

#[test]
fn the_adapter_can_be_chosen_by_its_number() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 120, 150);
    let by_number = |number: &str| {
        Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args(["--adapter", number, "analyze", path_str(&image)])
            .args(["--weights", FIXTURE_WEIGHTS])
            .env_remove("SAGITTA_ADAPTER")
            .output()
            .unwrap()
    };
    let first = by_number("0");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let missing = by_number("99");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("there is no adapter number 99"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn json_lines_get_one_whole_record_per_image_and_grow_across_runs() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        write_png(&inputs.join(name), 130, 150);
    }
    std::fs::write(inputs.join("broken.png"), b"not a png").unwrap();
    let lines_path = dir.path().join("records.jsonl");
    let run = || {
        sagitta(&[
            path_str(&inputs),
            "--weights",
            FIXTURE_WEIGHTS,
            "--jsonl",
            path_str(&lines_path),
            "-q",
        ])
    };
    let output = run();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout_records = json(&output);
    let text_lines = std::fs::read_to_string(&lines_path).unwrap();
    let lines: Vec<Value> = text_lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one line per image, the failed one too");
    assert_eq!(
        Value::Array(lines.clone()),
        stdout_records,
        "the same records"
    );
    assert_eq!(lines[2]["status"], "error", "broken.png");

    // A cut last line (someone's crash) stays on its own line; the next run appends.
    std::fs::write(&lines_path, format!("{text_lines}{{\"cut")).unwrap();
    run();
    let again = std::fs::read_to_string(&lines_path).unwrap();
    let parsed: Vec<bool> = again
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).is_ok())
        .collect();
    assert_eq!(parsed.len(), 9);
    assert_eq!(
        parsed.iter().filter(|ok| !**ok).count(),
        1,
        "only the cut line"
    );

    // It is refused where it would overwrite an input.
    let output = sagitta(&[
        path_str(&inputs.join("a.png")),
        "--weights",
        FIXTURE_WEIGHTS,
        "--jsonl",
        path_str(&inputs.join("a.png")),
    ]);
    assert_eq!(output.status.code(), Some(2));
}

/// A run killed (SIGKILL) in the middle of a batch and restarted with --skip-existing ends with
/// every image analysed exactly once: the killed run's records are whole (written under a
/// temporary name and renamed) and kept, the rest are analysed by the second run only.
#[test]
fn a_killed_run_resumed_with_skip_existing_analyses_every_image_exactly_once() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let count = 24;
    for index in 0..count {
        write_png(&inputs.join(format!("{index:02}.png")), 300, 360);
    }
    let out = dir.path().join("out");
    let mut first = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", path_str(&inputs), "--weights", FIXTURE_WEIGHTS])
        .args(["--out", path_str(&out), "--quiet"])
        .env_remove("SAGITTA_WEIGHTS")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !out.is_dir() || json_names(&out).len() < 3 {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the batch ended before it could be killed"
        );
        assert!(
            started.elapsed().as_secs() < 120,
            "no record after two minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let done_before = json_names(&out);
    assert!(
        done_before.len() < count,
        "killed too late: {}",
        done_before.len()
    );
    let kept: Vec<Vec<u8>> = done_before
        .iter()
        .map(|name| std::fs::read(out.join(name)).unwrap())
        .collect();
    for bytes in &kept {
        let record: serde_json::Value = serde_json::from_slice(bytes).expect("a whole record");
        assert!(matches!(record["status"].as_str(), Some("ok" | "flagged")));
    }

    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", path_str(&inputs), "--weights", FIXTURE_WEIGHTS])
        .args(["--out", path_str(&out), "--skip-existing"])
        .env_remove("SAGITTA_WEIGHTS")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expected = format!(
        "{} of {count} image(s) to analyse; {} already analysed",
        count - done_before.len(),
        done_before.len()
    );
    assert!(stderr.contains(&expected), "{expected} in {stderr}");
    let names = json_names(&out);
    assert_eq!(names.len(), count, "{names:?}");
    for (name, bytes) in done_before.iter().zip(&kept) {
        assert_eq!(
            &std::fs::read(out.join(name)).unwrap(),
            bytes,
            "{name} rewritten"
        );
    }
    assert_eq!(
        distinct_images(&out, &names).len(),
        count,
        "one record per image"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".json"))
        .collect();
    // Only hidden files besides the records: the folder's lock, and at most the temporary
    // file the killed run was writing.
    assert!(
        leftovers.iter().all(|name| name.starts_with('.')),
        "{leftovers:?}"
    );
}

/// `sagitta merge`: the tables and record files of two shards (and a record folder holding a
/// stale error record of one image) become one table and one JSON-lines file with each image
/// once, its analysed row and record kept; inputs are never overwritten.
#[test]
fn merge_makes_one_table_of_the_shards_with_each_image_once() {
    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for index in 0..6 {
        write_png(&inputs.join(format!("{index}.png")), 140 + 10 * index, 160);
    }
    let shard = |which: &str, number: u32| {
        let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args([
                "analyze",
                path_str(&inputs),
                "--weights",
                FIXTURE_WEIGHTS,
                "--quiet",
            ])
            .args(["--shard", which, "--csv"])
            .arg(dir.path().join(format!("shard{number}.csv")))
            .arg("--jsonl")
            .arg(dir.path().join(format!("shard{number}.jsonl")))
            .arg("--out")
            .arg(dir.path().join(format!("out{number}")))
            .env_remove("SAGITTA_WEIGHTS")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
    };
    shard("1/2", 1);
    shard("2/2", 2);
    // A stale error record of an image that shard 1 or 2 analysed.
    let stale = dir.path().join("stale");
    std::fs::create_dir(&stale).unwrap();
    let image = inputs.join("3.png").display().to_string();
    std::fs::write(
        stale.join("3.json"),
        serde_json::json!({"image": image, "status": "error", "timestamp": "2099-01-01T00:00:00Z"})
            .to_string(),
    )
    .unwrap();

    let (csv, jsonl) = (dir.path().join("all.csv"), dir.path().join("all.jsonl"));
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .arg("merge")
        .args([dir.path().join("shard1.csv"), dir.path().join("shard2.csv")])
        .args([
            dir.path().join("shard1.jsonl"),
            dir.path().join("out2"),
            stale.clone(),
        ])
        .arg("--csv")
        .arg(&csv)
        .arg("--jsonl")
        .arg(&jsonl)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("6 image(s), 1 duplicate(s) dropped, 0 without an analysis"),
        "{stderr}"
    );
    let table = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], csv_header().join(","));
    let mut images: Vec<&str> = lines[1..]
        .iter()
        .map(|line| line.split(',').next().unwrap())
        .collect();
    assert_eq!(images.len(), 6, "{table}");
    images.dedup();
    assert_eq!(images.len(), 6, "{table}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 6);
    let three = records
        .iter()
        .find(|r| r["image"] == image.as_str())
        .unwrap();
    assert!(
        matches!(three["status"].as_str(), Some("ok" | "flagged")),
        "{three}"
    );

    // An output that is an input is refused, and so are tables of different kinds.
    let refused = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .arg("merge")
        .arg(&csv)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "image,status,x\na.png,ok,1\n").unwrap();
    let mixed = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["merge", "--csv"])
        .arg(dir.path().join("mixed.csv"))
        .arg(&csv)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(2));
    assert!(
        text(&mixed.stderr).contains("header differs"),
        "{}",
        text(&mixed.stderr)
    );
}

/// `--parquet` holds the `--csv` table, typed: each number equal to its CSV cell, empty cells
/// null, strings as written; `merge --parquet` gives the merged table the same way.
#[test]
fn parquet_tables_hold_the_csv_values_typed() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let dir = scratch();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for index in 0..3 {
        write_png(&inputs.join(format!("{index}.png")), 150 + 20 * index, 170);
    }
    std::fs::write(inputs.join("broken.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    let (csv, table) = (dir.path().join("t.csv"), dir.path().join("t.parquet"));
    let output = sagitta(&[
        path_str(&inputs),
        "--weights",
        FIXTURE_WEIGHTS,
        "--csv",
        path_str(&csv),
        "--parquet",
        path_str(&table),
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let read = |path: &Path| -> Vec<Vec<(String, Field)>> {
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().into_columns())
            .collect()
    };
    let rows = read(&table);
    let csv_rows = sagitta::cli::merge::parse_csv(&std::fs::read_to_string(&csv).unwrap()).unwrap();
    assert_eq!(rows.len(), csv_rows.len() - 1);
    let header = &csv_rows[0];
    let mut numbers = 0;
    for (row, cells) in rows.iter().zip(&csv_rows[1..]) {
        assert_eq!(row.len(), header.len());
        for ((name, field), (column, cell)) in row.iter().zip(header.iter().zip(cells)) {
            assert_eq!(name, column);
            let cell: &str = cell;
            match field {
                Field::Null => assert!(cell.is_empty(), "{column}: {cell}"),
                Field::Double(value) => {
                    assert_eq!(*value, cell.parse::<f64>().unwrap(), "{column}");
                    numbers += 1;
                }
                Field::Str(value) => assert_eq!(value, cell, "{column}"),
                other => panic!("{column}: {other:?}"),
            }
        }
    }
    assert!(numbers > 0, "the angles are numbers");
    assert!(rows
        .iter()
        .any(|row| row[1].1 == Field::Str("error".into())));

    let merged = dir.path().join("merged.parquet");
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["merge", path_str(&csv), "--parquet", path_str(&merged)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(read(&merged), rows);
}
