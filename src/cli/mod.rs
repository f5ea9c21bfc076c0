//! The `sagitta` command line on top of the library: argument parsing, the environment mapped
//! onto options, batch runs with progress, and the exit codes. The binary is `cli/main.rs`.

pub mod analyze;
pub mod dicomweb;
pub mod env;
pub mod merge;
pub mod output;
pub mod parquet;
#[cfg(feature = "viewer")]
pub mod viewer;
