//! `resize_area`: the radiograph to the network's input size by area averaging, exactly as
//! PyTorch's `F.interpolate(mode="area")` = `F.adaptive_avg_pool2d` (twin:
//! `tools/sagitta_ref/ops/resize_area.py`). Shrinks without aliasing; an image smaller than the
//! output repeats pixels.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct ResizeAreaParams {
        pub in_w: u32,
        pub in_h: u32,
        pub out_w: u32,
        pub out_h: u32,
    }
}

pub const RESIZE_AREA: Kernel = kernel!("resize_area", "resize_area", "main", ResizeAreaParams);

/// `resize_area`: an f32 [H, W] image -> f32 [1, 1, out_h, out_w]. Output row i averages input
/// rows floor(i * H / out_h) .. ceil((i + 1) * H / out_h) - 1, columns likewise.
pub fn resize_area(plan: &mut Plan, input: TensorId, out_h: u32, out_w: u32) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 2 && shape[0] > 0 && shape[1] > 0, || {
        format!("area resize expects a non-empty [H, W] image, got {shape:?}")
    })?;
    invariant(out_h > 0 && out_w > 0, || {
        "area resize to an empty size".into()
    })?;
    let params = resize_area_params(shape[0], shape[1], out_h, out_w)?;
    // Stays f32, like the bicubic resize: the min-max reduction needs the raw range.
    let output = plan.activation_f32("resized", &[1, 1, out_h, out_w]);
    plan.push_step(Step {
        label: "resize_area".into(),
        kernel: RESIZE_AREA,
        overrides: vec![],
        params: params.words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(out_h as u64 * out_w as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

/// Parameters of `resize_area` for an input size (to rewrite when the input changes size).
/// The kernel computes the window bounds as (i + 1) * in + out - 1 in u32: sizes whose products
/// would overflow are refused.
pub fn resize_area_params(
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
) -> Result<ResizeAreaParams> {
    let fits = |input: u32, output: u32| {
        (output as u64 + 1) * input as u64 + output as u64 <= u32::MAX as u64
    };
    invariant(fits(in_h, out_h) && fits(in_w, out_w), || {
        format!("area resize of {in_h}x{in_w} to {out_h}x{out_w}: sizes too large")
    })?;
    invariant(in_h > 0 && in_w > 0 && out_h > 0 && out_w > 0, || {
        format!("area resize of {in_h}x{in_w} to {out_h}x{out_w}: empty size")
    })?;
    Ok(ResizeAreaParams {
        in_w,
        in_h,
        out_w,
        out_h,
    })
}
