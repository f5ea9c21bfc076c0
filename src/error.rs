//! Typed library errors. Each message says what went wrong and what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SagittaError {
    #[error("GPU adapter: {0}")]
    Adapter(String),

    #[error("GPU: {0}")]
    Gpu(String),

    #[error("{path}: cannot read the weights file: {source}")]
    WeightsIo {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path}: not a valid safetensors file ({reason}); convert a PyTorch checkpoint with \
         `python3 -m sagitta_ref.convert` in tools/"
    )]
    WeightsFormat { path: PathBuf, reason: String },

    #[error("{path}: metadata field '{field}': {reason}")]
    WeightsMetadata {
        path: PathBuf,
        field: String,
        reason: String,
    },

    #[error("{path}: tensor '{name}' is missing (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },

    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{path}: tensor '{name}' has dtype {found}; sagitta reads F32, F16 and BF16 weights")]
    TensorDtype {
        path: PathBuf,
        name: String,
        found: String,
    },

    #[error(
        "{path}: unexpected tensor(s) not used by architecture '{arch}': {names}; \
         the file does not match its metadata"
    )]
    UnexpectedTensors {
        path: PathBuf,
        arch: String,
        names: String,
    },

    #[error(
        "{path}: tensor '{name}' {reason}; the checkpoint is damaged (re-export and convert it \
         again)"
    )]
    TensorValues {
        path: PathBuf,
        name: String,
        reason: String,
    },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("model configuration: {0}")]
    Config(String),
}

pub type Result<T, E = SagittaError> = std::result::Result<T, E>;
