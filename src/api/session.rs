//! The engine on a host's device: one options struct for every model family a viewer loads
//! (device options, kernel choices, precision), read from nothing but what it names.

use std::sync::Arc;

use crate::engine::{GpuContext, Precision};
use crate::error::Result;
use crate::models::cervical::CervicalModel;
use crate::models::csm::CsmModel;
use crate::models::lumbar::LumbarModel;
use crate::models::wholespine::WholeSpineModel;
use crate::nn::WeightFile;
use crate::ops::ConvSelection;

use super::options::EngineOptions;

/// What a session is built with. The default reads no file and no environment variable: no
/// pipeline cache, no tuning table (the adapter-aware heuristic chooses kernels), f32.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The pipeline-cache folder, the tuning table's source, a forced kernel.
    pub engine: EngineOptions,
    /// The precision every model of the session runs in.
    pub precision: Precision,
}

/// The engine on a device the host opened: models load onto it with the session's options and
/// record into the host's encoders (`encode`).
pub struct Session {
    ctx: Arc<GpuContext>,
    selection: ConvSelection,
    precision: Precision,
    notes: Vec<String>,
}

impl Session {
    /// A session on the host's `device` and `queue` (`info`: its adapter's).
    pub fn on_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &SessionOptions,
    ) -> Self {
        let ctx = GpuContext::from_device(device, queue, info, &options.engine.device);
        let (selection, notes) = options.engine.conv_selection(&ctx);
        Self {
            ctx,
            selection,
            precision: options.precision,
            notes,
        }
    }

    /// The engine's view of the device.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// What the options could not give (a tuning table that cannot be read, a pipeline cache
    /// that was not used), for the host to show or log.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn cervical(&self, weights: &WeightFile) -> Result<CervicalModel> {
        let mut model = CervicalModel::with_selection(self.ctx.clone(), weights, &self.selection)?;
        model.set_precision(self.precision)?;
        Ok(model)
    }

    pub fn csm(&self, weights: &WeightFile) -> Result<CsmModel> {
        let mut model = CsmModel::with_selection(self.ctx.clone(), weights, &self.selection)?;
        model.set_precision(self.precision)?;
        Ok(model)
    }

    pub fn wholespine(&self, weights: &WeightFile) -> Result<WholeSpineModel> {
        let mut model =
            WholeSpineModel::with_selection(self.ctx.clone(), weights, &self.selection)?;
        model.set_precision(self.precision)?;
        Ok(model)
    }

    pub fn lumbar(&self, weights: &WeightFile) -> Result<LumbarModel> {
        let mut model = LumbarModel::with_selection(self.ctx.clone(), weights, &self.selection)?;
        model.set_precision(self.precision)?;
        Ok(model)
    }
}
