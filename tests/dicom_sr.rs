//! `sagitta analyze --dicom-out`: each analysed DICOM image's results as a DICOM Comprehensive
//! SR (TID 1500 Measurement Report), read back with dicom-object and compared with the source
//! and the JSON record; checked by dcmtk's `dsrdump` and dicom3tools' `dciodvfy` where they are
//! installed (Debian packages `dcmtk` and `dicom3tools`; the tests say so and pass without
//! them). The real inputs are the NEMA radiographs in ../shared/dicom (skipped when absent),
//! analysed with the tiny random-weights fixture model: its numbers mean nothing, the SR's
//! structure and its agreement with the record are what is tested.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{open_file, FileMetaTableBuilder, InMemDicomObject};
use serde_json::Value;

const FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cervical_small_f32.safetensors"
);
const COMPREHENSIVE_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.33";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const DIGITAL_XRAY_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";
/// The uncompressed NEMA radiograph (quickest to decode).
const SHARED_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/dicom/RG2_UNC");

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sagitta-dicom-sr-test")
        .tempdir()
        .expect("a temporary directory")
}

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

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The shared source, or `None` with a note (the test is then skipped).
fn shared_source() -> Option<PathBuf> {
    let path = PathBuf::from(SHARED_SOURCE);
    if path.is_file() {
        Some(path)
    } else {
        println!("note: {} not found, test skipped", path.display());
        None
    }
}

/// A tool on the PATH, or `None` with a note naming the Debian package that has it.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        println!("note: {name} not found (apt-get install {package}), test skipped");
    }
    found
}

/// A string attribute, without DICOM's padding; empty when absent.
fn string(object: &InMemDicomObject, tag: Tag) -> String {
    object
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|element| element.to_str().ok())
        .map(|value| value.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn items(object: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    object
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|element| element.items())
        .unwrap_or(&[])
}

/// A code item's value (Code Value or Long Code Value), scheme and meaning.
fn code(item: &InMemDicomObject) -> (String, String, String) {
    let mut value = string(item, tags::CODE_VALUE);
    if value.is_empty() {
        value = string(item, tags::LONG_CODE_VALUE);
    }
    (
        value,
        string(item, tags::CODING_SCHEME_DESIGNATOR),
        string(item, tags::CODE_MEANING),
    )
}

/// A content item's concept name; empty for one without (a SELECTED FROM image).
fn concept(item: &InMemDicomObject) -> (String, String, String) {
    let names = items(item, tags::CONCEPT_NAME_CODE_SEQUENCE);
    assert!(names.len() <= 1, "one concept name per content item");
    names.first().map(code).unwrap_or_default()
}

/// Every content item of the tree below `object`, depth first.
fn content_items(object: &InMemDicomObject) -> Vec<&InMemDicomObject> {
    let mut all = Vec::new();
    for item in items(object, tags::CONTENT_SEQUENCE) {
        all.push(item);
        all.extend(content_items(item));
    }
    all
}

/// Analyses `source` into `out` (records) and `sr` (the SR folder); returns the record and the
/// command's output.
fn analyse(source: &Path, out: &Path, sr: &Path) -> (Value, Output) {
    let output = sagitta(&[
        s(source),
        "--weights",
        FIXTURE_WEIGHTS,
        "--out",
        s(out),
        "--dicom-out",
        s(sr),
        "--quiet",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
    let stem = source.file_stem().unwrap().to_str().unwrap();
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap()).unwrap();
    (record, output)
}

fn sr_path(sr: &Path, source: &Path) -> PathBuf {
    let stem = source.file_stem().unwrap().to_str().unwrap();
    sr.join(format!("{stem}.sr.dcm"))
}

/// Checks the SR at `path` against its source and the image's JSON record; returns the SR.
fn check_sr(source_path: &Path, record: &Value, path: &Path) -> dicom_object::DefaultDicomObject {
    assert_eq!(record["status"].as_str().map(|s| s != "error"), Some(true));
    let report = open_file(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let source = open_file(source_path).unwrap();

    // File meta and identity.
    assert_eq!(
        report.meta().transfer_syntax().trim_end_matches('\0'),
        EXPLICIT_VR_LITTLE_ENDIAN
    );
    assert_eq!(
        report
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0'),
        COMPREHENSIVE_SR_STORAGE
    );
    assert_eq!(
        string(&report, tags::SOP_CLASS_UID),
        COMPREHENSIVE_SR_STORAGE
    );
    assert_eq!(string(&report, tags::MODALITY), "SR");
    assert_eq!(
        report
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0'),
        string(&report, tags::SOP_INSTANCE_UID)
    );
    for tag in [
        tags::STUDY_INSTANCE_UID,
        tags::PATIENT_ID,
        tags::PATIENT_NAME,
        tags::STUDY_DATE,
        tags::ACCESSION_NUMBER,
    ] {
        assert_eq!(string(&report, tag), string(&source, tag), "{tag}");
    }
    assert!(!string(&source, tags::STUDY_INSTANCE_UID).is_empty());
    for tag in [tags::SERIES_INSTANCE_UID, tags::SOP_INSTANCE_UID] {
        let new = string(&report, tag);
        assert!(new.starts_with("2.25."), "{new}");
        assert_ne!(new, string(&source, tag), "{tag} must be new");
    }
    // The record names the SR it got, so that the one in the PACS pairs with it.
    let named = &record["dicom_sr"];
    assert_eq!(named["path"], path.display().to_string());
    assert_eq!(
        named["sop_instance_uid"],
        string(&report, tags::SOP_INSTANCE_UID)
    );
    assert_eq!(
        named["series_instance_uid"],
        string(&report, tags::SERIES_INSTANCE_UID)
    );
    assert_eq!(
        record["dicom"]["study_instance_uid"],
        string(&report, tags::STUDY_INSTANCE_UID)
    );

    // The document: TID 1500, complete, unverified, made by a device.
    let (value, scheme, _) = concept(&report);
    assert_eq!((value.as_str(), scheme.as_str()), ("126000", "DCM"));
    let template = items(&report, tags::CONTENT_TEMPLATE_SEQUENCE);
    assert_eq!(string(&template[0], tags::TEMPLATE_IDENTIFIER), "1500");
    assert_eq!(string(&report, tags::COMPLETION_FLAG), "COMPLETE");
    let tree = content_items(&report);
    assert!(tree.iter().any(|item| {
        concept(item).0 == "121005"
            && code(&items(item, tags::CONCEPT_CODE_SEQUENCE)[0]).0 == "121007"
    }));

    // Every reference to an image is the source's instance.
    let source_class = string(&source, tags::SOP_CLASS_UID);
    let source_instance = string(&source, tags::SOP_INSTANCE_UID);
    let mut references = 0;
    for item in tree
        .iter()
        .filter(|item| string(item, tags::VALUE_TYPE) == "IMAGE")
    {
        for reference in items(item, tags::REFERENCED_SOP_SEQUENCE) {
            references += 1;
            assert_eq!(
                string(reference, tags::REFERENCED_SOP_INSTANCE_UID),
                source_instance
            );
            assert_eq!(
                string(reference, tags::REFERENCED_SOP_CLASS_UID),
                source_class
            );
        }
    }
    let evidence = items(&report, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE);
    let series = items(&evidence[0], tags::REFERENCED_SERIES_SEQUENCE);
    assert_eq!(
        string(&series[0], tags::SERIES_INSTANCE_UID),
        string(&source, tags::SERIES_INSTANCE_UID)
    );
    assert_eq!(
        string(
            &items(&series[0], tags::REFERENCED_SOP_SEQUENCE)[0],
            tags::REFERENCED_SOP_INSTANCE_UID
        ),
        source_instance
    );

    // The landmarks as points on that image, one per landmark of the record, half a pixel
    // from the record's (pixel centres at integers there, at .5 in DICOM).
    let landmarks = record["landmarks"].as_array().unwrap();
    let points: Vec<_> = tree
        .iter()
        .filter(|item| string(item, tags::VALUE_TYPE) == "SCOORD")
        .collect();
    assert_eq!(points.len(), landmarks.len());
    assert_eq!(
        references,
        landmarks.len() + 1,
        "each point and the library"
    );
    for (point, landmark) in points.iter().zip(landmarks) {
        assert_eq!(string(point, tags::GRAPHIC_TYPE), "POINT");
        assert_eq!(concept(point).0, landmark["name"].as_str().unwrap());
        let data = point
            .element(tags::GRAPHIC_DATA)
            .unwrap()
            .to_multi_float32()
            .unwrap();
        let x = landmark["x"].as_f64().unwrap() + 0.5;
        let y = landmark["y"].as_f64().unwrap() + 0.5;
        assert!((f64::from(data[0]) - x).abs() < 1e-3, "{data:?} vs {x}");
        assert!((f64::from(data[1]) - y).abs() < 1e-3, "{data:?} vs {y}");
    }

    // One NUM per parameter with a value in a UCUM unit (pixels are not one), equal to the
    // record's, with the record's quality status.
    let parameters: Vec<&Value> = record["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|parameter| parameter["value"].is_f64() && parameter["unit"] != "px")
        .collect();
    assert!(!parameters.is_empty(), "the angles have values: {record}");
    let numbers: Vec<_> = tree
        .iter()
        .filter(|item| string(item, tags::VALUE_TYPE) == "NUM")
        .collect();
    assert_eq!(numbers.len(), parameters.len());
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap();
        let number = numbers
            .iter()
            .find(|item| concept(item).0 == name)
            .unwrap_or_else(|| panic!("no NUM for {name}"));
        let measured = &items(number, tags::MEASURED_VALUE_SEQUENCE)[0];
        let value: f64 = string(measured, tags::NUMERIC_VALUE).parse().unwrap();
        assert_eq!(value, parameter["value"].as_f64().unwrap(), "{name}");
        let (unit, scheme, _) = code(&items(measured, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)[0]);
        assert_eq!(scheme, "UCUM", "{name}");
        let expected_unit = match parameter["unit"].as_str().unwrap() {
            "deg" => "deg",
            "mm" => "mm",
            other => panic!("{name}: unit {other}"),
        };
        assert_eq!(unit, expected_unit, "{name}");
        let status = content_items(number)
            .into_iter()
            .find(|item| concept(item).0 == "quality")
            .map(|item| code(&items(item, tags::CONCEPT_CODE_SEQUENCE)[0]).0);
        assert_eq!(status.as_deref(), parameter["status"].as_str(), "{name}");
    }

    report
}

#[test]
fn the_sr_of_a_real_radiograph_files_under_its_study_and_holds_the_records_values() {
    let Some(source_path) = shared_source() else {
        return;
    };
    let dir = scratch();
    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    let source_bytes = std::fs::read(&source_path).unwrap();
    let (record, _) = analyse(&source_path, &out, &sr);
    let path = sr_path(&sr, &source_path);
    let report = check_sr(&source_path, &record, &path);
    // ASCII texts: the default repertoire, no Specific Character Set.
    assert!(report
        .element_opt(tags::SPECIFIC_CHARACTER_SET)
        .unwrap()
        .is_none());

    // The input is untouched; a second run replaces the SR whole, with a new instance UID,
    // and its record says so.
    assert_eq!(std::fs::read(&source_path).unwrap(), source_bytes);
    let first_uid = string(&report, tags::SOP_INSTANCE_UID);
    let (again, _) = analyse(&source_path, &out, &sr);
    let warned = again["warnings"].as_array().unwrap().iter().any(|warning| {
        warning
            .as_str()
            .unwrap()
            .contains("replaced the file of an earlier run")
    });
    assert!(warned, "{again}");
    let second = open_file(&path).unwrap();
    assert_ne!(string(&second, tags::SOP_INSTANCE_UID), first_uid);
    let mut names: Vec<_> = std::fs::read_dir(&sr)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["RG2_UNC.pr.dcm", "RG2_UNC.sr.dcm"],
        "the SR and the presentation state only (no lock or temporary file left)"
    );
}

/// Writes a small synthetic two-frame DX image with a non-ASCII patient name at `path`.
fn write_synthetic_dicom(path: &Path) {
    let (rows, columns) = (192u16, 160u16);
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    let text = |value: &str| PrimitiveValue::from(value);
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, text("ISO_IR 192"));
    put(tags::SOP_CLASS_UID, VR::UI, text(DIGITAL_XRAY_STORAGE));
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        text("1.2.826.0.1.3680043.2.1125.9.3"),
    );
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        text("1.2.826.0.1.3680043.2.1125.9.1"),
    );
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        text("1.2.826.0.1.3680043.2.1125.9.2"),
    );
    put(tags::PATIENT_NAME, VR::PN, text("Müller^Jörg"));
    put(tags::PATIENT_ID, VR::LO, text("PID-77"));
    put(tags::STUDY_DATE, VR::DA, text("20260102"));
    put(tags::ACCESSION_NUMBER, VR::SH, text("ACC9"));
    put(tags::MODALITY, VR::CS, text("DX"));
    put(tags::NUMBER_OF_FRAMES, VR::IS, text("2"));
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns));
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        text("MONOCHROME2"),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(tags::PIXEL_SPACING, VR::DS, text("0.2\\0.2"));
    let frame = usize::from(rows) * usize::from(columns);
    let samples: Vec<u16> = (0..2 * frame)
        .map(|index| {
            let (y, x) = (
                (index % frame) / usize::from(columns),
                index % usize::from(columns),
            );
            ((x * 7 + y * 13) % 4096) as u16
        })
        .collect();
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(samples.into()),
    );
    object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap()
        .write_to_file(path)
        .unwrap();
}

/// The synthetic image (runs without ../shared): a patient name outside ASCII makes the SR
/// UTF-8 (ISO_IR 192) with the name intact, and the frame of a multi-frame source is named.
#[test]
fn a_synthetic_dicom_with_a_non_ascii_name_gives_a_utf8_sr() {
    let dir = scratch();
    let source_path = dir.path().join("dx.dcm");
    write_synthetic_dicom(&source_path);

    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    let (record, _) = analyse(&source_path, &out, &sr);
    assert_eq!(record["distance_unit"], "mm", "{record}");
    let report = check_sr(&source_path, &record, &sr_path(&sr, &source_path));
    assert_eq!(string(&report, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(string(&report, tags::PATIENT_NAME), "Müller^Jörg");
    let frames: Vec<String> = content_items(&report)
        .iter()
        .flat_map(|item| items(item, tags::REFERENCED_SOP_SEQUENCE))
        .map(|reference| string(reference, tags::REFERENCED_FRAME_NUMBER))
        .collect();
    assert!(!frames.is_empty());
    assert!(frames.iter().all(|frame| frame == "1"), "{frames:?}");
}

/// Every model family in one SR: a measurement group each (cervical, wholespine, lumbar, csm),
/// the points of the three landmark models, one NUM per parameter with a UCUM unit (`deg`, `mm`,
/// `{ratio}`) and `p_csm` (unit `1`) with the record's values, the CSM label as a code.
#[test]
fn every_model_family_gets_its_measurement_group() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = scratch();
    let source_path = dir.path().join("dx.dcm");
    write_synthetic_dicom(&source_path);
    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    let output = sagitta(&[
        s(&source_path),
        "--weights",
        FIXTURE_WEIGHTS,
        "--weights",
        &fixture("csm_small_f32.safetensors"),
        "--weights",
        &fixture("wholespine_small_f32.safetensors"),
        "--weights",
        &fixture("lumbar_small_f32.safetensors"),
        "--out",
        s(&out),
        "--dicom-out",
        s(&sr),
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("dx.json")).unwrap()).unwrap();
    let report = open_file(sr_path(&sr, &source_path)).unwrap();
    let tree = content_items(&report);
    let groups: Vec<String> = tree
        .iter()
        .filter(|item| concept(item).0 == "112039")
        .map(|item| string(item, tags::TEXT_VALUE))
        .collect();
    assert_eq!(groups, ["cervical", "wholespine", "lumbar", "csm"]);
    let points = tree
        .iter()
        .filter(|item| string(item, tags::VALUE_TYPE) == "SCOORD")
        .count();
    let spine = &record["wholespine"];
    let lumbar = &record["lumbar"];
    assert_eq!(
        points,
        record["landmarks"].as_array().unwrap().len()
            + spine["landmarks"].as_array().unwrap().len()
            + lumbar["landmarks"].as_array().unwrap().len()
    );
    let ucum = |unit: &str| match unit {
        "deg" => "deg",
        "mm" => "mm",
        "ratio" => "{ratio}",
        other => panic!("unit {other}"),
    };
    let mut expected: Vec<(String, f64, String)> = [
        &record["parameters"],
        &spine["parameters"],
        &lumbar["parameters"],
    ]
    .iter()
    .flat_map(|parameters| parameters.as_array().unwrap())
    .filter(|parameter| parameter["value"].is_f64() && parameter["unit"] != "px")
    .map(|parameter| {
        (
            parameter["name"].as_str().unwrap().to_string(),
            parameter["value"].as_f64().unwrap(),
            ucum(parameter["unit"].as_str().unwrap()).to_string(),
        )
    })
    .collect();
    expected.push((
        "p_csm".into(),
        record["csm"]["p_csm"].as_f64().unwrap(),
        "1".into(),
    ));
    assert!(
        expected.iter().any(|(_, _, unit)| unit == "{ratio}"),
        "{expected:?}"
    );
    let numbers: Vec<(String, f64, String)> = tree
        .iter()
        .filter(|item| string(item, tags::VALUE_TYPE) == "NUM")
        .map(|item| {
            let measured = &items(item, tags::MEASURED_VALUE_SEQUENCE)[0];
            let unit = code(&items(measured, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)[0]);
            assert_eq!(unit.1, "UCUM");
            (
                concept(item).0,
                string(measured, tags::NUMERIC_VALUE).parse().unwrap(),
                unit.0,
            )
        })
        .collect();
    assert_eq!(numbers, expected);
    let label = tree
        .iter()
        .find(|item| concept(item).0 == "csm_label")
        .map(|item| code(&items(item, tags::CONCEPT_CODE_SEQUENCE)[0]).2);
    assert_eq!(label.as_deref(), record["csm"]["label"].as_str());
}

/// `--skip-existing` with `--dicom-out` analyses again an image whose record is there but whose
/// SR is not (a first run without `--dicom-out`), and passes over one that has both.
#[test]
fn skip_existing_writes_the_missing_srs_and_keeps_the_written_ones() {
    let dir = scratch();
    let source_path = dir.path().join("dx.dcm");
    write_synthetic_dicom(&source_path);
    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    let first = sagitta(&[
        s(&source_path),
        "--weights",
        FIXTURE_WEIGHTS,
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let resume = |expected: &str| {
        let output = sagitta(&[
            s(&source_path),
            "--weights",
            FIXTURE_WEIGHTS,
            "--out",
            s(&out),
            "--dicom-out",
            s(&sr),
            "--skip-existing",
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    resume("1 of 1 image(s) to analyse; 0 already analysed");
    let path = sr_path(&sr, &source_path);
    let written = string(&open_file(&path).unwrap(), tags::SOP_INSTANCE_UID);
    resume("0 of 1 image(s) to analyse; 1 already analysed");
    assert_eq!(
        string(&open_file(&path).unwrap(), tags::SOP_INSTANCE_UID),
        written
    );
}

/// A PNG has no study to file an SR under: its record says so, and the run still succeeds.
#[test]
fn images_that_are_not_dicom_get_a_warning_and_no_sr() {
    let dir = scratch();
    let png = dir.path().join("x.png");
    let picture = image::GrayImage::from_fn(160, 200, |x, y| image::Luma([((x + y) % 256) as u8]));
    picture.save(&png).unwrap();
    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    let (record, output) = analyse(&png, &out, &sr);
    let warned = record["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|warning| warning.as_str().unwrap().contains("not DICOM"));
    assert!(warned, "{record}");
    assert!(text(&output.stderr).contains("DICOM objects not written"));
    assert!(!sr_path(&sr, &png).exists());
}

/// An SR path that is an input (here through a hard link) refuses the batch before anything
/// is written.
#[test]
fn an_sr_that_would_overwrite_an_input_is_refused() {
    let dir = scratch();
    let input = dir.path().join("x.png");
    let picture = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * y) % 256) as u8]));
    picture.save(&input).unwrap();
    let sr = dir.path().join("sr");
    std::fs::create_dir(&sr).unwrap();
    std::fs::hard_link(&input, sr.join("x.sr.dcm")).unwrap();
    let before = std::fs::read(&input).unwrap();
    let output = sagitta(&[
        s(&input),
        "--weights",
        FIXTURE_WEIGHTS,
        "--dicom-out",
        s(&sr),
        "--quiet",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--dicom-out") && stderr.contains("input"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

/// Writes the SR of the shared radiograph and returns its path (and the folder holding it).
fn shared_sr() -> Option<(tempfile::TempDir, PathBuf)> {
    let source = shared_source()?;
    let dir = scratch();
    let (out, sr) = (dir.path().join("out"), dir.path().join("sr"));
    analyse(&source, &out, &sr);
    let path = sr_path(&sr, &source);
    Some((dir, path))
}

/// dcmtk reads the SR as a valid SR document (its checks of the IOD, value types and
/// relationships print `E:`/`W:` lines).
#[test]
fn dcmtk_dsrdump_reads_the_sr_without_errors() {
    let Some(dsrdump) = tool("dsrdump", "dcmtk") else {
        return;
    };
    let Some((_dir, path)) = shared_sr() else {
        return;
    };
    let output = Command::new(dsrdump)
        .arg(&path)
        .output()
        .expect("run dsrdump");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    println!("{stdout}");
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr
            .lines()
            .chain(stdout.lines())
            .any(|line| line.starts_with("E:") || line.starts_with("W:")),
        "{stderr}{stdout}"
    );
    assert!(stdout.contains("Comprehensive SR"), "{stdout}");
    assert!(stdout.contains("Imaging Measurement Report"), "{stdout}");
}

/// dicom3tools' validator finds no errors in the SR (warnings are printed, not failed: it
/// warns about the private coding scheme, for instance).
#[test]
fn dicom3tools_dciodvfy_finds_no_errors_in_the_sr() {
    let Some(dciodvfy) = tool("dciodvfy", "dicom3tools") else {
        return;
    };
    let Some((_dir, path)) = shared_sr() else {
        return;
    };
    let output = Command::new(dciodvfy)
        .arg(&path)
        .output()
        .expect("run dciodvfy");
    let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
    println!("{report}");
    let errors: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("Error"))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

const GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.11.1";
const SECONDARY_CAPTURE_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
const DICOM_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/phantom_dicom.dcm");

/// dicom3tools' verdict on a file: its `Error` lines (none expected).
fn dciodvfy_errors(dciodvfy: &Path, path: &Path) -> Vec<String> {
    let output = Command::new(dciodvfy)
        .arg(path)
        .output()
        .expect("run dciodvfy");
    let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
    println!("{}:\n{report}", path.display());
    report
        .lines()
        .filter(|line| line.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

/// The presentation state draws the record: every landmark as a filled circle at its point
/// (half a pixel on, DICOM's convention), each construction in a layer named by its parameter,
/// every value in the panel text; it references the source instance and files in its study.
/// The secondary capture holds the overlay PNG's pixels. dciodvfy finds no errors in either,
/// for the DICOM sample and the shared NEMA radiograph.
#[test]
fn the_presentation_state_and_secondary_capture_draw_the_record_and_validate() {
    let dciodvfy = tool("dciodvfy", "dicom3tools");
    let mut sources = vec![PathBuf::from(DICOM_SAMPLE)];
    sources.extend(shared_source());
    for source_path in sources {
        let dir = scratch();
        let (out, dicom, overlay) = (
            dir.path().join("out"),
            dir.path().join("dicom"),
            dir.path().join("overlay"),
        );
        let output = sagitta(&[
            s(&source_path),
            "--weights",
            FIXTURE_WEIGHTS,
            "--out",
            s(&out),
            "--dicom-out",
            s(&dicom),
            "--secondary-capture",
            "--overlay",
            s(&overlay),
            "--quiet",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let stem = source_path.file_stem().unwrap().to_str().unwrap();
        let record: Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        let source = open_file(&source_path).unwrap();
        let (pr_path, sc_path) = (
            dicom.join(format!("{stem}.pr.dcm")),
            dicom.join(format!("{stem}.sc.dcm")),
        );
        if let Some(dciodvfy) = &dciodvfy {
            for path in [&pr_path, &sc_path] {
                let errors = dciodvfy_errors(dciodvfy, path);
                assert!(errors.is_empty(), "{}", errors.join("\n"));
            }
        }

        let state = open_file(&pr_path).unwrap();
        assert_eq!(
            string(&state, tags::SOP_CLASS_UID),
            GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE
        );
        assert_eq!(string(&state, tags::MODALITY), "PR");
        for tag in [tags::STUDY_INSTANCE_UID, tags::PATIENT_ID] {
            assert_eq!(string(&state, tag), string(&source, tag), "{tag}");
        }
        assert_eq!(
            record["dicom_presentation_state"]["sop_instance_uid"],
            string(&state, tags::SOP_INSTANCE_UID)
        );
        let series = items(&state, tags::REFERENCED_SERIES_SEQUENCE);
        assert_eq!(
            string(&series[0], tags::SERIES_INSTANCE_UID),
            string(&source, tags::SERIES_INSTANCE_UID)
        );
        let image = &items(&series[0], tags::REFERENCED_IMAGE_SEQUENCE)[0];
        assert_eq!(
            string(image, tags::REFERENCED_SOP_INSTANCE_UID),
            string(&source, tags::SOP_INSTANCE_UID)
        );

        let layers: Vec<String> = items(&state, tags::GRAPHIC_LAYER_SEQUENCE)
            .iter()
            .map(|layer| string(layer, tags::GRAPHIC_LAYER))
            .collect();
        let annotations = items(&state, tags::GRAPHIC_ANNOTATION_SEQUENCE);
        for annotation in annotations {
            assert!(layers.contains(&string(annotation, tags::GRAPHIC_LAYER)));
        }
        let in_layer = |prefix: &str| -> Vec<&InMemDicomObject> {
            annotations
                .iter()
                .filter(|annotation| string(annotation, tags::GRAPHIC_LAYER).starts_with(prefix))
                .flat_map(|annotation| items(annotation, tags::GRAPHIC_OBJECT_SEQUENCE))
                .collect()
        };
        // The landmarks: one filled circle each, centred on the point.
        let circles: Vec<Vec<f32>> = in_layer("LANDMARKS")
            .into_iter()
            .filter(|graphic| string(graphic, tags::GRAPHIC_TYPE) == "CIRCLE")
            .filter(|graphic| string(graphic, tags::GRAPHIC_FILLED) == "Y")
            .map(|graphic| {
                graphic
                    .element(tags::GRAPHIC_DATA)
                    .unwrap()
                    .to_multi_float32()
                    .unwrap()
            })
            .collect();
        let landmarks = record["landmarks"].as_array().unwrap();
        assert_eq!(circles.len(), landmarks.len());
        for landmark in landmarks {
            let x = landmark["x"].as_f64().unwrap() + 0.5;
            let y = landmark["y"].as_f64().unwrap() + 0.5;
            assert!(
                circles
                    .iter()
                    .any(|c| (f64::from(c[0]) - x).abs() < 1e-2
                        && (f64::from(c[1]) - y).abs() < 1e-2),
                "no circle at {landmark}"
            );
        }
        // The constructions, in their parameters' layers.
        for layer in ["C2_C7", "C7_SLOPE", "CSVA"] {
            assert!(
                in_layer(layer)
                    .iter()
                    .any(|graphic| string(graphic, tags::GRAPHIC_TYPE) == "POLYLINE"),
                "{layer}: {layers:?}"
            );
        }
        // The panel: every parameter's name and the model's.
        let panel: Vec<String> = annotations
            .iter()
            .filter(|annotation| string(annotation, tags::GRAPHIC_LAYER) == "PANEL")
            .flat_map(|annotation| items(annotation, tags::TEXT_OBJECT_SEQUENCE))
            .map(|text_object| string(text_object, tags::UNFORMATTED_TEXT_VALUE))
            .collect();
        for parameter in record["parameters"].as_array().unwrap() {
            let name = parameter["name"].as_str().unwrap();
            assert!(
                panel.iter().any(|line| line.starts_with(name)),
                "{name} not in {panel:?}"
            );
        }
        let model = record["model"]["name"].as_str().unwrap();
        assert!(panel.iter().any(|line| line.contains(model)), "{panel:?}");

        // The capture is the overlay PNG.
        let capture = open_file(&sc_path).unwrap();
        assert_eq!(
            string(&capture, tags::SOP_CLASS_UID),
            SECONDARY_CAPTURE_IMAGE_STORAGE
        );
        assert_eq!(string(&capture, tags::BURNED_IN_ANNOTATION), "YES");
        let png = image::open(overlay.join(format!("{stem}.png")))
            .unwrap()
            .to_rgb8();
        let number = |tag| capture.element(tag).unwrap().to_int::<u32>().unwrap();
        assert_eq!(
            (number(tags::COLUMNS), number(tags::ROWS)),
            png.dimensions()
        );
        let pixels = capture
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(&pixels[..png.as_raw().len()], png.as_raw().as_slice());
    }
}

/// A running Orthanc (Debian's `orthanc` with the `orthanc-dicomweb` plugin) on a free local
/// port with a throw-away storage folder and a password; stopped when dropped.
struct Orthanc {
    child: std::process::Child,
    port: u16,
    _storage: tempfile::TempDir,
}

const ORTHANC_USER: &str = "sagitta";
const ORTHANC_PASSWORD: &str = "not-a-secret";
/// `ORTHANC_USER:ORTHANC_PASSWORD` in the Basic scheme (base64 by Python's standard library).
const ORTHANC_AUTHORIZATION: &str = "Basic c2FnaXR0YTpub3QtYS1zZWNyZXQ=";

impl Orthanc {
    /// `None` (with a note) where Orthanc or its DICOMweb plugin is not installed, unless
    /// `SAGITTA_REQUIRE_ORTHANC` is set (CI sets it), which makes that a failure.
    fn start() -> Option<Self> {
        let binary = ["/usr/sbin/Orthanc", "/usr/bin/Orthanc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file());
        let plugin = PathBuf::from("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
        let (Some(binary), true) = (binary, plugin.is_file()) else {
            assert!(
                std::env::var_os("SAGITTA_REQUIRE_ORTHANC").is_none(),
                "SAGITTA_REQUIRE_ORTHANC is set but orthanc / orthanc-dicomweb are not installed"
            );
            println!(
                "note: Orthanc not found (apt-get install orthanc orthanc-dicomweb), test skipped"
            );
            return None;
        };
        let storage = scratch();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = serde_json::json!({
            "Name": "sagitta-test",
            "StorageDirectory": storage.path().join("db"),
            "IndexDirectory": storage.path().join("db"),
            "HttpPort": port,
            "DicomServerEnabled": false,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": true,
            "RegisteredUsers": { ORTHANC_USER: ORTHANC_PASSWORD },
            "Plugins": [plugin],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        });
        let config_path = storage.path().join("orthanc.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let child = Command::new(binary)
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start Orthanc");
        let orthanc = Self {
            child,
            port,
            _storage: storage,
        };
        let started = std::time::Instant::now();
        while orthanc.get("/system").is_err() {
            assert!(
                started.elapsed().as_secs() < 30,
                "Orthanc did not answer on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Some(orthanc)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let mut response = ureq::get(&self.url(path))
            .header("Authorization", ORTHANC_AUTHORIZATION)
            .call()
            .map_err(|error| error.to_string())?;
        response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|error| error.to_string())
    }

    fn post(&self, path: &str, body: &[u8]) -> Vec<u8> {
        let mut response = ureq::post(&self.url(path))
            .header("Authorization", ORTHANC_AUTHORIZATION)
            .send(body)
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        response.body_mut().read_to_vec().unwrap()
    }

    /// The stored file of the instance with this SOP Instance UID (Orthanc's own REST API,
    /// independent of the DICOMweb code under test).
    fn instance_file(&self, sop_instance_uid: &str) -> Vec<u8> {
        let found: Value =
            serde_json::from_slice(&self.post("/tools/lookup", sop_instance_uid.as_bytes()))
                .unwrap();
        let id = found
            .as_array()
            .and_then(|hits| hits.iter().find(|hit| hit["Type"] == "Instance"))
            .unwrap_or_else(|| panic!("{sop_instance_uid} not stored: {found}"))["ID"]
            .as_str()
            .unwrap()
            .to_string();
        self.get(&format!("/instances/{id}/file")).unwrap()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PACS round trip: the DICOM sample and the shared NEMA films are uploaded to Orthanc;
/// `sagitta analyze <study URL> --store <DICOMweb URL>` fetches each study over DICOMweb and
/// sends the SR and the presentation state back; the stored SR is the file sagitta wrote, and
/// its values equal the JSON record's. Credentials come once from the environment and once
/// from a file; a wrong password is refused with a hint.
#[test]
fn a_study_fetched_from_orthanc_gets_its_sr_and_presentation_state_stored_back() {
    let Some(orthanc) = Orthanc::start() else {
        return;
    };
    let mut sources = vec![PathBuf::from(DICOM_SAMPLE)];
    sources.extend(shared_source());
    let dir = scratch();
    let auth_file = dir.path().join("credentials");
    std::fs::write(&auth_file, format!("{ORTHANC_USER}:{ORTHANC_PASSWORD}\n")).unwrap();
    let service = orthanc.url("/dicom-web");
    for (index, source_path) in sources.iter().enumerate() {
        orthanc.post("/instances", &std::fs::read(source_path).unwrap());
        let source = open_file(source_path).unwrap();
        let study = string(&source, tags::STUDY_INSTANCE_UID);
        let instance = string(&source, tags::SOP_INSTANCE_UID);
        let (out, dicom) = (
            dir.path().join(format!("out{index}")),
            dir.path().join(format!("dicom{index}")),
        );
        let study_url = format!("{service}/studies/{study}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sagitta"));
        command
            .args(["analyze", &study_url, "--store", &service, "--weights"])
            .args([
                FIXTURE_WEIGHTS,
                "--out",
                s(&out),
                "--dicom-out",
                s(&dicom),
                "--quiet",
            ])
            .env_remove("SAGITTA_DICOMWEB_TOKEN");
        if index == 0 {
            command
                .env("SAGITTA_DICOMWEB_USER", ORTHANC_USER)
                .env("SAGITTA_DICOMWEB_PASSWORD", ORTHANC_PASSWORD);
        } else {
            command.arg("--dicomweb-auth").arg(&auth_file);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let json = out.join(format!("{instance}.json"));
        let record: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert!(
            record["image"].as_str().unwrap().starts_with(&study_url),
            "{}",
            record["image"]
        );
        for key in ["dicom_sr", "dicom_presentation_state"] {
            let reference = &record[key];
            assert_eq!(reference["stored_to"], service.as_str(), "{key}");
            let stored = orthanc.instance_file(reference["sop_instance_uid"].as_str().unwrap());
            let written = std::fs::read(reference["path"].as_str().unwrap()).unwrap();
            assert_eq!(
                stored, written,
                "{key}: the stored object is the one written"
            );
        }
        let sr_path = PathBuf::from(record["dicom_sr"]["path"].as_str().unwrap());
        check_sr(source_path, &record, &sr_path);
    }

    // Wrong credentials: the fetch is refused before anything is analysed, with a hint.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, format!("{ORTHANC_USER}:guess\n")).unwrap();
    let source = open_file(&sources[0]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args([
            "analyze",
            &format!(
                "{service}/studies/{}",
                string(&source, tags::STUDY_INSTANCE_UID)
            ),
            "--weights",
            FIXTURE_WEIGHTS,
            "--dicomweb-auth",
        ])
        .arg(&wrong)
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(
        text(&output.stderr).contains("401"),
        "{}",
        text(&output.stderr)
    );
}

/// Records carry no patient name, ID or birth date unless --include-phi asks (the SR always
/// does: it goes back to that patient's study); --redact-paths names the image relative to
/// the current folder or by a hash of its path, without the folder names.
#[test]
fn records_leave_out_the_patient_and_can_hide_paths() {
    let dir = scratch();
    let folder = dir.path().join("Mueller Joerg");
    std::fs::create_dir(&folder).unwrap();
    let source_path = folder.join("dx.dcm");
    write_synthetic_dicom(&source_path);
    let run = |extra: &[&str]| -> String {
        let output = sagitta(
            &[
                &[s(&source_path), "--weights", FIXTURE_WEIGHTS, "--quiet"],
                extra,
            ]
            .concat(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let plain = run(&[]);
    for secret in ["Müller", "PID-77"] {
        assert!(
            !plain.contains(&format!("\"{secret}")),
            "{secret} in {plain}"
        );
    }
    let record: Value = serde_json::from_str(&plain).unwrap();
    assert!(record[0]["dicom"].get("patient").is_none(), "{plain}");
    let revealed: Value = serde_json::from_str(&run(&["--include-phi"])).unwrap();
    assert_eq!(
        revealed[0]["dicom"]["patient"]["patient_name"],
        "Müller^Jörg"
    );
    assert_eq!(revealed[0]["dicom"]["patient"]["patient_id"], "PID-77");

    let hashed: Value = serde_json::from_str(&run(&["--redact-paths", "hash"])).unwrap();
    let name = hashed[0]["image"].as_str().unwrap();
    assert!(
        name.starts_with("sha256:") && name.len() == 7 + 64,
        "{name}"
    );
    assert!(!hashed.to_string().contains("Mueller"), "{hashed}");
    // The same path always hashes the same (records of reruns pair up).
    let again: Value = serde_json::from_str(&run(&["--redact-paths", "hash"])).unwrap();
    assert_eq!(again[0]["image"], hashed[0]["image"]);

    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .current_dir(&folder)
        .arg("analyze")
        .arg(&source_path)
        .args([
            "--weights",
            FIXTURE_WEIGHTS,
            "--quiet",
            "--redact-paths",
            "relative",
        ])
        .output()
        .unwrap();
    let relative: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(relative[0]["image"], "dx.dcm");
}

/// dciodvfy finds no error in any object written for any shared NEMA film that analyses (one
/// is 12-bit lossy JPEG, which the pure-Rust decoder cannot read: it gets an error record and
/// no objects) nor for the DICOM sample, with every model family.
#[test]
fn dciodvfy_finds_no_errors_in_the_objects_of_every_shared_film() {
    let Some(dciodvfy) = tool("dciodvfy", "dicom3tools") else {
        return;
    };
    let Some(source) = shared_source() else {
        return;
    };
    let dir = scratch();
    let dicom = dir.path().join("dicom");
    let shared = source.parent().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args([
            "analyze",
            s(shared),
            DICOM_SAMPLE,
            "--model",
            "all",
            "--quiet",
        ])
        .args(["--dicom-out", s(&dicom), "--secondary-capture"])
        .env_remove("SAGITTA_WEIGHTS")
        .output()
        .unwrap();
    let records: Value = serde_json::from_slice(&output.stdout).unwrap();
    let analysed = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["status"] != "error")
        .count();
    assert!(analysed >= 2, "{records}");
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dicom)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".dcm"))
        .collect();
    objects.sort();
    assert_eq!(objects.len(), 3 * analysed, "{objects:?}");
    for path in objects {
        let errors = dciodvfy_errors(&dciodvfy, &path);
        assert!(
            errors.is_empty(),
            "{}: {}",
            path.display(),
            errors.join("\n")
        );
    }
}
