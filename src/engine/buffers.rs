//! Storage buffers the engine and the layers above it create: uploads of f32 and f16 data and
//! zeroed buffers.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::device::GpuContext;

/// Uploads f32 data into a read-only storage buffer.
pub fn upload(ctx: &GpuContext, label: &str, data: &[f32]) -> Arc<wgpu::Buffer> {
    let padded;
    let data = if data.len() < 4 {
        padded = [data, &[0.0; 4][..4 - data.len()]].concat();
        &padded[..]
    } else {
        data
    };
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            }),
    )
}

/// Uploads values as f16 (activations of an f16 plan, for kernel tests).
pub fn upload_f16(ctx: &GpuContext, label: &str, data: &[f32]) -> Arc<wgpu::Buffer> {
    let mut halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
    halves.resize(halves.len().next_multiple_of(2).max(8), half::f16::ZERO);
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&halves),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            }),
    )
}

/// A zeroed storage buffer that can be written by the queue and copied out.
pub fn storage_buffer(ctx: &GpuContext, label: &str, bytes: u64) -> Arc<wgpu::Buffer> {
    Arc::new(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    }))
}

/// Uploads u32 data (index tables) into a read-only storage buffer.
pub fn upload_u32(ctx: &GpuContext, label: &str, data: &[u32]) -> Arc<wgpu::Buffer> {
    let mut words = data.to_vec();
    words.resize(words.len().max(4), 0);
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            }),
    )
}
