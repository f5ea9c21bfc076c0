//! Spatial softmax of heatmaps into a host's texture (`shaders/softmax_maps.wgsl`): the
//! probability maps behind the DSNT coordinates, one `R32Float` 2D-array layer per heatmap, for
//! a viewer to draw without a readback. Twin: `softmax2d` in `tools/sagitta_ref/ops/dsnt.py`.
//!
//! The texture belongs to the host, so the pass is recorded outside the plan with a bind group
//! made per call, reading the plan's heatmap buffer (kept alive as an output).

use wgpu::util::DeviceExt;

use crate::engine::kernel::UniformParams;
use crate::engine::{GpuContext, Kernel, PipelineCache, Precision};
use crate::error::{Result, SagittaError};

uniform_params! {
    pub struct SoftmaxMapsParams {
        pub heatmaps: u32,
        pub height: u32,
        pub width: u32,
        pub first_layer: u32,
    }
}

pub const SOFTMAX_MAPS: Kernel = kernel!("softmax_maps", "softmax_maps", "main", SoftmaxMapsParams);

/// Where a model's probability maps go: layers `first_layer..first_layer + count` of `texture`
/// (`R32Float`, 2D or 2D array, `STORAGE_BINDING` usage, exactly the maps' width × height).
#[derive(Debug, Clone, Copy)]
pub struct HeatmapTarget<'a> {
    pub texture: &'a wgpu::Texture,
    pub first_layer: u32,
}

/// Checks that `target` takes `count` maps of `width × height`; the error says what texture to
/// create.
pub fn check_heatmap_target(
    target: &HeatmapTarget,
    count: u32,
    (width, height): (u32, u32),
) -> Result<()> {
    let texture = target.texture;
    let wanted = || {
        format!(
            "create an R32Float 2D-array texture of {width}x{height} with at least {} layers and \
             STORAGE_BINDING usage",
            target.first_layer + count
        )
    };
    let refuse = |why: String| {
        Err(SagittaError::InvalidInput(format!(
            "heatmap texture: {why}; {}",
            wanted()
        )))
    };
    if texture.format() != wgpu::TextureFormat::R32Float {
        return refuse(format!("format {:?}", texture.format()));
    }
    if texture.dimension() != wgpu::TextureDimension::D2 || texture.sample_count() != 1 {
        return refuse(format!(
            "{:?} with {} samples",
            texture.dimension(),
            texture.sample_count()
        ));
    }
    if !texture
        .usage()
        .contains(wgpu::TextureUsages::STORAGE_BINDING)
    {
        return refuse("no STORAGE_BINDING usage".into());
    }
    if (texture.width(), texture.height()) != (width, height) {
        return refuse(format!("{}x{}", texture.width(), texture.height()));
    }
    let layers = target.first_layer.checked_add(count);
    if layers.is_none_or(|layers| layers > texture.depth_or_array_layers()) {
        return refuse(format!(
            "{} layers for maps from layer {}",
            texture.depth_or_array_layers(),
            target.first_layer
        ));
    }
    Ok(())
}

/// Records the softmax of the `count` heatmaps of `width × height` in `logits` (activations of
/// `precision`, heatmap-major from byte 0) into `target`.
#[allow(clippy::too_many_arguments)]
pub fn encode_softmax_maps(
    ctx: &GpuContext,
    pipelines: &mut PipelineCache,
    precision: Precision,
    encoder: &mut wgpu::CommandEncoder,
    logits: &wgpu::Buffer,
    count: u32,
    (width, height): (u32, u32),
    target: &HeatmapTarget,
) -> Result<()> {
    check_heatmap_target(target, count, (width, height))?;
    let elements = count as u64 * width as u64 * height as u64;
    if logits.size() < elements * precision.bytes() as u64 {
        return Err(SagittaError::InvalidInput(format!(
            "softmax maps: a buffer of {} bytes holds fewer than {count} maps of {width}x{height}",
            logits.size()
        )));
    }
    let pipeline = pipelines.get(ctx, &SOFTMAX_MAPS, &[], precision, &[])?;
    let params = SoftmaxMapsParams {
        heatmaps: count,
        height,
        width,
        first_layer: target.first_layer,
    };
    let uniform = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("softmax_maps params"),
            contents: bytemuck::cast_slice(&params.words()),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let view = target.texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("heatmap texture"),
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        ..Default::default()
    });
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("softmax_maps"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: logits.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(&view),
            },
        ],
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("softmax_maps"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(count, 1, 1);
    Ok(())
}
