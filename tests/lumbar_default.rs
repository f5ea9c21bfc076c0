//! The shipped default lumbar model, `weights/lumbar_default.safetensors` (weights/README.md,
//! "Lumbar model card"): its metadata declares the reduced model it is, `sagitta analyze --model
//! lumbar` finds it without being told, and on the lumbar samples the engine's presence
//! probabilities and corners are the PyTorch reference's on the same file
//! (tests/fixtures/lumbar_default_torch.json, from tools/lumbar_default_reference.py), its level
//! labels are the phantoms' and its corners land near their ground truth.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use sagitta::models::lumbar::LumbarConfig;
use sagitta::WeightFile;

const NAME: &str = "sagitta-lumbar-synthetic-v1";
const SAMPLES: [&str; 2] = ["lumbar_right.png", "lumbar_dicom.dcm"];
const LEVELS: [&str; 24] = [
    "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
    "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1",
];
/// Engine (f32) against PyTorch, per corner coordinate, in original pixels: float32 summation
/// order in the convolutions and the softmaxes, carried through the localisation into the crop
/// boxes and scaled from the maps to the original image (the localisation's by the original/input
/// ratio, about 2 to 3 here, the refinement's by the box/crop ratio), and the records' float32
/// rounding. A wrong crop, box or level order moves a corner by pixels to tens of pixels.
const TORCH_TOLERANCE_PX: f64 = 0.05;
/// Presence probabilities, engine against PyTorch (the records keep 6 decimals).
const TORCH_TOLERANCE_P: f64 = 1e-4;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn default_weights() -> PathBuf {
    root().join("weights/lumbar_default.safetensors")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_default_file_declares_a_reduced_network_not_for_clinical_use() {
    let weights = WeightFile::open(default_weights()).expect("the shipped lumbar weights");
    let config = LumbarConfig::from_weights(&weights).unwrap();
    assert_eq!(config.name, NAME);
    assert!(config.not_for_clinical_use);
    // The SPEC's three networks, reduced: a 320 input and 224 crops instead of 1024 and 512,
    // one bottleneck per stage instead of resnet50's [3, 4, 6, 3], the labeller and the
    // localiser at 1/8 width, the refiner (run once per level) at 1/16.
    assert_eq!((config.input_size, config.crop_size), (320, 224));
    assert_eq!(config.identify_blocks, [1, 1, 1, 1]);
    assert_eq!(config.identify_width, 0.125);
    assert_eq!(config.locate_width, 0.125);
    assert_eq!(config.refine_width, 0.0625);
    let paper = LumbarConfig::paper();
    assert!(config.input_size < paper.input_size && config.crop_size < paper.crop_size);
    assert!(config
        .identify_blocks
        .iter()
        .zip(paper.identify_blocks.iter())
        .all(|(ours, theirs)| ours <= theirs));
    // The SPEC's choices where the paper is silent are kept.
    assert_eq!(config.box_scale, paper.box_scale);
    assert_eq!(config.threshold, paper.threshold);
    // The training record: synthetic phantoms from seeds that no held-out set or sample uses.
    let bytes = std::fs::read(default_weights()).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().expect("metadata");
    let training: Value =
        serde_json::from_str(metadata.get("training").expect("a 'training' entry")).unwrap();
    assert!(training["generator"]
        .as_str()
        .unwrap()
        .contains("phantom_lumbar"));
    for (key, base) in [("train_seeds", 60_000_000), ("val_seeds", 61_000_000)] {
        let seeds = training[key].as_array().expect(key);
        let (low, high) = (seeds[0].as_u64().unwrap(), seeds[1].as_u64().unwrap());
        // held-out 850_000.., samples 970_000..: both below every training or validation seed,
        // and the two ranges apart
        assert!(low >= base && high < base + 1_000_000, "{key} {seeds:?}");
    }
    assert!(training["history"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    assert!(f(&training["wall_minutes"]) > 0.0);
    assert!(bytes.len() < 8 << 20, "{} bytes", bytes.len());
}

#[test]
fn analyze_finds_the_default_and_agrees_with_pytorch_on_the_samples() {
    let weights = WeightFile::open(default_weights()).unwrap();
    let reference = read_json(&root().join("tests/fixtures/lumbar_default_torch.json"));
    // A reference made for other weights says nothing about these: regenerate it
    // (`python3 tools/lumbar_default_reference.py`).
    assert_eq!(
        reference["weights_sha256"].as_str().unwrap(),
        weights.sha256.as_str(),
        "tests/fixtures/lumbar_default_torch.json is stale"
    );
    let images: Vec<PathBuf> = SAMPLES
        .iter()
        .map(|name| root().join("samples").join(name))
        .collect();
    // From another directory and without $SAGITTA_LUMBAR_WEIGHTS: the binary falls back on the
    // file in the source tree it was built from.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .current_dir(elsewhere.path())
        .args(["analyze", "--model", "lumbar", "-q"])
        .args(&images)
        .env_remove("SAGITTA_WEIGHTS")
        .env_remove("SAGITTA_LUMBAR_WEIGHTS")
        .output()
        .expect("run the sagitta binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let records: Value = serde_json::from_slice(&output.stdout).expect("a JSON array");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), SAMPLES.len());

    for (name, record) in SAMPLES.iter().zip(records) {
        let block = &record["lumbar"];
        assert_eq!(block["model"]["name"], NAME, "{record}");
        assert_eq!(block["model"]["sha256"], weights.sha256.as_str());
        assert_eq!(block["model"]["not_for_clinical_use"], true);
        let torch = &reference["images"][*name];
        let stem = name.rsplit_once('.').unwrap().0;
        let truth = read_json(&root().join("samples").join(format!("{stem}.json")));

        // Presence: the reference's probabilities, and the phantom's present levels.
        let levels = block["levels"].as_array().unwrap();
        assert_eq!(levels.len(), 24);
        let truth_present: Vec<&str> = truth["present_levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut found = Vec::new();
        for (v, level) in levels.iter().enumerate() {
            assert_eq!(level["name"], LEVELS[v]);
            let p = f(&level["probability"]);
            let tp = f(&torch["presence"][v]);
            assert!(
                (p - tp).abs() < TORCH_TOLERANCE_P,
                "{name} {}: engine p {p} vs PyTorch {tp}",
                LEVELS[v]
            );
            if level["present"].as_bool().unwrap() {
                found.push(LEVELS[v]);
            }
        }
        // Every level the phantom shows is found; on the DICOM sample the labels are exactly the
        // phantom's, on the PNG sample the model also calls T10 present (cut by the film's top
        // edge in the phantom; probability about 0.64): the labeller's typical error, at the top.
        for level in &truth_present {
            assert!(found.contains(level), "{name}: {level} missed ({found:?})");
        }
        let extra: Vec<&str> = found
            .iter()
            .copied()
            .filter(|level| !truth_present.contains(level))
            .collect();
        let expected_extra: &[&str] = if name.ends_with(".dcm") {
            &[]
        } else {
            &["T10"]
        };
        assert_eq!(extra, expected_extra, "{name}: levels found {found:?}");

        // Corners: the reference's, and near the ground truth.
        let landmarks = block["landmarks"].as_array().unwrap();
        assert_eq!(landmarks.len(), 4 * found.len());
        let mut errors_px = Vec::new();
        for landmark in landmarks {
            let label = landmark["name"].as_str().unwrap();
            let (level, corner) = label.split_once('_').unwrap();
            let v = LEVELS.iter().position(|&l| l == level).unwrap();
            let c = ["as", "ps", "pi", "ai"]
                .iter()
                .position(|&k| k == corner)
                .unwrap();
            let (x, y) = (f(&landmark["x"]), f(&landmark["y"]));
            let expected = &torch["corners"][4 * v + c];
            let (tx, ty) = (f(&expected[0]), f(&expected[1]));
            assert!(
                (x - tx).abs() < TORCH_TOLERANCE_PX && (y - ty).abs() < TORCH_TOLERANCE_PX,
                "{name} {label}: engine ({x}, {y}) vs PyTorch ({tx}, {ty})"
            );
            // The ground truth has corners for the phantom's present levels only.
            if let Some(gt) = truth["landmarks"].get(label) {
                errors_px.push((x - f(&gt[0])).hypot(y - f(&gt[1])));
            }
        }
        // Near the ground truth: the median over the corners of the truly present levels within
        // a bound 1.5 times the worse of the two samples (the model card) and below what a wrong
        // level, mirror or corner order gives (a level is 60-90 px apart here).
        errors_px.sort_by(f64::total_cmp);
        let median = errors_px[errors_px.len() / 2];
        assert!(
            median < MEDIAN_BOUND_PX,
            "{name}: median corner error {median:.2} px"
        );
        // Right or left: the facing the phantom was drawn with.
        assert_eq!(block["facing"], truth["facing"], "{name}");
        if name.ends_with(".dcm") {
            assert_eq!(record["distance_unit"], "mm");
        }
    }
}

/// Median corner error bound on a sample, original px (see the test).
const MEDIAN_BOUND_PX: f64 = 14.6;
