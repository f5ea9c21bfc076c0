//! Max-pooling.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct MaxPoolParams {
        pub planes: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
    }
}

pub const MAXPOOL2: Kernel = kernel!("maxpool2", "maxpool2", "main", MaxPoolParams);

/// `maxpool2`: 2x2, stride 2, floor mode. [N, C, H, W] -> [N, C, H/2, W/2].
pub fn maxpool2(plan: &mut Plan, label: &str, input: TensorId) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 4 && shape[2] >= 2 && shape[3] >= 2, || {
        format!("{label}: max-pool needs [N, C, H>=2, W>=2], got {shape:?}")
    })?;
    let (oh, ow) = (shape[2] / 2, shape[3] / 2);
    let planes = shape[0] * shape[1];
    let output = plan.activation(label, &[shape[0], shape[1], oh, ow]);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: MAXPOOL2,
        overrides: vec![],
        params: MaxPoolParams {
            planes,
            in_h: shape[2],
            in_w: shape[3],
            out_h: oh,
            out_w: ow,
        }
        .words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(planes as u64 * oh as u64 * ow as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}
