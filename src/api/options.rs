//! How a caller configures the engine: the device and where measured kernel choices come from.
//! The library touches the disk only where these options name a path.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{AdapterChoice, DeviceOptions, GpuContext};
use crate::error::Result;
use crate::ops::conv2d::tune::TuningTable;
use crate::ops::{ConvAlgorithm, ConvSelection};

/// The largest pipeline cache read at start (a driver's cache of this engine's pipelines is a
/// few MiB).
pub const MAX_PIPELINE_CACHE_BYTES: u64 = 256 << 20;

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
    /// Opens the device. A pipeline cache that is not a regular file of at most
    /// [`MAX_PIPELINE_CACHE_BYTES`] is not read (the device opens without one; see
    /// [`Self::pipeline_cache_problem`]).
    pub fn open_device(&self, choice: &AdapterChoice) -> Result<Arc<GpuContext>> {
        if self.pipeline_cache_problem().is_some() {
            let mut device = self.device.clone();
            device.pipeline_cache_dir = None;
            return GpuContext::with_options(choice, &device);
        }
        GpuContext::with_options(choice, &self.device)
    }

    /// Why the pipeline-cache folder cannot be used: a cache file in it (`wgpu_pipeline_cache_*`)
    /// that is not a regular file (a FIFO would block the start, a device never ends) or is
    /// larger than [`MAX_PIPELINE_CACHE_BYTES`]. Checked by type and size, never by reading.
    pub fn pipeline_cache_problem(&self) -> Option<String> {
        let dir = self.device.pipeline_cache_dir.as_ref()?;
        let entries = std::fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("wgpu_pipeline_cache_")
            {
                continue;
            }
            let path = entry.path();
            let checked = std::fs::metadata(&path).and_then(|metadata| {
                crate::util::check_regular_file(
                    &metadata,
                    MAX_PIPELINE_CACHE_BYTES,
                    "pipeline caches",
                )
            });
            if let Err(error) = checked {
                return Some(format!(
                    "not using the pipeline cache {} ({error}); remove it",
                    path.display()
                ));
            }
        }
        None
    }

    /// The kernel selection for layers built on `ctx`, and notes for the user (a tuning table
    /// that exists but cannot be read, entries of it that were ignored, a pipeline cache that
    /// was not used).
    pub fn conv_selection(&self, ctx: &GpuContext) -> (ConvSelection, Vec<String>) {
        let mut notes: Vec<String> = self.pipeline_cache_problem().into_iter().collect();
        let tuning = self.tuning.path_for(&ctx.info).and_then(|path| {
            match TuningTable::read_with_notes(&path, &ctx.info) {
                Ok(Some((table, dropped))) => {
                    if !dropped.is_empty() {
                        let shown: Vec<&str> = dropped.iter().take(3).map(String::as_str).collect();
                        let more = if dropped.len() > 3 {
                            format!(" and {} more", dropped.len() - 3)
                        } else {
                            String::new()
                        };
                        notes.push(format!(
                            "ignoring {} entr{} of the tuning table {}: {}{more}; the heuristic \
                             chooses those kernels (run `sagitta tune` again)",
                            dropped.len(),
                            if dropped.len() == 1 { "y" } else { "ies" },
                            path.display(),
                            shown.join("; ")
                        ));
                    }
                    Some(table)
                }
                Ok(None) => None,
                Err(e) => {
                    notes.push(format!(
                        "ignoring the tuning table {} ({e}); run `sagitta tune` again",
                        path.display()
                    ));
                    None
                }
            }
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
