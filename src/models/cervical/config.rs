//! The cervical model's configuration as the weights metadata holds it.

use std::path::Path;

use serde_json::Value;

use crate::anatomy::cervical::{DISC_COUNT, LANDMARK_COUNT, LANDMARK_NAMES};
use crate::error::Result;
use crate::nn::hourglass::{self, HourglassConfig};
use crate::nn::weights::{MetadataReader, WeightFile};

/// The architecture name in the weights metadata.
pub const CERVICAL_ARCH: &str = "cervical-hourglass-dsnt";

/// The longest model name read from metadata.
pub const MAX_NAME_CHARS: usize = 256;

/// The documented range of each metadata field (inclusive; floats `(low, low excluded, high)`).
pub struct ConfigLimits {
    pub input_size: (i64, i64),
    pub crop_size: (i64, i64),
    pub depth: (i64, i64),
    pub stacks: (i64, i64),
    pub blocks: (i64, i64),
    pub features: (i64, i64),
    pub roi_sampling_ratio: (i64, i64),
    pub box_margin: (f32, bool, f32),
    pub box_min_side: (f32, bool, f32),
    pub eps: (f32, bool, f32),
}

/// The ranges [`CervicalConfig::check`] enforces: sizes up to 4096 px (and a multiple of
/// 4 * 2^depth), hourglass depth 1..=8, 1..=8 stacks and blocks, 2..=1024 features, ROIAlign
/// sampling ratio -1..=16 (<= 0: adaptive), box margin in [0, 10] (a fraction of the box),
/// box minimum side in (0, 4096] px, both epsilons in (0, 0.01].
pub const LIMITS: ConfigLimits = ConfigLimits {
    input_size: (1, 4096),
    crop_size: (1, 4096),
    depth: (1, 8),
    stacks: (1, 8),
    blocks: (1, 8),
    features: (2, 1024),
    roi_sampling_ratio: (-1, 16),
    box_margin: (0.0, false, 10.0),
    box_min_side: (0.0, true, 4096.0),
    eps: (0.0, true, 1e-2),
};

/// The cervical model of SPEC-cervical.md.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CervicalConfig {
    pub name: String,
    pub input_size: u32,
    pub crop_size: u32,
    pub box_margin: f32,
    pub box_min_side: f32,
    /// torchvision `sampling_ratio`: > 0 fixed samples per bin, <= 0 adaptive.
    pub roi_sampling_ratio: i32,
    pub bn_eps: f32,
    pub standardize_eps: f32,
    /// Ours, not the paper's (SPEC: such choices live in the metadata): whether each crop is
    /// standardized again on its own before its refiner. Crops under the shoulders are nearly
    /// flat in the whole-image standardization; a checkpoint trained on restandardized crops
    /// says so with `crop_standardize: true`. Absent in a file: false (the paper's pipeline).
    pub crop_standardize: bool,
    pub landmarks: Vec<String>,
    pub global: HourglassConfig,
    pub refiner: HourglassConfig,
    pub refiner_count: u32,
}

impl CervicalConfig {
    /// The paper's configuration (1024 input, 2-stack global network, six 128x128 refiners).
    pub fn paper() -> Self {
        Self {
            name: "paper-size".into(),
            input_size: 1024,
            crop_size: 128,
            box_margin: 0.7,
            box_min_side: 32.0,
            roi_sampling_ratio: 2,
            bn_eps: 1e-5,
            standardize_eps: 1e-6,
            crop_standardize: false,
            landmarks: LANDMARK_NAMES.iter().map(|s| s.to_string()).collect(),
            global: HourglassConfig {
                in_channels: 1,
                stacks: 2,
                blocks: 1,
                features: 128,
                depth: 4,
                num_classes: 29,
            },
            refiner: HourglassConfig {
                in_channels: 1,
                stacks: 1,
                blocks: 1,
                features: 128,
                depth: 4,
                num_classes: 4,
            },
            refiner_count: 6,
        }
    }

    /// The invariants the engine relies on; a violation names the field and its range. Every
    /// field is bounded before anything is computed from it, so no arithmetic on metadata can
    /// overflow or divide by zero (the ranges are in [`LIMITS`]).
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        let err = |f: &str, r: String| Err((f.to_string(), r));
        if self.name.chars().count() > MAX_NAME_CHARS {
            return err("name", format!("longer than {MAX_NAME_CHARS} characters"));
        }
        if self.landmarks.len() != LANDMARK_COUNT {
            return err(
                "landmarks",
                format!(
                    "expected {LANDMARK_COUNT} names, found {}",
                    self.landmarks.len()
                ),
            );
        }
        if let Some((index, (found, expected))) = self
            .landmarks
            .iter()
            .zip(LANDMARK_NAMES)
            .enumerate()
            .find(|(_, (found, expected))| found.as_str() != *expected)
        {
            return err(
                &format!("landmarks[{index}]"),
                format!(
                    "expected '{expected}', found '{found}' (the {LANDMARK_COUNT} names of \
                     SPEC-cervical.md, in that order: the heatmap channels are read by position)"
                ),
            );
        }
        if self.global.num_classes as usize != LANDMARK_COUNT {
            return err("global.num_classes", "must be 29".into());
        }
        if self.refiner.num_classes != 4 {
            return err(
                "refiner.num_classes",
                "must be 4 (the corners of one disc)".into(),
            );
        }
        if self.refiner_count as usize != DISC_COUNT {
            return err("refiner.count", "must be 6 (discs C2-C3 .. C7-T1)".into());
        }
        let in_range = |field: &str, value: i64, (low, high): (i64, i64)| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err((
                    field.to_string(),
                    format!("{value} is outside the range {low}..={high}"),
                ))
            }
        };
        in_range("input_size", self.input_size.into(), LIMITS.input_size)?;
        in_range("crop_size", self.crop_size.into(), LIMITS.crop_size)?;
        for (prefix, net, size, size_field) in [
            ("global", &self.global, self.input_size, "input_size"),
            ("refiner", &self.refiner, self.crop_size, "crop_size"),
        ] {
            if net.in_channels != 1 {
                return err(
                    &format!("{prefix}.in_channels"),
                    "must be 1 (grey radiographs)".into(),
                );
            }
            in_range(&format!("{prefix}.depth"), net.depth.into(), LIMITS.depth)?;
            in_range(
                &format!("{prefix}.stacks"),
                net.stacks.into(),
                LIMITS.stacks,
            )?;
            in_range(
                &format!("{prefix}.blocks"),
                net.blocks.into(),
                LIMITS.blocks,
            )?;
            in_range(
                &format!("{prefix}.features"),
                net.features.into(),
                LIMITS.features,
            )?;
            net.check(prefix, size, size_field)?;
        }
        in_range(
            "roi_sampling_ratio",
            self.roi_sampling_ratio.into(),
            LIMITS.roi_sampling_ratio,
        )?;
        let float_range = |field: &str, value: f32, (low, low_open, high): (f32, bool, f32)| {
            let above_low = if low_open { value > low } else { value >= low };
            if value.is_finite() && above_low && value <= high {
                Ok(())
            } else {
                let open = if low_open { "(" } else { "[" };
                Err((
                    field.to_string(),
                    format!("{value} is outside the range {open}{low}, {high}]"),
                ))
            }
        };
        float_range("box_margin", self.box_margin, LIMITS.box_margin)?;
        float_range("box_min_side", self.box_min_side, LIMITS.box_min_side)?;
        float_range("bn_eps", self.bn_eps, LIMITS.eps)?;
        float_range("standardize_eps", self.standardize_eps, LIMITS.eps)?;
        Ok(())
    }

    /// The JSON that goes into the safetensors metadata (same schema as the Python converter).
    pub fn to_metadata(&self) -> Value {
        let mut refiner = self.refiner.to_metadata();
        refiner["count"] = self.refiner_count.into();
        serde_json::json!({
            "format_version": 1,
            "arch": CERVICAL_ARCH,
            "name": self.name,
            "input_size": self.input_size,
            "crop_size": self.crop_size,
            "box_margin": self.box_margin,
            "box_min_side": self.box_min_side,
            "roi_sampling_ratio": self.roi_sampling_ratio,
            "bn_eps": self.bn_eps,
            "standardize_eps": self.standardize_eps,
            "crop_standardize": self.crop_standardize,
            "landmarks": self.landmarks,
            "global": self.global.to_metadata(),
            "refiner": refiner,
        })
    }

    /// Reads and checks the configuration in a weights file's metadata.
    pub fn from_weights(weights: &WeightFile) -> Result<Self> {
        Self::from_metadata(&weights.path, &weights.arch, &weights.metadata)
    }

    /// Reads and checks the configuration in the `sagitta` metadata object of the file `path`.
    pub fn from_metadata(path: &Path, arch: &str, json: &Value) -> Result<Self> {
        let r = MetadataReader { path };
        if arch != CERVICAL_ARCH {
            return Err(r.error("arch", super::super::wrong_family(arch, CERVICAL_ARCH)));
        }
        let refiner_json = r.object(json, "", "refiner")?;
        let config = CervicalConfig {
            name: r.string(json, "", "name")?,
            input_size: r.uint(json, "", "input_size")?,
            crop_size: r.uint(json, "", "crop_size")?,
            box_margin: r.float(json, "", "box_margin")?,
            box_min_side: r.float(json, "", "box_min_side")?,
            roi_sampling_ratio: r.int(json, "", "roi_sampling_ratio")?,
            bn_eps: r.float(json, "", "bn_eps")?,
            standardize_eps: r.float(json, "", "standardize_eps")?,
            crop_standardize: r.bool_or(json, "", "crop_standardize", false)?,
            landmarks: r.strings(json, "", "landmarks")?,
            global: HourglassConfig::from_metadata(&r, json, "global")?,
            refiner: HourglassConfig::from_metadata(&r, json, "refiner")?,
            refiner_count: r.uint(refiner_json, "refiner.", "count")?,
        };
        config
            .check()
            .map_err(|(field, reason)| r.error(&field, reason))?;
        Ok(config)
    }

    /// Every tensor of the model, named as the PyTorch state dict names them (a dry run of the
    /// loader).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut shapes = hourglass::tensor_shapes("global_net.", &self.global);
        for k in 0..self.refiner_count {
            shapes.extend(hourglass::tensor_shapes(
                &format!("refiners.{k}."),
                &self.refiner,
            ));
        }
        shapes
    }

    /// Random weights of this configuration (benchmarks).
    pub fn random_weights(&self, seed: u64) -> WeightFile {
        WeightFile::random(self.to_metadata(), self.tensor_shapes(), seed)
    }
}
