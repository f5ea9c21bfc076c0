//! `resize_bicubic`: the radiograph to the network's input size, exactly as PyTorch's
//! `F.interpolate(mode="bicubic", align_corners=False)` (twin: `tools/sagitta_ref/ops/resize.py`).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct ResizeParams {
        pub in_w: u32,
        pub in_h: u32,
        pub out_w: u32,
        pub out_h: u32,
        pub scale_x: f32,
        pub scale_y: f32,
    }
}

pub const RESIZE_BICUBIC: Kernel =
    kernel!("resize_bicubic", "resize_bicubic", "main", ResizeParams);

/// `resize_bicubic`: [H, W] -> [1, 1, out_h, out_w] (ready for the network).
pub fn resize_bicubic(
    plan: &mut Plan,
    input: TensorId,
    out_h: u32,
    out_w: u32,
) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 2 && shape[0] > 0 && shape[1] > 0, || {
        format!("resize expects a non-empty [H, W] image, got {shape:?}")
    })?;
    invariant(out_h > 0 && out_w > 0, || "resize to an empty size".into())?;
    let (in_h, in_w) = (shape[0], shape[1]);
    // Stays f32: standardization needs the raw range (up to 16-bit values) at full precision.
    let output = plan.activation_f32("resized", &[1, 1, out_h, out_w]);
    let _ = plan.push_step(Step {
        label: "resize_bicubic".into(),
        kernel: RESIZE_BICUBIC,
        overrides: vec![],
        params: resize_params(in_h, in_w, out_h, out_w).words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(out_h as u64 * out_w as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

/// Parameters of `resize_bicubic` for an input size, to rewrite when the input changes size.
pub fn resize_params(in_h: u32, in_w: u32, out_h: u32, out_w: u32) -> ResizeParams {
    // PyTorch computes the scale in f32 as in/out.
    ResizeParams {
        in_w,
        in_h,
        out_w,
        out_h,
        scale_x: in_w as f32 / out_w as f32,
        scale_y: in_h as f32 / out_h as f32,
    }
}
