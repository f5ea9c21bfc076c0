//! `grid_sample_crops`: rectangular crops of one image resampled to a fixed size, exactly as
//! PyTorch's `F.grid_sample(mode="bicubic", padding_mode="border", align_corners=False)` at pixel
//! centres mapped into each box (twin: `tools/sagitta_ref/ops/grid_sample_crops.py`). Boxes may
//! reach past the image (taps clamp to the border) and may be smaller than a pixel.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct GridSampleCropsParams {
        pub channels: u32,
        pub height: u32,
        pub width: u32,
        pub out_h: u32,
        pub out_w: u32,
        /// Crops made (boxes read from `first_box` on).
        pub boxes: u32,
        pub first_box: u32,
    }
}

pub const GRID_SAMPLE_CROPS: Kernel = kernel!(
    "grid_sample_crops",
    "grid_sample_crops",
    "main",
    GridSampleCropsParams
);

/// `grid_sample_crops`: image [1, C, H, W] (or [C, H, W]) in the plan's activation storage and
/// f32 boxes [K, 4] = (x0, y0, x1, y1) in input pixels -> crops [K, C, out_h, out_w]. Output
/// pixel (i, j) samples x = x0 + (j + 1/2)(x1 - x0)/out_w, y = y0 + (i + 1/2)(y1 - y0)/out_h.
pub fn grid_sample_crops(
    plan: &mut Plan,
    label: &str,
    image: TensorId,
    boxes: TensorId,
    out_h: u32,
    out_w: u32,
) -> Result<TensorId> {
    let all = plan.shape(boxes).first().copied().unwrap_or(0);
    grid_sample_crops_range(plan, label, image, boxes, 0..all, out_h, out_w)
}

/// [`grid_sample_crops`] of the boxes `range` only -> crops [range.len(), C, out_h, out_w]
/// (a batch too large for one buffer binding is cropped and processed in parts).
pub fn grid_sample_crops_range(
    plan: &mut Plan,
    label: &str,
    image: TensorId,
    boxes: TensorId,
    range: std::ops::Range<u32>,
    out_h: u32,
    out_w: u32,
) -> Result<TensorId> {
    let is = plan.shape(image).to_vec();
    let (c, h, w) = match is.as_slice() {
        [c, h, w] | [1, c, h, w] => (*c, *h, *w),
        _ => {
            return Err(SagittaError::InvalidInput(format!(
                "{label}: grid_sample_crops expects a [1, C, H, W] image, got {is:?}"
            )))
        }
    };
    let bs = plan.shape(boxes).to_vec();
    invariant(bs.len() == 2 && bs[1] == 4, || {
        format!("{label}: boxes must be [K, 4], got {bs:?}")
    })?;
    invariant(c > 0 && h > 0 && w > 0 && out_h > 0 && out_w > 0, || {
        format!("{label}: empty image {is:?} or output {out_h}x{out_w}")
    })?;
    invariant(range.start < range.end && range.end <= bs[0], || {
        format!("{label}: boxes {range:?} of {}", bs[0])
    })?;
    let k = range.end - range.start;
    let threads = k as u64 * c as u64 * out_h as u64 * out_w as u64;
    invariant(
        threads <= u32::MAX as u64 && c as u64 * h as u64 * w as u64 <= u32::MAX as u64,
        || {
            format!("{label}: {k} crops of {is:?} to {out_h}x{out_w}: too many elements for 32-bit indices")
        },
    )?;
    let output = plan.activation(label, &[k, c, out_h, out_w]);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: GRID_SAMPLE_CROPS,
        overrides: vec![],
        params: GridSampleCropsParams {
            channels: c,
            height: h,
            width: w,
            out_h,
            out_w,
            boxes: k,
            first_box: range.start,
        }
        .words(),
        reads: vec![image, boxes],
        writes: vec![output],
        threads: Threads::Linear(threads),
        f16_packed_inputs: &[],
    });
    Ok(output)
}
