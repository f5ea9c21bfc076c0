//! Shared test helpers: the GPU context, PyTorch fixtures, tolerances.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sagitta::gpu::{AdapterChoice, GpuContext};

/// One GPU context per test binary.
pub fn gpu() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = GpuContext::new(&AdapterChoice::from_env()).expect(
            "no GPU adapter: install mesa-vulkan-drivers (lavapipe) or run on a machine with a GPU",
        );
        eprintln!("tests run on: {}", ctx.describe());
        ctx
    })
    .clone()
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture file made by tools/make_fixtures.py: tensors (all f32) and the JSON cases.
pub struct Fixture {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl Fixture {
    pub fn load(name: &str) -> Self {
        let bytes = std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid fixture");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
        let tensors = file
            .iter()
            .map(|(n, v)| {
                assert_eq!(v.dtype(), safetensors::Dtype::F32, "{n}");
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (n.to_string(), (v.shape().to_vec(), data))
            })
            .collect();
        Self {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        }
    }

    pub fn cases(&self) -> Vec<serde_json::Value> {
        let raw = self.metadata.get("cases").expect("fixture has cases");
        serde_json::from_str::<Vec<serde_json::Value>>(raw).expect("cases JSON")
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture tensor {name} missing"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

pub fn param_u32(case: &serde_json::Value, key: &str) -> u32 {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("case param {key}")) as u32
}

pub fn param_bool(case: &serde_json::Value, key: &str) -> bool {
    case[key]
        .as_bool()
        .unwrap_or_else(|| panic!("case param {key}"))
}

/// Largest absolute difference; panics with context when above `tol`.
pub fn assert_close(what: &str, got: &[f32], expected: &[f32], tol: f32) -> f32 {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let d = (g - e).abs();
        assert!(!d.is_nan(), "{what}[{i}]: got {g}, expected {e}");
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: max |diff| {} at {} (got {}, expected {}) > tol {tol}",
        worst.0,
        worst.1,
        got[worst.1],
        expected[worst.1]
    );
    worst.0
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}
