//! ROIAlign crops (torchvision `roi_align`, `aligned=True`).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct RoiAlignParams {
        pub channels: u32,
        pub height: u32,
        pub width: u32,
        pub out_size: u32,
        pub boxes: u32,
        /// torchvision's `sampling_ratio`: > 0 fixed samples per bin, <= 0 adaptive.
        pub sampling_ratio: i32,
    }
}

pub const ROI_ALIGN: Kernel = kernel!("roi_align", "roi_align", "main", RoiAlignParams);

/// `roi_align`: image [C, H, W] (or [1, C, H, W]) and boxes [K, 4] -> crops [K, C, S, S].
pub fn roi_align(
    plan: &mut Plan,
    image: TensorId,
    boxes: TensorId,
    out_size: u32,
    sampling_ratio: i32,
) -> Result<TensorId> {
    let is = plan.shape(image).to_vec();
    let (c, h, w) = match is.as_slice() {
        [h, w] => (1, *h, *w),
        [c, h, w] | [1, c, h, w] => (*c, *h, *w),
        _ => {
            return Err(SagittaError::InvalidInput(format!(
                "roi_align: bad image shape {is:?}"
            )))
        }
    };
    let bs = plan.shape(boxes).to_vec();
    invariant(bs.len() == 2 && bs[1] == 4, || {
        format!("roi_align: boxes must be [K, 4], got {bs:?}")
    })?;
    invariant(out_size > 0 && h > 0 && w > 0, || {
        "roi_align: empty image or output".into()
    })?;
    let k = bs[0];
    let output = plan.activation("crops", &[k, c, out_size, out_size]);
    plan.push_step(Step {
        label: "roi_align".into(),
        kernel: ROI_ALIGN,
        overrides: vec![],
        params: RoiAlignParams {
            channels: c,
            height: h,
            width: w,
            out_size,
            boxes: k,
            sampling_ratio,
        }
        .words(),
        reads: vec![image, boxes],
        writes: vec![output],
        threads: Threads::Linear(k as u64 * c as u64 * out_size as u64 * out_size as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}
