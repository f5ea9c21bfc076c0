//! The whole-spine model's configuration as the weights metadata holds it (SPEC-wholespine.md).

use std::path::Path;

use serde_json::Value;

use crate::anatomy::wholespine::LANDMARK_COUNT;
use crate::error::Result;
use crate::nn::scope::WeightScope;
use crate::nn::weights::{MetadataReader, WeightFile};

/// The architecture name in the weights metadata.
pub const WHOLESPINE_ARCH: &str = "wholespine-cpn-dsnt";

/// Levels of the network: the input and five halvings.
pub const LEVELS: usize = 6;

/// The longest model name read from metadata.
const MAX_NAME_CHARS: usize = 256;

/// The ranges [`WholeSpineConfig::check`] enforces: input sides multiples of 32 (five stride-2
/// blocks) up to 8192, every width 1..=4096, 1..=16 members, epsilons in (0, 1].
pub const INPUT_SIDE: (u32, u32) = (32, 8192);
pub const WIDTH: (u32, u32) = (1, 4096);
pub const MEMBERS: (u32, u32) = (1, 16);

/// The whole-spine CPN of SPEC-wholespine.md at configurable sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WholeSpineConfig {
    pub name: String,
    pub input_height: u32,
    pub input_width: u32,
    /// Channels of levels L0..L5 (the paper: 16, 32, 64, 128, 256, 256).
    pub widths: [u32; LEVELS],
    /// Channels each lateral branch of stage 2 ends with (the paper: 32).
    pub lateral: u32,
    /// Channels of the two fuse blocks (the paper: 32, 16).
    pub fuse: [u32; 2],
    /// Ensemble members, averaged in normalized coordinates (the paper: 2).
    pub members: u32,
    pub bn_eps: f32,
    pub standardize_eps: f32,
    pub not_for_clinical_use: bool,
}

impl WholeSpineConfig {
    /// The SPEC's network: 864x480 input, widths 16..256, two members.
    pub fn paper() -> Self {
        Self {
            name: "wholespine-paper".into(),
            input_height: 864,
            input_width: 480,
            widths: [16, 32, 64, 128, 256, 256],
            lateral: 32,
            fuse: [32, 16],
            members: 2,
            bn_eps: 1e-5,
            standardize_eps: 1e-6,
            not_for_clinical_use: true,
        }
    }

    /// The map size of level `level` as (height, width).
    pub fn level_size(&self, level: usize) -> (u32, u32) {
        (self.input_height >> level, self.input_width >> level)
    }

    /// The invariants the engine relies on; a violation names the field and its range.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err((
                "name".into(),
                format!("longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        let unit = 1 << (LEVELS - 1);
        for (field, side) in [
            ("input_height", self.input_height),
            ("input_width", self.input_width),
        ] {
            if !(INPUT_SIDE.0..=INPUT_SIDE.1).contains(&side) || side % unit != 0 {
                return Err((
                    field.into(),
                    format!(
                        "{side} is not a multiple of {unit} in {}..={} (five stride-2 blocks)",
                        INPUT_SIDE.0, INPUT_SIDE.1
                    ),
                ));
            }
        }
        let widths = self
            .widths
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("widths[{i}]"), *w))
            .chain([("lateral".to_string(), self.lateral)])
            .chain(
                self.fuse
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (format!("fuse[{i}]"), *w)),
            );
        for (field, width) in widths {
            if !(WIDTH.0..=WIDTH.1).contains(&width) {
                return Err((
                    field,
                    format!("{width} is outside the range {}..={}", WIDTH.0, WIDTH.1),
                ));
            }
        }
        if !(MEMBERS.0..=MEMBERS.1).contains(&self.members) {
            return Err((
                "members".into(),
                format!(
                    "{} is outside the range {}..={}",
                    self.members, MEMBERS.0, MEMBERS.1
                ),
            ));
        }
        for (field, eps) in [
            ("bn_eps", self.bn_eps),
            ("standardize_eps", self.standardize_eps),
        ] {
            if !(eps.is_finite() && eps > 0.0 && eps <= 1.0) {
                return Err((field.into(), format!("{eps} is outside the range (0, 1]")));
            }
        }
        Ok(())
    }

    /// The JSON that goes into the safetensors metadata (same schema as the Python converter).
    pub fn to_metadata(&self) -> Value {
        serde_json::json!({
            "format_version": 1,
            "arch": WHOLESPINE_ARCH,
            "name": self.name,
            "input_height": self.input_height,
            "input_width": self.input_width,
            "widths": self.widths,
            "lateral": self.lateral,
            "fuse": self.fuse,
            "landmarks": LANDMARK_COUNT,
            "members": self.members,
            "bn_eps": self.bn_eps,
            "standardize_eps": self.standardize_eps,
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
        if arch != WHOLESPINE_ARCH {
            return Err(r.error("arch", super::super::wrong_family(arch, WHOLESPINE_ARCH)));
        }
        fn counts<const N: usize>(r: &MetadataReader, json: &Value, key: &str) -> Result<[u32; N]> {
            let value = r.get(json, "", key)?;
            value
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect::<Option<Vec<u32>>>()
                })
                .and_then(|v| <[u32; N]>::try_from(v).ok())
                .ok_or_else(|| {
                    r.error(
                        key,
                        format!("expected {N} non-negative integers, found {value}"),
                    )
                })
        }
        let landmarks = r.uint(json, "", "landmarks")?;
        if landmarks as usize != LANDMARK_COUNT {
            return Err(r.error(
                "landmarks",
                format!(
                    "{landmarks}; the whole-spine model has {LANDMARK_COUNT} (SPEC-wholespine)"
                ),
            ));
        }
        let clinical = r.get(json, "", "not_for_clinical_use")?;
        let not_for_clinical_use = clinical.as_bool().ok_or_else(|| {
            r.error(
                "not_for_clinical_use",
                format!("expected true or false, found {clinical}"),
            )
        })?;
        let config = Self {
            name: r.string(json, "", "name")?,
            input_height: r.uint(json, "", "input_height")?,
            input_width: r.uint(json, "", "input_width")?,
            widths: counts(&r, json, "widths")?,
            lateral: r.uint(json, "", "lateral")?,
            fuse: counts(&r, json, "fuse")?,
            members: r.uint(json, "", "members")?,
            bn_eps: r.float(json, "", "bn_eps")?,
            standardize_eps: r.float(json, "", "standardize_eps")?,
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
        for member in 0..self.members {
            super::Member::load(&root.pp("members").pp(member), self)
                .expect("a dry run only records names");
        }
        declared.take()
    }

    /// Random weights of this configuration (benchmarks).
    pub fn random_weights(&self, seed: u64) -> WeightFile {
        WeightFile::random(self.to_metadata(), self.tensor_shapes(), seed)
    }
}
