//! How a caller configures the engine: the device and where measured kernel choices come from.
//! The library touches the disk only where these options name a path.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{AdapterChoice, DeviceOptions, GpuContext};
use crate::error::Result;
use crate::ops::conv2d::tune::TuningTable;
use crate::ops::{ConvAlgorithm, ConvSelection};

/// Where the measured kernel choices (`sagitta tune`) are read from.
#[derive(Debug, Clone, Default)]
pub enum TuningSource {
    /// None: the adapter-aware heuristic chooses.
    #[default]
    Off,
    /// This file.
    File(PathBuf),
    /// The file for the adapter in this folder ([`TuningTable::file_name`]).
    Folder(PathBuf),
}

impl TuningSource {
    /// The table's path for an adapter.
    pub fn path_for(&self, info: &wgpu::AdapterInfo) -> Option<PathBuf> {
        match self {
            TuningSource::Off => None,
            TuningSource::File(path) => Some(path.clone()),
            TuningSource::Folder(dir) => Some(dir.join(TuningTable::file_name(info))),
        }
    }
}

/// The device and kernel-choice options of an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    pub device: DeviceOptions,
    pub tuning: TuningSource,
    /// Run every convolution with this kernel (A/B runs); Winograd only where it applies.
    pub conv_algorithm: Option<ConvAlgorithm>,
}

impl EngineOptions {
    pub fn open_device(&self, choice: &AdapterChoice) -> Result<Arc<GpuContext>> {
        GpuContext::with_options(choice, &self.device)
    }

    /// The kernel selection for layers built on `ctx`, and notes for the user (a tuning table
    /// that exists but cannot be read).
    pub fn conv_selection(&self, ctx: &GpuContext) -> (ConvSelection, Vec<String>) {
        let mut notes = Vec::new();
        let tuning = self.tuning.path_for(&ctx.info).and_then(|path| {
            TuningTable::read(&path, &ctx.info).unwrap_or_else(|e| {
                notes.push(format!(
                    "ignoring the tuning table {} ({e}); run `sagitta tune` again",
                    path.display()
                ));
                None
            })
        });
        (
            ConvSelection {
                forced: self.conv_algorithm,
                tuning,
            },
            notes,
        )
    }
}
