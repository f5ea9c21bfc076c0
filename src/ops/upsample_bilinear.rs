//! `upsample_bilinear`: [N, C, H, W] -> [N, C, out_h, out_w] exactly as PyTorch's
//! `F.interpolate(size=(out_h, out_w), mode="bilinear", align_corners=...)` (no antialias; twin:
//! `tools/sagitta_ref/ops/upsample_bilinear.py`). Any sizes, up or down, integer ratios or not.
//! [`upsample_bilinear_add`] adds a skip tensor of the output's shape in the same pass (a
//! decoder's `skip + up(x)`), saving a full write and read of the upsampled map.

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
    let params = upsample_bilinear_params(label, &shape, out_h, out_w, align_corners)?;
    let out_shape = [shape[0], shape[1], out_h, out_w];
    let output = plan.activation(label, &out_shape);
    push(plan, label, UPSAMPLE_BILINEAR, params, vec![input], output);
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
    let shape = plan.shape(input).to_vec();
    let skip_shape = plan.shape(skip).to_vec();
    invariant(
        shape.len() == 4 && skip_shape.len() == 4 && shape[..2] == skip_shape[..2],
        || format!("{label}: cannot add a bilinear upsample of {shape:?} to {skip_shape:?}"),
    )?;
    let (out_h, out_w) = (skip_shape[2], skip_shape[3]);
    let params = upsample_bilinear_params(label, &shape, out_h, out_w, align_corners)?;
    let output = plan.activation(label, &skip_shape);
    push(
        plan,
        label,
        UPSAMPLE_BILINEAR_ADD,
        params,
        vec![input, skip],
        output,
    );
    Ok(output)
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
