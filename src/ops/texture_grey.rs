//! A host's texture as a grey f32 image (`shaders/texture_grey.wgsl`): the input of a model that
//! a viewer already has on the GPU. Texels are read with `textureLoad`, never filtered, so the
//! model's own resize sees exactly the values the CPU path would upload; the DICOM modality
//! rescale and the `MONOCHROME1` mirror are uniforms.
//!
//! Unlike the plan's ops this one binds a texture the host owns and may replace every frame, so
//! it records its own pass with a bind group made per call (a texture view cannot be rebound).

use wgpu::util::DeviceExt;

use crate::engine::kernel::UniformParams;
use crate::engine::{GpuContext, Kernel};
use crate::error::{Result, SagittaError};
use crate::util::LUMA_WEIGHTS;

uniform_params! {
    pub struct TextureGreyParams {
        pub width: u32,
        pub height: u32,
        pub luma: u32,
        pub unorm_max: f32,
        pub slope: f32,
        pub intercept: f32,
        pub mirror: u32,
        pub mirror_sum: f32,
        pub luma_r: f32,
        pub luma_g: f32,
        pub luma_b: f32,
    }
}

pub const TEXTURE_GREY_FLOAT: Kernel = kernel!(
    "texture_grey_float",
    "texture_grey",
    "from_float",
    TextureGreyParams
);
pub const TEXTURE_GREY_UINT: Kernel = kernel!(
    "texture_grey_uint",
    "texture_grey",
    "from_uint",
    TextureGreyParams
);
pub const TEXTURE_GREY_SINT: Kernel = kernel!(
    "texture_grey_sint",
    "texture_grey",
    "from_sint",
    TextureGreyParams
);

/// The shader's workgroup side.
const TILE: u32 = 16;

/// From stored texel values to the grey values the CPU decoding produces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GreyTransform {
    /// Luma of the first three channels (the CPU decoding's Rec. 709 weights, computed in f32)
    /// instead of the first channel.
    pub luma: bool,
    /// The DICOM modality rescale: grey = slope × stored + intercept.
    pub slope: f32,
    pub intercept: f32,
    /// `MONOCHROME1`: grey = sum − rescaled, the sum the CPU decoding mirrors about (the rescaled
    /// ends of the stored range).
    pub mirror_sum: Option<f32>,
}

impl Default for GreyTransform {
    fn default() -> Self {
        Self {
            luma: false,
            slope: 1.0,
            intercept: 0.0,
            mirror_sum: None,
        }
    }
}

/// One mip level of one layer of a 2D texture the host owns, as a model's input.
#[derive(Debug, Clone, Copy)]
pub struct TextureImage<'a> {
    /// Needs `TEXTURE_BINDING` usage, one sample, a format of [`texel_kind`].
    pub texture: &'a wgpu::Texture,
    pub mip_level: u32,
    pub layer: u32,
    pub transform: GreyTransform,
}

impl<'a> TextureImage<'a> {
    /// Level 0 of layer 0, the values as they are.
    pub fn new(texture: &'a wgpu::Texture) -> Self {
        Self {
            texture,
            mip_level: 0,
            layer: 0,
            transform: GreyTransform::default(),
        }
    }

    /// The size of the image: the texture's at the mip level.
    pub fn size(&self) -> (u32, u32) {
        let size = self.texture.size();
        (
            (size.width >> self.mip_level).max(1),
            (size.height >> self.mip_level).max(1),
        )
    }
}

/// How a texture format is read: the shader's texel type, the integer range a normalized
/// format's stored values are recovered from (0: none), and the channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TexelKind {
    Float,
    Uint,
    Sint,
}

/// The formats a model reads, with their texel type, normalized range and channels; `None`
/// for the rest (sRGB formats would be decoded away from the stored values, compressed and
/// depth formats hold no radiograph).
pub fn texel_kind(format: wgpu::TextureFormat) -> Option<(TexelKind, f32, u32)> {
    use wgpu::TextureFormat as F;
    use TexelKind::{Float, Sint, Uint};
    Some(match format {
        F::R8Unorm => (Float, 255.0, 1),
        F::Rgba8Unorm | F::Bgra8Unorm => (Float, 255.0, 4),
        F::R16Unorm => (Float, 65535.0, 1),
        F::Rgba16Unorm => (Float, 65535.0, 4),
        F::R16Float | F::R32Float => (Float, 0.0, 1),
        F::Rgba16Float | F::Rgba32Float => (Float, 0.0, 4),
        F::R8Uint | F::R16Uint | F::R32Uint => (Uint, 0.0, 1),
        F::Rgba8Uint | F::Rgba16Uint | F::Rgba32Uint => (Uint, 0.0, 4),
        F::R16Sint | F::R32Sint => (Sint, 0.0, 1),
        _ => return None,
    })
}

const SUPPORTED: &str = "R8Unorm, Rgba8Unorm, Bgra8Unorm, R16Unorm, Rgba16Unorm, R16Float, \
                         R32Float, Rgba16Float, Rgba32Float, R8Uint, R16Uint, R32Uint, Rgba8Uint, \
                         Rgba16Uint, Rgba32Uint, R16Sint, R32Sint";

/// The uniform block for `image`, after checking the texture can be read as one.
pub fn texture_grey_params(image: &TextureImage) -> Result<(TexelKind, TextureGreyParams)> {
    let texture = image.texture;
    let refuse = |why: String| Err(SagittaError::InvalidInput(format!("input texture: {why}")));
    let Some((kind, unorm_max, channels)) = texel_kind(texture.format()) else {
        return refuse(format!(
            "format {:?} is not read; use one of {SUPPORTED}",
            texture.format()
        ));
    };
    if texture.dimension() != wgpu::TextureDimension::D2 {
        return refuse(format!("{:?}, not a 2D texture", texture.dimension()));
    }
    if texture.sample_count() != 1 {
        return refuse(format!(
            "{} samples per texel; resolve it to a single-sample texture first",
            texture.sample_count()
        ));
    }
    if !texture
        .usage()
        .contains(wgpu::TextureUsages::TEXTURE_BINDING)
    {
        return refuse("created without TEXTURE_BINDING usage, which reading it needs".into());
    }
    if image.mip_level >= texture.mip_level_count() {
        return refuse(format!(
            "mip level {} of {}",
            image.mip_level,
            texture.mip_level_count()
        ));
    }
    if image.layer >= texture.depth_or_array_layers() {
        return refuse(format!(
            "layer {} of {}",
            image.layer,
            texture.depth_or_array_layers()
        ));
    }
    let transform = image.transform;
    if transform.luma && channels < 3 {
        return refuse(format!(
            "luma asked of {:?}, which has one channel",
            texture.format()
        ));
    }
    let finite = [transform.slope, transform.intercept]
        .into_iter()
        .chain(transform.mirror_sum)
        .all(f32::is_finite);
    if !finite || transform.slope == 0.0 {
        return refuse(format!(
            "rescale slope {}, intercept {}, mirror {:?}: all finite, the slope not 0",
            transform.slope, transform.intercept, transform.mirror_sum
        ));
    }
    let (width, height) = image.size();
    Ok((
        kind,
        TextureGreyParams {
            width,
            height,
            luma: transform.luma as u32,
            unorm_max,
            slope: transform.slope,
            intercept: transform.intercept,
            mirror: transform.mirror_sum.is_some() as u32,
            mirror_sum: transform.mirror_sum.unwrap_or(0.0),
            luma_r: LUMA_WEIGHTS[0] as f32,
            luma_g: LUMA_WEIGHTS[1] as f32,
            luma_b: LUMA_WEIGHTS[2] as f32,
        },
    ))
}

/// The three pipelines (one per texel type), built on first use.
#[derive(Default)]
pub struct TextureGrey {
    pipelines: [Option<(wgpu::BindGroupLayout, wgpu::ComputePipeline)>; 3],
}

impl TextureGrey {
    /// Records the pass that writes `image` as grey f32 values, row-major, into `grey` (at
    /// least width × height × 4 bytes, `STORAGE` usage).
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        image: &TextureImage,
        grey: &wgpu::Buffer,
    ) -> Result<()> {
        let (kind, params) = texture_grey_params(image)?;
        let needed = params.width as u64 * params.height as u64 * 4;
        if grey.size() < needed {
            return Err(SagittaError::InvalidInput(format!(
                "grey buffer of {} bytes for a {}x{} image",
                grey.size(),
                params.width,
                params.height
            )));
        }
        let groups = (params.width.div_ceil(TILE), params.height.div_ceil(TILE));
        let most = ctx.limits.max_compute_workgroups_per_dimension;
        if groups.0 > most || groups.1 > most {
            return Err(SagittaError::InvalidInput(format!(
                "a {}x{} texture needs more workgroups than this adapter dispatches",
                params.width, params.height
            )));
        }
        let (layout, pipeline) = self.pipeline(ctx, kind);
        let view = image.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("input texture"),
            dimension: Some(wgpu::TextureViewDimension::D2),
            base_mip_level: image.mip_level,
            mip_level_count: Some(1),
            base_array_layer: image.layer,
            array_layer_count: Some(1),
            ..Default::default()
        });
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("texture_grey params"),
                contents: bytemuck::cast_slice(&params.words()),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("texture_grey"),
            layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: texture_binding(kind),
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: grey.as_entire_binding(),
                },
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("texture_grey"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        Ok(())
    }

    fn pipeline(
        &mut self,
        ctx: &GpuContext,
        kind: TexelKind,
    ) -> &(wgpu::BindGroupLayout, wgpu::ComputePipeline) {
        let slot = kind as usize;
        self.pipelines[slot].get_or_insert_with(|| {
            let (kernel, sample_type) = match kind {
                // Unfilterable: R32Float is read too, and textureLoad never filters.
                TexelKind::Float => (
                    TEXTURE_GREY_FLOAT,
                    wgpu::TextureSampleType::Float { filterable: false },
                ),
                TexelKind::Uint => (TEXTURE_GREY_UINT, wgpu::TextureSampleType::Uint),
                TexelKind::Sint => (TEXTURE_GREY_SINT, wgpu::TextureSampleType::Sint),
            };
            let device = &ctx.device;
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(kernel.name),
                entries: &[
                    wgpu::BindGroupLayoutEntry {
                        binding: 0,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    },
                    wgpu::BindGroupLayoutEntry {
                        binding: texture_binding(kind),
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Texture {
                            sample_type,
                            view_dimension: wgpu::TextureViewDimension::D2,
                            multisampled: false,
                        },
                        count: None,
                    },
                    wgpu::BindGroupLayoutEntry {
                        binding: 4,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: false },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    },
                ],
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(kernel.name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: Default::default(),
                cache: ctx.pipeline_cache(),
            });
            (layout, pipeline)
        })
    }
}

fn texture_binding(kind: TexelKind) -> u32 {
    match kind {
        TexelKind::Float => 1,
        TexelKind::Uint => 2,
        TexelKind::Sint => 3,
    }
}
