//! Clinical parameters from landmarks, in pure Rust (no GPU), one file per model family. Imports
//! only `anatomy`.

pub mod cervical;
pub mod cervical_quality;
pub mod frame;
pub mod lumbar;
pub mod lumbar_quality;
pub mod quality;
pub mod wholespine;
pub mod wholespine_quality;

pub use cervical::*;
pub use quality::{Finding, ParameterQuality, QualityStatus, ReasonCode};
