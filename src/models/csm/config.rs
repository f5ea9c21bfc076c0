//! The CSM classifier's configuration as the weights metadata holds it (SPEC-csm.md).

use std::path::Path;

use serde_json::Value;

use crate::error::Result;
use crate::nn::scope::WeightScope;
use crate::nn::weights::{MetadataReader, WeightFile};

/// The architecture name in the weights metadata.
pub const CSM_ARCH: &str = "csm-vgg16";

/// The longest model name read from metadata.
pub const MAX_NAME_CHARS: usize = 256;

/// VGG16's stages: (convolutions, channels at width 1).
pub const STAGES: [(usize, u32); 5] = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)];

/// The documented range of each metadata field (inclusive; floats `(low, low excluded, high)`).
pub struct ConfigLimits {
    pub input_size: (i64, i64),
    pub width: (f64, bool, f64),
    pub fc_layers: (usize, usize),
    pub fc: (i64, i64),
    pub input_mean: (f32, bool, f32),
    pub input_std: (f32, bool, f32),
    pub threshold: (f32, bool, f32),
}

/// The ranges [`CsmConfig::check`] enforces: input 32..=4096 px and a multiple of 32 (five
/// 2x2 pools), width in (0, 4] (so at most 2048 channels), 0..=8 hidden fully connected layers
/// of 1..=4096 units, means in [-1000, 1000], standard deviations in (0, 1000], threshold in
/// [0, 1].
pub const LIMITS: ConfigLimits = ConfigLimits {
    input_size: (32, 4096),
    width: (0.0, true, 4.0),
    fc_layers: (0, 8),
    fc: (1, 4096),
    input_mean: (-1000.0, false, 1000.0),
    input_std: (0.0, true, 1000.0),
    threshold: (0.0, false, 1.0),
};

/// The CSM classifier of SPEC-csm.md: torchvision's VGG16 layout at a width multiplier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CsmConfig {
    pub name: String,
    pub input_size: u32,
    /// Channel multiplier of every stage (1 = VGG16).
    pub width: f64,
    /// Hidden sizes of the classifier (the paper: 128, 64); a final layer to 1 logit follows.
    pub fc: Vec<u32>,
    pub input_mean: [f32; 3],
    pub input_std: [f32; 3],
    /// `p_csm >= threshold` reads as CSM.
    pub threshold: f32,
    pub not_for_clinical_use: bool,
}

impl CsmConfig {
    /// The paper's model (224 input, VGG16 widths, FC 128 and 64, ImageNet mean and std).
    pub fn paper() -> Self {
        Self {
            name: "csm-paper".into(),
            input_size: 224,
            width: 1.0,
            fc: vec![128, 64],
            input_mean: [0.485, 0.456, 0.406],
            input_std: [0.229, 0.224, 0.225],
            threshold: 0.5,
            not_for_clinical_use: true,
        }
    }

    /// Each stage's channels: round(c * width) (ties to even, as Python's `round`), at least 1.
    pub fn stage_channels(&self) -> [u32; 5] {
        STAGES.map(|(_, c)| ((f64::from(c) * self.width).round_ties_even() as u32).max(1))
    }

    /// (features index, in channels, out channels) of the 13 convolutions in torchvision's
    /// numbering (each conv is followed by its ReLU, each stage by its max-pool).
    pub fn conv_layers(&self) -> Vec<(usize, u32, u32)> {
        let mut out = Vec::new();
        let (mut index, mut in_c) = (0, 3);
        for ((convs, _), c) in STAGES.iter().zip(self.stage_channels()) {
            for _ in 0..*convs {
                out.push((index, in_c, c));
                in_c = c;
                index += 2;
            }
            index += 1;
        }
        out
    }

    /// (in, out) of every fully connected layer, the last one to the logit.
    pub fn fc_layers(&self) -> Vec<(u32, u32)> {
        let mut sizes = vec![self.stage_channels()[4]];
        sizes.extend(&self.fc);
        sizes.push(1);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The invariants the engine relies on; a violation names the field and its range. Every
    /// field is bounded before anything is computed from it ([`LIMITS`]).
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err((
                "name".into(),
                format!("longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        let (low, high) = LIMITS.input_size;
        let size = i64::from(self.input_size);
        if !(low..=high).contains(&size) || size % 32 != 0 {
            return Err((
                "input_size".into(),
                format!(
                    "{size} is not a multiple of 32 in the range {low}..={high} (five 2x2 pools)"
                ),
            ));
        }
        let (low, _, high) = LIMITS.width;
        if !(self.width.is_finite() && self.width > low && self.width <= high) {
            return Err((
                "width".into(),
                format!("{} is outside the range ({low}, {high}]", self.width),
            ));
        }
        let (fewest, most) = LIMITS.fc_layers;
        if !(fewest..=most).contains(&self.fc.len()) {
            return Err((
                "fc".into(),
                format!(
                    "{} hidden layers; give {fewest} to {most} sizes",
                    self.fc.len()
                ),
            ));
        }
        let (low, high) = LIMITS.fc;
        if let Some((i, f)) = self
            .fc
            .iter()
            .enumerate()
            .find(|(_, f)| !(low..=high).contains(&i64::from(**f)))
        {
            return Err((
                format!("fc[{i}]"),
                format!("{f} is outside the range {low}..={high}"),
            ));
        }
        let float_range = |field: String, value: f32, (low, low_open, high): (f32, bool, f32)| {
            let above_low = if low_open { value > low } else { value >= low };
            if value.is_finite() && above_low && value <= high {
                Ok(())
            } else {
                let open = if low_open { "(" } else { "[" };
                Err((
                    field,
                    format!("{value} is outside the range {open}{low}, {high}]"),
                ))
            }
        };
        for (c, m) in self.input_mean.iter().enumerate() {
            float_range(format!("input_mean[{c}]"), *m, LIMITS.input_mean)?;
        }
        for (c, s) in self.input_std.iter().enumerate() {
            float_range(format!("input_std[{c}]"), *s, LIMITS.input_std)?;
        }
        float_range("threshold".into(), self.threshold, LIMITS.threshold)?;
        Ok(())
    }

    /// The JSON that goes into the safetensors metadata (same schema as the Python converter).
    pub fn to_metadata(&self) -> Value {
        serde_json::json!({
            "format_version": 1,
            "arch": CSM_ARCH,
            "name": self.name,
            "input_size": self.input_size,
            "width": self.width,
            "fc": self.fc,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
            "threshold": self.threshold,
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
        if arch != CSM_ARCH {
            return Err(r.error("arch", super::super::wrong_family(arch, CSM_ARCH)));
        }
        let three = |key: &str| -> Result<[f32; 3]> {
            let v = r.get(json, "", key)?;
            let values: Option<Vec<f32>> = v
                .as_array()
                .map(|a| a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect())
                .unwrap_or(None);
            values
                .and_then(|v| <[f32; 3]>::try_from(v).ok())
                .ok_or_else(|| r.error(key, format!("expected 3 numbers, found {v}")))
        };
        let width = r.get(json, "", "width")?;
        let width = width
            .as_f64()
            .ok_or_else(|| r.error("width", format!("expected a number, found {width}")))?;
        let fc = r.get(json, "", "fc")?;
        let fc = fc
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect::<Option<Vec<u32>>>()
            })
            .ok_or_else(|| {
                r.error(
                    "fc",
                    format!("expected a list of non-negative integers, found {fc}"),
                )
            })?;
        let clinical = r.get(json, "", "not_for_clinical_use")?;
        let not_for_clinical_use = clinical.as_bool().ok_or_else(|| {
            r.error(
                "not_for_clinical_use",
                format!("expected true or false, found {clinical}"),
            )
        })?;
        let config = CsmConfig {
            name: r.string(json, "", "name")?,
            input_size: r.uint(json, "", "input_size")?,
            width,
            fc,
            input_mean: three("input_mean")?,
            input_std: three("input_std")?,
            threshold: r.float(json, "", "threshold")?,
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
        super::CsmNet::load(&root, self).expect("a dry run only records names");
        declared.take()
    }

    /// Random weights of this configuration (benchmarks).
    pub fn random_weights(&self, seed: u64) -> WeightFile {
        WeightFile::random(self.to_metadata(), self.tensor_shapes(), seed)
    }
}
