//! The shipped default CSM classifier, `weights/csm_default.safetensors` (weights/README.md, "CSM
//! model card"): its metadata declares the reduced model it is, `sagitta analyze --model csm`
//! finds it without being told, and on the sample radiographs the engine gives the probability
//! the PyTorch reference gives on the same file (`tools/evaluate_csm.py`'s model).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use sagitta::io::load_radiograph;
use sagitta::models::csm::{CsmConfig, CsmModel};
use sagitta::GreyImage;
use sagitta::WeightFile;

const NAME: &str = "sagitta-csm-synthetic-v1";

/// p_csm of the PyTorch reference (`CsmModel`, float32) on the shipped file, per sample image:
/// `python3 tools/evaluate_csm.py`'s model on samples/*.png (weights/README.md says how).
/// Regenerate with the weights: a new file changes them.
const TORCH_P: [(&str, f64); 3] = [
    ("phantom_left.png", 0.3633255362510681),
    ("phantom_right.png", 0.8268378376960754),
    ("phantom_right_2.png", 0.8599353432655334),
];
/// The engine (f32 activations) against PyTorch on one probability.
const TOLERANCE: f64 = 1e-4;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn default_weights() -> PathBuf {
    root().join("weights/csm_default.safetensors")
}

#[test]
fn the_default_file_declares_a_reduced_vgg16_not_for_clinical_use() {
    let weights = WeightFile::open(default_weights()).expect("weights/csm_default.safetensors");
    let config = CsmConfig::from_weights(&weights).unwrap();
    assert_eq!(config.name, NAME);
    assert!(config.not_for_clinical_use);
    // Reduced from the paper's VGG16 in width only: 224 input, FC 128 and 64, threshold 0.5.
    assert_eq!(config.input_size, 224);
    assert_eq!(config.width, 0.125);
    assert_eq!(config.fc, vec![128, 64]);
    assert_eq!(config.threshold, 0.5);
    assert_eq!(config.stage_channels(), [8, 16, 32, 64, 64]);
    // The training record says what it was trained on.
    let bytes = std::fs::read(default_weights()).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().expect("metadata");
    let training: Value =
        serde_json::from_str(metadata.get("training").expect("a 'training' entry")).unwrap();
    assert!(training["rule"].as_str().unwrap().contains("CSM-like"));
    assert!(training["history"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    // Small enough for git.
    assert!(bytes.len() < 4 << 20, "{} bytes", bytes.len());
}

#[test]
fn analyze_finds_the_default_and_agrees_with_pytorch_on_the_samples() {
    let weights = WeightFile::open(default_weights()).unwrap();
    let images: Vec<PathBuf> = TORCH_P
        .iter()
        .map(|(name, _)| root().join("samples").join(name))
        .collect();
    // From another directory and without $SAGITTA_CSM_WEIGHTS: the binary falls back on the
    // file in the source tree it was built from.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .current_dir(elsewhere.path())
        .args(["analyze", "--model", "csm", "-q"])
        .args(&images)
        .env_remove("SAGITTA_WEIGHTS")
        .env_remove("SAGITTA_CSM_WEIGHTS")
        .output()
        .expect("run the sagitta binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let records: Value = serde_json::from_slice(&output.stdout).expect("a JSON array");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), TORCH_P.len());

    let mut model = CsmModel::new(common::gpu(), &weights).unwrap();
    for ((name, torch_p), record) in TORCH_P.iter().zip(records) {
        let screen = &record["csm"];
        assert_eq!(screen["status"], "ok", "{record}");
        assert_eq!(screen["model"]["name"], NAME);
        assert_eq!(screen["model"]["sha256"], weights.sha256.as_str());
        let p = screen["p_csm"].as_f64().expect("p_csm");
        assert!((0.0..=1.0).contains(&p), "{name}: {p}");
        assert_eq!(screen["label"], if p >= 0.5 { "CSM" } else { "no CSM" });
        assert!(
            (p - torch_p).abs() < TOLERANCE,
            "{name}: engine {p} vs PyTorch {torch_p}"
        );
        // The library gives the record's number.
        let radiograph = load_radiograph(&root().join("samples").join(name)).unwrap();
        let direct = model
            .run(GreyImage {
                width: radiograph.width,
                height: radiograph.height,
                pixels: &radiograph.pixels,
            })
            .unwrap();
        assert!((f64::from(direct.p_csm) - p).abs() < 1e-6, "{name}");
    }
}
