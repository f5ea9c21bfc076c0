//! sagitta: spine-radiograph landmark models as WGSL compute shaders on wgpu.
//!
//! Outside in: [`weights::WeightFile`] reads a safetensors file and its configuration;
//! [`cervical::CervicalModel`] builds the whole cervical pipeline on a [`gpu::GpuContext`] (the
//! engine's own or the caller's device) and runs it in one submission per image.

pub mod analyze;
pub mod bench;
pub mod cervical;
pub mod error;
pub mod gpu;
pub mod hourglass;
pub mod io;
pub mod measure;
pub mod ops;
pub mod overlay;
pub mod plan;
pub mod report;
pub mod tune;
pub mod util;
pub mod weights;

pub use cervical::{CervicalModel, GreyImage, Landmark, Prediction, LANDMARK_NAMES};
pub use error::{Result, SagittaError};
pub use gpu::{AdapterChoice, GpuContext};
pub use weights::{CervicalConfig, WeightFile};
