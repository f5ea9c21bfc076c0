//! What a caller uses: engine options, the analyzer (models + records), and what a host that
//! embeds the engine on its own device needs beyond the models' `encode`.

pub mod analyzer;
pub mod options;
pub mod session;
pub mod texture;

pub use analyzer::{open_weights, Analysis, AnalyzeError, Analyzer, WEIGHTS_ENV};
pub use options::{EngineOptions, TuningSource};
pub use session::{Session, SessionOptions};
