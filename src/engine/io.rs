//! The two buffers every model's inference passes through: the radiograph's upload buffer, grown
//! to the largest image seen, and the mapped buffer its small result is read back from.

use std::sync::Arc;

use super::buffers::storage_buffer;
use super::device::{GpuContext, PendingReadback};

/// A model's input and readback buffers.
pub struct ModelIo {
    image: Arc<wgpu::Buffer>,
    readback: wgpu::Buffer,
    result_bytes: u64,
}

impl ModelIo {
    /// Buffers for a model whose result is `result_bytes`; the readback buffer holds
    /// `extra_bytes` more after it (stage timestamps).
    pub fn new(ctx: &GpuContext, label: &str, result_bytes: u64, extra_bytes: u64) -> Self {
        Self {
            image: storage_buffer(ctx, "radiograph", 16),
            readback: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: result_bytes + extra_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            result_bytes,
        }
    }

    /// The radiograph's buffer, for a plan to bind.
    pub fn image(&self) -> &Arc<wgpu::Buffer> {
        &self.image
    }

    /// Queues the upload of `pixels` (applied at the next submission), first replacing the image
    /// buffer by a larger one when they do not fit. Returns whether it was replaced: a plan bound
    /// to the old buffer must be rebound or rebuilt.
    pub fn upload(&mut self, ctx: &GpuContext, pixels: &[f32]) -> bool {
        let replaced = self.reserve_image(ctx, std::mem::size_of_val(pixels) as u64);
        ctx.queue
            .write_buffer(&self.image, 0, bytemuck::cast_slice(pixels));
        replaced
    }

    /// Makes the image buffer hold at least `bytes` (for an image written on the GPU), replacing
    /// it by a larger one when it does not. Returns whether it was replaced, as
    /// [`Self::upload`] does.
    pub fn reserve_image(&mut self, ctx: &GpuContext, bytes: u64) -> bool {
        let replaced = bytes > self.image.size();
        if replaced {
            self.image = storage_buffer(ctx, "radiograph", bytes);
        }
        replaced
    }

    /// The buffer results are copied into and mapped from.
    pub fn readback(&self) -> &wgpu::Buffer {
        &self.readback
    }

    /// Bytes of one result.
    pub fn result_bytes(&self) -> u64 {
        self.result_bytes
    }

    /// Records the copy of `bytes` of `source` into the readback buffer at `offset`.
    pub fn copy_result(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) {
        encoder.copy_buffer_to_buffer(source, 0, &self.readback, offset, bytes);
    }

    /// Starts mapping the result of `submission` (see [`GpuContext::begin_readback`]).
    pub fn begin_readback(
        &self,
        ctx: &GpuContext,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> PendingReadback {
        ctx.begin_readback(&self.readback, self.result_bytes, submission)
    }

    /// GPU bytes of both buffers.
    pub fn bytes(&self) -> u64 {
        self.image.size() + self.readback.size()
    }
}
