//! Clinical parameters from landmarks, in pure Rust (no GPU): per model family its parameters
//! (`cervical`, `wholespine`, `lumbar`) and their quality checks (`*_quality`), on the shared
//! canonical frame (`frame`) and quality vocabulary (`quality`). Imports only `anatomy`.

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
