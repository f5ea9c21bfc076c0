//! Safetensors weights of any model family: tensors in f32, f16 or bf16 by their PyTorch
//! state-dict names, and the model configuration in the metadata key `sagitta` (a JSON object
//! written by `tools/sagitta_ref/convert.py`: `format_version`, `arch`, then the family's own
//! fields, which its `models/<family>/config.rs` reads through [`MetadataReader`], naming a bad
//! field in the error).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::{Result, SagittaError};

/// Reads typed fields from the metadata JSON, naming the field on error.
pub struct MetadataReader<'a> {
    pub path: &'a Path,
}

impl MetadataReader<'_> {
    pub fn error(&self, field: &str, reason: impl Into<String>) -> SagittaError {
        SagittaError::WeightsMetadata {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn get<'v>(&self, obj: &'v Value, prefix: &str, key: &str) -> Result<&'v Value> {
        obj.get(key)
            .ok_or_else(|| self.error(&format!("{prefix}{key}"), "missing"))
    }

    pub fn uint(&self, obj: &Value, prefix: &str, key: &str) -> Result<u32> {
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

    pub fn int(&self, obj: &Value, prefix: &str, key: &str) -> Result<i32> {
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

    pub fn float(&self, obj: &Value, prefix: &str, key: &str) -> Result<f32> {
        let v = self.get(obj, prefix, key)?;
        v.as_f64().map(|f| f as f32).ok_or_else(|| {
            self.error(
                &format!("{prefix}{key}"),
                format!("expected a number, found {v}"),
            )
        })
    }

    pub fn string(&self, obj: &Value, prefix: &str, key: &str) -> Result<String> {
        let v = self.get(obj, prefix, key)?;
        v.as_str().map(str::to_string).ok_or_else(|| {
            self.error(
                &format!("{prefix}{key}"),
                format!("expected a string, found {v}"),
            )
        })
    }

    /// A boolean that files written before the field existed leave out: absent means `default`;
    /// present, it must be `true` or `false`.
    pub fn bool_or(&self, obj: &Value, prefix: &str, key: &str, default: bool) -> Result<bool> {
        match obj.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                self.error(
                    &format!("{prefix}{key}"),
                    format!("expected true or false, found {v}"),
                )
            }),
        }
    }

    /// A list of strings.
    pub fn strings(&self, obj: &Value, prefix: &str, key: &str) -> Result<Vec<String>> {
        let field = format!("{prefix}{key}");
        match self.get(obj, prefix, key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.error(&field, "expected a list of strings")),
            _ => Err(self.error(&field, "expected a list of strings")),
        }
    }

    /// A nested object.
    pub fn object<'v>(&self, obj: &'v Value, prefix: &str, key: &str) -> Result<&'v Value> {
        let v = self.get(obj, prefix, key)?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(self.error(&format!("{prefix}{key}"), "expected an object"))
        }
    }
}

/// The largest weights file read (the paper-size model is ~100 MB in f32): a longer file is
/// refused before it is read.
pub const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Reads a weights file: a regular file of at most [`MAX_WEIGHTS_BYTES`], its type and size
/// checked before it is read (a FIFO, a device or a folder is refused, never opened).
fn read_weights_file(path: &Path) -> Result<Vec<u8>> {
    crate::util::read_regular_file(path, MAX_WEIGHTS_BYTES, "weights files").map_err(|source| {
        SagittaError::WeightsIo {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The version of the metadata schema this sagitta reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `sagitta` metadata object: checked to be JSON of a supported version with an `arch`.
fn parse_metadata(
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
) -> Result<(String, Value)> {
    let r = MetadataReader { path };
    let raw = metadata
        .and_then(|m| m.get("sagitta"))
        .ok_or_else(|| r.error("sagitta", "missing: this file has no sagitta model configuration; convert the checkpoint with tools/sagitta_ref/convert.py"))?;
    let json: Value = serde_json::from_str(raw)
        .map_err(|e| r.error("sagitta", format!("not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(r.error("sagitta", "expected a JSON object"));
    }
    let version = r.uint(&json, "", "format_version")?;
    if version != FORMAT_VERSION {
        return Err(r.error(
            "format_version",
            format!("{version} is not supported (this sagitta reads version {FORMAT_VERSION})"),
        ));
    }
    let arch = r.string(&json, "", "arch")?;
    Ok((arch, json))
}

/// One tensor of a weights file: where its bytes are. It is decoded to f32 only when a layer
/// asks for it (for BatchNorm folding and repacking), so loading holds the file and one tensor,
/// not a second copy of every weight.
struct Tensor {
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: std::ops::Range<usize>,
}

impl Tensor {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A loaded weights file: its architecture, configuration and tensors.
pub struct WeightFile {
    pub path: PathBuf,
    /// The architecture the metadata names (the model registry picks the family by it).
    pub arch: String,
    /// The whole `sagitta` metadata object (the family's config reader parses it).
    pub metadata: Value,
    /// Storage dtype of the file's tensors (they are computed in f32).
    pub dtype: String,
    /// SHA-256 of the file, for reports.
    pub sha256: String,
    /// The whole file; tensors are ranges of it.
    bytes: Vec<u8>,
    tensors: HashMap<String, Tensor>,
    used: RefCell<BTreeSet<String>>,
}

impl WeightFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read_weights_file(path)?;
        Self::from_vec(path, bytes)
    }

    /// A weights file from its bytes (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        Self::from_vec(path, bytes.to_vec())
    }

    /// A weights file that keeps `bytes` and decodes each tensor when it is asked for.
    pub fn from_vec(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let format_error = |reason: String| SagittaError::WeightsFormat {
            path: path.to_path_buf(),
            reason,
        };
        let (_, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| format_error(e.to_string()))?;
        let (arch, metadata) = parse_metadata(path, metadata.metadata().as_ref())?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| format_error(e.to_string()))?;
        let mut tensors = HashMap::new();
        let mut dtypes = BTreeSet::new();
        for (name, view) in file.iter() {
            if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                return Err(SagittaError::TensorDtype {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    found: format!("{:?}", view.dtype()),
                });
            }
            // The view borrows `bytes`: its place in them.
            let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            dtypes.insert(format!("{:?}", view.dtype()).to_lowercase());
            tensors.insert(
                name.to_string(),
                Tensor {
                    shape: view.shape().to_vec(),
                    dtype: view.dtype(),
                    bytes: start..start + view.data().len(),
                },
            );
        }
        let sha256 = crate::util::sha256_hex(&bytes);
        let file = Self {
            path: path.to_path_buf(),
            arch,
            metadata,
            dtype: dtypes.into_iter().collect::<Vec<_>>().join("+"),
            sha256,
            bytes,
            tensors,
            used: RefCell::new(BTreeSet::new()),
        };
        file.check_values()?;
        Ok(file)
    }

    /// What the numbers must mean, whatever the family: every value finite (one NaN spreads
    /// through every later layer), and every BatchNorm `running_var` above 0 (a variance; its
    /// square root divides). The first bad tensor in name order is named.
    fn check_values(&self) -> Result<()> {
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort();
        for name in names {
            let values = self.decode(&self.tensors[name]);
            let bad = |reason: String| SagittaError::TensorValues {
                path: self.path.clone(),
                name: name.clone(),
                reason,
            };
            if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                let count = values.iter().filter(|v| !v.is_finite()).count();
                return Err(bad(format!(
                    "holds {count} value(s) that are not finite numbers (the first: {value} at \
                     index {index}); every weight must be finite"
                )));
            }
            if name.ends_with("running_var") {
                if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| **v <= 0.0) {
                    return Err(bad(format!(
                        "is a BatchNorm variance but holds {value} at index {index}; every \
                         running_var must be above 0"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Fetches a tensor by its PyTorch state-dict name, checking its shape, as f32 (borrowed
    /// from the file where it is stored as aligned little-endian f32, else decoded).
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<Cow<'_, [f32]>> {
        let tensor @ Tensor { shape, .. } =
            self.tensors
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
        Ok(self.decode(tensor))
    }

    fn decode(&self, tensor: &Tensor) -> Cow<'_, [f32]> {
        let data = &self.bytes[tensor.bytes.clone()];
        match tensor.dtype {
            Dtype::F32 if cfg!(target_endian = "little") => {
                match bytemuck::try_cast_slice::<u8, f32>(data) {
                    Ok(floats) => Cow::Borrowed(floats),
                    Err(_) => Cow::Owned(
                        data.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                    ),
                }
            }
            Dtype::F32 => Cow::Owned(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => Cow::Owned(
                data.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            // BF16; other dtypes are refused when the file is opened.
            _ => Cow::Owned(
                data.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
        }
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
            arch: self.arch.clone(),
            names: format!("{}{more}", shown.join(", ")),
        })
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(Tensor::len).sum()
    }

    /// Whether the tensor is stored as f16 in the file (its layer may keep it in f16 on the GPU).
    pub fn is_f16(&self, name: &str) -> bool {
        self.tensors
            .get(name)
            .is_some_and(|t| t.dtype == Dtype::F16)
    }

    /// Reads only the architecture and the metadata (for `sagitta info --weights`), not the
    /// tensors.
    pub fn read_metadata(
        path: impl AsRef<Path>,
    ) -> Result<(String, Value, HashMap<String, String>)> {
        let path = path.as_ref();
        let bytes = read_weights_file(path)?;
        let (_, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| SagittaError::WeightsFormat {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let (arch, json) = parse_metadata(path, metadata.metadata().as_ref())?;
        Ok((arch, json, metadata.metadata().clone().unwrap_or_default()))
    }
}

impl WeightFile {
    /// Random f32 weights for the tensors `shapes` of a model whose metadata is `metadata`
    /// (benchmarks; the values only need to stay finite). Convolutions ~ U(-1/sqrt(fan_in),
    /// 1/sqrt(fan_in)) like PyTorch's default, BatchNorm near identity.
    pub fn random(metadata: Value, shapes: Vec<(String, Vec<usize>)>, seed: u64) -> Self {
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
        let mut bytes = Vec::new();
        for (name, shape) in shapes {
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
            let start = bytes.len();
            bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
            tensors.insert(
                name,
                Tensor {
                    shape,
                    dtype: Dtype::F32,
                    bytes: start..bytes.len(),
                },
            );
        }
        Self {
            path: PathBuf::from(format!("<random weights, seed {seed}>")),
            arch: metadata["arch"].as_str().unwrap_or_default().to_string(),
            metadata,
            dtype: "f32".into(),
            sha256: format!("random-seed-{seed}"),
            bytes,
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
            .map(|(name, t)| {
                let floats = self.decode(t);
                (
                    name.clone(),
                    t.shape.clone(),
                    floats.iter().flat_map(|v| v.to_le_bytes()).collect(),
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
            ("sagitta".to_string(), self.metadata.to_string()),
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
