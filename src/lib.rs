//! sagitta: spine-radiograph landmark models as WGSL compute shaders on wgpu.
//!
//! One-way stack (a layer imports only the ones listed before it; `tests/architecture.rs`
//! holds it):
//! - [`error`], [`anatomy`] (landmark tables), [`measure`] (clinical parameters, pure Rust);
//! - [`engine`]: device, plans, liveness memory, pipelines, submission and readback; knows no
//!   operator and no model;
//! - [`ops`]: one file per operator with its kernel, typed uniform block and invariants;
//! - [`nn`]: weights files, weight scopes, blocks (the stacked hourglass);
//! - [`models`]: one folder per model family and the architecture registry;
//! - with the default features: [`io`] (DICOM and raster decoding), [`report`] (records, CSV,
//!   overlays), [`api`] (what callers use), [`bench`], [`cli`].
//!
//! `cargo build --no-default-features --lib` builds the engine, operators, blocks and models
//! alone.

pub mod anatomy;
pub mod engine;
pub mod error;
pub mod measure;
pub mod models;
pub mod nn;
pub mod ops;
mod util;

#[cfg(feature = "io")]
pub mod api;
#[cfg(feature = "io")]
pub mod bench;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "io")]
pub mod io;
#[cfg(feature = "io")]
pub mod report;

pub use engine::{AdapterChoice, DeviceOptions, GpuContext, PendingReadback, Precision};
pub use error::{Result, SagittaError};
pub use models::cervical::{
    CervicalConfig, CervicalModel, GreyImage, Landmark, Prediction, LANDMARK_NAMES,
};
pub use models::{GreyTransform, ImageSource, TextureImage};
pub use nn::WeightFile;
pub use ops::HeatmapTarget;
/// The wgpu this crate is built with, so that a host embedding the engine on its own device
/// pins the same version.
pub use wgpu;

/// The README's Rust examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
