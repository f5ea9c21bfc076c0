//! Model families, one folder each (`models/<family>/`: its configuration from the weights
//! metadata, its loader built from `nn` blocks, its whole pipeline as one plan). The registry
//! below maps the `arch` of a weights file to its family: adding a family adds one line here.

pub mod cervical;
pub mod csm;
pub mod input;
pub mod lumbar;
pub mod wholespine;

pub use crate::ops::{GreyTransform, TextureImage};
pub use input::{ImageInput, ImageSource};

use crate::engine::GpuContext;
use crate::error::{Result, SagittaError};
use crate::nn::weights::WeightFile;

/// A grey image in row-major order, raw intensities (any range): the input of every family.
#[derive(Debug, Clone, Copy)]
pub struct GreyImage<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [f32],
}

impl<'a> GreyImage<'a> {
    pub fn of(width: u32, height: u32, pixels: &'a [f32]) -> Self {
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Checks that the image is whole, finite and fits one buffer binding of `ctx`, and returns
    /// its size on the GPU in bytes.
    pub fn checked_bytes(&self, ctx: &GpuContext) -> Result<u64> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || self.pixels.len() as u64 != w as u64 * h as u64 {
            return Err(SagittaError::InvalidInput(format!(
                "image is {w}x{h} but holds {} pixels",
                self.pixels.len()
            )));
        }
        if let Some(bad) = self.pixels.iter().position(|v| !v.is_finite()) {
            return Err(SagittaError::InvalidInput(format!(
                "pixel {bad} is not a finite number"
            )));
        }
        input::checked_size(ctx, w, h)
    }
}

/// Records the probability maps of `heatmaps` (tensors of `plan`, each [N, C, H, W], written
/// one after the other from `target.first_layer`) into the host's texture; the error when no
/// inference has been recorded yet (`plan` is `None`).
pub(crate) fn encode_heatmaps(
    ctx: &GpuContext,
    pipelines: &mut crate::engine::PipelineCache,
    precision: crate::engine::Precision,
    encoder: &mut wgpu::CommandEncoder,
    plan: Option<(&crate::engine::CompiledPlan, &[crate::engine::TensorId])>,
    target: crate::ops::HeatmapTarget,
) -> Result<()> {
    let (plan, heatmaps) = plan.ok_or_else(|| {
        SagittaError::InvalidInput("no heatmaps yet: encode or run an image first".into())
    })?;
    let mut layer = target.first_layer;
    for &tensor in heatmaps {
        let shape = plan.shape(tensor);
        let count = shape[0] * shape[1];
        crate::ops::encode_softmax_maps(
            ctx,
            pipelines,
            precision,
            encoder,
            plan.buffer(tensor),
            count,
            (shape[3], shape[2]),
            &crate::ops::HeatmapTarget {
                texture: target.texture,
                first_layer: layer,
            },
        )?;
        layer += count;
    }
    Ok(())
}

/// The model families this build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Lateral cervical radiograph -> 29 landmarks (SPEC-cervical.md).
    Cervical,
    /// Lateral cervical radiograph -> probability of myelopathy (SPEC-csm.md).
    Csm,
    /// Whole-spine lateral radiograph -> 45 landmarks (SPEC-wholespine.md).
    WholeSpine,
    /// Thoracolumbar lateral radiograph -> level labels and 4 corners each (SPEC-lumbar.md).
    Lumbar,
}

impl Family {
    /// The `arch` of this family's weights files.
    pub fn arch(self) -> &'static str {
        REGISTRY
            .iter()
            .find(|(_, family)| *family == self)
            .map(|(arch, _)| *arch)
            .unwrap_or("unregistered")
    }

    /// The short name users pick the family by (`--model`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Cervical => "cervical",
            Family::Csm => "csm",
            Family::WholeSpine => "wholespine",
            Family::Lumbar => "lumbar",
        }
    }
}

/// `arch` of the weights metadata -> family. One line per architecture.
pub const REGISTRY: &[(&str, Family)] = &[
    (cervical::CERVICAL_ARCH, Family::Cervical),
    (csm::CSM_ARCH, Family::Csm),
    (wholespine::WHOLESPINE_ARCH, Family::WholeSpine),
    (lumbar::LUMBAR_ARCH, Family::Lumbar),
];

/// The architecture names the registry knows, for error messages and `sagitta info`.
pub fn architecture_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(name, _)| *name).collect()
}

/// The start every model's plan shares: a plan in `precision` (tensor cores allowed where the
/// device passed their self-check), the placeholder bound where an optional input is absent, and
/// the radiograph [height, width] bound to `image_buffer` in the "preprocess" stage. Returns the
/// plan, the placeholder and the image tensor.
pub(crate) fn begin_plan(
    ctx: &std::sync::Arc<GpuContext>,
    precision: crate::engine::Precision,
    image_buffer: &std::sync::Arc<wgpu::Buffer>,
    (width, height): (u32, u32),
) -> (
    crate::engine::Plan,
    crate::engine::TensorId,
    crate::engine::TensorId,
) {
    let mut plan = crate::engine::Plan::with_precision(precision);
    if precision == crate::engine::Precision::F16 {
        plan.allow_cooperative_matrix(crate::ops::conv2d::coop::cooperative_matrix_usable(ctx));
    }
    let unused = plan.bound(
        "unused",
        &[4],
        crate::engine::buffers::storage_buffer(ctx, "unused", 16),
    );
    plan.begin_stage("preprocess");
    let image = plan.bound("radiograph", &[height, width], image_buffer.clone());
    (plan, unused, image)
}

/// The uncompiled dispatch plan of any registered model for an original image size: what
/// `sagitta tune` measures (tuning is keyed by convolution shape, not by model).
pub fn dispatch_plan(
    ctx: std::sync::Arc<GpuContext>,
    weights: &WeightFile,
    (width, height): (u32, u32),
) -> Result<crate::engine::Plan> {
    match family_of(weights)? {
        Family::Cervical => {
            cervical::CervicalModel::new(ctx, weights)?.dispatch_plan(width, height)
        }
        Family::Csm => csm::CsmModel::new(ctx, weights)?.dispatch_plan(width, height),
        Family::WholeSpine => {
            wholespine::WholeSpineModel::new(ctx, weights)?.dispatch_plan(width, height)
        }
        Family::Lumbar => lumbar::LumbarModel::new(ctx, weights)?.dispatch_plan(width, height),
    }
}

/// The family of a weights file, or an error naming the `arch` field and the known ones.
pub fn family_of(weights: &WeightFile) -> Result<Family> {
    REGISTRY
        .iter()
        .find(|(name, _)| *name == weights.arch)
        .map(|(_, family)| *family)
        .ok_or_else(|| SagittaError::WeightsMetadata {
            path: weights.path.clone(),
            field: "arch".into(),
            reason: format!(
                "unknown architecture '{}' (supported: {})",
                weights.arch,
                architecture_names().join(", ")
            ),
        })
}

/// Why a file of architecture `arch` does not load as the family of `expected`: another
/// family's file, or an architecture nobody registered.
pub(crate) fn wrong_family(arch: &str, expected: &str) -> String {
    if REGISTRY.iter().any(|(name, _)| *name == arch) {
        format!("'{arch}' is another model family's file; this loader reads '{expected}'")
    } else {
        format!(
            "unknown architecture '{arch}' (supported: {})",
            architecture_names().join(", ")
        )
    }
}
