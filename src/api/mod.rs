//! What a caller uses: engine options and the analyzer (models + records). The place embedding
//! in a host's wgpu device will live.

pub mod analyzer;
pub mod options;

pub use analyzer::{open_weights, Analysis, AnalyzeError, Analyzer, WEIGHTS_ENV};
pub use options::{EngineOptions, TuningSource};
