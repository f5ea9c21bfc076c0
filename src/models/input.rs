//! Where a model's radiograph comes from: grey values on the CPU (f32, u16, u8), a buffer on the
//! GPU, or a texture a viewer already shows. Every source ends in the model's image buffer as
//! the same f32 grey values, so the inference that follows is the same whatever the source.

use crate::engine::{GpuContext, ModelIo};
use crate::error::{Result, SagittaError};
use crate::ops::{TextureGrey, TextureImage};

use super::GreyImage;

/// A model's input image.
#[derive(Debug, Clone, Copy)]
pub enum ImageSource<'a> {
    /// Grey values on the CPU, row-major, top row first (what `sagitta::io` decodes).
    Grey(GreyImage<'a>),
    /// 16-bit values on the CPU, taken as they are (exact in f32).
    GreyU16 {
        width: u32,
        height: u32,
        pixels: &'a [u16],
    },
    /// 8-bit values on the CPU, taken as they are.
    GreyU8 {
        width: u32,
        height: u32,
        pixels: &'a [u8],
    },
    /// f32 grey values already on the GPU: `width × height` of them, row-major, from byte
    /// `offset` (a multiple of 4) of a buffer with `COPY_SRC` usage. Copied on the GPU; values
    /// are not checked for being finite as the CPU sources are.
    Buffer {
        buffer: &'a wgpu::Buffer,
        offset: u64,
        width: u32,
        height: u32,
    },
    /// A texture the host owns (see [`TextureImage`]): read on the GPU with its rescale.
    Texture(TextureImage<'a>),
}

impl<'a> From<GreyImage<'a>> for ImageSource<'a> {
    fn from(image: GreyImage<'a>) -> Self {
        ImageSource::Grey(image)
    }
}

impl<'a> From<TextureImage<'a>> for ImageSource<'a> {
    fn from(image: TextureImage<'a>) -> Self {
        ImageSource::Texture(image)
    }
}

impl ImageSource<'_> {
    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            ImageSource::Grey(image) => (image.width, image.height),
            ImageSource::GreyU16 { width, height, .. }
            | ImageSource::GreyU8 { width, height, .. }
            | ImageSource::Buffer { width, height, .. } => (*width, *height),
            ImageSource::Texture(image) => image.size(),
        }
    }
}

/// What a model keeps to take in images of every source: the texture pipelines, built on first
/// use.
#[derive(Default)]
pub struct ImageInput {
    texture_grey: TextureGrey,
}

impl ImageInput {
    /// Checks `source` and records or queues putting it into `io`'s image buffer: CPU values
    /// are queued on the queue (applied at the next submission), GPU sources are recorded into
    /// `encoder`. Returns whether the image buffer was replaced by a larger one (a plan bound to
    /// the old one must be rebound or rebuilt).
    pub fn stage(
        &mut self,
        ctx: &GpuContext,
        io: &mut ModelIo,
        encoder: &mut wgpu::CommandEncoder,
        source: ImageSource,
    ) -> Result<bool> {
        let widened: Vec<f32>;
        let grey = match source {
            ImageSource::Grey(image) => image,
            ImageSource::GreyU16 {
                width,
                height,
                pixels,
            } => {
                widened = widen(pixels);
                GreyImage::of(width, height, &widened)
            }
            ImageSource::GreyU8 {
                width,
                height,
                pixels,
            } => {
                widened = widen(pixels);
                GreyImage::of(width, height, &widened)
            }
            ImageSource::Buffer {
                buffer,
                offset,
                width,
                height,
            } => {
                let bytes = checked_size(ctx, width, height)?;
                let end = offset.checked_add(bytes);
                if !offset.is_multiple_of(4) || end.is_none_or(|end| end > buffer.size()) {
                    return Err(SagittaError::InvalidInput(format!(
                        "input buffer of {} bytes: a {width}x{height} f32 image from byte \
                         {offset} needs {bytes} bytes there, at an offset that is a multiple \
                         of 4",
                        buffer.size()
                    )));
                }
                if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                    return Err(SagittaError::InvalidInput(
                        "input buffer: created without COPY_SRC usage, which copying it needs"
                            .into(),
                    ));
                }
                let replaced = io.reserve_image(ctx, bytes);
                encoder.copy_buffer_to_buffer(buffer, offset, io.image(), 0, bytes);
                return Ok(replaced);
            }
            ImageSource::Texture(image) => {
                let (width, height) = image.size();
                let bytes = checked_size(ctx, width, height)?;
                let replaced = io.reserve_image(ctx, bytes);
                self.texture_grey.encode(ctx, encoder, &image, io.image())?;
                return Ok(replaced);
            }
        };
        grey.checked_bytes(ctx)?;
        Ok(io.upload(ctx, grey.pixels))
    }
}

/// Integer grey values as f32, exactly (16 bits fit the mantissa).
fn widen<T: Copy + Into<f32>>(pixels: &[T]) -> Vec<f32> {
    pixels.iter().map(|&v| v.into()).collect()
}

/// Bytes of a `width × height` f32 image, refused when empty or larger than one buffer binding.
pub(super) fn checked_size(ctx: &GpuContext, width: u32, height: u32) -> Result<u64> {
    if width == 0 || height == 0 {
        return Err(SagittaError::InvalidInput(format!(
            "image is {width}x{height}: nothing to analyse"
        )));
    }
    let bytes = width as u64 * height as u64 * 4;
    let max_binding = ctx.limits.max_storage_buffer_binding_size;
    if bytes > max_binding {
        return Err(SagittaError::InvalidInput(format!(
            "a {width}x{height} image needs {} MiB on the GPU, more than this adapter binds ({} \
             MiB); downscale it first",
            bytes >> 20,
            max_binding >> 20
        )));
    }
    Ok(bytes)
}
