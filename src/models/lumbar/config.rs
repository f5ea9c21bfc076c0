//! The lumbar model's configuration as the weights metadata holds it (SPEC-lumbar.md).

use std::path::Path;

use serde_json::Value;

use crate::error::Result;
use crate::nn::resnet::RESNET50_BLOCKS;
use crate::nn::scope::WeightScope;
use crate::nn::weights::{MetadataReader, WeightFile};

/// The architecture name in the weights metadata.
pub const LUMBAR_ARCH: &str = "lumbar-resnet50-inception3-dsnt";

/// The longest model name read from metadata.
const MAX_NAME_CHARS: usize = 256;

/// The ranges [`LumbarConfig::check`] enforces: input and crop sides 75..=4096 (Inception3's
/// unpadded reductions need 75 px to leave a map), widths in (0, 4], 1..=64 bottlenecks per
/// stage, box scale in [1, 10], minimum box side in (0, 4096] px, threshold in [0, 1], means in
/// [-1000, 1000], standard deviations in (0, 1000].
pub const SIDE: (u32, u32) = (75, 4096);
pub const WIDTH: (f64, f64) = (0.0, 4.0);
pub const BLOCKS: (u32, u32) = (1, 64);
pub const BOX_SCALE: (f32, f32) = (1.0, 10.0);
pub const MIN_BOX: (f32, f32) = (0.0, 4096.0);

/// SPEC-lumbar's two-step model at configurable sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LumbarConfig {
    pub name: String,
    /// Side of the square input of identification and localisation (the paper: 1024).
    pub input_size: u32,
    /// Side of each level's refinement crop (the paper: 512).
    pub crop_size: u32,
    /// Each box side is the level's corner extent along it times this (the SPEC: 1.7) ...
    pub box_scale: f32,
    /// ... and at least this many original pixels (16).
    pub min_box: f32,
    /// A level is present when its probability is at least this.
    pub threshold: f32,
    pub input_mean: [f32; 3],
    pub input_std: [f32; 3],
    /// Width multiplier and bottlenecks per stage of the labeller (1 and [3, 4, 6, 3]: resnet50).
    pub identify_width: f64,
    pub identify_blocks: [u32; 4],
    /// Width multipliers of the two Inception3 networks (1: torchvision's).
    pub locate_width: f64,
    pub refine_width: f64,
    pub not_for_clinical_use: bool,
}

impl LumbarConfig {
    /// The SPEC's networks: resnet50 and two Inception3 at full width, 1024 input, 512 crops.
    pub fn paper() -> Self {
        Self {
            name: "lumbar-paper".into(),
            input_size: 1024,
            crop_size: 512,
            box_scale: 1.7,
            min_box: 16.0,
            threshold: 0.5,
            input_mean: [0.0; 3],
            input_std: [1.0; 3],
            identify_width: 1.0,
            identify_blocks: RESNET50_BLOCKS,
            locate_width: 1.0,
            refine_width: 1.0,
            not_for_clinical_use: true,
        }
    }

    /// The invariants the engine relies on; a violation names the field and its range.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err((
                "name".into(),
                format!("longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        for (field, side) in [
            ("input_size", self.input_size),
            ("crop_size", self.crop_size),
        ] {
            if !(SIDE.0..=SIDE.1).contains(&side) {
                return Err((
                    field.into(),
                    format!(
                        "{side} is outside the range {}..={} (Inception3 needs {} px)",
                        SIDE.0, SIDE.1, SIDE.0
                    ),
                ));
            }
        }
        for (field, width) in [
            ("identify_width", self.identify_width),
            ("locate_width", self.locate_width),
            ("refine_width", self.refine_width),
        ] {
            if !(width.is_finite() && width > WIDTH.0 && width <= WIDTH.1) {
                return Err((
                    field.into(),
                    format!("{width} is outside the range ({}, {}]", WIDTH.0, WIDTH.1),
                ));
            }
        }
        if let Some((i, b)) = self
            .identify_blocks
            .iter()
            .enumerate()
            .find(|(_, b)| !(BLOCKS.0..=BLOCKS.1).contains(*b))
        {
            return Err((
                format!("identify_blocks[{i}]"),
                format!("{b} is outside the range {}..={}", BLOCKS.0, BLOCKS.1),
            ));
        }
        let range = |field: String, v: f32, (low, low_open, high): (f32, bool, f32)| {
            let above = if low_open { v > low } else { v >= low };
            if v.is_finite() && above && v <= high {
                Ok(())
            } else {
                let open = if low_open { "(" } else { "[" };
                Err((
                    field,
                    format!("{v} is outside the range {open}{low}, {high}]"),
                ))
            }
        };
        range(
            "box_scale".into(),
            self.box_scale,
            (BOX_SCALE.0, false, BOX_SCALE.1),
        )?;
        range("min_box".into(), self.min_box, (MIN_BOX.0, true, MIN_BOX.1))?;
        range("threshold".into(), self.threshold, (0.0, false, 1.0))?;
        for (c, m) in self.input_mean.iter().enumerate() {
            range(format!("input_mean[{c}]"), *m, (-1000.0, false, 1000.0))?;
        }
        for (c, s) in self.input_std.iter().enumerate() {
            range(format!("input_std[{c}]"), *s, (0.0, true, 1000.0))?;
        }
        Ok(())
    }

    /// The JSON that goes into the safetensors metadata (same schema as the Python converter).
    pub fn to_metadata(&self) -> Value {
        serde_json::json!({
            "format_version": 1,
            "arch": LUMBAR_ARCH,
            "name": self.name,
            "input_size": self.input_size,
            "crop_size": self.crop_size,
            "box_scale": self.box_scale,
            "min_box": self.min_box,
            "threshold": self.threshold,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
            "identify_width": self.identify_width,
            "identify_blocks": self.identify_blocks,
            "locate_width": self.locate_width,
            "refine_width": self.refine_width,
            "not_for_clinical_use": self.not_for_clinical_use,
        })
    }

    /// Reads and checks the configuration in a weights file's metadata.
    pub fn from_weights(weights: &WeightFile) -> Result<Self> {
        Self::from_metadata(&weights.path, &weights.arch, &weights.metadata)
    }

    /// Reads and checks the configuration in the `sagitta` metadata object of the file `path`.
    pub fn from_metadata(path: &Path, arch: &str, json: &Value) -> Result<Self> {
        let r = MetadataReader { path };
        if arch != LUMBAR_ARCH {
            return Err(r.error("arch", super::super::wrong_family(arch, LUMBAR_ARCH)));
        }
        let three = |key: &str| -> Result<[f32; 3]> {
            let v = r.get(json, "", key)?;
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .and_then(|v| <[f32; 3]>::try_from(v).ok())
                .ok_or_else(|| r.error(key, format!("expected 3 numbers, found {v}")))
        };
        let number = |key: &str| -> Result<f64> {
            let v = r.get(json, "", key)?;
            v.as_f64()
                .ok_or_else(|| r.error(key, format!("expected a number, found {v}")))
        };
        let blocks = r.get(json, "", "identify_blocks")?;
        let identify_blocks = blocks
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect::<Option<Vec<u32>>>()
            })
            .and_then(|v| <[u32; 4]>::try_from(v).ok())
            .ok_or_else(|| {
                r.error(
                    "identify_blocks",
                    format!("expected 4 non-negative integers, found {blocks}"),
                )
            })?;
        let clinical = r.get(json, "", "not_for_clinical_use")?;
        let not_for_clinical_use = clinical.as_bool().ok_or_else(|| {
            r.error(
                "not_for_clinical_use",
                format!("expected true or false, found {clinical}"),
            )
        })?;
        let config = Self {
            name: r.string(json, "", "name")?,
            input_size: r.uint(json, "", "input_size")?,
            crop_size: r.uint(json, "", "crop_size")?,
            box_scale: r.float(json, "", "box_scale")?,
            min_box: r.float(json, "", "min_box")?,
            threshold: r.float(json, "", "threshold")?,
            input_mean: three("input_mean")?,
            input_std: three("input_std")?,
            identify_width: number("identify_width")?,
            identify_blocks,
            locate_width: number("locate_width")?,
            refine_width: number("refine_width")?,
            not_for_clinical_use,
        };
        config
            .check()
            .map_err(|(field, reason)| r.error(&field, reason))?;
        Ok(config)
    }

    /// Every tensor of the model, named as the PyTorch state dict names them (a dry run of the
    /// loader).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (root, declared) = WeightScope::dry_run();
        super::LumbarNets::load(&root, self).expect("a dry run only records names");
        declared.take()
    }

    /// Random weights of this configuration (benchmarks).
    pub fn random_weights(&self, seed: u64) -> WeightFile {
        WeightFile::random(self.to_metadata(), self.tensor_shapes(), seed)
    }
}
