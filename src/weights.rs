//! Safetensors weights: the model configuration in the metadata, tensors in f32, f16 or bf16.
//!
//! The metadata key `sagitta` holds a JSON object written by `tools/sagitta_ref/convert.py`;
//! every field is checked here and a bad one is named in the error.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::{Result, SagittaError};

pub const CERVICAL_ARCH: &str = "cervical-hourglass-dsnt";
pub const CERVICAL_LANDMARKS: usize = 29;
pub const CERVICAL_DISCS: usize = 6;

/// One stacked-hourglass network (bearpaw/pytorch-pose layout, pre-activation bottlenecks).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourglassConfig {
    pub in_channels: u32,
    pub stacks: u32,
    pub blocks: u32,
    /// Bottleneck planes; the network carries `2 * features` channels and the stem `features / 2`.
    pub features: u32,
    pub depth: u32,
    pub num_classes: u32,
}

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
            landmarks: crate::cervical::LANDMARK_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
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

    /// The invariants the engine relies on; a violation names the field.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        let err = |f: &str, r: String| Err((f.to_string(), r));
        if self.landmarks.len() != CERVICAL_LANDMARKS {
            return err(
                "landmarks",
                format!(
                    "expected {CERVICAL_LANDMARKS} names, found {}",
                    self.landmarks.len()
                ),
            );
        }
        if self.global.num_classes as usize != CERVICAL_LANDMARKS {
            return err("global.num_classes", "must be 29".into());
        }
        if self.refiner.num_classes != 4 {
            return err(
                "refiner.num_classes",
                "must be 4 (the corners of one disc)".into(),
            );
        }
        if self.refiner_count as usize != CERVICAL_DISCS {
            return err("refiner.count", "must be 6 (discs C2-C3 .. C7-T1)".into());
        }
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
            if net.stacks == 0 || net.blocks == 0 || net.depth == 0 {
                return err(
                    &format!("{prefix}.stacks/blocks/depth"),
                    "must be at least 1".into(),
                );
            }
            if net.features < 2 || net.features % 2 != 0 {
                return err(
                    &format!("{prefix}.features"),
                    "must be an even number >= 2".into(),
                );
            }
            let unit = 4u32 << net.depth;
            if size == 0 || size % unit != 0 {
                return err(
                    size_field,
                    format!(
                        "{size} is not a multiple of {unit} (4 * 2^{prefix}.depth), which the \
                         hourglass needs"
                    ),
                );
            }
        }
        if !(self.box_margin.is_finite() && self.box_margin >= 0.0) {
            return err("box_margin", "must be a finite number >= 0".into());
        }
        if !(self.box_min_side.is_finite() && self.box_min_side > 0.0) {
            return err("box_min_side", "must be a finite number > 0".into());
        }
        if !(self.bn_eps.is_finite() && self.bn_eps > 0.0) {
            return err("bn_eps", "must be > 0".into());
        }
        if !(self.standardize_eps.is_finite() && self.standardize_eps > 0.0) {
            return err("standardize_eps", "must be > 0".into());
        }
        Ok(())
    }

    /// The JSON that goes into the safetensors metadata (same schema as the Python converter).
    pub fn to_metadata_json(&self) -> String {
        let net = |n: &HourglassConfig, count: Option<u32>| {
            let mut v = serde_json::json!({
                "in_channels": n.in_channels, "stacks": n.stacks, "blocks": n.blocks,
                "features": n.features, "depth": n.depth, "num_classes": n.num_classes,
            });
            if let Some(c) = count {
                v["count"] = c.into();
            }
            v
        };
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
            "landmarks": self.landmarks,
            "global": net(&self.global, None),
            "refiner": net(&self.refiner, Some(self.refiner_count)),
        })
        .to_string()
    }
}

/// Reads typed fields from the metadata JSON, naming the field on error.
struct FieldReader<'a> {
    path: &'a Path,
}

impl FieldReader<'_> {
    fn error(&self, field: &str, reason: impl Into<String>) -> SagittaError {
        SagittaError::WeightsMetadata {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn get<'v>(&self, obj: &'v Value, prefix: &str, key: &str) -> Result<&'v Value> {
        obj.get(key)
            .ok_or_else(|| self.error(&format!("{prefix}{key}"), "missing"))
    }

    fn uint(&self, obj: &Value, prefix: &str, key: &str) -> Result<u32> {
        let v = self.get(obj, prefix, key)?;
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                self.error(
                    &format!("{prefix}{key}"),
                    format!("expected a non-negative integer, found {v}"),
                )
            })
    }

    fn int(&self, obj: &Value, prefix: &str, key: &str) -> Result<i32> {
        let v = self.get(obj, prefix, key)?;
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                self.error(
                    &format!("{prefix}{key}"),
                    format!("expected an integer, found {v}"),
                )
            })
    }

    fn float(&self, obj: &Value, prefix: &str, key: &str) -> Result<f32> {
        let v = self.get(obj, prefix, key)?;
        v.as_f64().map(|f| f as f32).ok_or_else(|| {
            self.error(
                &format!("{prefix}{key}"),
                format!("expected a number, found {v}"),
            )
        })
    }

    fn string(&self, obj: &Value, prefix: &str, key: &str) -> Result<String> {
        let v = self.get(obj, prefix, key)?;
        v.as_str().map(str::to_string).ok_or_else(|| {
            self.error(
                &format!("{prefix}{key}"),
                format!("expected a string, found {v}"),
            )
        })
    }

    fn hourglass(&self, obj: &Value, key: &str) -> Result<HourglassConfig> {
        let net = self.get(obj, "", key)?;
        if !net.is_object() {
            return Err(self.error(key, "expected an object"));
        }
        let p = format!("{key}.");
        Ok(HourglassConfig {
            in_channels: self.uint(net, &p, "in_channels")?,
            stacks: self.uint(net, &p, "stacks")?,
            blocks: self.uint(net, &p, "blocks")?,
            features: self.uint(net, &p, "features")?,
            depth: self.uint(net, &p, "depth")?,
            num_classes: self.uint(net, &p, "num_classes")?,
        })
    }
}

fn parse_config(path: &Path, metadata: Option<&HashMap<String, String>>) -> Result<CervicalConfig> {
    let r = FieldReader { path };
    let raw = metadata
        .and_then(|m| m.get("sagitta"))
        .ok_or_else(|| r.error("sagitta", "missing: this file has no sagitta model configuration; convert the checkpoint with tools/sagitta_ref/convert.py"))?;
    let json: Value = serde_json::from_str(raw)
        .map_err(|e| r.error("sagitta", format!("not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(r.error("sagitta", "expected a JSON object"));
    }
    let version = r.uint(&json, "", "format_version")?;
    if version != 1 {
        return Err(r.error(
            "format_version",
            format!("{version} is not supported (this sagitta reads version 1)"),
        ));
    }
    let arch = r.string(&json, "", "arch")?;
    if arch != CERVICAL_ARCH {
        return Err(r.error(
            "arch",
            format!("unknown architecture '{arch}' (supported: {CERVICAL_ARCH})"),
        ));
    }
    let landmarks = match r.get(&json, "", "landmarks")? {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| r.error("landmarks", "expected a list of strings"))?,
        _ => return Err(r.error("landmarks", "expected a list of strings")),
    };
    let refiner_json = r.get(&json, "", "refiner")?;
    let config = CervicalConfig {
        name: r.string(&json, "", "name")?,
        input_size: r.uint(&json, "", "input_size")?,
        crop_size: r.uint(&json, "", "crop_size")?,
        box_margin: r.float(&json, "", "box_margin")?,
        box_min_side: r.float(&json, "", "box_min_side")?,
        roi_sampling_ratio: r.int(&json, "", "roi_sampling_ratio")?,
        bn_eps: r.float(&json, "", "bn_eps")?,
        standardize_eps: r.float(&json, "", "standardize_eps")?,
        landmarks,
        global: r.hourglass(&json, "global")?,
        refiner: r.hourglass(&json, "refiner")?,
        refiner_count: r.uint(refiner_json, "refiner.", "count")?,
    };
    config
        .check()
        .map_err(|(field, reason)| r.error(&field, reason))?;
    Ok(config)
}

/// A loaded weights file: its configuration and its tensors, all upcast to f32 on the CPU.
pub struct WeightFile {
    pub path: PathBuf,
    pub config: CervicalConfig,
    /// Storage dtype of the file's tensors (they are computed in f32).
    pub dtype: String,
    /// SHA-256 of the file, for reports.
    pub sha256: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    used: RefCell<BTreeSet<String>>,
}

impl WeightFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SagittaError::WeightsIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let format_error = |reason: String| SagittaError::WeightsFormat {
            path: path.to_path_buf(),
            reason,
        };
        let (_, metadata) =
            SafeTensors::read_metadata(bytes).map_err(|e| format_error(e.to_string()))?;
        let config = parse_config(path, metadata.metadata().as_ref())?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| format_error(e.to_string()))?;
        let mut tensors = HashMap::new();
        let mut dtypes = BTreeSet::new();
        for (name, view) in file.iter() {
            let data = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(SagittaError::TensorDtype {
                        path: path.to_path_buf(),
                        name: name.to_string(),
                        found: format!("{other:?}"),
                    })
                }
            };
            dtypes.insert(format!("{:?}", view.dtype()).to_lowercase());
            tensors.insert(name.to_string(), (view.shape().to_vec(), data));
        }
        Ok(Self {
            path: path.to_path_buf(),
            config,
            dtype: dtypes.into_iter().collect::<Vec<_>>().join("+"),
            sha256: crate::util::sha256_hex(bytes),
            tensors,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// Fetches a tensor by its PyTorch state-dict name, checking its shape.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<&[f32]> {
        let (shape, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| SagittaError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
            })?;
        if shape != expected {
            return Err(SagittaError::TensorShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: shape.clone(),
            });
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(data)
    }

    /// Fails if the file holds tensors the architecture never asked for.
    pub fn check_all_used(&self) -> Result<()> {
        let used = self.used.borrow();
        let mut extra: Vec<&String> = self.tensors.keys().filter(|k| !used.contains(*k)).collect();
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort();
        let shown: Vec<&str> = extra.iter().take(5).map(|s| s.as_str()).collect();
        let more = if extra.len() > 5 {
            format!(" and {} more", extra.len() - 5)
        } else {
            String::new()
        };
        Err(SagittaError::UnexpectedTensors {
            path: self.path.clone(),
            arch: CERVICAL_ARCH.into(),
            names: format!("{}{more}", shown.join(", ")),
        })
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|(_, d)| d.len()).sum()
    }

    /// Reads only the configuration (for `sagitta info --weights`).
    pub fn read_config(
        path: impl AsRef<Path>,
    ) -> Result<(CervicalConfig, HashMap<String, String>)> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SagittaError::WeightsIo {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| SagittaError::WeightsFormat {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let config = parse_config(path, metadata.metadata().as_ref())?;
        Ok((config, metadata.metadata().clone().unwrap_or_default()))
    }
}

/// Every tensor of the cervical model, named as the PyTorch state dict names it.
pub fn cervical_tensor_shapes(config: &CervicalConfig) -> Vec<(String, Vec<usize>)> {
    let mut shapes = crate::hourglass::tensor_shapes("global_net.", &config.global);
    for k in 0..config.refiner_count {
        shapes.extend(crate::hourglass::tensor_shapes(
            &format!("refiners.{k}."),
            &config.refiner,
        ));
    }
    shapes
}

impl WeightFile {
    /// Random weights for a configuration (benchmarks; the values only need to stay finite).
    /// Convolutions ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like PyTorch's default, BatchNorm near
    /// identity.
    pub fn random(config: CervicalConfig, seed: u64) -> Self {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut uniform = move || {
            // xorshift64*: reproducible without another dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(2685821657736338717) >> 40) as f32 / (1u64 << 24) as f32) * 2.0
                - 1.0
        };
        let mut tensors = HashMap::new();
        for (name, shape) in cervical_tensor_shapes(&config) {
            let len: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with("running_var") {
                (0..len).map(|_| 1.0 + 0.2 * uniform().abs()).collect()
            } else if name.ends_with("running_mean")
                || (shape.len() == 1 && name.ends_with(".bias"))
            {
                (0..len).map(|_| 0.05 * uniform()).collect()
            } else if shape.len() == 1 {
                (0..len).map(|_| 1.0 + 0.1 * uniform()).collect()
            } else {
                let fan_in: usize = shape[1..].iter().product();
                let bound = 1.0 / (fan_in as f32).sqrt();
                (0..len).map(|_| bound * uniform()).collect()
            };
            tensors.insert(name, (shape, data));
        }
        Self {
            path: PathBuf::from(format!("<random weights, seed {seed}>")),
            config,
            dtype: "f32".into(),
            sha256: format!("random-seed-{seed}"),
            tensors,
            used: RefCell::new(BTreeSet::new()),
        }
    }
}

impl WeightFile {
    /// Writes the tensors as f32 safetensors with the configuration in the metadata, readable by
    /// `tools/sagitta_ref/convert.py::load_model` (the PyTorch side of the benchmarks).
    pub fn save_f32(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| {
                (
                    name.clone(),
                    shape.clone(),
                    bytemuck::cast_slice(data).to_vec(),
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, shape, data)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                    .map(|v| (name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| SagittaError::WeightsFormat {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("sagitta".to_string(), self.config.to_metadata_json()),
        ]);
        let serialized = safetensors::serialize(views, Some(metadata)).map_err(|e| {
            SagittaError::WeightsFormat {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        std::fs::write(path, serialized).map_err(|source| SagittaError::WeightsIo {
            path: path.to_path_buf(),
            source,
        })
    }
}
