//! `upsample_bilinear`: [N, C, H, W] -> [N, C, out_h, out_w] exactly as PyTorch's
//! `F.interpolate(size=(out_h, out_w), mode="bilinear", align_corners=...)` (no antialias; twin:
//! `tools/sagitta_ref/ops/upsample_bilinear.py`). Any sizes, up or down, integer ratios or not.
//! [`upsample_bilinear_add`] adds a skip tensor of the output's shape in the same pass (a
//! decoder's `skip + up(x)`), saving a full write and read of the upsampled map. Both can write
//! into a channel view of a larger tensor ([`Plan::channel_view`]): a branch of a concatenation
//! written in place.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct UpsampleBilinearParams {
        /// N * C.
        pub planes: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        /// Source pixels per output pixel, in f32 as PyTorch computes it.
        pub scale_h: f32,
        pub scale_w: f32,
        /// 1 for `align_corners=True`.
        pub align_corners: u32,
        /// C of the input; the output tensor's channel count and the first channel written
        /// (C and 0 unless the output is a channel view).
        pub channels: u32,
        pub out_c_total: u32,
        pub out_c_offset: u32,
    }
}

pub const UPSAMPLE_BILINEAR: Kernel = kernel!(
    "upsample_bilinear",
    "upsample_bilinear",
    "main",
    UpsampleBilinearParams,
    trusted: false,
    parts: ["bilinear_sample"]
);

pub const UPSAMPLE_BILINEAR_ADD: Kernel = kernel!(
    "upsample_bilinear_add",
    "upsample_bilinear_add",
    "main",
    UpsampleBilinearParams,
    trusted: false,
    parts: ["bilinear_sample"]
);

/// PyTorch's `area_pixel_compute_scale` for an explicit output size, in f32.
fn scale(input: u32, output: u32, align_corners: bool) -> f32 {
    if align_corners {
        if output > 1 {
            (input - 1) as f32 / (output - 1) as f32
        } else {
            0.0
        }
    } else {
        input as f32 / output as f32
    }
}

/// The uniform block of a bilinear resize of the non-empty [N, C, H, W] `shape` to
/// `out_h` x `out_w` (errors on other ranks, empty sizes, or element counts past u32).
pub fn upsample_bilinear_params(
    label: &str,
    shape: &[u32],
    out_h: u32,
    out_w: u32,
    align_corners: bool,
) -> Result<UpsampleBilinearParams> {
    invariant(shape.len() == 4 && shape.iter().all(|&d| d > 0), || {
        format!("{label}: bilinear upsample needs a non-empty [N, C, H, W], got {shape:?}")
    })?;
    invariant(out_h > 0 && out_w > 0, || {
        format!("{label}: bilinear upsample to an empty size {out_h}x{out_w}")
    })?;
    let too_large = || SagittaError::InvalidInput(format!("{label}: {shape:?} too large"));
    let planes = u32::try_from(shape[0] as u64 * shape[1] as u64).map_err(|_| too_large())?;
    // Every input and output element index must fit the kernel's u32 arithmetic.
    let most = (shape[2] as u64 * shape[3] as u64).max(out_h as u64 * out_w as u64);
    u32::try_from(planes as u64 * most).map_err(|_| too_large())?;
    Ok(UpsampleBilinearParams {
        planes,
        in_h: shape[2],
        in_w: shape[3],
        out_h,
        out_w,
        scale_h: scale(shape[2], out_h, align_corners),
        scale_w: scale(shape[3], out_w, align_corners),
        align_corners: align_corners as u32,
        channels: shape[1],
        out_c_total: shape[1],
        out_c_offset: 0,
    })
}

/// `upsample_bilinear`: [N, C, H, W] -> [N, C, out_h, out_w] in the plan's activation precision.
pub fn upsample_bilinear(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    out_h: u32,
    out_w: u32,
    align_corners: bool,
) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    upsample_bilinear_params(label, &shape, out_h, out_w, align_corners)?;
    let out_shape = [shape[0], shape[1], out_h, out_w];
    let output = plan.activation(label, &out_shape);
    upsample_bilinear_into(plan, label, input, None, align_corners, output)?;
    Ok(output)
}

/// `upsample_bilinear_add`: skip + bilinear resize of `input` [N, C, H, W] to the size of `skip`
/// [N, C, out_h, out_w].
pub fn upsample_bilinear_add(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    skip: TensorId,
    align_corners: bool,
) -> Result<TensorId> {
    let skip_shape = plan.shape(skip).to_vec();
    let output = plan.activation(label, &skip_shape);
    upsample_bilinear_into(plan, label, input, Some(skip), align_corners, output)?;
    Ok(output)
}

/// [`upsample_bilinear`] (with `skip`: [`upsample_bilinear_add`]) writing `output`: a tensor of
/// the result's shape, or a channel view of a larger one. The output's size is the resize's.
pub fn upsample_bilinear_into(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    skip: Option<TensorId>,
    align_corners: bool,
    output: TensorId,
) -> Result<()> {
    let shape = plan.shape(input).to_vec();
    let out_shape = plan.shape(output).to_vec();
    invariant(
        shape.len() == 4 && out_shape.len() == 4 && shape[..2] == out_shape[..2],
        || format!("{label}: cannot write a bilinear upsample of {shape:?} into {out_shape:?}"),
    )?;
    if let Some(skip) = skip {
        let skip_shape = plan.shape(skip);
        invariant(skip_shape == out_shape.as_slice(), || {
            format!("{label}: cannot add a bilinear upsample of {shape:?} to {skip_shape:?}")
        })?;
    }
    let mut params =
        upsample_bilinear_params(label, &shape, out_shape[2], out_shape[3], align_corners)?;
    if let Some((parent, offset)) = plan.view_of(output) {
        params.out_c_total = plan.shape(parent)[1];
        params.out_c_offset = offset;
        let elements =
            shape[0] as u64 * params.out_c_total as u64 * params.out_h as u64 * params.out_w as u64;
        invariant(elements <= u32::MAX as u64, || {
            format!("{label}: the concatenation it writes into is too large")
        })?;
    }
    let (kernel, reads) = match skip {
        Some(skip) => (UPSAMPLE_BILINEAR_ADD, vec![input, skip]),
        None => (UPSAMPLE_BILINEAR, vec![input]),
    };
    push(plan, label, kernel, params, reads, output);
    Ok(())
}

fn push(
    plan: &mut Plan,
    label: &str,
    kernel: Kernel,
    params: UpsampleBilinearParams,
    reads: Vec<TensorId>,
    output: TensorId,
) {
    plan.push_step(Step {
        label: label.to_string(),
        kernel,
        overrides: vec![],
        params: params.words(),
        reads,
        writes: vec![output],
        threads: Threads::Linear(params.planes as u64 * params.out_h as u64 * params.out_w as u64),
        f16_packed_inputs: &[],
    });
}
