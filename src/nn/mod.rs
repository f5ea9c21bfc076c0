//! Building blocks of networks above the operators: safetensors weights, weight scopes that
//! declare each block's tensors once, and blocks (the stacked hourglass with pre-activation
//! bottlenecks, the pre-activation basic block, torchvision's resnet50 and Inception3 trunks). Knows no model family.

pub mod hourglass;
pub mod inception;
pub mod preact;
pub mod resnet;
pub mod scope;
pub mod weights;

pub use scope::{DryRun, GpuLayers, LayerBuilder, WeightScope};
pub use weights::{MetadataReader, WeightFile};
